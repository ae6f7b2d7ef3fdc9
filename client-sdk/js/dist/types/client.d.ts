/**
 * The browser glue: native `WebSocket`, `EventSource`, `fetch` and timers
 * around the decisions of `planner.ts`, `sequencer.ts`, `liveness.ts`,
 * `backoff.ts` and `calls.ts`. Every socket is a `Link`; a link that ends is
 * detached (its handlers go with it, its pending requests are rejected, its
 * unanswered game commands wait for the next link) and never reused, so
 * handlers cannot pile up across reconnects.
 */
import { type ReconnectOptions } from './backoff.js';
import { type Message, type PresenceChange, type PresenceEntry, type Reply, type TransportName } from './frames.js';
import { type Mode } from './planner.js';
import { type ResyncInfo } from './sequencer.js';
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
export type Status = {
    state: 'connecting';
} | {
    state: 'connected';
    transport: TransportName;
    transports: TransportName[];
} | {
    state: 'reconnecting';
    attempt: number;
    delayMs: number;
} | {
    state: 'disconnected';
    code: number | string;
    reason: string;
};
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
export declare class TandemClient {
    private readonly options;
    private readonly base;
    private readonly o;
    private readonly random;
    private readonly planner;
    private readonly seq;
    private readonly slots;
    private probeLink;
    private probeTimer;
    private attempt;
    private closed;
    private current;
    private token;
    private readonly channels;
    private readonly statusListeners;
    private readonly messageHandlers;
    private readonly channelHandlers;
    private readonly resyncHooks;
    private readonly presenceHandlers;
    private waiters;
    private resyncGeneration;
    private readonly calls;
    private readonly callWaiters;
    private readonly endWaiters;
    private resendTimer;
    private resendAttempt;
    private flushQueued;
    private checkedAt;
    private pings;
    private readonly onNetworkChange;
    constructor(options?: TandemOptions);
    /** The current status. */
    status(): Status;
    /** Calls `cb` on every status change; returns the unsubscribe function. */
    onStatus(cb: (s: Status) => void): () => void;
    /** Every delivery, once, in `seq` order; returns the unsubscribe function. */
    onMessage(handler: MessageHandler): () => void;
    /** Deliveries on one channel; returns the unsubscribe function. */
    on(channel: string, handler: MessageHandler): () => void;
    /** A hook awaited on a gap before live delivery resumes; returns the unsubscribe function. */
    onResync(hook: ResyncHook): () => void;
    /**
     * Who is in a channel the session is subscribed to (else it rejects with
     * `forbidden`): `count` is exact, `players` lists at most `limit`
     * (default and most 1,000; `0` asks for the count alone, the cheap
     * question for a big channel).
     */
    presence(channel: string, limit?: number): Promise<{
        count: number;
        players: PresenceEntry[];
    }>;
    /**
     * `join` and `leave` of other players in subscribed channels whose
     * namespace is in the server's `channels.presence_events`; returns the
     * unsubscribe function.
     */
    onPresence(handler: PresenceHandler): () => void;
    /** Subscribes, and keeps the subscription across new sessions. */
    subscribe(channel: string): Promise<Reply>;
    unsubscribe(channel: string): Promise<Reply>;
    /** Publishes; resolves to the server's `published` reply (`id`, `recipients`). */
    publish(channel: string, event: string, data?: unknown): Promise<Reply>;
    /**
     * Sends a game command (docs/backend.md) and resolves with its reply's
     * `data`; rejects with a `TandemError` carrying the game's code, Tandem's
     * (`backend_timeout`, `rate_limited`…) or the client's (`timeout`,
     * `closed`, `session_lost`). A command whose link drops before its answer
     * is sent again, with the same id, on the next link (the server answers a
     * resent id from its reply cache, so it runs at most once).
     */
    call(name: string, data?: unknown, opts?: CallOptions): Promise<unknown>;
    /**
     * Ends the session for good (the game gets `player_left`, reason
     * `ended`): the server closes every connection of the session with 4002
     * `session_ended`, and the client stops and forgets the session
     * (`reconnect()` would start a new one). Pending calls are rejected with
     * `session_lost`.
     */
    endSession(): Promise<void>;
    /** Round trip to the server, in ms. */
    ping(): Promise<number>;
    /**
     * Checks now (the seed's `forceCheckAll`, done properly): a waiting retry
     * goes at once and every open link must answer a ping (see `check()`); a
     * client that was closed, gave up or was refused starts over, keeping its
     * session.
     */
    reconnect(): void;
    /** Closes every link for good (until `reconnect()`). */
    close(): void;
    /**
     * Switches mode, keeping the session and its sequence: make before
     * break, the links of the old mode stay until a link of the new one has
     * its welcome.
     */
    setMode(mode: Mode): void;
    get mode(): Mode;
    get sessionId(): string | null;
    /** The last `seq` handed to the application. */
    get lastSeq(): number;
    /**
     * Cuts the links of one transport (or all) as a network loss would; the
     * client resumes. For demos and tests.
     */
    dropConnection(transport?: TransportName): void;
    /**
     * Checks the links now instead of waiting for a heartbeat (the browser's
     * `online`/`offline` events call this): a reconnect waiting for its delay
     * goes now; each live link must answer a ping promptly or is renewed.
     */
    check(): void;
    private start;
    private stop;
    private links;
    private retireAll;
    /** Opens every wanted transport that has no link and no pending retry. */
    private fill;
    private open;
    private attach;
    private connectQuery;
    /** Ends a link once: detaches it, rejects its calls, then decides what next. */
    private end;
    /** Arms the retry of a transport (or of its replacement after a fallback). */
    private schedule;
    private scheduleProbe;
    private scheduleProbeLater;
    /**
     * Asks the server whether the connect is refused, without opening
     * anything: a 401/403 for the token or from the game's connect hook stops
     * the client unless its body says `retry: true` (docs/backend.md).
     */
    private authRefusal;
    private frame;
    private welcome;
    private resync;
    private deliver;
    private emit;
    /**
     * Liveness of a link, from what it received (see liveness.ts). A
     * WebSocket is pinged when quiet; an SSE stream cannot be, so its "ping"
     * is waiting for the server's next heartbeat event.
     */
    private watch;
    private sendPing;
    private sendOn;
    /**
     * `token_expiring`: a fresh token from the callback, sent as `refresh` on
     * this link (SSE: POSTed, for the session's streams), so the link carries
     * on without a reconnect. A failure changes nothing: past the grace the
     * server closes (4003) and the reconnect asks the callback again.
     */
    private refreshToken;
    private request;
    /** Sends every command waiting for a link on the best welcomed one (WebSocket first). */
    private flush;
    /** `flush()` once the current event is handled (a link just ended: the others may take over). */
    private flushSoon;
    private sendCommand;
    private resendLater;
    private settleCall;
    private finish;
    private failCalls;
    /** The session ended (`session_ended`, or a POSTed `end_session` was answered). */
    private sessionEnded;
    private settleEnd;
    /** A welcomed link, WebSocket first; waits up to `callTimeoutMs` for one. */
    private ready;
    /** `POST /sessions/{id}/messages`: how an SSE client talks back. */
    private post;
    private refreshStatus;
    private setStatus;
}
