/**
 * Game commands in flight: the bookkeeping of `client.call()`, as plain
 * code without timers or sockets.
 *
 * A command carries an `id` the client picks; the server executes an `id`
 * at most once per session and answers a resend of it from its reply cache
 * (docs/backend.md). So a command whose link dropped before its answer is
 * simply sent again, same `id`, on the next link, until it is answered, it
 * times out, or the session it belongs to is gone. A second answer for an
 * `id` already settled, or one for an `id` never started, is ignored.
 *
 * Each pending command is either waiting to be (re)sent, or out on one
 * link, named by the caller's number for it (`via`).
 */
export interface CommandFrame {
    type: 'command';
    id: string;
    name: string;
    data: unknown;
}
export interface CallFailure {
    code: string;
    message: string;
}
/** The outcome of one command: its reply's `data`, or the error it got. */
export type Settlement = {
    id: string;
    ok: true;
    value: unknown;
} | {
    id: string;
    ok: false;
    error: CallFailure;
};
export declare class Calls {
    private readonly defaultTimeoutMs;
    private readonly random;
    private readonly pending;
    private counter;
    constructor(defaultTimeoutMs?: number, random?: () => number);
    /**
     * A new command with a fresh id, waiting to be sent. The id is unique
     * for this client (a counter) and unlikely to meet another client's
     * (a random tail): `k<counter>_<random>`, at most 20 characters.
     */
    start(name: string, data: unknown, nowMs: number, timeoutMs?: number): {
        id: string;
        frame: CommandFrame;
        deadline: number;
    };
    has(id: string): boolean;
    get size(): number;
    /** Commands waiting to be sent: new ones and those whose link dropped. */
    toResend(): CommandFrame[];
    /** The command went out on link `via`. */
    sent(id: string, via: number): void;
    /**
     * Sending on link `via` failed (a POST's network error or 503): the
     * command waits for a resend. Ignored when it has gone out again since.
     */
    unsent(id: string, via: number): boolean;
    /** Link `via` ended: its unanswered commands wait for a resend. Returns their ids. */
    dropped(via: number): string[];
    /**
     * Takes a server frame: a `reply`, or an `error` with an `id`, for a
     * pending command settles it (once); anything else is `null`.
     */
    settle(frame: unknown): Settlement | null;
    /** Settles one pending command with an error (an HTTP refusal of its POST); `null` when not pending. */
    fail(id: string, code: string, message: string): Settlement | null;
    /** Forgets every command whose deadline is at or before `nowMs`; returns them as `timeout` failures. */
    expired(nowMs: number): Settlement[];
    /** Forgets every pending command (the client closed, the session is gone); returns them as failures. */
    failAll(code: string, message: string): Settlement[];
}
