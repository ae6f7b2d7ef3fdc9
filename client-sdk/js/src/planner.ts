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

export class Planner {
  /** WebSocket tries in a row that ended before their welcome. */
  wsFailures = 0;
  /** When `auto` fell back to SSE (`null` while on WebSocket). */
  fellBackAt: number | null = null;
  /** When the last WebSocket probe started (or the fallback happened). */
  lastProbeAt = 0;

  constructor(
    public mode: Mode,
    private o: PlannerOptions,
  ) {}

  /** The transports to hold now; the first one connects first. */
  transports(): TransportName[] {
    switch (this.mode) {
      case 'websocket':
        return ['websocket'];
      case 'sse':
        return ['sse'];
      case 'dual':
        return ['websocket', 'sse'];
      default:
        return [this.fellBackAt === null ? 'websocket' : 'sse'];
    }
  }

  /** A WebSocket ended before its welcome. Returns true when `auto` falls back to SSE now. */
  wsFailed(now: number): boolean {
    this.wsFailures += 1;
    if (this.mode !== 'auto' || this.fellBackAt !== null) return false;
    if (this.wsFailures < this.o.wsFailuresBeforeFallback) return false;
    this.fellBackAt = now;
    this.lastProbeAt = now;
    return true;
  }

  /** A WebSocket got its welcome: WebSocket works (again). */
  wsWelcomed(): void {
    this.wsFailures = 0;
    this.fellBackAt = null;
  }

  /** Whether `auto`, fallen back to SSE, should try WebSocket again now. */
  probeDue(now: number): boolean {
    return this.mode === 'auto' && this.fellBackAt !== null && now - this.lastProbeAt >= this.o.wsProbeIntervalMs;
  }

  /** When the next probe is due, in ms from `now` (`null`: no probing). */
  probeInMs(now: number): number | null {
    if (this.mode !== 'auto' || this.fellBackAt === null) return null;
    return Math.max(0, this.lastProbeAt + this.o.wsProbeIntervalMs - now);
  }

  probeStarted(now: number): void {
    this.lastProbeAt = now;
  }

  /** A new mode keeps the session; `auto` starts again from WebSocket. */
  setMode(mode: Mode): void {
    this.mode = mode;
    this.wsFailures = 0;
    this.fellBackAt = null;
  }
}

/**
 * Close codes after which the client must not reconnect (docs/protocol.md):
 * 4001 `disconnected` (by the backend), 4002 `session_ended` (the client's
 * `end_session`).
 */
const FINAL_CLOSE_CODES = new Set([4001, 4002]);

/** What a link's end means for reconnecting. */
export type CloseVerdict =
  | { kind: 'retry'; retryAfterMs: number | null }
  | { kind: 'stop'; code: number | string; reason: string };

/**
 * Decides from a close code (WebSocket close, or an SSE `close` event's
 * code and `reconnect` flag) and a preceding `shutdown` hint.
 */
export function closeVerdict(
  code: number,
  reason: string,
  serverSaysReconnect: boolean | null,
  shutdownRetryAfterMs: number | null,
  farewell: string | null = null,
): CloseVerdict {
  // A `disconnected` frame came first: stop, in the backend's words.
  if (farewell !== null) return { kind: 'stop', code, reason: farewell };
  if (FINAL_CLOSE_CODES.has(code) || serverSaysReconnect === false) {
    return { kind: 'stop', code, reason: reason || 'closed by the server' };
  }
  if (shutdownRetryAfterMs !== null) return { kind: 'retry', retryAfterMs: shutdownRetryAfterMs };
  return { kind: 'retry', retryAfterMs: null };
}

/** HTTP statuses of a refused connect that retrying cannot fix. */
export function isAuthRefusal(status: number): boolean {
  return status === 401 || status === 403;
}

/**
 * Whether the answer to the probe after a failed connect stops the client:
 * a 401/403 (a bad token, or the game's connect hook refusing the player)
 * unless its body says `retry: true`. Anything else (a 503
 * `backend_unavailable`, a network error) is retried with backoff.
 */
export function isFinalRefusal(status: number, retry: boolean | undefined): boolean {
  return isAuthRefusal(status) && retry !== true;
}
