import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient, createServerClient, type FactsyncClient, type FactsyncServerClient } from '@factsync/sdk';

/** What every command gets: the server and agent it talks to, and how it prints. */
export interface CliContext {
  server: FactsyncServerClient;
  agent: () => FactsyncClient;
  /** JSON out: asked for with --json, or stdout is not a terminal. */
  json: boolean;
  /** Progress bars and colours: stderr is a terminal. */
  interactive: boolean;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

/** A mistake of the caller's (bad argument, bad file): one line, exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A command that ends with a status of its own (a source whose slot is gone: 3), its one line on stderr. */
export class ExitError extends Error {
  override name = 'ExitError';
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** `npm start` keeps its dev token here; the CLI uses it when FACTSYNC_TOKEN is unset, so the tour needs no export. */
const DEV_TOKEN_FILE = join(resolve(process.env.DATA_DIR ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '.data')), 'dev-token');

function url(name: string, fallback: string): string {
  const v = process.env[name]?.trim() || fallback;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new UsageError(`${name}=${JSON.stringify(v)} is not a URL: use e.g. ${fallback}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`${name} must be an http:// or https:// URL, got ${JSON.stringify(v)}`);
  return v;
}

export function serverToken(): string | undefined {
  const t = process.env.FACTSYNC_TOKEN?.trim();
  if (t) return t;
  if (existsSync(DEV_TOKEN_FILE)) return readFileSync(DEV_TOKEN_FILE, 'utf8').trim() || undefined;
  return undefined;
}

export function createContext(o: { env: string; json?: boolean }): CliContext {
  const serverUrl = url('FACTSYNC_URL', 'http://127.0.0.1:7002');
  const token = serverToken();
  return {
    server: createServerClient({ url: serverUrl, token, env: o.env }),
    agent: () => createClient({ url: url('FACTSYNC_AGENT_URL', 'http://127.0.0.1:7766'), token: process.env.FACTSYNC_AGENT_TOKEN?.trim() || undefined }),
    json: o.json === true || !process.stdout.isTTY,
    interactive: process.stderr.isTTY === true,
    out: process.stdout,
    err: process.stderr,
  };
}

/** Writes to stdout, waiting when the pipe is full (a million lines into `head` or a slow disk). */
export function writeOut(out: NodeJS.WritableStream, text: string): Promise<void> | void {
  if (out.write(text)) return;
  return new Promise((res, rej) => {
    const done = (e?: unknown): void => {
      out.off('drain', done);
      out.off('error', done);
      if (e) rej(e);
      else res();
    };
    out.once('drain', done);
    out.once('error', done);
  });
}

export const printJson = (c: CliContext, v: unknown): Promise<void> | void => writeOut(c.out, `${JSON.stringify(v)}\n`);
