/**
 * Tandem's browser client: one player session over WebSocket and SSE,
 * resumed without loss across drops and transport switches.
 *
 * ```ts
 * import { TandemClient } from '/client/tandem.js';
 * const client = new TandemClient({ token: async () => (await fetch('/my-token')).text() });
 * client.on('room:tavern', (m) => console.log(m.seq, m.data));
 * await client.subscribe('room:tavern');
 * await client.publish('room:tavern', 'chat', { text: 'hi' });
 * const result = await client.call('move', { x: 1, y: 2 }); // the game's reply
 * ```
 */
export { TandemClient } from './client.js';
export type { Status, TandemOptions, CallOptions, MessageHandler, ResyncHook, PresenceHandler } from './client.js';
export { TandemError } from './errors.js';
export type { Message, TransportName, Welcome, Reply, CommandReply, ErrorFrame, SessionEnded, PresenceEntry, PresenceChange } from './frames.js';
export type { CommandFrame } from './calls.js';
export type { Mode } from './planner.js';
export type { ReconnectOptions } from './backoff.js';
export type { ResyncInfo } from './sequencer.js';
