/**
 * WebSocket framing: server ops as JSON text, each a complete WebSocket frame. A server's frames
 * are not masked, so a channel message's frame is the same bytes for every subscriber: it is
 * built once per message and shared, and written to the socket as it is. The other ops are rare
 * replies and are stringified as they come.
 */
import type { ResetNotice } from '../src/engine/engine.js';
import { defineWireFormat } from '../src/engine/prepared-message.js';

export const WS_MESSAGE = defineWireFormat('ws', (fields, cursor) => textFrame(`{"op":"message",${fields},"cursor":"${cursor}"}`));

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
  return textFrame(JSON.stringify(op));
}

/** A final, unmasked text frame (RFC 6455 §5.2) carrying `text`. */
export function textFrame(text: string): Buffer {
  const length = Buffer.byteLength(text);
  const frame = Buffer.allocUnsafe(headerLength(length) + length);
  const offset = writeHeader(frame, 0x1, length);
  frame.write(text, offset);
  return frame;
}

/** The header of a final, unmasked binary frame of `length` bytes: the payload follows it. */
export function binaryFrameHeader(length: number): Buffer {
  const header = Buffer.allocUnsafe(headerLength(length));
  writeHeader(header, 0x2, length);
  return header;
}

function headerLength(payloadLength: number): number {
  return payloadLength < 126 ? 2 : payloadLength < 65_536 ? 4 : 10;
}

/** Writes FIN, the opcode and the payload length; returns where the payload starts. */
function writeHeader(frame: Buffer, opcode: number, length: number): number {
  frame[0] = 0x80 | opcode;
  if (length < 126) {
    frame[1] = length;
    return 2;
  }
  if (length < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
    return 4;
  }
  frame[1] = 127;
  frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
  frame.writeUInt32BE(length >>> 0, 6);
  return 10;
}
