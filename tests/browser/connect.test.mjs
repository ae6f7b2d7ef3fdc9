// Connecting: status transitions, backoff, tokens and auth refusals, a
// proxy that breaks WebSockets, and the browser's online/offline events.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';

import { launchChromium } from './lib/chromium.mjs';
import { connectedOver, openPage, publishMany, range, startClient, until } from './lib/client.mjs';
import { startProxy } from './lib/proxy.mjs';
import { startTandem } from './lib/tandem.mjs';

const SECRET = 'browser-test-secret-0123456789-abcdef';

let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

/** An HS256 client token for `sub`, valid for an hour. */
function jwt(sub) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, iat: now, exp: now + 3600 })}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

test('status transitions in order: connecting, connected, reconnecting, connected, disconnected', async () => {
  const tandem = await startTandem();
  const proxy = await startProxy(tandem.url);
  const page = await openPage(browser, proxy.url);
  try {
    await startClient(page, { playerId: 'alice', reconnect: { baseDelayMs: 20 } }, { pinRandom: true });
    await connectedOver(page, ['websocket']);
    proxy.cut();
    await until(page, () => window.statuses.filter((s) => s.state === 'connected').length >= 2);
    // The backend disconnects the player: close 4001, no reconnect.
    const res = await tandem.api('/api/players/alice/disconnect', {});
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await until(page, () => window.c.status().state === 'disconnected');
    const ws = { state: 'connected', transport: 'websocket', transports: ['websocket'] };
    assert.deepEqual(await page.evaluate(() => window.statuses), [
      { state: 'connecting' },
      ws,
      { state: 'reconnecting', attempt: 1, delayMs: 20 },
      ws,
      { state: 'disconnected', code: 4001, reason: 'disconnected' },
    ]);
    assert.equal(await page.evaluate(() => window.c.ping().catch((e) => e.code)), 'closed', 'no retries after 4001');
    // reconnect() opens again; close() ends with 1000.
    await page.evaluate(() => window.c.reconnect());
    await connectedOver(page, ['websocket']);
    await page.evaluate(() => window.c.close());
    assert.deepEqual((await page.evaluate(() => window.statuses)).slice(5), [
      { state: 'connecting' },
      ws,
      { state: 'disconnected', code: 1000, reason: 'closed by client' },
    ]);
  } finally {
    await page.close();
    await proxy.close();
    await tandem.stop();
  }
});

