/** The protocol's frames (docs/protocol.md), as the client reads and sends them. */
import type { CommandFrame } from './calls.js';
export type TransportName = 'websocket' | 'sse';
export interface Welcome {
    type: 'welcome';
    session_id: string;
    connection_id: string;
    player_id: string;
    transport: TransportName;
    resumed: boolean;
    resync_required: boolean;
    last_seq: number;
    heartbeat_interval_ms: number;
    channels: string[];
}
/** A delivery: `seq` counts 1, 2, 3… per session. */
export interface Message {
    type: 'message';
    seq: number;
    /** Its place in its channel's history (`<epoch>.<offset>.<tag>`), on a cluster: kept per channel and presented on resume, so any node can replay what was missed. */
    pos?: string;
    id: string;
    channel: string;
    event: string;
    data: unknown;
    ts: number;
}
export interface Shutdown {
    type: 'shutdown';
    reconnect: boolean;
    retry_after_ms: number;
}
/** The last SSE event of a stream the server ends: the WebSocket close code and reason. */
export interface SseClose {
    type: 'close';
    code: number;
    reason: string;
    reconnect: boolean;
}
export interface ErrorFrame {
    type: 'error';
    /** The command's `id` when the error answers a command. */
    id?: string;
    code: string;
    message: string;
}
/** A game command's answer: the backend's `data` (docs/backend.md). */
export interface CommandReply {
    type: 'reply';
    id: string;
    data: unknown;
}
/** The answer to `end_session`; every connection of the session then closes with 4002. */
export interface SessionEnded {
    type: 'session_ended';
}
/** The connection's token expires at `expires_at` (epoch ms): send `refresh` before then. */
export interface TokenExpiring {
    type: 'token_expiring';
    expires_at: number;
}
/** The backend disconnected the player, saying why; the close (4001) follows: do not reconnect. */
export interface Disconnected {
    type: 'disconnected';
    reason: string;
    reconnect: boolean;
}
/** One player in a channel: its subscribed sessions and the transports it is connected with. */
export interface PresenceEntry {
    player_id: string;
    sessions: number;
    transports: TransportName[];
}
/** The answer to `presence`: `count` is exact, `players` at most 1,000. */
export interface PresenceReply {
    type: 'presence';
    channel: string;
    count: number;
    players: PresenceEntry[];
}
/** A player came into (`join`) or left (`leave`) a channel (`channels.presence_events`). */
export interface PresenceChange {
    type: 'join' | 'leave';
    channel: string;
    player_id: string;
}
export type Reply = PresenceReply | {
    type: 'subscribed';
    channel: string;
}
/** With `reason` (`claims`): the server ended it, a refreshed token no longer allows it. */
 | {
    type: 'unsubscribed';
    channel: string;
    reason?: string;
}
/** The answer to `refresh`: the new token's `exp` (epoch ms). */
 | {
    type: 'refreshed';
    expires_at: number;
} | {
    type: 'published';
    id: string;
    recipients: number;
} | {
    type: 'pong';
    id?: unknown;
    ts: number;
};
/** SSE with `?heartbeat=event`: a heartbeat a script can see. */
export interface Heartbeat {
    type: 'heartbeat';
}
export type ServerFrame = Welcome | Message | Shutdown | SseClose | ErrorFrame | Reply | CommandReply | SessionEnded | Heartbeat | TokenExpiring | Disconnected | PresenceChange;
export type ClientMessage = {
    type: 'subscribe';
    channel: string;
} | {
    type: 'unsubscribe';
    channel: string;
} | {
    type: 'publish';
    channel: string;
    event: string;
    data?: unknown;
} | {
    type: 'ping';
    id?: unknown;
} | {
    type: 'end_session';
} | {
    type: 'refresh';
    token: string;
} | {
    type: 'presence';
    channel: string;
    limit?: number;
} | CommandFrame;
/** Parses one frame; `null` for anything that is not a JSON object with a string `type`. */
export declare function parseFrame(text: string): ServerFrame | null;
