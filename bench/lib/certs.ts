import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** A CA and a server certificate for 127.0.0.1 made with openssl in `dir`: what the TLS benches serve. */
export function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const openssl = (...a: string[]) => execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=bench-ca', '-days', '1');
  execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1\\n" > ext'], { cwd: dir });
  openssl('req', ...ec, '-keyout', 's.key', '-out', 's.csr', '-subj', '/CN=127.0.0.1');
  openssl('x509', '-req', '-in', 's.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 's.crt', '-days', '1', '-extfile', 'ext');
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 's.crt'), key: join(dir, 's.key') };
}
