import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from './env-config.js';

/** PEM files by the variable that named them, e.g. { TLS_CERT_FILE: '/etc/tls/tls.crt' }. */
export type PemFiles = Record<string, string | undefined>;

/** Reads each named PEM file; a missing or unreadable one stops start-up with one line naming its variable. */
export function readPemFiles(files: PemFiles): Record<string, Buffer | undefined> {
  const out: Record<string, Buffer | undefined> = {};
  for (const [name, path] of Object.entries(files)) {
    if (!path) continue;
    try {
      const pem = readFileSync(path);
      if (!pem.includes('-----BEGIN ')) throw new Error('it holds no PEM block');
      out[name] = pem;
    } catch (e) {
      throw new ConfigError(`${name}=${path} cannot be used (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): give a PEM file`);
    }
  }
  return out;
}

/** A stamp of the files' current versions: when it changes, certificates were rotated. */
export function pemStamp(files: PemFiles): string {
  return Object.values(files).filter(Boolean).map((p) => {
    try {
      const st = statSync(p!);
      return `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      return 'missing';
    }
  }).join('|');
}
