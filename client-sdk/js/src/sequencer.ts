/**
 * Exactly-once, in-order delivery to the application across reconnects,
 * transport switches and dual mode.
 *
 * Every connection of a session carries the same `seq` numbers, so the
 * sequencer delivers `lastSeq + 1` and drops anything at or below
 * `lastSeq` (a duplicate from the other transport or a replay). A frame
 * further ahead (the other transport of a dual pair is ahead) waits, bounded,
 * until the gap fills. A welcome that cannot continue the sequence (a new
 * session, or `resync_required`) is a gap: the application is told, its
 * state-reload hooks run, and only then does live delivery resume.
 */

import type { Message, Welcome } from './frames.js';

/** Deliveries held while waiting for a gap to fill or a resync hook to finish. */
export const MAX_HELD = 1024;

export interface ResyncInfo {
  /** `session_expired`: a new session replaced ours; `history_gap`: the gap is older than the server's history. */
  reason: 'session_expired' | 'history_gap';
  previousSessionId: string;
  sessionId: string;
  /** The last `seq` the application saw before the gap. */
  lastSeq: number;
  /** Where the sequence continues from. */
  resumeFrom: number;
}

export interface WelcomeOutcome {
  /** The first welcome ever: a new session, nothing to reload. */
  first: boolean;
  /** A gap: call the resync hooks before releasing deliveries. */
  resync: ResyncInfo | null;
}

export class Sequencer {
  sessionId: string | null = null;
  lastSeq = 0;
  /** True while resync hooks run: deliveries are held. */
  holding = false;
  /** The last position delivered in each channel, presented on resume so any node of a cluster can replay what was missed; forgotten at a gap (the application reloads). */
  readonly positions = new Map<string, string>();
  private held = new Map<number, Message>();

  /** Takes a welcome; on a gap the sequencer starts holding until `release()`. */
  welcome(w: Welcome): WelcomeOutcome {
    if (this.sessionId === null) {
      this.sessionId = w.session_id;
      this.lastSeq = w.last_seq;
      this.dropUpTo(w.last_seq);
      return { first: true, resync: null };
    }
    if (w.session_id === this.sessionId && !w.resync_required) {
      return { first: false, resync: null };
    }
    const resync: ResyncInfo = {
      reason: w.session_id === this.sessionId ? 'history_gap' : 'session_expired',
      previousSessionId: this.sessionId,
      sessionId: w.session_id,
      lastSeq: this.lastSeq,
      resumeFrom: w.last_seq,
    };
    if (w.session_id !== this.sessionId) this.held.clear();
    this.positions.clear();
    this.sessionId = w.session_id;
    this.lastSeq = w.last_seq;
    this.dropUpTo(w.last_seq);
    this.holding = true;
    return { first: false, resync };
  }

  /**
   * Takes one delivery; returns what the application gets now, in order.
   * `overflow` says the held set is full: the link should be renewed so a
   * resume replays (or declares) the gap.
   */
  accept(m: Message): { deliver: Message[]; overflow: boolean } {
    if (!Number.isSafeInteger(m.seq) || m.seq <= this.lastSeq || this.held.has(m.seq)) {
      return { deliver: [], overflow: false };
    }
    // The next one in line is always taken, even when the held set is full:
    // it is what lets the held ones go.
    const next = m.seq === this.lastSeq + 1 && !this.holding;
    if (!next && this.held.size >= MAX_HELD) return { deliver: [], overflow: true };
    this.held.set(m.seq, m);
    return { deliver: this.holding ? [] : this.drain(), overflow: false };
  }

  /** Ends holding after the resync hooks; returns the held deliveries now due. */
  release(): Message[] {
    this.holding = false;
    return this.drain();
  }

  /** Forgets the session (it ended): the next welcome starts a new one, with no resync. */
  reset(): void {
    this.sessionId = null;
    this.lastSeq = 0;
    this.holding = false;
    this.held.clear();
    this.positions.clear();
  }

  /** The `positions` query parameter of a resume (`<channel>=<pos>,…`; empty: nothing received yet) for the channels `follows` keeps. */
  positionsParam(follows: (channel: string) => boolean = () => true): string {
    return [...this.positions]
      .filter(([c]) => follows(c))
      .map(([c, p]) => `${c}=${p}`)
      .join(',');
  }

  /** Whether deliveries wait for a gap that only a resume can fill. */
  get waiting(): number {
    return this.held.size;
  }

  private drain(): Message[] {
    const out: Message[] = [];
    for (let next = this.held.get(this.lastSeq + 1); next; next = this.held.get(this.lastSeq + 1)) {
      this.held.delete(next.seq);
      this.lastSeq = next.seq;
      if (typeof next.pos === 'string') this.positions.set(next.channel, next.pos);
      out.push(next);
    }
    return out;
  }

  private dropUpTo(seq: number): void {
    for (const k of this.held.keys()) if (k <= seq) this.held.delete(k);
  }
}
