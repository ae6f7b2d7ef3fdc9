import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Planner, closeVerdict, isAuthRefusal, isFinalRefusal } from '../.build/planner.js';

const opts = { wsFailuresBeforeFallback: 2, wsProbeIntervalMs: 60_000 };

test('each mode holds its transports', () => {
  assert.deepEqual(new Planner('auto', opts).transports(), ['websocket']);
  assert.deepEqual(new Planner('websocket', opts).transports(), ['websocket']);
  assert.deepEqual(new Planner('sse', opts).transports(), ['sse']);
  assert.deepEqual(new Planner('dual', opts).transports(), ['websocket', 'sse']);
});

test('auto falls back to SSE after failures in a row, and probes WebSocket later', () => {
  const p = new Planner('auto', opts);
  assert.equal(p.wsFailed(1000), false);
  assert.deepEqual(p.transports(), ['websocket']);
  assert.equal(p.wsFailed(2000), true);
  assert.deepEqual(p.transports(), ['sse']);
  assert.equal(p.probeDue(2000 + 59_999), false);
  assert.equal(p.probeInMs(2000 + 50_000), 10_000);
  assert.equal(p.probeDue(2000 + 60_000), true);
  p.probeStarted(62_000);
  assert.equal(p.wsFailed(63_000), false, 'a failed probe stays on SSE');
  assert.equal(p.probeInMs(63_000), 59_000);
  p.wsWelcomed();
  assert.deepEqual(p.transports(), ['websocket']);
  assert.equal(p.probeInMs(70_000), null);
});

test('a welcome in between resets the count: failures must be in a row', () => {
  const p = new Planner('auto', opts);
  p.wsFailed(0);
  p.wsWelcomed();
  assert.equal(p.wsFailed(1), false);
  assert.deepEqual(p.transports(), ['websocket']);
});

test('only auto falls back or probes', () => {
  for (const mode of ['websocket', 'dual']) {
    const p = new Planner(mode, opts);
    for (let i = 0; i < 5; i++) assert.equal(p.wsFailed(i), false);
    assert.ok(p.transports().includes('websocket'));
    assert.equal(p.probeInMs(0), null);
  }
});

test('a mode switch starts auto again from WebSocket', () => {
  const p = new Planner('auto', opts);
  p.wsFailed(0);
  p.wsFailed(1);
  p.setMode('dual');
  p.setMode('auto');
  assert.deepEqual(p.transports(), ['websocket']);
});

test('close codes: 4001, 4002 and reconnect:false stop; shutdown waits retry_after_ms; the rest retry', () => {
  assert.deepEqual(closeVerdict(4001, 'disconnected', null, null), { kind: 'stop', code: 4001, reason: 'disconnected' });
  assert.deepEqual(closeVerdict(4002, 'session_ended', null, null), { kind: 'stop', code: 4002, reason: 'session_ended' });
  assert.deepEqual(closeVerdict(4002, 'session_ended', false, null), { kind: 'stop', code: 4002, reason: 'session_ended' });
  assert.deepEqual(closeVerdict(4008, 'slow_consumer', false, null), { kind: 'stop', code: 4008, reason: 'slow_consumer' });
  assert.deepEqual(closeVerdict(1012, 'shutdown', null, 1500), { kind: 'retry', retryAfterMs: 1500 });
  for (const code of [1000, 1006, 1009, 1011, 4000, 4008, 4029]) {
    assert.deepEqual(closeVerdict(code, '', null, null), { kind: 'retry', retryAfterMs: null }, String(code));
  }
  assert.deepEqual(closeVerdict(4008, 'slow_consumer', true, null), { kind: 'retry', retryAfterMs: null });
});

test('a disconnected frame (farewell) stops with its reason; token closes retry with a new token', () => {
  assert.deepEqual(closeVerdict(4001, 'disconnected', null, null, 'banned'), { kind: 'stop', code: 4001, reason: 'banned' });
  assert.deepEqual(closeVerdict(4003, 'token_expired', null, null), { kind: 'retry', retryAfterMs: null });
  assert.deepEqual(closeVerdict(4004, 'token_revoked', null, null), { kind: 'retry', retryAfterMs: null });
});

test('401 and 403 are refusals; 404, 429, 503 are not', () => {
  assert.deepEqual([401, 403, 404, 429, 503].map(isAuthRefusal), [true, true, false, false, false]);
});

test('the probe after a failed connect: 401/403 stop unless retry is true; 503 and the rest retry', () => {
  // Auth refusals carry no retry flag: they stop, as before.
  assert.equal(isFinalRefusal(401, undefined), true);
  assert.equal(isFinalRefusal(403, undefined), true);
  // The game's connect hook: `retry` says whether to try again.
  assert.equal(isFinalRefusal(403, false), true);
  assert.equal(isFinalRefusal(403, true), false);
  assert.equal(isFinalRefusal(401, true), false);
  // backend_unavailable (hook failed, deny) and other statuses: keep retrying.
  assert.equal(isFinalRefusal(503, true), false);
  assert.equal(isFinalRefusal(503, undefined), false);
  assert.equal(isFinalRefusal(404, false), false);
  assert.equal(isFinalRefusal(429, undefined), false);
});
