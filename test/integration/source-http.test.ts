import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN, newEnv, startServer, type RunningServer } from '../src/inproc.js';
import { client } from '../src/http.js';
import { startCli, type CliChild } from '../src/cli.js';
import { waitUntil, within } from '../src/wait.js';

/** The HTTP source against a real endpoint and server, the source a real CLI process. */
describe('source: HTTP', () => {
  let server: RunningServer;
  let catalog: Server;
  let url = '';
  const dir = mkdtempSync(join(tmpdir(), 'factsync-http-source-'));
  // What the endpoint serves: its body and ETag; every request and how it was answered.
  let body = '';
  let etag = '"v1"';
  const answered: number[] = [];

  beforeAll(async () => {
    server = await startServer();
    catalog = createServer((req, res) => {
      if (req.headers['if-none-match'] === etag) {
        answered.push(304);
        res.writeHead(304).end();
        return;
      }
      answered.push(200);
      res.writeHead(200, { 'content-type': 'application/x-ndjson', etag });
      res.end(body);
    });
    await new Promise<void>((r) => catalog.listen(0, '127.0.0.1', () => r()));
    const addr = catalog.address();
    url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/facts.jsonl`;
  });
  afterAll(async () => {
    catalog?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const inst = (id: string, tenant = 'acme') => JSON.stringify({ type: 'resource_instance', key: `document:${id}`, value: { tenant } });

  it('304s and equal bodies write nothing; a changed body is one version; a shorter one deletes; a bad line writes nothing', async () => {
    const env = newEnv();
    const api = client(server.url, ADMIN);
    // Another writer's fact of another type: not owned, never touched.
    await api.post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'user', key: 'u1', value: {} }] });
    const file = join(dir, 'catalog.yaml');
    writeFileSync(file, `sources:\n  - name: catalog\n    http:\n      url: ${url}\n      every: 200ms\n      owns: [{ type: resource_instance }]\n`);
    body = `${inst('1')}\n${inst('2')}\n`;
    const src: CliChild = startCli(['source', 'run', file, '--env', env], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN });
    try {
      const head = async () => (await api.get(`/v1/envs/${env}/head`)).body.version as number;
      await waitUntil(async () => (await head()) === 2, 'the first body', 30_000, 50);
      const first = (await api.get(`/v1/envs/${env}/changes?after=1`)).body.changes;
      expect(first).toHaveLength(1);
      expect(first[0].ops).toHaveLength(2);

      // Unchanged (304 every time): nothing written.
      const seen = answered.length;
      await waitUntil(() => answered.slice(seen).filter((s) => s === 304).length >= 3, 'three 304s');
      expect(await head()).toBe(2);
      // The same body under a new ETag: fetched, compared, nothing written.
      etag = '"v2"';
      await waitUntil(() => answered.slice(seen).includes(200), 'the body fetched again');
      await waitUntil(() => answered[answered.length - 1] === 304, 'back to 304s');
      expect(await head()).toBe(2);

      // Changed and shorter: one version that upserts and deletes.
      body = `${inst('1', 'globex')}\n`;
      etag = '"v3"';
      await waitUntil(async () => (await head()) === 3, 'the changed body');
      const change = (await api.get(`/v1/envs/${env}/changes?after=2`)).body.changes[0];
      expect(change.ops).toEqual([
        { op: 'upsert', type: 'resource_instance', key: 'document:1', value: { tenant: 'globex' } },
        { op: 'delete', type: 'resource_instance', key: 'document:2' },
      ]);
      expect((await api.get(`/v1/envs/${env}/facts/user/u1`)).status).toBe(200);

      // A bad line: an error naming it, said once, nothing written.
      body = `${inst('1', 'globex')}\n{"type":"resource_instance","key":"document:3","value":{"tenant":5}}\nnot json\n`;
      etag = '"v4"';
      await waitUntil(() => src.err.includes('line 2'), 'the bad line named', 30_000);
      expect(src.err).toMatch(/catalog: .*facts\.jsonl line 2: .*nothing was written/);
      await new Promise((r) => setTimeout(r, 1000));
      expect(src.err.match(/line 2/g)).toHaveLength(1);
      expect(await head()).toBe(3);
      const recorded = (await api.get(`/v1/envs/${env}/sources`)).body;
      expect(recorded).toEqual([{ name: 'catalog', position: expect.stringMatching(/^\d{15}$/), version: 3, updated_at: expect.any(String) }]);
    } finally {
      src.child.kill('SIGTERM');
      await within(src.done, 'the source to stop', 15_000);
    }
  }, 90_000);
});
