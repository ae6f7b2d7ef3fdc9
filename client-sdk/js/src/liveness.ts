/**
 * Dead-link detection from what was RECEIVED, never from timers alone.
 *
 * A browser hides WebSocket ping frames and SSE comment heartbeats from
 * scripts, so the client proves a WebSocket alive by sending its own `ping`
 * when the link has been quiet for one heartbeat interval; the `pong` (or
 * any other frame) counts as life. A link is dead only when a ping has been
 * outstanding for a whole answer window, measured on the clock, with nothing
 * received since: a background tab whose timers fire late merely sends its
 * ping late, and never mistakes its own sleep for a dead link.
 */

export interface LivenessInput {
  now: number;
  /** When the last frame of any kind arrived on this link. */
  lastReceivedAt: number;
  /** When the client last sent a liveness ping on this link, if ever. */
  pingSentAt: number | null;
  /** The welcome's `heartbeat_interval_ms`. */
  heartbeatMs: number;
  /** `livenessFactor`: dead when nothing arrives within `heartbeatMs × factor`. */
  factor: number;
}

export type LivenessAction = 'ok' | 'ping' | 'dead';

export interface LivenessDecision {
  action: LivenessAction;
  /** When to look again, in ms from `now`. */
  nextCheckInMs: number;
}

/** The time a ping is given to be answered: `heartbeatMs × (factor − 1)`, at least half an interval. */
export function answerWindow(heartbeatMs: number, factor: number): number {
  return heartbeatMs * Math.max(factor - 1, 0.5);
}

export function checkLiveness(i: LivenessInput): LivenessDecision {
  const idle = i.now - i.lastReceivedAt;
  const window = answerWindow(i.heartbeatMs, i.factor);
  if (idle < i.heartbeatMs) {
    return { action: 'ok', nextCheckInMs: i.heartbeatMs - idle };
  }
  const pingOutstanding = i.pingSentAt !== null && i.pingSentAt >= i.lastReceivedAt;
  if (!pingOutstanding) {
    return { action: 'ping', nextCheckInMs: window };
  }
  const waited = i.now - (i.pingSentAt as number);
  if (waited >= window && idle >= i.heartbeatMs * i.factor) {
    return { action: 'dead', nextCheckInMs: 0 };
  }
  if (waited >= window) {
    // The ping went out late (a throttled timer): give the link until the
    // full deadline measured from the last frame.
    return { action: 'ok', nextCheckInMs: i.heartbeatMs * i.factor - idle };
  }
  return { action: 'ok', nextCheckInMs: window - waited };
}
