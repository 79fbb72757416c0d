import { rootCertificates } from 'node:tls';
import { Agent as UndiciAgent, fetch as undiciFetch } from 'undici';
import { pemStamp, readPemFiles } from '@factsync/shared/tls-files';

/** SERVER_CA_FILE, AGENT_CERT_FILE, AGENT_KEY_FILE. */
export interface AgentTlsFiles {
  caFile: string | undefined;
  certFile: string | undefined;
  keyFile: string | undefined;
}

export interface TlsConnectOptions {
  ca?: (string | Buffer)[];
  cert?: Buffer;
  key?: Buffer;
}

const files = (t: AgentTlsFiles) => ({ SERVER_CA_FILE: t.caFile, AGENT_CERT_FILE: t.certFile, AGENT_KEY_FILE: t.keyFile });

/**
 * The agent's side of TLS to https:// servers: the system's roots plus
 * SERVER_CA_FILE, and a client certificate for mutual TLS. Read again when
 * the files change, so rotated certificates need no restart: `connect()` for
 * each websocket, `fetch` for HTTP calls (its connection pool is rebuilt on
 * a change).
 */
export class AgentTls {
  private stamp = '';
  private options: TlsConnectOptions = {};
  private dispatcher: UndiciAgent | undefined;

  constructor(private readonly t: AgentTlsFiles) {
    this.refresh();
  }

  get active(): boolean {
    return Boolean(this.t.caFile || this.t.certFile);
  }

  /** Options for `new WebSocket(url, …)` (and `tls.connect`). */
  connect(): TlsConnectOptions {
    this.refresh();
    return this.options;
  }

  readonly fetch = (url: URL, init: RequestInit): Promise<Response> => {
    if (!this.active) return globalThis.fetch(url, init);
    this.refresh();
    this.dispatcher ??= new UndiciAgent({ connect: this.options });
    return undiciFetch(url, { ...(init as object), dispatcher: this.dispatcher } as never) as unknown as Promise<Response>;
  };

  private refresh(): void {
    if (!this.active) return;
    const now = pemStamp(files(this.t));
    if (now === this.stamp) return;
    try {
      const pem = readPemFiles(files(this.t));
      this.options = {
        ...(pem.SERVER_CA_FILE ? { ca: [...rootCertificates, pem.SERVER_CA_FILE] } : {}),
        ...(pem.AGENT_CERT_FILE ? { cert: pem.AGENT_CERT_FILE } : {}),
        ...(pem.AGENT_KEY_FILE ? { key: pem.AGENT_KEY_FILE } : {}),
      };
      this.stamp = now;
      const old = this.dispatcher;
      this.dispatcher = undefined;
      void old?.close();
    } catch (e) {
      // At start-up the config check already read them; later, a file being rewritten keeps the last good ones.
      if (this.stamp === '') throw e;
    }
  }
}

/** A TLS failure → a line an operator can act on, or undefined when it is not about certificates. */
export function describeTlsError(e: { code?: string; message: string }): string | undefined {
  const code = e.code ?? '';
  // An alert from the server (TLS 1.3: "certificate required") is about our side; check it first, its code names CERTIFICATE too.
  if (/ALERT|HANDSHAKE/.test(code) || /alert|handshake/i.test(e.message)) {
    return `the TLS handshake failed (${code || e.message}); if the server requires client certificates (TLS_CLIENT_CA_FILE), set AGENT_CERT_FILE and AGENT_KEY_FILE to one its CA signed`;
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
    return `the server's TLS certificate is not trusted (${code}: ${e.message}); set SERVER_CA_FILE to the CA that signed it, or check that SERVER_URL names a host the certificate is for`;
  }
  return undefined;
}
