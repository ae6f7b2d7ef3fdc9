/**
 * Reconnect delays: exponential backoff with full jitter, so that thousands
 * of clients dropped at once by the same event do not come back in lockstep.
 */

/** `reconnect` option: base and cap of the delay, and how many tries in a row. */
export interface ReconnectOptions {
  baseDelayMs: number;
  maxDelayMs: number;
  maxAttempts: number;
}

export const DEFAULT_RECONNECT: ReconnectOptions = {
  baseDelayMs: 250,
  maxDelayMs: 30_000,
  maxAttempts: Infinity,
};

/** The ceiling of the delay before try `attempt` (0-based): `min(max, base·2^attempt)`. */
export function backoffCeiling(attempt: number, o: ReconnectOptions): number {
  // 2^52 already exceeds any sane cap; the clamp keeps the product finite.
  return Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** Math.min(Math.max(attempt, 0), 52));
}

/** Full jitter: a delay drawn uniformly from `[0, ceiling]` with `random()` in `[0, 1]`. */
export function backoffDelay(attempt: number, o: ReconnectOptions, random: () => number): number {
  return Math.round(random() * backoffCeiling(attempt, o));
}

/**
 * The delay after the server asked for a pause (`shutdown` frame's
 * `retry_after_ms`): the pause itself plus a jittered backoff, so every
 * client of a restarting server does not come back at the same instant.
 */
export function retryAfterDelay(
  retryAfterMs: number,
  attempt: number,
  o: ReconnectOptions,
  random: () => number,
): number {
  return Math.max(0, retryAfterMs) + backoffDelay(attempt, o, random);
}
