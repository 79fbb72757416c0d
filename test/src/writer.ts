/**
 * A writer process for the multi-process tests: `writer.ts <baseUrls,> <env> <token> <count> <id>`.
 * Sends `count` writes (round-robin over the given server URLs, 4 in flight),
 * each with an Idempotency-Key and a retry on connection errors, and prints
 * the versions it was given as JSON.
 */
const [urlsArg, env, token, countArg, id] = process.argv.slice(2);
const urls = urlsArg!.split(',');
const count = Number(countArg);
const versions: number[] = [];

async function write(i: number): Promise<void> {
  const body = JSON.stringify({
    ops: [
      { op: 'upsert', type: 'user', key: `${id}-u${i % 50}`, value: { email: `${id}-${i}@x.io`, attributes: { n: i } } },
      ...(i % 7 === 0 ? [{ op: 'delete', type: 'user', key: `${id}-u${(i + 13) % 50}` }] : []),
      { op: 'upsert', type: 'doc', key: `${id}-d${i % 10}`, value: { writer: id, i } },
    ],
  });
  for (let attempt = 0; ; attempt++) {
    const url = urls[(i + attempt) % urls.length]!;
    try {
      const res = await fetch(`${url}/v1/envs/${env}/facts`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': `${id}-${i}` },
        body,
      });
      const b = (await res.json()) as { version?: number };
      if (res.status === 200 && typeof b.version === 'number') {
        versions.push(b.version);
        return;
      }
      if (res.status < 500) throw new Error(`write ${i} failed: ${res.status} ${JSON.stringify(b)}`);
    } catch (e) {
      if (attempt > 50 || (e as Error).message.startsWith('write')) throw e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

let next = 0;
await Promise.all(Array.from({ length: 4 }, async () => {
  while (next < count) await write(next++);
}));
process.stdout.write(JSON.stringify({ id, versions }) + '\n');
