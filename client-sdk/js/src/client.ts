/**
 * The browser glue: native `WebSocket`, `EventSource`, `fetch` and timers
 * around the decisions of `planner.ts`, `sequencer.ts`, `liveness.ts`,
 * `backoff.ts` and `calls.ts`. Every socket is a `Link`; a link that ends is
 * detached (its handlers go with it, its pending requests are rejected, its
 * unanswered game commands wait for the next link) and never reused, so
 * handlers cannot pile up across reconnects.
 */

import { type ReconnectOptions, DEFAULT_RECONNECT, backoffDelay, retryAfterDelay } from './backoff.js';
import { type CommandFrame, type Settlement, Calls } from './calls.js';
import { TandemError } from './errors.js';
import {
  type ClientMessage,
  type Message,
  type PresenceChange,
  type PresenceEntry,
  type Reply,
  type TransportName,
  type Welcome,
  parseFrame,
} from './frames.js';
import { checkLiveness } from './liveness.js';
import { type Mode, Planner, closeVerdict, isFinalRefusal } from './planner.js';
import { type ResyncInfo, Sequencer } from './sequencer.js';

export interface TandemOptions {
  /** The server's base URL (`http(s)://host:port`); default: the page's origin. */
  url?: string;
  /** `auto` (default): WebSocket, falling back to SSE; `websocket`; `sse`; `dual`: both at once. */
  mode?: Mode;
  /** Called on every (re)connect for a fresh client token (a JWT). */
  token?: () => string | Promise<string>;
  /** Development mode only (server without `auth.secret`): the player to act as. */
  playerId?: string;
  /** Channels to subscribe at connect (and restore on every new session). */
  channels?: string[];
  reconnect?: Partial<ReconnectOptions>;
  /** A link is dead when nothing arrives within `heartbeat_interval_ms × livenessFactor` (default 2). */
  livenessFactor?: number;
  /** A connection without its welcome after this long has failed (default 10000). */
  welcomeTimeoutMs?: number;
  /** `auto`: WebSocket tries in a row ending before their welcome before SSE is used (default 2). */
  wsFailuresBeforeFallback?: number;
  /** `auto` on SSE: how often WebSocket is tried again (default 60000). */
  wsProbeIntervalMs?: number;
  /** How long a call waits for a link and its reply (`call()`'s default `timeoutMs`); also bounds resync hooks (default 10000). */
  callTimeoutMs?: number;
  /** Randomness for the jitter, in `[0, 1]` (tests pin it). */
  random?: () => number;
}

export type Status =
  | { state: 'connecting' }
  | { state: 'connected'; transport: TransportName; transports: TransportName[] }
  | { state: 'reconnecting'; attempt: number; delayMs: number }
  | { state: 'disconnected'; code: number | string; reason: string };

/** Options of one `call()`. */
export interface CallOptions {
  /** How long the command may wait for a link and its reply, resends included (default `callTimeoutMs`). */
  timeoutMs?: number;
}

export type MessageHandler = (message: Message) => void;
/** A `join` or `leave` of another player in a channel. */
export type PresenceHandler = (change: PresenceChange) => void;
/** Runs on a gap, before live delivery resumes: reload the application's state here. */
export type ResyncHook = (info: ResyncInfo) => void | Promise<void>;

/** Replies in flight on a WebSocket: the server answers each frame once, in order. */
const MAX_PENDING = 1024;

interface Pending {
  resolve: (r: Reply) => void;
  reject: (e: TandemError) => void;
  done: boolean;
}

interface CallWaiter {
  resolve: (value: unknown) => void;
  reject: (e: TandemError) => void;
  timer: ReturnType<typeof setTimeout>;
  deadline: number;
}

interface EndWaiter {
  resolve: () => void;
  reject: (e: TandemError) => void;
}

let linkKeys = 0;

interface EndInfo {
  code: number;
  reason: string;
  /** The SSE `close` event's `reconnect` flag. */
  serverReconnect?: boolean;
  /** Closed on purpose by the client (mode switch, promotion, `close()`): no reconnect. */
  retire?: boolean;
  /** The token callback failed: nothing reached the server, nothing to ask it. */
  tokenFailed?: boolean;
}

class Link {
  /** Names the link in the command bookkeeping (`calls.ts`). */
  readonly key = ++linkKeys;
  welcomed = false;
  dead = false;
  lastReceivedAt: number;
  pingSentAt: number | null = null;
  heartbeatMs = 0;
  shutdownRetryAfterMs: number | null = null;
  /** The backend's reason from a `disconnected` frame: the close that follows is final. */
  farewell: string | null = null;
  pending: Pending[] = [];
  welcomeTimer: ReturnType<typeof setTimeout> | undefined;
  timers: ReturnType<typeof setTimeout>[] = [];
  ws?: WebSocket;
  es?: EventSource;

  constructor(
    readonly transport: TransportName,
    public probe: boolean,
    now: number,
  ) {
    this.lastReceivedAt = now;
  }
}

