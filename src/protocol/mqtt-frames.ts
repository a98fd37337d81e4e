/**
 * MQTT framing for delivery (docs/mqtt.md): the PUBLISH bytes of a channel message, built once per
 * (protocol version, QoS, retain) and shared by every subscriber; a QoS 1 delivery copies the shared
 * bytes and writes its packet id in place. Everything else (CONNACK, SUBACK, ...) is rare and goes
 * through mqtt-packet's generator. The reason codes of 3.1.1 and 5 live here too.
 */
import type { Payload } from './envelope.js';

export type MqttVersion = 4 | 5;

/** A delivery shape: the protocol version, QoS 0 or 1, and the RETAIN flag (a snapshot). */
export interface PublishShape {
  readonly version: MqttVersion;
  readonly qos: 0 | 1;
  readonly retain: boolean;
}

/** The bytes of a PUBLISH and, for QoS 1, where its packet id goes. */
export interface PublishTemplate {
  readonly bytes: Buffer;
  /** Offset of the 2-byte packet id (QoS 1), or -1. */
  readonly idOffset: number;
}

/**
 * The message's payload as MQTT carries it: the envelope's `data` as JSON text (so a text record
 * that was not JSON arrives as a JSON string, as on every other transport), or, for bytes that
 * were not UTF-8, those bytes themselves.
 */
export function payloadBytes(payload: Payload): Buffer {
  if (payload.encoding === 'base64') return Buffer.from(JSON.parse(payload.json) as string, 'base64');
  return Buffer.from(payload.json, 'utf8');
}

function varintLength(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

function writeVarint(buffer: Buffer, offset: number, n: number): number {
  let value = n;
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    buffer[offset++] = byte;
  } while (value > 0);
  return offset;
}

/** A PUBLISH of `topic` with `payload` in `shape` (packet id 0 for QoS 1: patch it per delivery). */
export function publishTemplate(topic: string, payload: Buffer, shape: PublishShape): PublishTemplate {
  const topicBytes = Buffer.byteLength(topic);
  const idBytes = shape.qos > 0 ? 2 : 0;
  const propertyBytes = shape.version === 5 ? 1 : 0; // an empty property list
  const remaining = 2 + topicBytes + idBytes + propertyBytes + payload.length;
  const bytes = Buffer.allocUnsafe(1 + varintLength(remaining) + remaining);
  bytes[0] = 0x30 | (shape.qos << 1) | (shape.retain ? 1 : 0);
  let offset = writeVarint(bytes, 1, remaining);
  bytes.writeUInt16BE(topicBytes, offset);
  offset += 2;
  offset += bytes.write(topic, offset, 'utf8');
  const idOffset = idBytes > 0 ? offset : -1;
  if (idBytes > 0) {
    bytes.writeUInt16BE(0, offset);
    offset += 2;
  }
  if (propertyBytes > 0) bytes[offset++] = 0;
  payload.copy(bytes, offset);
  return { bytes, idOffset };
}

/** A QoS 1 delivery: the shared bytes with this delivery's packet id (and DUP when resent). */
export function withPacketId(template: PublishTemplate, packetId: number, dup = false): Buffer {
  const bytes = Buffer.from(template.bytes);
  bytes.writeUInt16BE(packetId, template.idOffset);
  if (dup) bytes[0] = (bytes[0] as number) | 0x08;
  return bytes;
}

/** CONNACK return codes (3.1.1) and reason codes (5) for the refusals edgepush makes. */
export const CONNACK = {
  accepted: { 4: 0, 5: 0x00 },
  badProtocol: { 4: 1, 5: 0x84 },
  badCredentials: { 4: 4, 5: 0x86 },
  notAuthorized: { 4: 5, 5: 0x87 },
  unavailable: { 4: 3, 5: 0x88 },
  badClientId: { 4: 2, 5: 0x85 },
} as const satisfies Record<string, Record<MqttVersion, number>>;

/** SUBACK failure codes: 3.1.1 has one (0x80); 5 says why. */
export const SUBACK_FAILURE = {
  notAuthorized: { 4: 0x80, 5: 0x87 },
  badFilter: { 4: 0x80, 5: 0x8f },
  quotaExceeded: { 4: 0x80, 5: 0x97 },
} as const satisfies Record<string, Record<MqttVersion, number>>;

/** MQTT 5 reason codes on PUBACK and DISCONNECT. */
export const REASON = {
  success: 0x00,
  unspecified: 0x80,
  malformed: 0x81,
  protocolError: 0x82,
  notAuthorized: 0x87,
  serverBusy: 0x89,
  serverShuttingDown: 0x8b,
  keepAliveTimeout: 0x8d,
  sessionTakenOver: 0x8e,
  topicNameInvalid: 0x90,
  packetTooLarge: 0x95,
  quotaExceeded: 0x97,
  payloadFormatInvalid: 0x99,
} as const;
