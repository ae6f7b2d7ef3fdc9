/**
 * The error every failed call rejects with: the server's stable `code`
 * (`forbidden`, `invalid_channel`, `rate_limited`…), for a game command
 * also Tandem's (`backend_timeout`, `backend_unavailable`, `backend_error`,
 * `no_backend`, `conflict`) or the game's own (`illegal_move`…), or one of
 * the client's own: `connection_lost` (the link dropped before the reply),
 * `timeout` (no reply within `callTimeoutMs`), `not_connected` (no link
 * came up in time), `closed` (`close()` was called, or the client stopped),
 * `session_lost` (a new session replaced the one a command was sent in).
 */
export declare class TandemError extends Error {
    readonly code: string;
    /** The HTTP status, when the answer came over HTTP. */
    readonly status?: number | undefined;
    /** A refusal's `retry` flag: whether trying again may succeed. */
    readonly retry?: boolean | undefined;
    constructor(code: string, message: string, 
    /** The HTTP status, when the answer came over HTTP. */
    status?: number | undefined, 
    /** A refusal's `retry` flag: whether trying again may succeed. */
    retry?: boolean | undefined);
}
