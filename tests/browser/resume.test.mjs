// Resume without loss or duplicate when real connections are cut (a TCP
// proxy destroys both sockets), a link that goes silent, and a server
// restart that loses the session.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { launchChromium } from './lib/chromium.mjs';
import { connectedOver, openPage, publishMany, range, startClient, until } from './lib/client.mjs';
import { startProxy } from './lib/proxy.mjs';
import { startTandem } from './lib/tandem.mjs';

let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

/** A tandem behind a cutting proxy, and a page loaded through the proxy. */
async function setup(config = {}) {
  const tandem = await startTandem(config);
  const proxy = await startProxy(tandem.url);
  const page = await openPage(browser, proxy.url);
  return {
    tandem,
    proxy,
    page,
    async close() {
      await page.close();
      await proxy.close();
      await tandem.stop();
    },
  };
}

const fast = { baseDelayMs: 20, maxDelayMs: 200 };

for (const mode of ['websocket', 'sse']) {
  test(`${mode}: connections cut mid-stream resume with no lost or duplicated seq`, async () => {
    const t = await setup();
    try {
      await startClient(t.page, { playerId: 'alice', channels: ['room:t'], mode, reconnect: fast });
      await connectedOver(t.page, [mode]);
      const publishing = publishMany(t.tandem, 'room:t', 300, { paceMs: 2 });
      for (const n of [40, 100, 160, 220]) {
        await until(t.page, (n) => window.seqs.length >= n, n);
        t.proxy.cut();
      }
      await publishing;
      await until(t.page, () => window.seqs.length >= 300);
      assert.deepEqual(await t.page.evaluate(() => window.seqs), range(300));
      const reconnects = await t.page.evaluate(() => window.statuses.filter((s) => s.state === 'reconnecting').length);
      assert.ok(reconnects >= 4, `every cut was a reconnect (${reconnects})`);
      const resumed = t.tandem.logs.filter((l) => l.resumed === true);
      assert.ok(resumed.length >= 4, `the server resumed the session each time (${resumed.length})`);
    } finally {
      await t.close();
    }
  });
}

test('five drops in a row, each resumed without loss or duplicate', async () => {
  const t = await setup();
  try {
    await startClient(t.page, { playerId: 'alice', channels: ['room:t'], reconnect: fast });
    await connectedOver(t.page, ['websocket']);
    const session = await t.page.evaluate(() => window.c.sessionId);
    for (let round = 0; round < 5; round++) {
      const connectedBefore = await t.page.evaluate(() => window.statuses.filter((s) => s.state === 'connected').length);
      const publishing = publishMany(t.tandem, 'room:t', 20, { start: round * 20, paceMs: 2 });
      await until(t.page, (n) => window.seqs.length >= n, round * 20 + 5);
      t.proxy.cut();
      await publishing;
      await until(t.page, (n) => window.statuses.filter((s) => s.state === 'connected').length > n, connectedBefore);
      await until(t.page, (n) => window.seqs.length >= n, (round + 1) * 20);
      assert.deepEqual(await t.page.evaluate(() => window.seqs), range((round + 1) * 20), `round ${round + 1}`);
    }
    assert.equal(await t.page.evaluate(() => window.c.sessionId), session, 'one session throughout');
    // No handler piled up: one more message is seen exactly once.
    await publishMany(t.tandem, 'room:t', 1);
    await until(t.page, () => window.seqs.length >= 101);
    await t.page.evaluate(() => window.c.ping());
    assert.deepEqual(await t.page.evaluate(() => window.seqs), range(101));
  } finally {
    await t.close();
  }
});

for (const mode of ['websocket', 'sse']) {
  test(`${mode}: a link that goes silent is found dead from what it did not receive, and resumed`, async () => {
    const t = await setup({ transport: { heartbeat_interval_seconds: 1, heartbeat_timeout_seconds: 3 } });
    try {
      const options = { playerId: 'alice', channels: ['room:t'], mode, reconnect: fast, callTimeoutMs: 20_000 };
      await startClient(t.page, options);
      await connectedOver(t.page, [mode]);
      await publishMany(t.tandem, 'room:t', 5);
      await until(t.page, () => window.seqs.length >= 5);
      t.proxy.freeze();
      // A call in flight on a silent WebSocket is rejected when the link is
      // declared dead, with a clear code, not left hanging. (Over SSE calls
      // are separate POSTs.)
      const pending = mode === 'websocket' && t.page.evaluate(() => window.c.ping().then(() => 'resolved', (e) => e.code));
      await publishMany(t.tandem, 'room:t', 5, { start: 5 });
      const started = Date.now();
      await until(t.page, () => window.statuses.some((s) => s.state === 'reconnecting'), null, 10_000);
      const detectedMs = Date.now() - started;
      if (pending) assert.equal(await pending, 'connection_lost');
      assert.ok(detectedMs < 5_000, `dead within heartbeat × factor plus a check (${detectedMs} ms)`);
      await connectedOver(t.page, [mode]);
      await until(t.page, () => window.seqs.length >= 10);
      assert.deepEqual(await t.page.evaluate(() => window.seqs), range(10));
    } finally {
      await t.close();
    }
  });
}

test('server restart: resync event, the state-reload hook runs before live delivery resumes', async () => {
  const t = await setup();
  let second;
  try {
    await startClient(t.page, { playerId: 'alice', channels: ['room:t'], reconnect: fast }, { holdResync: true });
    await connectedOver(t.page, ['websocket']);
    await publishMany(t.tandem, 'room:t', 5);
    await until(t.page, () => window.seqs.length >= 5);
    await t.page.evaluate(() => window.c.subscribe('room:later'));
    const before = await t.page.evaluate(() => window.c.sessionId);

    await t.tandem.kill();
    second = await startTandem();
    t.proxy.retarget(second.url);
    await until(t.page, () => window.events.includes('resync session_expired'));
    const info = await t.page.evaluate(() => window.resyncInfo);
    assert.equal(info.previousSessionId, before);
    assert.notEqual(info.sessionId, before);
    assert.equal(info.lastSeq, 5);

    // The new session was subscribed at connect to room:t (an option) and
    // room:later (a subscribe call): both restored. Its deliveries wait
    // behind the hook; the pong proves they reached the client.
    await publishMany(second, 'room:t', 3);
    await publishMany(second, 'room:later', 1);
    await t.page.evaluate(() => window.c.ping());
    assert.equal(await t.page.evaluate(() => window.seqs.length), 5, 'nothing delivered while the hook runs');
    await t.page.evaluate(() => window.releaseResync());
    await until(t.page, () => window.seqs.length >= 9);
    const events = await t.page.evaluate(() => window.events);
    assert.deepEqual(events.slice(5), [
      'resync session_expired',
      'resync done',
      'message 1',
      'message 2',
      'message 3',
      'message 4',
    ]);
    assert.equal(await t.page.evaluate(() => window.c.lastSeq), 4);
  } finally {
    await t.page.close();
    await t.proxy.close();
    await second?.stop();
    await t.tandem.stop();
  }
});
