import assert from 'node:assert/strict';
import { test } from 'node:test';

import { answerWindow, checkLiveness } from '../.build/liveness.js';

const HB = 15_000;
const at = (now, lastReceivedAt, pingSentAt = null, factor = 2) =>
  checkLiveness({ now, lastReceivedAt, pingSentAt, heartbeatMs: HB, factor });

test('a link that received within the interval is fine until the interval ends', () => {
  assert.deepEqual(at(1000 + 5000, 1000), { action: 'ok', nextCheckInMs: 10_000 });
});

test('a quiet link is pinged, then given the answer window', () => {
  assert.deepEqual(at(HB, 0), { action: 'ping', nextCheckInMs: answerWindow(HB, 2) });
  assert.equal(answerWindow(HB, 2), HB);
  assert.deepEqual(at(HB + 5000, 0, HB), { action: 'ok', nextCheckInMs: 10_000 });
});

test('dead when the ping stayed unanswered for the window and nothing came for interval × factor', () => {
  assert.deepEqual(at(2 * HB, 0, HB), { action: 'dead', nextCheckInMs: 0 });
  assert.equal(at(3 * HB, 0, HB, 3).action, 'dead');
  assert.equal(at(2 * HB, 0, HB, 3).action, 'ok');
});

test('any frame after the ping answers it', () => {
  assert.equal(at(2 * HB, HB + 1, HB).action, 'ok');
  // Received after the ping, quiet again for an interval: a new ping.
  assert.equal(at(2 * HB + 2, HB + 1, HB).action, 'ping');
});

test('a throttled timer that fires late pings instead of declaring the link dead', () => {
  // A background tab: the first check runs 60 s late, no ping went out yet.
  assert.equal(at(60_000, 0).action, 'ping');
  // The ping went out at 60 s; 1 s later nothing yet: wait, not dead.
  assert.equal(at(61_000, 0, 60_000).action, 'ok');
  // A whole window after the late ping with nothing received: dead.
  assert.equal(at(75_000, 0, 60_000).action, 'dead');
});

test('factors below 1.5 still leave half an interval to answer', () => {
  assert.equal(answerWindow(HB, 1), HB / 2);
  assert.equal(at(HB + HB / 2, 0, HB, 1).action, 'dead');
  assert.equal(at(HB + 1000, 0, HB, 1).action, 'ok');
});
