// Tic-tac-toe as a Tandem game backend: the HTTP contract of
// docs/backend.md in Node 20, without dependencies.
//
//   POST /tandem/command   join | move | reset          (Tandem → game)
//   POST /tandem/events    session_started | session_resumed | player_left
//   GET  /events           the last 200 lifecycle events (for tests)
//   GET  /health           200 "ok"
//
// Every change of a room is published to `room:<room>` (event `state`)
// through Tandem's backend API (`POST {TANDEM_URL}/api/publish`).
//
// Environment: PORT (0 = any free port; the first line on stdout is
// `listening <port>`), HOST (default 127.0.0.1), TANDEM_URL (default
// http://127.0.0.1:8080), TANDEM_API_KEY, TANDEM_BACKEND_SECRET (when set,
// every POST must carry a valid `X-Tandem-Signature`).

import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';

import * as rules from './rules.mjs';

const PORT = Number(process.env.PORT ?? 9000);
const HOST = process.env.HOST ?? '127.0.0.1';
const TANDEM_URL = (process.env.TANDEM_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
const TANDEM_API_KEY = process.env.TANDEM_API_KEY ?? '';
const SECRET = process.env.TANDEM_BACKEND_SECRET ?? '';

/** Largest request body read; Tandem's own commands are at most 64 KiB of JSON. */
const MAX_BODY_BYTES = 128 * 1024;
/** Answers remembered per `(session_id, id)`, oldest forgotten first. */
const DEDUP_ENTRIES = 4096;
/** Lifecycle events kept for `GET /events`, and event ids remembered to drop redeliveries. */
const EVENTS_KEPT = 200;
const EVENT_IDS_KEPT = 4096;
/** A publish slower than this is given up (Tandem waits `backend.timeout_ms`, 1000, for the whole command). */
const PUBLISH_TIMEOUT_MS = 700;
/** A room name is a channel name's part after `room:` (docs/api.md). */
const ROOM_RE = /^[A-Za-z0-9_.:@-]{1,96}$/;

// --- state ------------------------------------------------------------------

/** room → game (rules.mjs). */
const rooms = new Map();
/** `${session_id}\n${id}` → { key, answer: Promise<{status, body}> }. */
const answered = new Map();
/** player_id → session ids seen alive (a player may hold several sessions: tabs, devices). */
const liveSessions = new Map();
/** The last EVENTS_KEPT lifecycle events, in arrival order, each once. */
const events = [];
const eventIds = new Set();

function log(message, fields = {}) {
  process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), message, ...fields })}\n`);
}

function game(room) {
  let g = rooms.get(room);
  if (!g) rooms.set(room, (g = rules.newGame()));
  return g;
}

function touchSession(player, session) {
  if (typeof player !== 'string' || typeof session !== 'string') return;
  let set = liveSessions.get(player);
  if (!set) liveSessions.set(player, (set = new Set()));
  set.add(session);
}

/** Bounded insert: a Map iterates in insertion order, so the first key is the oldest. */
function remember(map, key, value, max) {
  map.set(key, value);
  while (map.size > max) map.delete(map.keys().next().value);
}

// --- publishing -----------------------------------------------------------------

/** Per room, the publish in progress: states go out in the order they were made. */
const publishChains = new Map();

/** Publishes `state` to `room:<room>`; resolves once Tandem answered (or the attempt failed: logged). */
function publishState(room, state) {
  const previous = publishChains.get(room) ?? Promise.resolve();
  const current = previous.then(() => postPublish(`room:${room}`, 'state', state));
  publishChains.set(room, current);
  current.finally(() => {
    if (publishChains.get(room) === current) publishChains.delete(room);
  });
  return current;
}

async function postPublish(channel, event, data) {
  if (!TANDEM_API_KEY) {
    log('Not published: TANDEM_API_KEY is not set', { channel });
    return;
  }
  try {
    const res = await fetch(`${TANDEM_URL}/api/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TANDEM_API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ channel, event, data }),
      signal: AbortSignal.timeout(PUBLISH_TIMEOUT_MS),
    });
    const text = await res.text();
    if (!res.ok) log('Publish refused', { channel, status: res.status, body: text });
  } catch (e) {
    log('Publish failed', { channel, error: String(e) });
  }
}

