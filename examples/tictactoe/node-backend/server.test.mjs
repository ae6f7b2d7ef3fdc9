// node --test server.test.mjs
//
// The HTTP service against a stand-in for Tandem's backend API (which
// records every publish): signatures, commands and their refusals, the
// de-duplication of command ids, lifecycle events.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';

const SECRET = 'test-secret-0123456789';
const API_KEY = 'test-api-key-0123456789';

let fakeTandem;
const publishes = [];
let backend;
let base;

before(async () => {
  fakeTandem = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      publishes.push({ path: req.url, auth: req.headers.authorization, body: JSON.parse(Buffer.concat(chunks)) });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"id":"m_1","recipients":0}');
    });
  });
  await new Promise((r) => fakeTandem.listen(0, '127.0.0.1', r));
  backend = spawn(process.execPath, [new URL('./server.mjs', import.meta.url).pathname], {
    env: {
      ...process.env,
      PORT: '0',
      TANDEM_URL: `http://127.0.0.1:${fakeTandem.address().port}`,
      TANDEM_API_KEY: API_KEY,
      TANDEM_BACKEND_SECRET: SECRET,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const first = await new Promise((resolve, reject) => {
    backend.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    createInterface({ input: backend.stdout }).once('line', resolve);
  });
  const m = /^listening (\d+)$/.exec(first);
  assert.ok(m, `first line: ${first}`);
  base = `http://127.0.0.1:${m[1]}`;
});

after(async () => {
  backend?.kill('SIGTERM');
  await new Promise((r) => fakeTandem.close(r));
});

function sign(raw) {
  return `sha256=${createHmac('sha256', SECRET).update(raw).digest('hex')}`;
}

async function post(path, body, { signature } = {}) {
  const raw = typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-tandem-signature': signature ?? sign(raw) },
    body: raw,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

let n = 0;
function cmd(player, name, data, session = `s_${player}`) {
  return { id: `c${++n}`, name, data, player_id: player, session_id: session, transport: 'websocket' };
}

test('a missing or wrong signature is 401 bad_signature, before anything runs', async () => {
  const body = JSON.stringify(cmd('mallory', 'join', { room: 'sig' }));
  for (const signature of ['', 'sha256=00', sign(`${body} `), sign(body).toUpperCase()]) {
    const r = await post('/tandem/command', body, { signature });
    assert.equal(r.status, 401, signature);
    assert.deepEqual(r.body.error.code, 'bad_signature');
  }
  assert.ok(!publishes.some((p) => p.body.channel === 'room:sig'), 'nothing ran');
});

test('an oversized body is 413', async () => {
  const r = await post('/tandem/command', JSON.stringify({ pad: 'x'.repeat(200_000) }));
  assert.equal(r.status, 413);
});

test('join seats X then O then a spectator, each reply the state, each published', async () => {
  const before = publishes.length;
  let r = await post('/tandem/command', cmd('alice', 'join', { room: 'r1' }));
  assert.equal(r.status, 200);
  assert.equal(r.body.data.seat, 'X');
  assert.deepEqual(r.body.data.players, { X: 'alice', O: null });
  r = await post('/tandem/command', cmd('bob', 'join', { room: 'r1' }));
  assert.equal(r.body.data.seat, 'O');
  r = await post('/tandem/command', cmd('carol', 'join', { room: 'r1' }));
  assert.equal(r.body.data.seat, 'spectator');
  const mine = publishes.slice(before);
  assert.equal(mine.length, 3);
  for (const p of mine) {
    assert.equal(p.path, '/api/publish');
    assert.equal(p.auth, `Bearer ${API_KEY}`);
    assert.equal(p.body.channel, 'room:r1');
    assert.equal(p.body.event, 'state');
    assert.deepEqual(Object.keys(p.body.data).sort(), ['board', 'players', 'turn', 'winner']);
  }
  assert.deepEqual(mine[2].body.data.players, { X: 'alice', O: 'bob' });
});

test('moves: the reply and the publish carry the new state; refusals are 4xx with the code', async () => {
  let r = await post('/tandem/command', cmd('alice', 'move', { room: 'r1', cell: 4 }));
  assert.equal(r.status, 200);
  assert.equal(r.body.data.board[4], 'X');
  assert.equal(r.body.data.turn, 'O');
  assert.deepEqual(publishes.at(-1).body.data, r.body.data);

  const refusals = [
    ['alice', { room: 'r1', cell: 0 }, 409, 'not_your_turn'],
    ['bob', { room: 'r1', cell: 4 }, 409, 'cell_taken'],
    ['carol', { room: 'r1', cell: 0 }, 403, 'not_seated'],
    ['bob', { room: 'r1', cell: 9 }, 400, 'bad_move'],
    ['bob', { room: 'r1' }, 400, 'bad_move'],
    ['bob', { room: 'bad room' }, 400, 'bad_request'],
    ['bob', null, 400, 'bad_request'],
  ];
  const count = publishes.length;
  for (const [player, data, status, code] of refusals) {
    r = await post('/tandem/command', cmd(player, 'move', data));
    assert.equal(r.status, status, code);
    assert.equal(r.body.error.code, code);
    assert.equal(typeof r.body.error.message, 'string');
  }
  assert.equal(publishes.length, count, 'a refusal publishes nothing');
});

test('unknown commands are 404 unknown_command', async () => {
  for (const name of ['fly', 'toString', '__proto__', 'constructor']) {
    const r = await post('/tandem/command', cmd('alice', name, {}));
    assert.equal(r.status, 404, name);
    assert.equal(r.body.error.code, 'unknown_command');
  }
});

test('a command id runs once per session: repeats (also concurrent) get the first answer', async () => {
  await post('/tandem/command', cmd('dave', 'join', { room: 'dup' }));
  await post('/tandem/command', cmd('erin', 'join', { room: 'dup' }));
  const move = cmd('dave', 'move', { room: 'dup', cell: 0 });
  const count = publishes.length;
  const [a, b] = await Promise.all([post('/tandem/command', move), post('/tandem/command', move)]);
  const c = await post('/tandem/command', move);
  for (const r of [a, b, c]) {
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, a.body);
  }
  assert.equal(publishes.length, count + 1, 'one move, one publish');

  // The same id in another session is another command (here: not dave's turn).
  const other = await post('/tandem/command', { ...move, session_id: 's_other' });
  assert.equal(other.body.error.code, 'not_your_turn');
  // The same id with other data is a conflict.
  const conflict = await post('/tandem/command', { ...move, data: { room: 'dup', cell: 1 } });
  assert.equal(conflict.status, 409);
  assert.equal(conflict.body.error.code, 'conflict');
});

test('a finished game: game_over until reset', async () => {
  await post('/tandem/command', cmd('p1', 'join', { room: 'win' }));
  await post('/tandem/command', cmd('p2', 'join', { room: 'win' }));
  let r;
  for (const [player, cell] of [['p1', 0], ['p2', 3], ['p1', 1], ['p2', 4], ['p1', 2]]) {
    r = await post('/tandem/command', cmd(player, 'move', { room: 'win', cell }));
    assert.equal(r.status, 200);
  }
  assert.equal(r.body.data.winner, 'X');
  r = await post('/tandem/command', cmd('p2', 'move', { room: 'win', cell: 8 }));
  assert.equal(r.body.error.code, 'game_over');
  r = await post('/tandem/command', cmd('p2', 'reset', { room: 'win' }));
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.data.board, Array(9).fill(null));
  assert.deepEqual(publishes.at(-1).body.data, r.body.data);
});

