import assert from 'node:assert/strict';
import { test } from 'node:test';

import { DEFAULT_RECONNECT, backoffCeiling, backoffDelay, retryAfterDelay } from '../.build/backoff.js';

test('defaults are the documented ones', () => {
  assert.deepEqual(DEFAULT_RECONNECT, { baseDelayMs: 250, maxDelayMs: 30000, maxAttempts: Infinity });
});

test('the ceiling doubles per attempt and stops at the cap', () => {
  const o = { baseDelayMs: 250, maxDelayMs: 30000, maxAttempts: Infinity };
  assert.deepEqual([0, 1, 2, 3, 6, 7, 8].map((a) => backoffCeiling(a, o)), [250, 500, 1000, 2000, 16000, 30000, 30000]);
  assert.equal(backoffCeiling(10_000, o), 30000, 'huge attempt numbers stay finite');
});

test('full jitter spans [0, ceiling] with the injected randomness', () => {
  const o = { baseDelayMs: 100, maxDelayMs: 1000, maxAttempts: Infinity };
  assert.equal(backoffDelay(3, o, () => 0), 0);
  assert.equal(backoffDelay(3, o, () => 1), 800);
  assert.equal(backoffDelay(3, o, () => 0.5), 400);
  assert.equal(backoffDelay(20, o, () => 1), 1000);
  let r = 0;
  const seq = () => (r = (r * 9301 + 49297) % 233280) / 233280;
  for (let a = 0; a < 20; a++) {
    const d = backoffDelay(a, o, seq);
    assert.ok(d >= 0 && d <= backoffCeiling(a, o), `attempt ${a}: ${d}`);
  }
});

test("a server's retry_after_ms comes first, jitter on top", () => {
  const o = { baseDelayMs: 100, maxDelayMs: 1000, maxAttempts: Infinity };
  assert.equal(retryAfterDelay(2000, 0, o, () => 0), 2000);
  assert.equal(retryAfterDelay(2000, 0, o, () => 1), 2100);
  assert.equal(retryAfterDelay(-5, 0, o, () => 0), 0);
});
