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
export declare const MAX_HELD = 1024;
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
export declare class Sequencer {
    sessionId: string | null;
    lastSeq: number;
    /** True while resync hooks run: deliveries are held. */
    holding: boolean;
    /** The last position delivered in each channel, presented on resume so any node of a cluster can replay what was missed; forgotten at a gap (the application reloads). */
    readonly positions: Map<string, string>;
    private held;
    /** Takes a welcome; on a gap the sequencer starts holding until `release()`. */
    welcome(w: Welcome): WelcomeOutcome;
    /**
     * Takes one delivery; returns what the application gets now, in order.
     * `overflow` says the held set is full: the link should be renewed so a
     * resume replays (or declares) the gap.
     */
    accept(m: Message): {
        deliver: Message[];
        overflow: boolean;
    };
    /** Ends holding after the resync hooks; returns the held deliveries now due. */
    release(): Message[];
    /** Forgets the session (it ended): the next welcome starts a new one, with no resync. */
    reset(): void;
    /** The `positions` query parameter of a resume (`<channel>=<pos>,…`; empty: nothing received yet) for the channels `follows` keeps. */
    positionsParam(follows?: (channel: string) => boolean): string;
    /** Whether deliveries wait for a gap that only a resume can fill. */
    get waiting(): number;
    private drain;
    private dropUpTo;
}
