/** The protocol's frames (docs/protocol.md), as the client reads and sends them. */

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
  code: string;
  message: string;
}

export type Reply =
  | { type: 'subscribed'; channel: string }
  | { type: 'unsubscribed'; channel: string }
  | { type: 'published'; id: string; recipients: number }
  | { type: 'pong'; id?: unknown; ts: number };

/** SSE with `?heartbeat=event`: a heartbeat a script can see. */
export interface Heartbeat {
  type: 'heartbeat';
}

export type ServerFrame = Welcome | Message | Shutdown | SseClose | ErrorFrame | Reply | Heartbeat;

export type ClientMessage =
  | { type: 'subscribe'; channel: string }
  | { type: 'unsubscribe'; channel: string }
  | { type: 'publish'; channel: string; event: string; data?: unknown }
  | { type: 'ping'; id?: unknown };

/** Parses one frame; `null` for anything that is not a JSON object with a string `type`. */
export function parseFrame(text: string): ServerFrame | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || typeof (v as { type?: unknown }).type !== 'string') return null;
  return v as ServerFrame;
}
