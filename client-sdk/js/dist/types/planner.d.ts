/**
 * Which transports to hold, and what a closed link means: the decisions of
 * the connection state machine, as plain code without I/O.
 *
 * `auto` holds a WebSocket; after `wsFailuresBeforeFallback` WebSocket tries
 * in a row that end before their welcome (refused, closed early, or a proxy
 * that completes the upgrade and then passes nothing until the welcome
 * timeout), it falls back to SSE and probes WebSocket again every
 * `wsProbeIntervalMs`. `dual` holds both; `websocket` and `sse` hold one.
 */
import type { TransportName } from './frames.js';
export type Mode = 'auto' | 'websocket' | 'sse' | 'dual';
export interface PlannerOptions {
    wsFailuresBeforeFallback: number;
    wsProbeIntervalMs: number;
}
export declare class Planner {
    mode: Mode;
    private o;
    /** WebSocket tries in a row that ended before their welcome. */
    wsFailures: number;
    /** When `auto` fell back to SSE (`null` while on WebSocket). */
    fellBackAt: number | null;
    /** When the last WebSocket probe started (or the fallback happened). */
    lastProbeAt: number;
    constructor(mode: Mode, o: PlannerOptions);
    /** The transports to hold now; the first one connects first. */
    transports(): TransportName[];
    /** A WebSocket ended before its welcome. Returns true when `auto` falls back to SSE now. */
    wsFailed(now: number): boolean;
    /** A WebSocket got its welcome: WebSocket works (again). */
    wsWelcomed(): void;
    /** Whether `auto`, fallen back to SSE, should try WebSocket again now. */
    probeDue(now: number): boolean;
    /** When the next probe is due, in ms from `now` (`null`: no probing). */
    probeInMs(now: number): number | null;
    probeStarted(now: number): void;
    /** A new mode keeps the session; `auto` starts again from WebSocket. */
    setMode(mode: Mode): void;
}
/** What a link's end means for reconnecting. */
export type CloseVerdict = {
    kind: 'retry';
    retryAfterMs: number | null;
} | {
    kind: 'stop';
    code: number | string;
    reason: string;
};
/**
 * Decides from a close code (WebSocket close, or an SSE `close` event's
 * code and `reconnect` flag) and a preceding `shutdown` hint.
 */
export declare function closeVerdict(code: number, reason: string, serverSaysReconnect: boolean | null, shutdownRetryAfterMs: number | null, farewell?: string | null): CloseVerdict;
/** HTTP statuses of a refused connect that retrying cannot fix. */
export declare function isAuthRefusal(status: number): boolean;
/**
 * Whether the answer to the probe after a failed connect stops the client:
 * a 401/403 (a bad token, or the game's connect hook refusing the player)
 * unless its body says `retry: true`. Anything else (a 503
 * `backend_unavailable`, a network error) is retried with backoff.
 */
export declare function isFinalRefusal(status: number, retry: boolean | undefined): boolean;
