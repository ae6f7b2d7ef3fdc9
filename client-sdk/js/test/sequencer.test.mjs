import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MAX_HELD, Sequencer } from '../.build/sequencer.js';

const welcome = (session_id, last_seq, extra = {}) => ({
  type: 'welcome', session_id, connection_id: 'c', player_id: 'p', transport: 'websocket',
  resumed: false, resync_required: false, last_seq, heartbeat_interval_ms: 15000, channels: [], ...extra,
});
const msg = (seq) => ({ type: 'message', seq, id: `m${seq}`, channel: 'room:a', event: 'e', data: null, ts: 0 });
const seqs = (r) => r.deliver.map((m) => m.seq);

test('the first welcome sets the baseline; deliveries follow in order', () => {
  const s = new Sequencer();
  assert.deepEqual(s.welcome(welcome('s1', 0)), { first: true, resync: null });
  assert.deepEqual(seqs(s.accept(msg(1))), [1]);
  assert.deepEqual(seqs(s.accept(msg(2))), [2]);
  assert.equal(s.lastSeq, 2);
});

test('duplicates (replays, the other transport) are dropped', () => {
  const s = new Sequencer();
  s.welcome(welcome('s1', 0));
  s.accept(msg(1));
  s.accept(msg(2));
  assert.deepEqual(seqs(s.accept(msg(1))), []);
  assert.deepEqual(seqs(s.accept(msg(2))), []);
  assert.deepEqual(seqs(s.accept(msg(3))), [3]);
  assert.deepEqual(seqs(s.accept({ ...msg(4), seq: 'x' })), []);
});

test('a frame ahead of a gap waits until the gap fills, then all go in order', () => {
  const s = new Sequencer();
  s.welcome(welcome('s1', 0));
  s.accept(msg(1));
  assert.deepEqual(seqs(s.accept(msg(3))), []);
  assert.deepEqual(seqs(s.accept(msg(4))), []);
  assert.equal(s.waiting, 2);
  assert.deepEqual(seqs(s.accept(msg(2))), [2, 3, 4]);
  assert.equal(s.waiting, 0);
});

test('the held set is bounded: overflow asks for a renewed link', () => {
  const s = new Sequencer();
  s.welcome(welcome('s1', 0));
  for (let i = 0; i < MAX_HELD; i++) assert.equal(s.accept(msg(i + 2)).overflow, false);
  assert.equal(s.accept(msg(MAX_HELD + 2)).overflow, true);
  assert.deepEqual(seqs(s.accept(msg(1))).length, MAX_HELD + 1);
});

test('a resumed welcome on the same session changes nothing', () => {
  const s = new Sequencer();
  s.welcome(welcome('s1', 0));
  s.accept(msg(1));
  assert.deepEqual(s.welcome(welcome('s1', 5, { resumed: true })), { first: false, resync: null });
  assert.equal(s.lastSeq, 1);
  assert.deepEqual(seqs(s.accept(msg(2))), [2]);
});

test('a new session is a gap: held until release, then continued from its last_seq', () => {
  const s = new Sequencer();
  s.welcome(welcome('s1', 0));
  s.accept(msg(1));
  s.accept(msg(3)); // held, from the old session
  const out = s.welcome(welcome('s2', 0, { resync_required: true }));
  assert.deepEqual(out.resync, { reason: 'session_expired', previousSessionId: 's1', sessionId: 's2', lastSeq: 1, resumeFrom: 0 });
  assert.equal(s.sessionId, 's2');
  assert.equal(s.holding, true);
  assert.deepEqual(seqs(s.accept(msg(1))), [], 'held while the hook runs');
  assert.deepEqual(seqs(s.accept(msg(2))), []);
  assert.deepEqual(s.release().map((m) => m.seq), [1, 2]);
  assert.deepEqual(seqs(s.accept(msg(3))), [3]);
});

test('resync_required on the same session: continue after its last_seq', () => {
  const s = new Sequencer();
  s.welcome(welcome('s1', 0));
  s.accept(msg(1));
  const out = s.welcome(welcome('s1', 500, { resync_required: true }));
  assert.equal(out.resync.reason, 'history_gap');
  assert.equal(out.resync.resumeFrom, 500);
  assert.deepEqual(seqs(s.accept(msg(400))), []);
  s.accept(msg(501));
  assert.deepEqual(s.release().map((m) => m.seq), [501]);
});

test('reset (the session ended): the next welcome is a first one, with no resync', () => {
  const s = new Sequencer();
  s.welcome(welcome('s1', 0));
  s.accept(msg(1));
  s.accept(msg(3));
  s.reset();
  assert.equal(s.sessionId, null);
  assert.equal(s.lastSeq, 0);
  assert.equal(s.waiting, 0);
  assert.deepEqual(s.welcome(welcome('s2', 0)), { first: true, resync: null });
  assert.deepEqual(seqs(s.accept(msg(1))), [1]);
});

test('positions are kept per channel as delivered, presented on resume, forgotten at a gap', () => {
  const s = new Sequencer();
  s.welcome(welcome('s1', 0));
  assert.equal(s.positionsParam(), '');
  s.accept({ ...msg(1), pos: '7.1.11' });
  s.accept({ ...msg(3), channel: 'broadcast', pos: '8.4.44' });
  assert.equal(s.positionsParam(), 'room:a=7.1.11', 'seq 3 waits for 2: not delivered, not kept');
  s.accept({ ...msg(2), pos: '7.2.22' });
  assert.equal(s.positionsParam(), 'room:a=7.2.22,broadcast=8.4.44');
  assert.equal(s.positionsParam((c) => c !== 'room:a'), 'broadcast=8.4.44', 'a channel left is not presented');
  s.welcome(welcome('s1', 3, { resumed: true }));
  assert.equal(s.positions.size, 2, 'a resume keeps them');
  s.welcome(welcome('s1', 9, { resync_required: true }));
  assert.equal(s.positionsParam(), '', 'the application reloads: nothing to replay from');
});