// --- commands -------------------------------------------------------------------

class Refusal {
  constructor(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }
}

const STATUS_OF = {
  bad_request: 400,
  bad_move: 400,
  not_seated: 403,
  not_your_turn: 409,
  cell_taken: 409,
  game_over: 409,
};

function roomOf(data) {
  const room = data?.room;
  if (typeof room !== 'string' || !ROOM_RE.test(room)) {
    throw new Refusal(400, 'bad_request', 'data.room must be 1 to 96 of A-Z a-z 0-9 _ . : @ -');
  }
  return room;
}

/** Applies a rules outcome to `room`: refusals become 4xx, a new game is stored and published. */
async function commit(room, outcome, extra = {}) {
  if (!outcome.ok) throw new Refusal(STATUS_OF[outcome.code] ?? 400, outcome.code, outcome.message);
  rooms.set(room, outcome.game);
  await publishState(room, outcome.game);
  return { ...outcome.game, ...extra };
}

const COMMANDS = {
  async join(cmd) {
    const room = roomOf(cmd.data);
    const { game: g, seat } = rules.join(game(room), cmd.player_id);
    // Published even when nothing changed (a spectator, a player back after a
    // reload): whoever just subscribed gets the board through the channel.
    return commit(room, { ok: true, game: g }, { seat });
  },
  async move(cmd) {
    const room = roomOf(cmd.data);
    return commit(room, rules.move(game(room), cmd.player_id, cmd.data.cell));
  },
  async reset(cmd) {
    const room = roomOf(cmd.data);
    return commit(room, rules.reset(game(room), cmd.player_id));
  },
};

async function runCommand(cmd) {
  const handler = Object.hasOwn(COMMANDS, cmd.name) ? COMMANDS[cmd.name] : null;
  if (!handler) return { status: 404, body: { error: { code: 'unknown_command', message: `no command ${JSON.stringify(cmd.name)}` } } };
  try {
    return { status: 200, body: { data: await handler(cmd) } };
  } catch (e) {
    if (e instanceof Refusal) return { status: e.status, body: { error: { code: e.code, message: e.message } } };
    throw e;
  }
}

/**
 * Runs a command once per `(session_id, id)`: Tandem already answers a
 * resend from its reply cache, but that cache dies with Tandem; this one
 * makes the backend's own side idempotent too. A repeat while the first run
 * is in flight waits for it; the same id with another name or data is a
 * `conflict`, as in Tandem.
 */
function command(cmd) {
  if (typeof cmd?.id !== 'string' || typeof cmd.name !== 'string' || typeof cmd.player_id !== 'string') {
    return Promise.resolve({ status: 400, body: { error: { code: 'bad_request', message: 'id, name and player_id are required' } } });
  }
  touchSession(cmd.player_id, cmd.session_id);
  const key = `${cmd.session_id}\n${cmd.id}`;
  const fingerprint = JSON.stringify([cmd.name, cmd.data ?? null]);
  const seen = answered.get(key);
  if (seen) {
    if (seen.fingerprint !== fingerprint) {
      return Promise.resolve({ status: 409, body: { error: { code: 'conflict', message: `command id ${cmd.id} was used for another command` } } });
    }
    return seen.answer;
  }
  const answer = runCommand(cmd);
  remember(answered, key, { fingerprint, answer }, DEDUP_ENTRIES);
  // A crash is not an answer: let a resend run it again.
  answer.catch(() => answered.delete(key));
  return answer;
}

// --- lifecycle events -------------------------------------------------------------

