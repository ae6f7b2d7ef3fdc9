// A session outlives its node: three tandems on one real redis-server
// behind a round-robin balancer (no stickiness), the page's node SIGKILLed
// mid-stream; the browser client resumes through another node with every
// publication once, in order, and no resync.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { startBalancer } from './lib/balancer.mjs';
import { launchChromium } from './lib/chromium.mjs';
import { connectedOver, openPage, range, startClient, until } from './lib/client.mjs';
import { startRedis } from './lib/redis.mjs';
import { startTandem } from './lib/tandem.mjs';

const CLUSTER_KEY = 'browser-cluster-key-0123456789abcdef';
const TOTAL = 150;

let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

async function cluster(prefix) {
  const redis = await startRedis();
  const broker = {
    kind: 'redis',
    url: redis.url,
    cluster_key: CLUSTER_KEY,
    key_prefix: prefix,
    heartbeat_seconds: 1,
    command_timeout_ms: 500,
  };
  const nodes = [];
  for (let i = 0; i < 3; i++) nodes.push(await startTandem({ broker }));
  for (const n of nodes) {
    await until_(() => n.logs.some((l) => l.message === 'Broker connected'), 'broker connected');
  }
  const balancer = await startBalancer(nodes.map((n) => n.url));
  return {
    nodes,
    balancer,
    async close() {
      await balancer.close();
      for (const n of nodes) await n.stop();
      await redis.stop();
    },
  };
}

/** Polls `fn` in node until truthy, for 15 s. */
async function until_(fn, what) {
  const deadline = Date.now() + 15_000;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const mode of ['websocket', 'sse']) {
  test(`${mode}: the page's node is SIGKILLed mid-stream; nothing lost, nothing twice, no resync`, async () => {
    const c = await cluster(`ra-${mode}`);
    const page = await openPage(browser, c.balancer.url);
    try {
      await startClient(page, { playerId: 'alice', channels: ['room:ra'], mode, reconnect: { baseDelayMs: 20, maxDelayMs: 200 } });
      await connectedOver(page, [mode]);
      const connected = mode === 'websocket' ? 'WebSocket connected' : 'SSE connected';
      let home = -1;
      await until_(() => {
        home = c.nodes.findIndex((n) => n.logs.some((l) => l.message === connected && l.player_id === 'alice'));
        return home >= 0;
      }, 'the node holding the page');
      const survivors = c.nodes.filter((_, i) => i !== home);

      for (let i = 0; i < TOTAL; i++) {
        if (i === TOTAL / 3) await c.nodes[home].kill();
        const target = survivors[i % survivors.length];
        const body = { channel: 'room:ra', event: 'n', data: { i }, id: `ra-${i}` };
        // A 503 while the cluster notices the death is retried with the same id.
        for (let attempt = 0; ; attempt++) {
          const { status } = await target.api('/api/publish', body);
          if (status === 200) break;
          if (attempt > 50) throw new Error(`publication ${i}: ${status}`);
          await new Promise((r) => setTimeout(r, 50));
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      await until(page, (n) => window.seqs.length >= n, TOTAL);
      assert.deepEqual(await page.evaluate(() => window.data.map((d) => d.i)), range(TOTAL, 0));
      assert.deepEqual(await page.evaluate(() => window.seqs), range(TOTAL));
      const events = await page.evaluate(() => window.events.filter((e) => !e.startsWith('message')));
      assert.deepEqual(events, [], 'no resync');
      const takenOver = survivors.flatMap((n) => n.logs).filter((l) => l.message === 'Session taken over');
      assert.ok(takenOver.length >= 1, 'a survivor took the session over');
    } finally {
      await page.close();
      await c.close();
    }
  });
}
