// The glue of client.ts against fake WebSocket, EventSource and fetch: game
// commands resent with the same id across drops, transport switches and
// resumes; endSession; the connect probe's refusals.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';

import { TandemClient } from '../.build/client.js';
import { TandemError } from '../.build/errors.js';

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

let sockets;
let streams;
let posts;
let answer;
const clients = [];

class FakeWebSocket {
  constructor(url) {
    this.url = new URL(url);
    this.sent = [];
    this.closed = false;
    sockets.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.closed = true;
  }
  recv(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  welcome(session_id = 's1', last_seq = 0, extra = {}) {
    this.recv(welcomeFrame(session_id, last_seq, 'websocket', extra));
  }
  drop(code = 1006, reason = '') {
    this.onclose?.({ code, reason });
  }
  commands() {
    return this.sent.filter((f) => f.type === 'command');
  }
}

class FakeEventSource {
  constructor(url) {
    this.url = new URL(url);
    this.listeners = new Map();
    this.closed = false;
    streams.push(this);
  }
  addEventListener(type, f) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(f);
  }
  close() {
    this.closed = true;
  }
  emit(type, frame) {
    for (const f of this.listeners.get(type) ?? []) f({ data: JSON.stringify(frame) });
  }
  welcome(session_id = 's1', last_seq = 0) {
    this.emit('welcome', welcomeFrame(session_id, last_seq, 'sse'));
  }
}

function welcomeFrame(session_id, last_seq, transport, extra = {}) {
  return {
    type: 'welcome', session_id, connection_id: 'c', player_id: 'alice', transport, resumed: last_seq > 0,
    resync_required: false, last_seq, heartbeat_interval_ms: 60_000, channels: ['player:alice'], ...extra,
  };
}

function respond(status, body) {
  return { ok: status >= 200 && status < 300, status, statusText: String(status), json: async () => body };
}

