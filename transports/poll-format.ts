/**
 * Long-poll reply bodies: the shared envelope text of each message joined into one JSON document,
 * so a reply to many pollers never re-serialises a payload.
 */
import type { DeltaCodec } from '../src/delta/codec.js';
import type { ResetNotice } from '../src/engine/engine.js';
import type { PreparedMessage } from '../src/engine/prepared-message.js';
import type { Emission } from '../src/engine/elision.js';

/**
 * With a delta codec, a message is sent as a delta only when its base is the previous message of
 * the same channel in this very reply: a stateless request cannot know what the client held
 * before, so the first message per channel is always full.
 */
export function pollBody(messages: readonly PreparedMessage[], cursor: string, resets: readonly ResetNotice[], delta: DeltaCodec | null = null, snapshot = false, elided?: readonly Emission[]): string {
  // Elided (maxRate): the latest message per channel with its count, full (no deltas).
  if (elided) return `{"messages":[${elided.map((emission) => `{${emission.fields(undefined)}}`).join(',')}],"cursor":"${cursor}"${resets.length > 0 ? `,"resets":${JSON.stringify(resets)}` : ''}}`;
  // A snapshot (`snapshot=latest`, no cursor) is full messages flagged as such.
  if (snapshot) return `{"messages":[${messages.map((message) => `{"snapshot":true,${message.envelopeFields}}`).join(',')}],"cursor":"${cursor}"}`;
  let body = '{"messages":[';
  const previous = delta ? new Map<string, string>() : undefined;
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i] as PreparedMessage;
    if (i > 0) body += ',';
    const deltaFields = previous && message.deltaBase?.id === previous.get(message.channel) ? message.deltaFields(delta as DeltaCodec) : undefined;
    body += deltaFields === undefined ? message.envelope : `{${deltaFields}}`;
    previous?.set(message.channel, message.id);
  }
  body += `],"cursor":"${cursor}"`;
  if (resets.length > 0) body += `,"resets":${JSON.stringify(resets)}`;
  return body + '}';
}
