/**
 * Long-poll reply bodies: the shared envelope text of each message joined into one JSON document,
 * so a reply to many pollers never re-serialises a payload.
 */
import type { ResetNotice } from '../src/engine/engine.js';
import type { PreparedMessage } from '../src/engine/prepared-message.js';

export function pollBody(messages: readonly PreparedMessage[], cursor: string, resets: readonly ResetNotice[]): string {
  let body = '{"messages":[';
  for (let i = 0; i < messages.length; i++) {
    if (i > 0) body += ',';
    body += (messages[i] as PreparedMessage).envelope;
  }
  body += `],"cursor":"${cursor}"`;
  if (resets.length > 0) body += `,"resets":${JSON.stringify(resets)}`;
  return body + '}';
}
