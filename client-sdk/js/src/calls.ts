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
export type Settlement = { id: string; ok: true; value: unknown } | { id: string; ok: false; error: CallFailure };

interface Entry {
  frame: CommandFrame;
  deadline: number;
  timeoutMs: number;
  /** The link it went out on; `null` while it waits to be (re)sent. */
  via: number | null;
}

export class Calls {
  private readonly pending = new Map<string, Entry>();
  private counter = 0;

  constructor(
    private readonly defaultTimeoutMs = 10_000,
    private readonly random: () => number = Math.random,
  ) {}

  /**
   * A new command with a fresh id, waiting to be sent. The id is unique
   * for this client (a counter) and unlikely to meet another client's
   * (a random tail): `k<counter>_<random>`, at most 20 characters.
   */
  start(name: string, data: unknown, nowMs: number, timeoutMs = this.defaultTimeoutMs): { id: string; frame: CommandFrame; deadline: number } {
    const tail = Math.floor(this.random() * 0x100000000).toString(36);
    const id = `k${(++this.counter).toString(36)}_${tail}`;
    const frame: CommandFrame = { type: 'command', id, name, data: data === undefined ? null : data };
    const deadline = nowMs + Math.max(0, timeoutMs);
    this.pending.set(id, { frame, deadline, timeoutMs, via: null });
    return { id, frame, deadline };
  }

  has(id: string): boolean {
    return this.pending.has(id);
  }

  get size(): number {
    return this.pending.size;
  }

  /** Commands waiting to be sent: new ones and those whose link dropped. */
  toResend(): CommandFrame[] {
    const out: CommandFrame[] = [];
    for (const e of this.pending.values()) if (e.via === null) out.push(e.frame);
    return out;
  }

  /** The command went out on link `via`. */
  sent(id: string, via: number): void {
    const e = this.pending.get(id);
    if (e) e.via = via;
  }

  /**
   * Sending on link `via` failed (a POST's network error or 503): the
   * command waits for a resend. Ignored when it has gone out again since.
   */
  unsent(id: string, via: number): boolean {
    const e = this.pending.get(id);
    if (!e || e.via !== via) return false;
    e.via = null;
    return true;
  }

  /** Link `via` ended: its unanswered commands wait for a resend. Returns their ids. */
  dropped(via: number): string[] {
    const out: string[] = [];
    for (const [id, e] of this.pending) {
      if (e.via === via) {
        e.via = null;
        out.push(id);
      }
    }
    return out;
  }

  /**
   * Takes a server frame: a `reply`, or an `error` with an `id`, for a
   * pending command settles it (once); anything else is `null`.
   */
  settle(frame: unknown): Settlement | null {
    if (typeof frame !== 'object' || frame === null) return null;
    const f = frame as { type?: unknown; id?: unknown; data?: unknown; code?: unknown; message?: unknown };
    if (typeof f.id !== 'string' || !this.pending.has(f.id)) return null;
    if (f.type === 'reply') {
      this.pending.delete(f.id);
      return { id: f.id, ok: true, value: f.data === undefined ? null : f.data };
    }
    if (f.type === 'error') {
      return this.fail(f.id, String(f.code ?? 'error'), String(f.message ?? ''));
    }
    return null;
  }

  /** Settles one pending command with an error (an HTTP refusal of its POST); `null` when not pending. */
  fail(id: string, code: string, message: string): Settlement | null {
    if (!this.pending.delete(id)) return null;
    return { id, ok: false, error: { code, message } };
  }

  /** Forgets every command whose deadline is at or before `nowMs`; returns them as `timeout` failures. */
  expired(nowMs: number): Settlement[] {
    const out: Settlement[] = [];
    for (const [id, e] of this.pending) {
      if (e.deadline <= nowMs) {
        this.pending.delete(id);
        out.push({ id, ok: false, error: { code: 'timeout', message: `no reply to ${e.frame.name} within ${e.timeoutMs} ms` } });
      }
    }
    return out;
  }

  /** Forgets every pending command (the client closed, the session is gone); returns them as failures. */
  failAll(code: string, message: string): Settlement[] {
    const out: Settlement[] = [];
    for (const id of this.pending.keys()) out.push({ id, ok: false, error: { code, message } });
    this.pending.clear();
    return out;
  }
}
