import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Calls } from '../.build/calls.js';

test('ids are unique, even with a pinned random, and within the server limit', () => {
  const calls = new Calls(1000, () => 0.5);
  const ids = new Set();
  for (let i = 0; i < 5000; i++) {
    const { id, frame } = calls.start('move', { i }, 0);
    assert.equal(frame.id, id);
    assert.ok(id.length >= 1 && id.length <= 64, id);
    assert.match(id, /^k[0-9a-z]+_[0-9a-z]+$/);
    ids.add(id);
  }
  assert.equal(ids.size, 5000);
  // Two clients (another tab, a reload) draw different tails.
  const a = new Calls(1000, () => 0.1).start('x', null, 0).id;
  const b = new Calls(1000, () => 0.9).start('x', null, 0).id;
  assert.notEqual(a, b);
});

test('the frame is the command; absent data is null', () => {
  const calls = new Calls();
  const { id, frame } = calls.start('move', undefined, 0);
  assert.deepEqual(frame, { type: 'command', id, name: 'move', data: null });
  assert.deepEqual(calls.start('move', { x: 1 }, 0).frame.data, { x: 1 });
});

test('a new command waits to be sent; a sent one does not; a dropped link sends it again, same frame', () => {
  const calls = new Calls();
  const a = calls.start('a', 1, 0);
  const b = calls.start('b', 2, 0);
  assert.deepEqual(calls.toResend(), [a.frame, b.frame]);
  calls.sent(a.id, 1);
  calls.sent(b.id, 2);
  assert.deepEqual(calls.toResend(), []);
  assert.deepEqual(calls.dropped(1), [a.id]);
  assert.deepEqual(calls.toResend(), [a.frame]);
  // Resent on link 3 (e.g. after a switch to SSE and a resume): same id, name, data.
  calls.sent(a.id, 3);
  assert.deepEqual(calls.toResend(), []);
  assert.deepEqual(calls.dropped(1), [], 'the old link no longer holds it');
  assert.deepEqual(calls.dropped(3), [a.id]);
  assert.deepEqual(calls.dropped(2), [b.id]);
  assert.deepEqual(calls.toResend(), [a.frame, b.frame]);
});

test('a failed POST waits for a resend, unless the command went out again since', () => {
  const calls = new Calls();
  const a = calls.start('a', null, 0);
  calls.sent(a.id, 1);
  calls.dropped(1);
  calls.sent(a.id, 2);
  assert.equal(calls.unsent(a.id, 1), false, 'a late failure of the old attempt changes nothing');
  assert.deepEqual(calls.toResend(), []);
  assert.equal(calls.unsent(a.id, 2), true);
  assert.deepEqual(calls.toResend(), [a.frame]);
  assert.equal(calls.unsent('k-nope', 2), false);
});

test('a reply settles once; a duplicate reply, or one for an unknown id, is ignored', () => {
  const calls = new Calls();
  const { id } = calls.start('move', null, 0);
  calls.sent(id, 1);
  assert.deepEqual(calls.settle({ type: 'reply', id, data: { ok: true } }), { id, ok: true, value: { ok: true } });
  assert.equal(calls.has(id), false);
  assert.equal(calls.settle({ type: 'reply', id, data: { ok: true } }), null, 'a second reply (the cache answering a resend)');
  assert.equal(calls.settle({ type: 'error', id, code: 'conflict', message: '' }), null);
  assert.equal(calls.settle({ type: 'reply', id: 'k9_unknown', data: 1 }), null);
  assert.equal(calls.size, 0);
  // Absent data is null.
  const b = calls.start('b', null, 0);
  assert.deepEqual(calls.settle({ type: 'reply', id: b.id }), { id: b.id, ok: true, value: null });
});

test('an error frame with the id settles it as a failure; frames without a pending id do not', () => {
  const calls = new Calls();
  const { id } = calls.start('move', null, 0);
  assert.equal(calls.settle({ type: 'error', code: 'rate_limited', message: 'slow down' }), null, 'no id');
  assert.equal(calls.settle({ type: 'pong', id, ts: 1 }), null, 'not an answer to a command');
  assert.equal(calls.settle(null), null);
  assert.equal(calls.settle('reply'), null);
  assert.ok(calls.has(id));
  assert.deepEqual(calls.settle({ type: 'error', id, code: 'illegal_move', message: 'not your turn' }), {
    id,
    ok: false,
    error: { code: 'illegal_move', message: 'not your turn' },
  });
  assert.equal(calls.has(id), false);
});

test('fail settles one pending command (an HTTP refusal of its POST), once', () => {
  const calls = new Calls();
  const { id } = calls.start('move', null, 0);
  assert.deepEqual(calls.fail(id, 'rate_limited', 'x'), { id, ok: false, error: { code: 'rate_limited', message: 'x' } });
  assert.equal(calls.fail(id, 'rate_limited', 'x'), null);
});

test('timeout: a command expires at its deadline, default or its own, and is forgotten', () => {
  const calls = new Calls(1000);
  const a = calls.start('a', null, 100); // deadline 1100
  const b = calls.start('b', null, 100, 5000); // deadline 5100
  assert.equal(a.deadline, 1100);
  assert.deepEqual(calls.expired(1099), []);
  const out = calls.expired(1100);
  assert.equal(out.length, 1);
  assert.equal(out[0].id, a.id);
  assert.equal(out[0].ok, false);
  assert.equal(out[0].error.code, 'timeout');
  assert.match(out[0].error.message, /a within 1000 ms/);
  assert.equal(calls.has(a.id), false);
  assert.equal(calls.settle({ type: 'reply', id: a.id, data: 1 }), null, 'a late reply is ignored');
  assert.deepEqual(calls.toResend().map((f) => f.id), [b.id], 'an expired command is not resent');
  assert.deepEqual(calls.expired(5100).map((s) => s.id), [b.id]);
  assert.equal(calls.size, 0);
});

test('session loss (or close) fails every pending command, sent or not, and forgets them', () => {
  const calls = new Calls();
  const a = calls.start('a', null, 0);
  const b = calls.start('b', null, 0);
  calls.sent(a.id, 1);
  const out = calls.failAll('session_lost', 'replaced');
  assert.deepEqual(
    out.map((s) => [s.id, s.ok, s.error.code]),
    [
      [a.id, false, 'session_lost'],
      [b.id, false, 'session_lost'],
    ],
  );
  assert.equal(calls.size, 0);
  assert.deepEqual(calls.toResend(), []);
  assert.equal(calls.settle({ type: 'reply', id: a.id, data: 1 }), null);
  assert.deepEqual(calls.failAll('closed', 'x'), []);
  // Ids go on counting: a new command never reuses an old id.
  assert.notEqual(calls.start('a', null, 0).id, a.id);
});