async function lifecycle(ev) {
  if (typeof ev?.id !== 'string' || typeof ev.type !== 'string') return 400;
  if (eventIds.has(ev.id)) return 204; // at-least-once delivery: a redelivery
  eventIds.add(ev.id);
  while (eventIds.size > EVENT_IDS_KEPT) eventIds.delete(eventIds.values().next().value);
  events.push(ev);
  if (events.length > EVENTS_KEPT) events.splice(0, events.length - EVENTS_KEPT);
  log('Lifecycle event', { type: ev.type, player_id: ev.player_id, session_id: ev.session_id, reason: ev.reason });

  if (ev.type === 'session_started' || ev.type === 'session_resumed') {
    touchSession(ev.player_id, ev.session_id);
  } else if (ev.type === 'player_left') {
    const sessions = liveSessions.get(ev.player_id);
    sessions?.delete(ev.session_id);
    // The player may still play from another session (another tab).
    if (sessions?.size) return 204;
    liveSessions.delete(ev.player_id);
    const changed = [];
    for (const [room, g] of rooms) {
      const left = rules.leave(g, ev.player_id);
      if (left !== g) {
        rooms.set(room, left);
        changed.push(publishState(room, left));
      }
    }
    await Promise.all(changed);
  }
  return 204;
}

// --- HTTP -------------------------------------------------------------------------

function send(res, status, body) {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The raw body, or null once it passed MAX_BODY_BYTES (the 413 is sent here). */
function readBody(req, res) {
  return new Promise((resolve, reject) => {
    const announced = Number(req.headers['content-length'] ?? 0);
    if (announced > MAX_BODY_BYTES) {
      res.setHeader('connection', 'close');
      send(res, 413, { error: { code: 'too_large', message: `bodies are at most ${MAX_BODY_BYTES} bytes` } });
      req.resume();
      resolve(null);
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        res.setHeader('connection', 'close');
        send(res, 413, { error: { code: 'too_large', message: `bodies are at most ${MAX_BODY_BYTES} bytes` } });
        req.destroy();
        resolve(null);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function verified(raw, header) {
  const expected = `sha256=${createHmac('sha256', SECRET).update(raw).digest('hex')}`;
  return typeof header === 'string' && header.length === expected.length && timingSafeEqual(Buffer.from(header), Buffer.from(expected));
}

/** Reads, verifies and parses a signed JSON body; answers the refusal itself and resolves to undefined. */
async function signedJson(req, res) {
  const raw = await readBody(req, res);
  if (raw === null) return undefined;
  if (SECRET && !verified(raw, req.headers['x-tandem-signature'])) {
    send(res, 401, { error: { code: 'bad_signature', message: 'missing or wrong X-Tandem-Signature' } });
    return undefined;
  }
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    send(res, 400, { error: { code: 'bad_request', message: 'the body is not JSON' } });
    return undefined;
  }
}

const server = http.createServer(async (req, res) => {
  try {
    const path = new URL(req.url, 'http://x').pathname;
    if (req.method === 'POST' && path === '/tandem/command') {
      const cmd = await signedJson(req, res);
      if (cmd === undefined) return;
      const { status, body } = await command(cmd);
      send(res, status, body);
    } else if (req.method === 'POST' && path === '/tandem/events') {
      const ev = await signedJson(req, res);
      if (ev === undefined) return;
      const status = await lifecycle(ev);
      send(res, status, status === 204 ? undefined : { error: { code: 'bad_request', message: 'id and type are required' } });
    } else if (req.method === 'GET' && path === '/events') {
      send(res, 200, events);
    } else if (req.method === 'GET' && path === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    } else {
      send(res, 404, { error: { code: 'not_found', message: `${req.method} ${path}` } });
    }
  } catch (e) {
    log('Request failed', { error: String(e?.stack ?? e) });
    if (!res.headersSent) send(res, 500, { error: { code: 'internal', message: 'internal error' } });
    else res.destroy();
  }
});

server.listen(PORT, HOST, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
  if (!SECRET) log('TANDEM_BACKEND_SECRET is not set: requests are not verified');
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