beforeEach(() => {
  sockets = [];
  streams = [];
  posts = [];
  // Default: SSE uplink takes commands (202), pings pong.
  answer = (_url, msg) =>
    msg.type === 'command' ? respond(202, { accepted: true, id: msg.id }) : respond(200, { type: 'pong', ts: 1 });
  globalThis.WebSocket = FakeWebSocket;
  globalThis.EventSource = FakeEventSource;
  globalThis.fetch = async (url, init) => {
    const msg = JSON.parse(init.body);
    const u = new URL(url);
    posts.push({ path: u.pathname, msg });
    const r = await answer(u, msg);
    if (r instanceof Error) throw r;
    return r;
  };
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

function client(options = {}) {
  const c = new TandemClient({ url: 'http://tandem.test', playerId: 'alice', random: () => 0, ...options });
  clients.push(c);
  return c;
}

test('call over WebSocket: the command frame, its reply; a second reply is ignored', async () => {
  const c = client({ mode: 'websocket' });
  await tick();
  const ws = sockets[0];
  ws.welcome();
  const p = c.call('move', { x: 1, y: 2 });
  const [cmd] = ws.commands();
  assert.equal(cmd.name, 'move');
  assert.deepEqual(cmd.data, { x: 1, y: 2 });
  assert.match(cmd.id, /^k/);
  ws.recv({ type: 'reply', id: 'k-other', data: 'not ours' });
  ws.recv({ type: 'reply', id: cmd.id, data: { ok: true } });
  ws.recv({ type: 'reply', id: cmd.id, data: { ok: 'again' } });
  assert.deepEqual(await p, { ok: true });
  const q = c.call('move', null);
  const [, cmd2] = ws.commands();
  assert.notEqual(cmd2.id, cmd.id);
  ws.recv({ type: 'reply', id: cmd2.id });
  assert.equal(await q, null);
});

test('a call made before the welcome goes out with it', async () => {
  const c = client({ mode: 'websocket' });
  const p = c.call('hello');
  await tick();
  const ws = sockets[0];
  assert.equal(ws.commands().length, 0);
  ws.welcome();
  const [cmd] = ws.commands();
  ws.recv({ type: 'reply', id: cmd.id, data: 7 });
  assert.equal(await p, 7);
});

test('an error frame with the id rejects the call with its code; one without id keeps answering requests', async () => {
  const c = client({ mode: 'websocket' });
  await tick();
  const ws = sockets[0];
  ws.welcome();
  const p = c.call('move', { x: 9 });
  const sub = c.subscribe('room:x');
  await tick();
  const [cmd] = ws.commands();
  ws.recv({ type: 'error', id: cmd.id, code: 'illegal_move', message: 'not your turn' });
  ws.recv({ type: 'error', code: 'forbidden', message: 'no' });
  await assert.rejects(p, (e) => e instanceof TandemError && e.code === 'illegal_move' && /not your turn/.test(e.message));
  await assert.rejects(sub, (e) => e.code === 'forbidden');
});

test('a call whose WebSocket drops is resent, same id, after the resume', async () => {
  const c = client({ mode: 'websocket' });
  await tick();
  sockets[0].welcome('s1', 0);
  const p = c.call('move', { x: 1 });
  const [first] = sockets[0].commands();
  sockets[0].drop(1006);
  await tick(5);
  const ws2 = sockets[1];
  assert.equal(ws2.url.searchParams.get('session_id'), 's1', 'resumes the session');
  assert.equal(ws2.commands().length, 0, 'nothing before the welcome');
  ws2.welcome('s1', 0);
  assert.deepEqual(ws2.commands(), [first], 'same id, name and data');
  ws2.recv({ type: 'reply', id: first.id, data: 'cached' });
  assert.equal(await p, 'cached');
});

test('a call in flight moves to SSE with a transport switch, and its answer arrives on the stream', async () => {
  const c = client({ mode: 'websocket' });
  await tick();
  const ws = sockets[0];
  ws.welcome('s1', 0);
  const p = c.call('move', { x: 3 });
  const [cmd] = ws.commands();
  c.setMode('sse');
  await tick();
  const es = streams[0];
  assert.equal(es.url.searchParams.get('session_id'), 's1');
  es.welcome('s1', 0);
  await tick();
  assert.equal(ws.closed, true, 'the WebSocket is retired once SSE is up');
  const resent = posts.filter((x) => x.msg.type === 'command');
  assert.equal(resent.length, 1);
  assert.equal(resent[0].path, '/sessions/s1/messages');
  assert.deepEqual(resent[0].msg, cmd);
  es.emit('reply', { type: 'reply', id: cmd.id, data: { turn: 2 } });
  assert.deepEqual(await p, { turn: 2 });
});

test('SSE: a POST that fails (network, 503) is sent again; an error event with the id rejects', async () => {
  const c = client({ mode: 'sse', reconnect: { baseDelayMs: 10, maxDelayMs: 10 } });
  await tick();
  const es = streams[0];
  let n = 0;
  answer = (_u, msg) => {
    if (msg.type !== 'command') return respond(200, { type: 'pong', ts: 1 });
    n += 1;
    if (n === 1) return new TypeError('network down');
    if (n === 2) return respond(503, { error: { code: 'broker_unavailable', message: 'x' } });
    return respond(202, { accepted: true, id: msg.id });
  };
  es.welcome('s1', 0);
  const p = c.call('move', 1);
  await tick(200);
  const sent = posts.filter((x) => x.msg.type === 'command').map((x) => x.msg);
  assert.equal(sent.length, 3);
  assert.ok(sent.every((m) => m.id === sent[0].id));
  es.emit('error', { type: 'error', id: sent[0].id, code: 'backend_timeout', message: 'slow' });
  await assert.rejects(p, (e) => e.code === 'backend_timeout');
  // A refused POST (4xx) is the command's answer.
  answer = () => respond(429, { error: { code: 'rate_limited', message: 'later' } });
  await assert.rejects(c.call('move', 2), (e) => e.code === 'rate_limited');
});

test('timeout: the call rejects with timeout and a late reply is ignored', async () => {
  const c = client({ mode: 'websocket', callTimeoutMs: 60_000 });
  await tick();
  const ws = sockets[0];
  ws.welcome();
  const p = c.call('slow', null, { timeoutMs: 20 });
  const [cmd] = ws.commands();
  await assert.rejects(p, (e) => e.code === 'timeout');
  ws.recv({ type: 'reply', id: cmd.id, data: 1 });
  // Also while no link is up: the timeout counts from the call.
  ws.drop(1006);
  await assert.rejects(c.call('x', null, { timeoutMs: 10 }), (e) => e.code === 'timeout');
});

test('a new session (the old one expired) rejects pending calls with session_lost', async () => {
  const c = client({ mode: 'websocket' });
  await tick();
  sockets[0].welcome('s1', 0);
  const p = c.call('move', 1);
  sockets[0].drop(1006);
  await tick(5);
  sockets[1].welcome('s2', 0, { resync_required: true });
  await assert.rejects(p, (e) => e.code === 'session_lost');
  assert.equal(sockets[1].commands().length, 0, 'not resent into the new session');
});

test('resync_required on the same session keeps the calls: they are resent', async () => {
  const c = client({ mode: 'websocket' });
  await tick();
  sockets[0].welcome('s1', 0);
  const p = c.call('move', 1);
  sockets[0].drop(1006);
  await tick(5);
  sockets[1].welcome('s1', 200, { resync_required: true });
  const [cmd] = sockets[1].commands();
  sockets[1].recv({ type: 'reply', id: cmd.id, data: 'ok' });
  assert.equal(await p, 'ok');
});

test('close() rejects pending calls with closed, and later calls too', async () => {
  const c = client({ mode: 'websocket' });
  await tick();
  sockets[0].welcome();
  const p = c.call('move', 1);
  c.close();
  await assert.rejects(p, (e) => e.code === 'closed');
  await assert.rejects(c.call('move', 1), (e) => e.code === 'closed');
});

test('endSession over WebSocket: session_ended then close 4002 stop the client and forget the session', async () => {
  const c = client({ mode: 'websocket' });
  await tick();
  const ws = sockets[0];
  ws.welcome('s1', 0);
  const pending = c.call('move', 1);
  const ended = c.endSession();
  await tick();
  assert.deepEqual(ws.sent.at(-1), { type: 'end_session' });
  ws.recv({ type: 'session_ended' });
  ws.drop(4002, 'session_ended');
  await ended;
  await assert.rejects(pending, (e) => e.code === 'session_lost');
  assert.deepEqual(c.status(), { state: 'disconnected', code: 4002, reason: 'session_ended' });
  assert.equal(c.sessionId, null);
  await tick(20);
  assert.equal(sockets.length, 1, 'no reconnect');
});

test('a close 4002 alone (no session_ended frame first) also ends the session', async () => {
  const c = client({ mode: 'websocket' });
  await tick();
  sockets[0].welcome('s1', 0);
  const ended = c.endSession();
  await tick();
  sockets[0].drop(4002, 'session_ended');
  await ended;
  assert.equal(c.status().code, 4002);
  assert.equal(c.sessionId, null);
  // reconnect() starts a new session.
  c.reconnect();
  await tick();
  assert.equal(sockets[1].url.searchParams.get('session_id'), null);
});

test('endSession over SSE: POSTed; the close event 4002 stops the client', async () => {
  const c = client({ mode: 'sse' });
  await tick();
  const es = streams[0];
  es.welcome('s1', 0);
  answer = (_u, msg) => (msg.type === 'end_session' ? respond(200, { type: 'session_ended' }) : respond(200, {}));
  const ended = c.endSession();
  await tick();
  es.emit('close', { type: 'close', code: 4002, reason: 'session_ended', reconnect: false });
  await ended;
  assert.deepEqual(
    posts.map((x) => [x.path, x.msg.type]),
    [['/sessions/s1/messages', 'end_session']],
  );
  assert.deepEqual(c.status(), { state: 'disconnected', code: 4002, reason: 'session_ended' });
  assert.equal(c.sessionId, null);
  await tick(20);
  assert.equal(streams.length, 1, 'no reconnect');
});

test("the connect hook's refusal (403, retry false) stops the client with the game's code", async () => {
  answer = () => respond(403, { error: { code: 'banned', message: 'go away', retry: false } });
  const c = client({ mode: 'websocket' });
  await tick();
  sockets[0].drop(1006);
  await tick(5);
  assert.deepEqual(posts.map((x) => [x.path, x.msg.type]), [['/sessions/-/messages', 'ping']]);
  assert.deepEqual(c.status(), { state: 'disconnected', code: 'banned', reason: 'banned: go away' });
  await tick(20);
  assert.equal(sockets.length, 1);
});

test('a refusal without retry (auth) stops; retry true and 503 backend_unavailable keep retrying', async () => {
  answer = () => respond(401, { error: { code: 'expired_token', message: 'x' } });
  const a = client({ mode: 'websocket' });
  await tick();
  sockets[0].drop(1006);
  await tick(5);
  assert.equal(a.status().code, 'expired_token');
  a.close();

  for (const [status, body] of [
    [403, { error: { code: 'full', message: 'the room is full', retry: true } }],
    [503, { error: { code: 'backend_unavailable', message: 'x', retry: true } }],
  ]) {
    sockets = [];
    answer = () => respond(status, body);
    const c = client({ mode: 'websocket' });
    await tick();
    sockets[0].drop(1006);
    await tick(5);
    assert.equal(c.status().state === 'disconnected', false, `${status} does not stop`);
    assert.equal(sockets.length, 2, `${status}: tried again`);
    c.close();
  }
});

test('token_expiring over WebSocket: a fresh token from the callback goes out as refresh, no reconnect', async () => {
  let n = 0;
  const c = client({ mode: 'websocket', playerId: undefined, token: () => `t${++n}` });
  await tick();
  const ws = sockets[0];
  assert.equal(ws.url.searchParams.get('token'), 't1');
  ws.welcome();
  ws.recv({ type: 'token_expiring', expires_at: 5000 });
  await tick();
  assert.deepEqual(ws.sent.at(-1), { type: 'refresh', token: 't2' });
  ws.recv({ type: 'unsubscribed', channel: 'room:a', reason: 'claims' });
  ws.recv({ type: 'refreshed', expires_at: 9000 });
  await tick();
  assert.equal(sockets.length, 1, 'the same link carries on');
  assert.equal(c.status().state, 'connected');
});

test('token_expiring over SSE: the refresh is POSTed with the old token, later posts carry the new one', async () => {
  let n = 0;
  const c = client({ mode: 'sse', playerId: undefined, token: () => `t${++n}` });
  const auth = [];
  const fetch = globalThis.fetch;
  globalThis.fetch = async (url, init) => {
    auth.push(init.headers.authorization);
    return fetch(url, init);
  };
  answer = (_u, msg) => (msg.type === 'refresh' ? respond(200, { type: 'refreshed', expires_at: 9 }) : respond(200, { type: 'pong', ts: 1 }));
  await tick();
  const es = streams[0];
  es.welcome('s1', 0);
  es.emit('token_expiring', { type: 'token_expiring', expires_at: 5000 });
  await tick(5);
  await c.ping();
  assert.deepEqual(posts.map((x) => x.msg.type), ['refresh', 'ping']);
  assert.deepEqual(posts[0].msg, { type: 'refresh', token: 't2' });
  assert.deepEqual(auth, ['Bearer t1', 'Bearer t2']);
  assert.equal(streams.length, 1);
});

test('a disconnected frame with a reason: the close 4001 stops the client with that reason', async () => {
  const c = client({ mode: 'websocket' });
  await tick();
  sockets[0].welcome();
  sockets[0].recv({ type: 'disconnected', reason: 'banned', reconnect: false });
  sockets[0].drop(4001, 'disconnected');
  assert.deepEqual(c.status(), { state: 'disconnected', code: 4001, reason: 'banned' });
  await tick(20);
  assert.equal(sockets.length, 1, 'no reconnect');
});

test('presence over WebSocket resolves with count and players; join and leave reach onPresence, on SSE too', async () => {
  const c = client({ mode: 'websocket' });
  const seen = [];
  c.onPresence((f) => seen.push(`${f.type}:${f.player_id}`));
  await tick();
  const ws = sockets[0];
  ws.welcome();
  const p = c.presence('room:x');
  await tick();
  assert.deepEqual(ws.sent.at(-1), { type: 'presence', channel: 'room:x' });
  ws.recv({ type: 'join', channel: 'room:x', player_id: 'bob' });
  const players = [{ player_id: 'bob', sessions: 1, transports: ['websocket', 'sse'] }];
  ws.recv({ type: 'presence', channel: 'room:x', count: 1, players });
  assert.deepEqual(await p, { count: 1, players });
  const q = c.presence('room:y');
  await tick();
  ws.recv({ type: 'error', code: 'forbidden', message: 'not subscribed' });
  await assert.rejects(q, (e) => e instanceof TandemError && e.code === 'forbidden');

  const s = client({ mode: 'sse' });
  s.onPresence((f) => seen.push(`${f.type}:${f.player_id}`));
  await tick();
  streams[0].welcome();
  streams[0].emit('leave', { type: 'leave', channel: 'room:x', player_id: 'bob' });
  assert.deepEqual(seen, ['join:bob', 'leave:bob']);
});