test('backoff grows from the base delay and stops at the cap, then gives up after maxAttempts', async () => {
  const tandem = await startTandem();
  const proxy = await startProxy(tandem.url);
  const page = await openPage(browser, proxy.url);
  try {
    proxy.refuse();
    await startClient(
      page,
      { playerId: 'alice', mode: 'websocket', reconnect: { baseDelayMs: 20, maxDelayMs: 100, maxAttempts: 6 } },
      { pinRandom: true },
    );
    await until(page, () => window.c.status().state === 'disconnected');
    const statuses = await page.evaluate(() => window.statuses);
    const waits = statuses.filter((s) => s.state === 'reconnecting');
    assert.deepEqual(waits.map((s) => s.attempt), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(waits.map((s) => s.delayMs), [20, 40, 80, 100, 100, 100]);
    assert.equal(statuses.at(-1).code, 'reconnect_failed');
  } finally {
    await page.close();
    await proxy.close();
    await tandem.stop();
  }
});

test('the token callback runs on every reconnect; a refused token stops the retries', async () => {
  const tandem = await startTandem({ auth: { secret: SECRET } });
  const proxy = await startProxy(tandem.url);
  const page = await openPage(browser, proxy.url);
  try {
    await startClient(page, { channels: ['room:t'], reconnect: { baseDelayMs: 20 } }, { token: jwt('alice') });
    await connectedOver(page, ['websocket']);
    proxy.cut();
    await until(page, () => window.statuses.filter((s) => s.state === 'connected').length >= 2);
    assert.equal(await page.evaluate(() => window.tokens), 2);
    await publishMany(tandem, 'room:t', 3);
    await until(page, () => window.seqs.length >= 3);
    assert.deepEqual(await page.evaluate(() => window.seqs), range(3));
    await page.evaluate(() => window.c.close());

    // A token callback that fails is retried, not taken for a refusal.
    await startClient(page, { reconnect: { baseDelayMs: 20 } }, { token: jwt('alice'), tokenFailures: 2 });
    await connectedOver(page, ['websocket']);
    assert.equal(await page.evaluate(() => window.tokens), 3);
    await page.evaluate(() => window.c.close());

    for (const mode of ['websocket', 'sse']) {
      await startClient(page, { mode, reconnect: { baseDelayMs: 20 } }, { token: 'not-a-jwt' });
      await until(page, () => window.c.status().state === 'disconnected');
      const statuses = await page.evaluate(() => window.statuses);
      assert.deepEqual(statuses.map((s) => [s.state, s.code]), [['connecting', undefined], ['disconnected', 'invalid_token']], mode);
      assert.ok(statuses[1].reason.length > 0, 'the server message is the reason');
      assert.equal(await page.evaluate(() => window.tokens), 1, `${mode}: one try, no retry`);
    }
  } finally {
    await page.close();
    await proxy.close();
    await tandem.stop();
  }
});

test('a proxy that completes the upgrade and then stalls: fallback to SSE, WebSocket probed again later', async () => {
  const tandem = await startTandem();
  const proxy = await startProxy(tandem.url);
  const page = await openPage(browser, proxy.url);
  try {
    proxy.stallWebSockets();
    await startClient(page, {
      playerId: 'alice',
      channels: ['room:t'],
      welcomeTimeoutMs: 500,
      wsProbeIntervalMs: 1000,
      reconnect: { baseDelayMs: 20 },
    });
    await connectedOver(page, ['sse']);
    await publishMany(tandem, 'room:t', 10);
    await until(page, () => window.seqs.length >= 10);
    // The proxy is fixed: the next probe finds WebSocket working and moves over.
    proxy.stallWebSockets(false);
    await connectedOver(page, ['websocket'], 10_000);
    await publishMany(tandem, 'room:t', 10, { start: 10 });
    await until(page, () => window.seqs.length >= 20);
    assert.deepEqual(await page.evaluate(() => window.seqs), range(20));
    const states = await page.evaluate(() => window.statuses.map((s) => s.state === 'connected' ? s.transport : s.state));
    assert.deepEqual(states.filter((s) => s !== 'reconnecting'), ['connecting', 'sse', 'websocket']);
  } finally {
    await page.close();
    await proxy.close();
    await tandem.stop();
  }
});

test("the browser's online event and reconnect() retry at once instead of waiting out the delay", async () => {
  const tandem = await startTandem();
  const proxy = await startProxy(tandem.url);
  const context = await browser.newContext();
  const page = await openPage(context, proxy.url);
  try {
    // A minute between tries: only the online event can bring it back in time.
    await startClient(page, { playerId: 'alice', mode: 'websocket', reconnect: { baseDelayMs: 60_000, maxDelayMs: 60_000 } }, { pinRandom: true });
    await connectedOver(page, ['websocket']);
    proxy.refuse();
    proxy.cut();
    await until(page, () => window.c.status().state === 'reconnecting');
    assert.equal(await page.evaluate(() => window.c.status().delayMs), 60_000);
    proxy.refuse(false);
    await context.setOffline(true);
    await context.setOffline(false);
    await connectedOver(page, ['websocket'], 5_000);
    // reconnect() is the same check, on demand.
    proxy.refuse();
    proxy.cut();
    await until(page, () => window.c.status().state === 'reconnecting');
    proxy.refuse(false);
    await page.evaluate(() => window.c.reconnect());
    await connectedOver(page, ['websocket'], 5_000);
  } finally {
    await context.close();
    await proxy.close();
    await tandem.stop();
  }
});

for (const mode of ['websocket', 'sse']) {
  test(`${mode}: a server shutdown's retry_after_ms comes before the next try`, async () => {
    const tandem = await startTandem({ server: { shutdown_grace_seconds: 1 } });
    const page = await openPage(browser, tandem.url);
    try {
      await startClient(page, { playerId: 'alice', mode, reconnect: { baseDelayMs: 20 } }, { pinRandom: true });
      await connectedOver(page, [mode]);
      await tandem.stop();
      await until(page, () => window.c.status().state === 'reconnecting');
      const { attempt, delayMs } = await page.evaluate(() => window.c.status());
      assert.equal(attempt, 1);
      // The server asks for 1000 ms plus its own jitter (up to 1000 ms); the
      // client adds its backoff (20 ms, the jitter pinned to its ceiling).
      assert.ok(delayMs >= 1020 && delayMs <= 2020, `delay ${delayMs}`);
    } finally {
      await page.close();
      await tandem.stop();
    }
  });
}
