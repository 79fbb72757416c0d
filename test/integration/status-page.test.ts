import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { ADMIN, startAgent, startServer, type RunningServer } from '../src/inproc.js';
import { client, upsert } from '../src/http.js';
import { ROOT } from '../src/procs.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** The live status page, driven in headless Chromium against a real server and agents. */
describe('status page', () => {
  let server: RunningServer;
  let agents: Awaited<ReturnType<typeof startAgent>>[];
  let browser: Browser;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
    server = await startServer();
    agents = await Promise.all(['pdp-eu-1', 'pdp-us-1'].map((id) => startAgent(server.url, { env: { AGENT_ENV: 'demo', AGENT_ID: id } })));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all((agents ?? []).map((a) => a.close()));
    await server?.close();
  });

  it('shows head, agents and their applied versions, updating live as facts are written', async () => {
    const admin = client(server.url, ADMIN);
    await admin.post('/v1/envs/demo/facts', { ops: [upsert('user', 'first@x.io', {})] }, { 'x-wait-timeout': '5' });

    const page = await browser.newPage({ viewport: { width: 1100, height: 560 } });
    await page.goto(server.url);
    await page.fill('#token', ADMIN);
    await page.fill('#env-name', 'demo');
    await page.click('#connect');
    await page.waitForSelector('tr[data-agent="pdp-eu-1"]');
    expect(await page.textContent('#state')).toBe('live');
    expect(await page.textContent('#head')).toBe('1');
    // The store and the epoch; the address now bookmarks this view, the token only in the fragment.
    const epoch = (await client(server.url, ADMIN).get('/v1/envs/demo/head')).body.epoch;
    expect(await page.textContent('#store')).toBe(`memory · ${epoch}`);
    expect(new URL(page.url()).hash).toBe(`#token=${ADMIN}&env=demo`);

    for (let i = 0; i < 12; i++) {
      const r = await admin.post('/v1/envs/demo/facts', { ops: [upsert('doc', `d${i}`, { i })] }, { 'x-wait-for': 'all', 'x-wait-timeout': '5' });
      expect(r.body.sync.synced).toBe(true);
    }
    await page.waitForFunction(() => document.querySelector('#head')?.textContent === '13');
    await page.waitForFunction(() => [...document.querySelectorAll('td.applied')].every((td) => td.textContent === '13'));
    expect(await page.locator('tr[data-agent]').count()).toBe(2);
    expect(await page.textContent('tr[data-agent="pdp-us-1"] td.lag')).toBe('0');
    expect(await page.textContent('#connected')).toBe('2');

    // Users checked on the agents show as this month's MAU.
    expect(await page.textContent('#mau')).toBe('0');
    await agents[0]!.api.app.inject({ method: 'POST', url: '/allowed/bulk', payload: [{ user: 'ann', action: 'read', resource: 'doc' }, { user: 'bob', action: 'read', resource: 'doc' }] });
    await agents[1]!.api.app.inject({ method: 'POST', url: '/allowed', payload: { user: 'bob', action: 'read', resource: 'doc' } });
    await admin.post('/v1/envs/demo/facts', { ops: [upsert('doc', 'nudge', {})] }); // an event, so the page refreshes at once
    await page.waitForFunction(() => document.querySelector('#mau')?.textContent === '2');

    // An agent going away shows as disconnected.
    await agents[1]!.close();
    await page.waitForSelector('tr[data-agent="pdp-us-1"] .dot.off');
    // UPDATE_SCREENSHOTS=1 refreshes the one linked from the README; other runs leave the tree clean.
    const shot = process.env.UPDATE_SCREENSHOTS === '1' ? join(ROOT, 'docs/status-page.png') : join(tmpdir(), 'factsync-status-page.png');
    await page.screenshot({ path: shot });
    expect(statSync(shot).size).toBeGreaterThan(10_000);

    // The lag chart has a time axis and the peak.
    expect(await page.locator('#chart text.tick').allTextContents()).toEqual(['-120s', '-90s', '-60s', '-30s', 'now']);
    expect(Number(await page.textContent('#peak'))).toBeGreaterThanOrEqual(1);

    // A bookmark with the fragment connects by itself; the server never sees the token in a URL.
    const bookmarked = await browser.newPage();
    const seen: string[] = [];
    bookmarked.on('request', (r) => seen.push(r.url()));
    await bookmarked.goto(`${server.url}/#token=${ADMIN}&env=demo`);
    await bookmarked.waitForSelector('tr[data-agent="pdp-eu-1"]');
    expect(await bookmarked.textContent('#state')).toBe('live');
    expect(seen.some((u) => u.includes(ADMIN))).toBe(false);
    await bookmarked.close();

    // The icon is served (no 404 in the console).
    const icon = await fetch(`${server.url}/favicon.ico`);
    expect(icon.status).toBe(200);
    expect(icon.headers.get('content-type')).toMatch(/image\/svg\+xml/);

    // A wrong token is refused with the server's message.
    await page.fill('#token', 'wrong');
    await page.click('#connect');
    await page.waitForFunction(() => (document.querySelector('#error')?.textContent ?? '').includes('unknown token'));
    await page.close();
  });
});
