/**
 * WebSocket framing: server ops as JSON text. Channel messages are encoded once per message and
 * shared; the other ops are rare replies and are stringified as they come.
 */
import type { ResetNotice } from '../src/engine/engine.js';
import { defineWireFormat } from '../src/engine/prepared-message.js';

export const WS_MESSAGE = defineWireFormat('ws', (fields, cursor) => Buffer.from(`{"op":"message",${fields},"cursor":"${cursor}"}`));

export type ServerOp =
  | { op: 'hello'; session: string; version: string; heartbeat: number; user?: string; expires?: number }
  | { op: 'authenticated'; id?: string; user?: string; expires?: number }
  | { op: 'subscribed'; channel: string; cursor: string; resumed: boolean; id?: string; server?: true }
  | { op: 'unsubscribed'; channel: string; id?: string; server?: true }
  | ({ op: 'reset' } & ResetNotice)
  | { op: 'ack'; id?: string; ids: string[] }
  | { op: 'error'; code: string; message: string; id?: string; channel?: string }
  | { op: 'pong'; id?: string; cursor?: string };

export function encodeOp(op: ServerOp): Buffer {
  return Buffer.from(JSON.stringify(op));
}