test('lifecycle events: 204, kept once each, player_left frees seats once no session is left', async () => {
  await post('/tandem/command', cmd('gus', 'join', { room: 'lc' }, 's_g1'));
  await post('/tandem/command', cmd('hal', 'join', { room: 'lc' }, 's_h1'));
  const ev = (id, type, player, session, extra = {}) => ({ id, type, player_id: player, session_id: session, ts: Date.now(), ...extra });

  let r = await post('/tandem/events', ev('e1', 'session_started', 'gus', 's_g2'));
  assert.equal(r.status, 204);
  // gus's first session ends while his second lives: he keeps his seat.
  r = await post('/tandem/events', ev('e2', 'player_left', 'gus', 's_g1', { reason: 'expired' }));
  assert.equal(r.status, 204);
  const count = publishes.length;
  r = await post('/tandem/events', ev('e3', 'player_left', 'hal', 's_h1', { reason: 'ended' }));
  assert.equal(r.status, 204);
  assert.equal(publishes.length, count + 1);
  assert.deepEqual(publishes.at(-1).body.data.players, { X: 'gus', O: null });
  // A redelivery of the same event id is acknowledged and ignored.
  r = await post('/tandem/events', ev('e3', 'player_left', 'hal', 's_h1', { reason: 'ended' }));
  assert.equal(r.status, 204);

  r = await post('/tandem/events', { ...ev('e4', 'session_started', 'x', 's'), pad: 1 }, { signature: 'sha256=bad' });
  assert.equal(r.status, 401);

  const res = await fetch(`${base}/events`);
  const kept = await res.json();
  assert.deepEqual(kept.map((e) => e.id), ['e1', 'e2', 'e3']);
  assert.equal(kept[2].reason, 'ended');
});
