import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from '@factsync/shared';

/** The agent's current token: AGENT_TOKEN, or AGENT_TOKEN_FILE read again when it changes. */
export type TokenSource = () => string;

/** How often the file is looked at, at most (a stat per request would be waste; a connect always looks). */
const CHECK_MS = 1000;

/**
 * AGENT_TOKEN_FILE, re-read when it changes (a Kubernetes projected
 * service-account token is rewritten before it expires): `current()` for
 * requests, `fresh()` at every connect. A file that is briefly empty or
 * unreadable keeps the last token.
 */
export function tokenFile(path: string): { current: TokenSource; fresh: TokenSource } {
  let token = '';
  let stamp = '';
  let checkedAt = 0;
  const read = (atStart: boolean): void => {
    try {
      const st = statSync(path);
      const s = `${st.mtimeMs}:${st.size}:${st.ino}`;
      if (s === stamp) return;
      const t = readFileSync(path, 'utf8').trim();
      if (t) {
        token = t;
        stamp = s;
      } else if (atStart) throw new ConfigError(`AGENT_TOKEN_FILE=${path} is empty: it must hold the agent's token`);
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      if (atStart) throw new ConfigError(`AGENT_TOKEN_FILE=${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): give the path of a file holding the agent's token`);
    }
  };
  read(true);
  return {
    current: () => {
      const now = Date.now();
      if (now - checkedAt >= CHECK_MS) {
        checkedAt = now;
        read(false);
      }
      return token;
    },
    fresh: () => {
      checkedAt = Date.now();
      read(false);
      return token;
    },
  };
}