interface Slot {
  link: Link | null;
  timer: ReturnType<typeof setTimeout> | null;
}

export class TandemClient {
  private readonly base: string;
  private readonly o: {
    reconnect: ReconnectOptions;
    livenessFactor: number;
    welcomeTimeoutMs: number;
    callTimeoutMs: number;
  };
  private readonly random: () => number;
  private readonly planner: Planner;
  private readonly seq = new Sequencer();
  private readonly slots = new Map<TransportName, Slot>();
  private probeLink: Link | null = null;
  private probeTimer: ReturnType<typeof setTimeout> | null = null;
  private attempt = 0;
  private closed = false;
  private current: Status = { state: 'connecting' };
  private token: string | null = null;
  private readonly channels: Set<string>;
  private readonly statusListeners = new Set<(s: Status) => void>();
  private readonly messageHandlers = new Set<MessageHandler>();
  private readonly channelHandlers = new Map<string, Set<MessageHandler>>();
  private readonly resyncHooks = new Set<ResyncHook>();
  private readonly presenceHandlers = new Set<PresenceHandler>();
  private waiters: { resolve: (l: Link) => void; reject: (e: TandemError) => void }[] = [];
  private resyncGeneration = 0;
  private readonly calls: Calls;
  private readonly callWaiters = new Map<string, CallWaiter>();
  private readonly endWaiters = new Set<EndWaiter>();
  private resendTimer: ReturnType<typeof setTimeout> | null = null;
  private resendAttempt = 0;
  private flushQueued = false;
  private checkedAt = -1;
  private pings = 0;
  private readonly onNetworkChange = (): void => this.check();

  constructor(private readonly options: TandemOptions = {}) {
    const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
    this.base = (options.url ?? origin ?? '').replace(/\/+$/, '');
    this.o = {
      reconnect: { ...DEFAULT_RECONNECT, ...options.reconnect },
      livenessFactor: options.livenessFactor ?? 2,
      welcomeTimeoutMs: options.welcomeTimeoutMs ?? 10_000,
      callTimeoutMs: options.callTimeoutMs ?? 10_000,
    };
    this.random = options.random ?? Math.random;
    this.calls = new Calls(this.o.callTimeoutMs);
    this.planner = new Planner(options.mode ?? 'auto', {
      wsFailuresBeforeFallback: options.wsFailuresBeforeFallback ?? 2,
      wsProbeIntervalMs: options.wsProbeIntervalMs ?? 60_000,
    });
    this.channels = new Set(options.channels ?? []);
    this.start();
  }

  // --- public API ---------------------------------------------------------

  /** The current status. */
  status(): Status {
    return this.current;
  }

  /** Calls `cb` on every status change; returns the unsubscribe function. */
  onStatus(cb: (s: Status) => void): () => void {
    this.statusListeners.add(cb);
    return () => this.statusListeners.delete(cb);
  }

  /** Every delivery, once, in `seq` order; returns the unsubscribe function. */
  onMessage(handler: MessageHandler): () => void {
    this.messageHandlers.add(handler);
    return () => this.messageHandlers.delete(handler);
  }

  /** Deliveries on one channel; returns the unsubscribe function. */
  on(channel: string, handler: MessageHandler): () => void {
    let set = this.channelHandlers.get(channel);
    if (!set) this.channelHandlers.set(channel, (set = new Set()));
    set.add(handler);
    return () => {
      set.delete(handler);
      if (set.size === 0 && this.channelHandlers.get(channel) === set) this.channelHandlers.delete(channel);
    };
  }

  /** A hook awaited on a gap before live delivery resumes; returns the unsubscribe function. */
  onResync(hook: ResyncHook): () => void {
    this.resyncHooks.add(hook);
    return () => this.resyncHooks.delete(hook);
  }

  /**
   * Who is in a channel the session is subscribed to (else it rejects with
   * `forbidden`): `count` is exact, `players` lists at most `limit`
   * (default and most 1,000; `0` asks for the count alone, the cheap
   * question for a big channel).
   */
  async presence(channel: string, limit?: number): Promise<{ count: number; players: PresenceEntry[] }> {
    const reply = await this.request(limit === undefined ? { type: 'presence', channel } : { type: 'presence', channel, limit });
    if (reply.type !== 'presence') throw new TandemError('invalid_message', `unexpected reply ${reply.type}`);
    return { count: reply.count, players: reply.players };
  }

  /**
   * `join` and `leave` of other players in subscribed channels whose
   * namespace is in the server's `channels.presence_events`; returns the
   * unsubscribe function.
   */
  onPresence(handler: PresenceHandler): () => void {
    this.presenceHandlers.add(handler);
    return () => this.presenceHandlers.delete(handler);
  }

  /** Subscribes, and keeps the subscription across new sessions. */
  async subscribe(channel: string): Promise<Reply> {
    const reply = await this.request({ type: 'subscribe', channel });
    this.channels.add(channel);
    return reply;
  }

