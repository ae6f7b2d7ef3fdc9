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
export declare const DEFAULT_RECONNECT: ReconnectOptions;
/** The ceiling of the delay before try `attempt` (0-based): `min(max, base·2^attempt)`. */
export declare function backoffCeiling(attempt: number, o: ReconnectOptions): number;
/** Full jitter: a delay drawn uniformly from `[0, ceiling]` with `random()` in `[0, 1]`. */
export declare function backoffDelay(attempt: number, o: ReconnectOptions, random: () => number): number;
/**
 * The delay after the server asked for a pause (`shutdown` frame's
 * `retry_after_ms`): the pause itself plus a jittered backoff, so every
 * client of a restarting server does not come back at the same instant.
 */
export declare function retryAfterDelay(retryAfterMs: number, attempt: number, o: ReconnectOptions, random: () => number): number;
