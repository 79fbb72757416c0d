// The CLI as one plain-JS file (cli/dist/factsync.mjs), so `npx factsync` starts in
// node's time, not TypeScript's. Built at install (the root's `prepare`) and again by
// the bin whenever a source of the CLI, the SDK or shared/ is newer than the build,
// so an edited tree never runs stale code. Plain JS: it must run before anything is compiled.
import { existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = dirname(fileURLToPath(import.meta.url));
const ROOT = join(CLI, '..');
/** Same depth as cli/src, so paths the CLI derives from its own location (the dev token) hold. */
export const OUTPUT = join(CLI, 'dist', 'factsync.mjs');
const DIST = join(CLI, 'dist');
const SOURCES = ['cli/src', 'sdk/src', 'shared/src', 'source/src'].map((d) => join(ROOT, d));

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return newest;
}

export function isFresh() {
  if (!existsSync(OUTPUT)) return false;
  const built = statSync(OUTPUT).mtimeMs;
  return SOURCES.every((d) => newestSource(d) <= built);
}

/**
 * Bundles the workspace's TypeScript and its npm dependencies into one file:
 * node loads one module instead of hundreds (TypeBox alone is ~60 ms of file
 * loading). CommonJS dependencies get a `require` of their own; ws's optional
 * native helpers stay optional.
 */
export async function build() {
  const { build: esbuild } = await import('esbuild');
  const tmp = `${DIST}-${process.pid}.tmp`;
  await esbuild({
    entryPoints: { factsync: join(CLI, 'src', 'main.ts') },
    outdir: tmp,
    outExtension: { '.js': '.mjs' },
    // Commands that need heavy dependencies (sources: the Postgres client) load their chunk when they run.
    splitting: true,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'error',
    // Optional native or platform helpers of ws and pg: absent unless installed, and then loaded as they are.
    external: ['bufferutil', 'utf-8-validate', 'pg-native', 'pg-cloudflare'],
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  });
  // Two CLIs rebuilding at once each build their own directory; the last one in place wins, each whole.
  const old = `${DIST}-${process.pid}.old`;
  try {
    renameSync(DIST, old);
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
  }
  try {
    renameSync(tmp, DIST);
  } catch (e) {
    // Another build got there first: its output is as fresh as ours.
    if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
    rmSync(tmp, { recursive: true, force: true });
  }
  rmSync(old, { recursive: true, force: true });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // An image's `npm ci` runs before the sources are copied in: nothing to build yet.
  if (existsSync(join(CLI, 'src', 'main.ts'))) await build();
  else process.stdout.write('cli/build.mjs: no CLI sources yet; the bin builds them on first use\n');
}