  async unsubscribe(channel: string): Promise<Reply> {
    const reply = await this.request({ type: 'unsubscribe', channel });
    this.channels.delete(channel);
    return reply;
  }

  /** Publishes; resolves to the server's `published` reply (`id`, `recipients`). */
  publish(channel: string, event: string, data?: unknown): Promise<Reply> {
    return this.request({ type: 'publish', channel, event, data });
  }

  /**
   * Sends a game command (docs/backend.md) and resolves with its reply's
   * `data`; rejects with a `TandemError` carrying the game's code, Tandem's
   * (`backend_timeout`, `rate_limited`…) or the client's (`timeout`,
   * `closed`, `session_lost`). A command whose link drops before its answer
   * is sent again, with the same id, on the next link (the server answers a
   * resent id from its reply cache, so it runs at most once).
   */
  call(name: string, data?: unknown, opts: CallOptions = {}): Promise<unknown> {
    if (this.closed) return Promise.reject(new TandemError('closed', 'the client is closed'));
    try {
      JSON.stringify(data);
    } catch (e) {
      return Promise.reject(new TandemError('invalid_message', `data is not JSON: ${String(e)}`));
    }
    const timeoutMs = opts.timeoutMs ?? this.o.callTimeoutMs;
    const { id, deadline } = this.calls.start(name, data, now(), timeoutMs);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // Never before the deadline, even when a timer fires a little early.
        for (const s of this.calls.expired(Math.max(now(), deadline))) this.finish(s);
      }, timeoutMs);
      this.callWaiters.set(id, { resolve, reject, timer, deadline });
      this.flush();
    });
  }

  /**
   * Ends the session for good (the game gets `player_left`, reason
   * `ended`): the server closes every connection of the session with 4002
   * `session_ended`, and the client stops and forgets the session
   * (`reconnect()` would start a new one). Pending calls are rejected with
   * `session_lost`.
   */
  endSession(): Promise<void> {
    if (this.closed) {
      return this.seq.sessionId === null ? Promise.resolve() : Promise.reject(new TandemError('closed', 'the client is closed'));
    }
    return this.ready().then(
      (link) =>
        new Promise<void>((resolve, reject) => {
          let settled = false;
          const done = (e: TandemError | null): void => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            this.endWaiters.delete(waiter);
            if (e) reject(e);
            else resolve();
          };
          const timer = setTimeout(
            () => done(new TandemError('timeout', `no reply within ${this.o.callTimeoutMs} ms`)),
            this.o.callTimeoutMs,
          );
          const waiter: EndWaiter = { resolve: () => done(null), reject: done };
          this.endWaiters.add(waiter);
          if (link.transport === 'websocket') {
            this.sendOn(link, { type: 'end_session' }, { resolve: () => {}, reject: done, done: false });
          } else {
            this.post({ type: 'end_session' }, this.o.callTimeoutMs).then(() => this.sessionEnded(), done);
          }
        }),
    );
  }

  /** Round trip to the server, in ms. */
  async ping(): Promise<number> {
    const started = now();
    await this.request({ type: 'ping', id: ++this.pings });
    return now() - started;
  }

  /**
   * Checks now (the seed's `forceCheckAll`, done properly): a waiting retry
   * goes at once and every open link must answer a ping (see `check()`); a
   * client that was closed, gave up or was refused starts over, keeping its
   * session.
   */
  reconnect(): void {
    if (!this.closed) {
      this.check();
      return;
    }
    this.retireAll();
    this.closed = false;
    this.start();
  }

  /** Closes every link for good (until `reconnect()`). */
  close(): void {
    this.stop(1000, 'closed by client');
  }

  /**
   * Switches mode, keeping the session and its sequence: make before
   * break, the links of the old mode stay until a link of the new one has
   * its welcome.
   */
  setMode(mode: Mode): void {
    this.planner.setMode(mode);
    if (this.probeLink) this.end(this.probeLink, { code: 1000, reason: 'retired', retire: true });
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = null;
    this.fill();
  }

  get mode(): Mode {
    return this.planner.mode;
  }

  get sessionId(): string | null {
    return this.seq.sessionId;
  }

  /** The last `seq` handed to the application. */
  get lastSeq(): number {
    return this.seq.lastSeq;
  }

  /**
   * Cuts the links of one transport (or all) as a network loss would; the
   * client resumes. For demos and tests.
   */
  dropConnection(transport?: TransportName): void {
    for (const link of this.links()) {
      if (!transport || link.transport === transport) this.end(link, { code: 1006, reason: 'dropped' });
    }
  }

  /**
   * Checks the links now instead of waiting for a heartbeat (the browser's
   * `online`/`offline` events call this): a reconnect waiting for its delay
   * goes now; each live link must answer a ping promptly or is renewed.
   */
  check(): void {
    if (this.closed) return;
    this.checkedAt = now();
    let waited = false;
    for (const slot of this.slots.values()) {
      if (slot.timer) {
        clearTimeout(slot.timer);
        slot.timer = null;
        waited = true;
      }
      // A connect begun before the network changed is likely doomed: start over.
      if (slot.link && !slot.link.welcomed) {
        this.end(slot.link, { code: 1000, reason: 'retired', retire: true });
        waited = true;
      }
    }
    if (waited) this.fill();
    for (const link of this.links()) {
      if (!link.welcomed) continue;
      const limit = Math.min(this.o.callTimeoutMs, link.heartbeatMs || this.o.callTimeoutMs);
      if (link.transport === 'websocket') {
        const sentAt = now();
        this.sendPing(link);
        link.timers.push(
          setTimeout(() => {
            if (link.lastReceivedAt < sentAt) this.end(link, { code: 4000, reason: 'heartbeat_timeout' });
          }, limit),
        );
      } else {
        this.post({ type: 'ping', id: 'check' }, limit).catch((e: TandemError) => {
          if (e.code === 'connection_lost' || e.code === 'timeout') this.end(link, { code: 1006, reason: 'check_failed' });
        });
      }
    }
  }

  // --- connection lifecycle -----------------------------------------------

  private start(): void {
    const g = globalThis as { addEventListener?: (t: string, f: () => void) => void };
    g.addEventListener?.('online', this.onNetworkChange);
    g.addEventListener?.('offline', this.onNetworkChange);
    this.attempt = 0;
    this.setStatus({ state: 'connecting' });
    this.fill();
  }

  private stop(code: number | string, reason: string): void {
    const ended = code === 4002;
    this.closed = true;
    if (ended) this.seq.reset();
    const g = globalThis as { removeEventListener?: (t: string, f: () => void) => void };
    g.removeEventListener?.('online', this.onNetworkChange);
    g.removeEventListener?.('offline', this.onNetworkChange);
    this.retireAll();
    for (const w of this.waiters.splice(0)) w.reject(new TandemError('closed', reason));
    if (this.resendTimer) clearTimeout(this.resendTimer);
    this.resendTimer = null;
    // The server's reply cache dies with an ended session.
    this.failCalls(ended ? 'session_lost' : 'closed', ended ? 'the session ended' : reason);
    this.settleEnd(ended ? null : new TandemError('closed', reason));
    this.setStatus({ state: 'disconnected', code, reason });
  }

  private links(): Link[] {
    const out: Link[] = [];
    for (const s of this.slots.values()) if (s.link) out.push(s.link);
    if (this.probeLink) out.push(this.probeLink);
    return out;
  }

  private retireAll(): void {
    for (const link of this.links()) this.end(link, { code: 1000, reason: 'retired', retire: true });
    for (const s of this.slots.values()) if (s.timer) clearTimeout(s.timer);
    this.slots.clear();
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = null;
  }

  /** Opens every wanted transport that has no link and no pending retry. */
  private fill(): void {
    if (this.closed) return;
    const wanted = this.planner.transports();
    const wantedUp = [...this.slots].some(([t, s]) => wanted.includes(t) && s.link?.welcomed);
    for (const [t, slot] of this.slots) {
      if (wanted.includes(t)) continue;
      if (slot.timer) clearTimeout(slot.timer);
      slot.timer = null;
      // Make before break: an unwanted link serves until a wanted one is up.
      if (slot.link && !wantedUp) continue;
      this.slots.delete(t);
      if (slot.link) this.end(slot.link, { code: 1000, reason: 'retired', retire: true });
    }
    const anyWelcomed = this.links().some((l) => l.welcomed && !l.probe);
    for (const t of wanted) {
      let slot = this.slots.get(t);
      if (!slot) this.slots.set(t, (slot = { link: null, timer: null }));
      if (slot.link || slot.timer) continue;
      // A second transport joins the session the first one welcomed, so
      // that two links never race to create two sessions.
      const othersPending = [...this.slots].some(([k, s]) => k !== t && s.link && !s.link.welcomed);
      if (!anyWelcomed && othersPending) continue;
      slot.link = this.open(t, false);
    }
    this.refreshStatus();
  }

  private open(transport: TransportName, probe: boolean): Link {
    const link = new Link(transport, probe, now());
    link.welcomeTimer = setTimeout(
      () => this.end(link, { code: 4000, reason: 'welcome_timeout' }),
      this.o.welcomeTimeoutMs,
    );
    void this.attach(link);
    return link;
  }

  private async attach(link: Link): Promise<void> {
    let query: string;
    try {
      query = await this.connectQuery();
    } catch (e) {
      this.end(link, { code: 1006, reason: `token callback failed: ${String(e)}`, tokenFailed: true });
      return;
    }
    if (link.dead) return;
    try {
      if (link.transport === 'websocket') {
        const ws = new WebSocket(`${this.base.replace(/^http/, 'ws')}/ws?${query}`);
        link.ws = ws;
        ws.onmessage = (ev) => this.frame(link, ev.data);
        ws.onclose = (ev) => this.end(link, { code: ev.code, reason: ev.reason });
      } else {
        // A fresh EventSource per connect: the resume point travels as
        // `last_seq`, and the client (not the browser) owns the retry policy.
        // `heartbeat=event`: heartbeats a script can see, to time liveness.
        const es = new EventSource(`${this.base}/sse?${query}&heartbeat=event`);
        link.es = es;
        const onEvent = (ev: MessageEvent): void => this.frame(link, ev.data);
        // `error` also fires for a failed stream, without data: `frame()` skips it.
        for (const type of [
          'welcome', 'message', 'shutdown', 'close', 'heartbeat', 'reply', 'error', 'session_ended',
          'token_expiring', 'unsubscribed', 'disconnected', 'join', 'leave',
        ]) {
          es.addEventListener(type, onEvent);
        }
        es.onerror = () => this.end(link, { code: 1006, reason: 'stream_error' });
      }
    } catch (e) {
      // A URL the browser refuses outright (bad scheme, blocked port).
      this.end(link, { code: 1006, reason: `cannot open: ${String(e)}` });
    }
  }

  private async connectQuery(): Promise<string> {
    const q = new URLSearchParams();
    if (this.options.token) {
      this.token = await this.options.token();
      q.set('token', this.token);
    } else if (this.options.playerId) {
      q.set('player_id', this.options.playerId);
    }
    if (this.seq.sessionId) {
      q.set('session_id', this.seq.sessionId);
      q.set('last_seq', String(this.seq.lastSeq));
      q.set('positions', this.seq.positionsParam((c) => this.channels.has(c) || c === 'broadcast' || c.startsWith('player:')));
    }
    if (this.channels.size) q.set('channels', [...this.channels].join(','));
    return q.toString();
  }

  /** Ends a link once: detaches it, rejects its calls, then decides what next. */
  private end(link: Link, info: EndInfo): void {
    if (link.dead) return;
    link.dead = true;
    clearTimeout(link.welcomeTimer);
    for (const t of link.timers) clearTimeout(t);
    link.timers = [];
    if (link.ws) {
      link.ws.onmessage = link.ws.onclose = null;
      try {
        link.ws.close();
      } catch {
        // Already closing.
      }
    }
    if (link.es) {
      link.es.onerror = null;
      link.es.close();
    }
    // The session ended (4002): that answers a pending `endSession()`.
    if (info.code === 4002 && !info.retire) this.settleEnd(null);
    for (const p of link.pending.splice(0)) {
      if (!p.done) p.reject(new TandemError('connection_lost', `the ${link.transport} link dropped before the reply`));
      p.done = true;
    }
    // Unanswered commands go again, same id, on the next welcomed link.
    if (this.calls.dropped(link.key).length) this.flushSoon();
    if (link.probe) {
      if (this.probeLink === link) this.probeLink = null;
      if (!link.welcomed && !info.retire) this.planner.wsFailed(now());
      this.scheduleProbe();
      return;
    }
    const slot = this.slots.get(link.transport);
    if (!slot || slot.link !== link) return;
    slot.link = null;
    if (info.retire || this.closed) {
      this.refreshStatus();
      return;
    }
    const verdict = closeVerdict(
      info.code,
      info.reason,
      info.serverReconnect ?? null,
      link.shutdownRetryAfterMs,
      link.farewell,
    );
    if (verdict.kind === 'stop') {
      this.stop(verdict.code, verdict.reason);
      return;
    }
    if (link.welcomed || info.tokenFailed) {
      this.schedule(link.transport, verdict.retryAfterMs);
      return;
    }
    const failedAt = now();
    if (link.transport === 'websocket') this.planner.wsFailed(failedAt);
    // A connect that failed before its welcome may be an auth refusal,
    // which neither WebSocket nor EventSource lets a script see: ask.
    void this.authRefusal().then((refusal) => {
      if (this.closed) return;
      if (refusal) this.stop(refusal.code, refusal.message);
      // A check (the network came back) since the failure: no waiting.
      else if (this.checkedAt >= failedAt) this.fill();
      else this.schedule(link.transport, verdict.retryAfterMs);
    });
  }

  /** Arms the retry of a transport (or of its replacement after a fallback). */
  private schedule(transport: TransportName, retryAfterMs: number | null): void {
    if (this.closed) return;
    const wanted = this.planner.transports();
    const t = wanted.includes(transport) ? transport : wanted[0];
    let slot = this.slots.get(t);
    if (!slot) this.slots.set(t, (slot = { link: null, timer: null }));
    if (slot.link || slot.timer) {
      this.fill();
      return;
    }
    const attempt = this.attempt++;
    if (attempt >= this.o.reconnect.maxAttempts) {
      this.stop('reconnect_failed', `no connection after ${attempt} attempts`);
      return;
    }
    const delayMs =
      retryAfterMs === null
        ? backoffDelay(attempt, this.o.reconnect, this.random)
        : retryAfterDelay(retryAfterMs, attempt, this.o.reconnect, this.random);
    const s = slot;
    s.timer = setTimeout(() => {
      s.timer = null;
      this.fill();
    }, delayMs);
    if (!this.links().some((l) => l.welcomed && !l.probe)) {
      this.setStatus({ state: 'reconnecting', attempt: attempt + 1, delayMs });
    }
    this.fill();
  }

  private scheduleProbe(): void {
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = null;
    const inMs = this.planner.probeInMs(now());
    if (inMs === null || this.closed) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = null;
      const sse = this.slots.get('sse')?.link;
      if (this.closed || this.probeLink || !sse?.welcomed) {
        this.scheduleProbeLater();
        return;
      }
      this.planner.probeStarted(now());
      this.probeLink = this.open('websocket', true);
    }, inMs);
  }

  private scheduleProbeLater(): void {
    this.planner.probeStarted(now());
    this.scheduleProbe();
  }

  /**
   * Asks the server whether the connect is refused, without opening
   * anything: a 401/403 for the token or from the game's connect hook stops
   * the client unless its body says `retry: true` (docs/backend.md).
   */
  private async authRefusal(): Promise<{ code: string; message: string } | null> {
    try {
      await this.post({ type: 'ping', id: 'auth' }, this.o.callTimeoutMs, this.seq.sessionId ?? '-');
      return null;
    } catch (e) {
      const err = e as TandemError;
      return err.status !== undefined && isFinalRefusal(err.status, err.retry) ? { code: err.code, message: err.message } : null;
    }
  }

  // --- frames ---------------------------------------------------------------

  private frame(link: Link, data: unknown): void {
    if (link.dead || typeof data !== 'string') return;
    link.lastReceivedAt = now();
    const f = parseFrame(data);
    if (!f) return;
    switch (f.type) {
      case 'welcome':
        this.welcome(link, f);
        break;
      case 'message':
        this.deliver(f);
        break;
      case 'shutdown':
        link.shutdownRetryAfterMs = f.retry_after_ms;
        break;
      case 'close':
        this.end(link, { code: f.code, reason: f.reason, serverReconnect: f.reconnect });
        break;
      case 'reply':
        this.settleCall(f);
        break;
      case 'error': {
        // With an `id` it answers a game command (a repeat, or one for an
        // unknown id, is ignored); without, the oldest pending request.
        if (f.id !== undefined) {
          this.settleCall(f);
          break;
        }
        const p = link.pending.shift();
        if (p && !p.done) p.reject(new TandemError(f.code, f.message));
        if (p) p.done = true;
        break;
      }
      case 'session_ended': {
        const p = link.pending.shift();
        if (p && !p.done) p.resolve({ type: 'pong', ts: Date.now() });
        if (p) p.done = true;
        this.sessionEnded();
        break;
      }
      case 'token_expiring':
        void this.refreshToken(link);
        break;
      case 'disconnected':
        if (!f.reconnect) link.farewell = f.reason;
        break;
      case 'join':
      case 'leave':
        for (const h of [...this.presenceHandlers]) {
          try {
            h(f);
          } catch {
            // A handler's failure is its own.
          }
        }
        break;
      case 'unsubscribed':
        // With a reason the server ended it (a refreshed token's claims): no call waits for it.
        if (f.reason !== undefined) {
          this.channels.delete(f.channel);
          break;
        }
      // falls through
      case 'subscribed':
      case 'presence':
      case 'published':
      case 'refreshed':
      case 'pong': {
        const p = link.pending.shift();
        if (p && !p.done) p.resolve(f);
        if (p) p.done = true;
        break;
      }
      // `heartbeat` and anything newer: received, so alive; nothing else.
    }
  }

  private welcome(link: Link, w: Welcome): void {
    if (link.welcomed) return;
    link.welcomed = true;
    link.heartbeatMs = w.heartbeat_interval_ms;
    clearTimeout(link.welcomeTimer);
    this.attempt = 0;
    if (link.transport === 'websocket') this.planner.wsWelcomed();
    if (link.probe) {
      // WebSocket works again: it takes over, the SSE stream is retired by
      // `fill()`. Deliveries on both in between are de-duplicated.
      this.probeLink = null;
      const slot = this.slots.get('websocket') ?? { link: null, timer: null };
      if (slot.timer) clearTimeout(slot.timer);
      this.slots.set('websocket', { link, timer: null });
      link.probe = false;
    }
    const outcome = this.seq.welcome(w);
    // A new session: the old one's reply cache is gone, its commands with it.
    if (outcome.resync?.reason === 'session_expired') {
      this.failCalls('session_lost', `session ${outcome.resync.previousSessionId} was replaced`);
    }
    if (outcome.resync) void this.resync(outcome.resync);
    this.watch(link);
    for (const waiter of this.waiters.splice(0)) waiter.resolve(link);
    this.fill();
    this.scheduleProbe();
    this.flush();
  }

  private async resync(info: ResyncInfo): Promise<void> {
    const generation = ++this.resyncGeneration;
    const hooks = [...this.resyncHooks].map(async (h) => h(info));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = new Promise<void>((r) => (timer = setTimeout(r, this.o.callTimeoutMs)));
    try {
      await Promise.race([Promise.allSettled(hooks), limit]);
    } finally {
      clearTimeout(timer);
    }
    if (generation !== this.resyncGeneration) return;
    for (const m of this.seq.release()) this.emit(m);
  }

  private deliver(m: Message): void {
    const { deliver, overflow } = this.seq.accept(m);
    for (const d of deliver) this.emit(d);
    // Too much waits behind a gap: renew the links, so that a resume
    // replays the gap or declares it.
    if (overflow) for (const l of this.links()) this.end(l, { code: 4000, reason: 'gap' });
  }

  private emit(m: Message): void {
    const handlers = [...this.messageHandlers, ...(this.channelHandlers.get(m.channel) ?? [])];
    for (const h of handlers) {
      try {
        h(m);
      } catch (e) {
        // An application bug must not stop delivery: report it, go on.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  /**
   * Liveness of a link, from what it received (see liveness.ts). A
   * WebSocket is pinged when quiet; an SSE stream cannot be, so its "ping"
   * is waiting for the server's next heartbeat event.
   */
  private watch(link: Link): void {
    if (link.dead || link.heartbeatMs <= 0) return;
    const d = checkLiveness({
      now: now(),
      lastReceivedAt: link.lastReceivedAt,
      pingSentAt: link.pingSentAt,
      heartbeatMs: link.heartbeatMs,
      factor: this.o.livenessFactor,
    });
    if (d.action === 'dead') {
      this.end(link, { code: 4000, reason: 'heartbeat_timeout' });
      return;
    }
    if (d.action === 'ping') {
      if (link.transport === 'websocket') this.sendPing(link);
      else link.pingSentAt = now();
    }
    link.timers.push(setTimeout(() => this.watch(link), Math.max(d.nextCheckInMs, 10)));
    // Keep the timer list short: fired timers need no clearing.
    if (link.timers.length > 8) link.timers.splice(0, link.timers.length - 4);
  }

  private sendPing(link: Link): void {
    link.pingSentAt = now();
    const done: Pending = { resolve: () => {}, reject: () => {}, done: true };
    this.sendOn(link, { type: 'ping', id: 'hb' }, done);
  }

  private sendOn(link: Link, msg: ClientMessage, p: Pending): void {
    if (link.dead) {
      p.reject(new TandemError('connection_lost', `the ${link.transport} link dropped before the call went out`));
      return;
    }
    if (link.pending.length >= MAX_PENDING) {
      p.reject(new TandemError('too_many_pending', `${MAX_PENDING} calls already await their reply`));
      return;
    }
    link.pending.push(p);
    try {
      link.ws?.send(JSON.stringify(msg));
    } catch {
      this.end(link, { code: 1006, reason: 'send_failed' });
    }
  }

  // --- token refresh ----------------------------------------------------------

  /**
   * `token_expiring`: a fresh token from the callback, sent as `refresh` on
   * this link (SSE: POSTed, for the session's streams), so the link carries
   * on without a reconnect. A failure changes nothing: past the grace the
   * server closes (4003) and the reconnect asks the callback again.
   */
  private async refreshToken(link: Link): Promise<void> {
    if (!this.options.token || link.dead) return;
    try {
      const token = await this.options.token();
      if (link.dead) return;
      const msg: ClientMessage = { type: 'refresh', token };
      if (link.transport === 'sse') {
        await this.post(msg, this.o.callTimeoutMs);
      } else {
        await new Promise<Reply>((resolve, reject) => this.sendOn(link, msg, { resolve, reject, done: false }));
      }
      this.token = token;
    } catch {
      // The close after the grace takes it from here.
    }
  }

  // --- calls ------------------------------------------------------------------

  private async request(msg: ClientMessage): Promise<Reply> {
    const link = await this.ready();
    if (link.transport === 'sse') return this.post(msg, this.o.callTimeoutMs);
    return new Promise<Reply>((resolve, reject) => {
      const p: Pending = { resolve, reject, done: false };
      const timer = setTimeout(() => {
        if (!p.done) reject(new TandemError('timeout', `no reply within ${this.o.callTimeoutMs} ms`));
        p.done = true;
      }, this.o.callTimeoutMs);
      const settle =
        <T>(f: (v: T) => void) =>
        (v: T) => {
          clearTimeout(timer);
          f(v);
        };
      p.resolve = settle(resolve);
      p.reject = settle(reject);
      this.sendOn(link, msg, p);
    });
  }

  // --- game commands ------------------------------------------------------------

  /** Sends every command waiting for a link on the best welcomed one (WebSocket first). */
  private flush(): void {
    if (this.closed) return;
    const frames = this.calls.toResend();
    if (!frames.length) return;
    const up = this.links().filter((l) => l.welcomed && !l.probe && !l.dead);
    const link = up.find((l) => l.transport === 'websocket') ?? up[0];
    if (!link) return;
    for (const f of frames) {
      if (link.dead) return;
      this.sendCommand(link, f);
    }
  }

  /** `flush()` once the current event is handled (a link just ended: the others may take over). */
  private flushSoon(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  private sendCommand(link: Link, f: CommandFrame): void {
    this.calls.sent(f.id, link.key);
    if (link.transport === 'websocket') {
      try {
        link.ws?.send(JSON.stringify(f));
      } catch {
        this.end(link, { code: 1006, reason: 'send_failed' });
      }
      return;
    }
    // SSE: 202 `accepted`, the answer comes on the stream.
    const left = Math.max(1, (this.callWaiters.get(f.id)?.deadline ?? now()) - now());
    this.post(f, left).then(
      (body) => {
        this.resendAttempt = 0;
        this.settleCall(body);
      },
      (e: TandemError) => {
        if (e.code === 'connection_lost' || e.status === 503) {
          // Not taken: try again on a later link, or this one after a pause.
          if (this.calls.unsent(f.id, link.key)) this.resendLater();
        } else if (e.status !== undefined) {
          this.finish(this.calls.fail(f.id, e.code, e.message));
        }
        // A `timeout` here is the call's own deadline: its timer rejects it.
      },
    );
  }

  private resendLater(): void {
    if (this.resendTimer || this.closed) return;
    const delayMs = Math.max(50, backoffDelay(this.resendAttempt++, this.o.reconnect, this.random));
    this.resendTimer = setTimeout(() => {
      this.resendTimer = null;
      this.flush();
    }, delayMs);
  }

  private settleCall(frame: unknown): void {
    this.finish(this.calls.settle(frame));
  }

  private finish(s: Settlement | null): void {
    if (!s) return;
    const w = this.callWaiters.get(s.id);
    if (!w) return;
    this.callWaiters.delete(s.id);
    clearTimeout(w.timer);
    if (s.ok) w.resolve(s.value);
    else w.reject(new TandemError(s.error.code, s.error.message));
  }

  private failCalls(code: string, message: string): void {
    for (const s of this.calls.failAll(code, message)) this.finish(s);
  }

  /** The session ended (`session_ended`, or a POSTed `end_session` was answered). */
  private sessionEnded(): void {
    if (this.closed) this.settleEnd(null);
    else this.stop(4002, 'session_ended');
  }

  private settleEnd(error: TandemError | null): void {
    for (const w of [...this.endWaiters]) {
      if (error) w.reject(error);
      else w.resolve();
    }
  }

  /** A welcomed link, WebSocket first; waits up to `callTimeoutMs` for one. */
  private ready(): Promise<Link> {
    if (this.closed) return Promise.reject(new TandemError('closed', 'the client is closed'));
    const up = this.links().filter((l) => l.welcomed && !l.probe);
    const link = up.find((l) => l.transport === 'websocket') ?? up[0];
    if (link) return Promise.resolve(link);
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (l: Link) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: (e: TandemError) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new TandemError('not_connected', `no connection within ${this.o.callTimeoutMs} ms`));
      }, this.o.callTimeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** `POST /sessions/{id}/messages`: how an SSE client talks back. */
  private async post(msg: ClientMessage, timeoutMs: number, sessionId = this.seq.sessionId ?? '-'): Promise<Reply> {
    const q = new URLSearchParams();
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.options.token && this.token) headers.authorization = `Bearer ${this.token}`;
    else if (this.options.playerId) q.set('player_id', this.options.playerId);
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), timeoutMs);
    let res: Response;
    let body: { error?: { code?: string; message?: string; retry?: boolean } } & Partial<Reply>;
    try {
      res = await fetch(`${this.base}/sessions/${encodeURIComponent(sessionId)}/messages?${q}`, {
        method: 'POST',
        headers,
        body: JSON.stringify(msg),
        signal: ctrl.signal,
      });
      body = await res.json().catch(() => ({}));
    } catch {
      throw ctrl.signal.aborted
        ? new TandemError('timeout', `no reply within ${timeoutMs} ms`)
        : new TandemError('connection_lost', 'the request failed before the reply');
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok) {
      const retry = typeof body.error?.retry === 'boolean' ? body.error.retry : undefined;
      throw new TandemError(body.error?.code ?? `http_${res.status}`, body.error?.message ?? res.statusText, res.status, retry);
    }
    return body as Reply;
  }

  // --- status -------------------------------------------------------------------

  private refreshStatus(): void {
    if (this.closed) return;
    const up = this.links()
      .filter((l) => l.welcomed && !l.probe)
      .map((l) => l.transport)
      .sort((a, b) => (a === b ? 0 : a === 'websocket' ? -1 : 1));
    if (up.length) this.setStatus({ state: 'connected', transport: up[0], transports: up });
  }

  private setStatus(s: Status): void {
    if (JSON.stringify(s) === JSON.stringify(this.current)) return;
    this.current = s;
    for (const cb of [...this.statusListeners]) {
      try {
        cb(s);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}

function now(): number {
  return Date.now();
}
