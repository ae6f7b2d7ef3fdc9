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
export declare function answerWindow(heartbeatMs: number, factor: number): number;
export declare function checkLiveness(i: LivenessInput): LivenessDecision;
