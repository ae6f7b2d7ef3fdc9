/**
 * The error every failed call rejects with: the server's stable `code`
 * (`forbidden`, `invalid_channel`, `rate_limited`…) or one of the client's
 * own: `connection_lost` (the link dropped before the reply), `timeout`
 * (no reply within `callTimeoutMs`), `not_connected` (no link came up in
 * time), `closed` (`close()` was called).
 */
export class TandemError extends Error {
  constructor(
    public readonly code: string,
    message: string,
    /** The HTTP status, when the answer came over HTTP. */
    public readonly status?: number,
  ) {
    super(`${code}: ${message}`);
    this.name = 'TandemError';
  }
}
