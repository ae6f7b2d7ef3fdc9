// The browser client against a real tandem: delivery and typed calls over
// WebSocket, over SSE when WebSocket is turned off, and over both at once.

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

/** The calls every transport must answer the same way. */
async function typedCalls(page) {
  return page.evaluate(async () => {
    const out = {};
    out.subscribe = await c.subscribe('room:other');
    out.publish = await c.publish('room:other', 'chat', { text: 'hi' });
    out.rtt = await c.ping();
    try {
      await c.subscribe('player:bob');
    } catch (e) {
      out.forbidden = { name: e.name, code: e.code };
    }
    try {
      await c.subscribe('bad channel');
    } catch (e) {
      out.invalid = e.code;
    }
    return out;
  });
}

function checkCalls(calls) {
  assert.deepEqual(calls.subscribe, { type: 'subscribed', channel: 'room:other' });
  assert.equal(calls.publish.type, 'published');
  assert.equal(calls.publish.recipients, 1);
  assert.ok(Number.isFinite(calls.rtt) && calls.rtt >= 0 && calls.rtt < 5000, `rtt ${calls.rtt}`);
  assert.deepEqual(calls.forbidden, { name: 'TandemError', code: 'forbidden' });
  assert.equal(calls.invalid, 'invalid_channel');
}

test('delivery over WebSocket, and calls that resolve or reject with the server code', async () => {
  const tandem = await startTandem();
  const page = await openPage(browser, tandem.url);
  try {
    await startClient(page, { playerId: 'alice', channels: ['room:t'] });
    await connectedOver(page, ['websocket']);
    await publishMany(tandem, 'room:t', 20);
    await until(page, () => window.seqs.length >= 20);
    assert.deepEqual(await page.evaluate(() => window.seqs), range(20));
    checkCalls(await typedCalls(page));
    // Our own publication into room:other comes back as the next seq.
    await until(page, () => window.seqs.length >= 21);
    assert.deepEqual(await page.evaluate(() => window.seqs), range(21));
  } finally {
    await page.close();
    await tandem.stop();
  }
});

test('auto falls back to SSE when the server turns WebSocket off, and calls go over POST', async () => {
  const tandem = await startTandem({ server: { transports: ['sse'] } });
  const page = await openPage(browser, tandem.url);
  try {
    await startClient(page, { playerId: 'alice', channels: ['room:t'], reconnect: { baseDelayMs: 20 } });
    await connectedOver(page, ['sse']);
    const statuses = await page.evaluate(() => window.statuses.map((s) => s.state));
    assert.ok(statuses.includes('reconnecting'), `WebSocket was tried first: ${statuses}`);
    await publishMany(tandem, 'room:t', 20);
    await until(page, () => window.seqs.length >= 20);
    checkCalls(await typedCalls(page));
    await until(page, () => window.seqs.length >= 21);
    assert.deepEqual(await page.evaluate(() => window.seqs), range(21));
    const refused = tandem.logs.filter((l) => l.reason === 'transport_disabled');
    assert.equal(refused.length, 2, 'two WebSocket tries (wsFailuresBeforeFallback), then SSE');
  } finally {
    await page.close();
    await tandem.stop();
  }
});

test('dual mode holds both transports and hands each message to the application once', async () => {
  const tandem = await startTandem();
  const proxy = await startProxy(tandem.url);
  const page = await openPage(browser, proxy.url);
  try {
    await startClient(page, { playerId: 'alice', channels: ['room:t'], mode: 'dual', reconnect: { baseDelayMs: 20 } });
    await connectedOver(page, ['websocket', 'sse']);
    assert.equal(await page.evaluate(() => window.c.sessionId.startsWith('s_')), true);
    await publishMany(tandem, 'room:t', 50);
    await until(page, () => window.seqs.length >= 50);
    // One link drops mid-stream; the other carries on, the first comes back.
    const more = publishMany(tandem, 'room:t', 50, { paceMs: 3 });
    await until(page, () => window.seqs.length >= 60);
    await page.evaluate(() => window.c.dropConnection('websocket'));
    await more;
    await until(page, () => window.seqs.length >= 100);
    await connectedOver(page, ['websocket', 'sse']);
    const calls = await typedCalls(page);
    checkCalls(calls);
    await until(page, () => window.seqs.length >= 101);
    assert.deepEqual(await page.evaluate(() => window.seqs), range(101));
    const dual = tandem.logs.filter((l) => l.is_dual_connection === true);
    assert.ok(dual.length >= 2, 'the server saw the session on both transports at once');
  } finally {
    await page.close();
    await proxy.close();
    await tandem.stop();
  }
});
