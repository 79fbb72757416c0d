import type { Server as HttpsServer, ServerOptions } from 'node:https';
import type { Logger } from 'pino';
import { pemStamp, readPemFiles } from '@factsync/shared/tls-files';
import type { ServerConfig } from './config.js';

/** How often the certificate files are looked at for a rotation. */
const CHECK_MS = 1000;

type Tls = NonNullable<ServerConfig['tls']>;

const files = (t: Tls) => ({ TLS_CERT_FILE: t.certFile, TLS_KEY_FILE: t.keyFile, TLS_CLIENT_CA_FILE: t.clientCaFile });

/** The HTTPS options of the server: its key and certificate, and with a client CA, mutual TLS (a client without a certificate it signed is refused in the handshake). */
export function httpsOptions(t: Tls): ServerOptions {
  const pem = readPemFiles(files(t));
  return {
    key: pem.TLS_KEY_FILE, cert: pem.TLS_CERT_FILE,
    ...(pem.TLS_CLIENT_CA_FILE ? { ca: pem.TLS_CLIENT_CA_FILE, requestCert: true, rejectUnauthorized: true } : {}),
  };
}

/**
 * Certificates rotate without a restart (cert-manager renews them in place):
 * when a file changes, new connections get the new key and certificate
 * (`setSecureContext`); a half-written pair is not used, the old one stays.
 * Returns the stop function.
 */
export function watchCertificates(t: Tls, server: HttpsServer, log: Logger): () => void {
  let stamp = pemStamp(files(t));
  const timer = setInterval(() => {
    const now = pemStamp(files(t));
    if (now === stamp) return;
    try {
      server.setSecureContext(httpsOptions(t));
      stamp = now;
      log.info({ cert: t.certFile }, 'TLS certificate files changed: new connections use them');
    } catch (e) {
      log.error({ err: (e as Error).message }, 'TLS certificate files changed but cannot be used (yet); keeping the previous ones');
    }
  }, CHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
