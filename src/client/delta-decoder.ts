/**
 * Rebuilds full messages from deltas (docs/protocol.md "Delta-compressed streams"), one decoder per
 * subscription. It keeps the last message of each of its channels as canonical JSON text, not as the object
 * handed to the application: an application that mutates what it received cannot corrupt the base
 * of the next delta, and the text is exactly the VCDIFF source (`JSON.stringify(base.data)`).
 */
import { decode as decodeVcdiff } from '@ably/vcdiff-decoder';
import jsonPatch, { type Operation } from 'fast-json-patch';
import type { WireMessage } from './types.js';

/**
 * `saved`: roughly how many bytes the delta saved, the text length of the full data less that of the
 * delta's data and `delta` field (0 for a full message).
 */
export type DecodeResult = { readonly ok: true; readonly data: unknown; readonly saved: number } | { readonly ok: false; readonly problem: string };

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** Channels a pattern subscription's decoder keeps a base for; past it, it starts again (a full message then comes). */
const MAX_BASES = 1024;

export class DeltaDecoder {
  /** Per channel: a pattern subscription receives several channels, each with its own base. */
  readonly #last = new Map<string, { id: string; text: string }>();

  #keep(channel: string, base: { id: string; text: string }): void {
    if (this.#last.size >= MAX_BASES && !this.#last.has(channel)) this.#last.clear();
    this.#last.set(channel, base);
  }

  /**
   * The full data of `message`, or why it cannot be rebuilt (its base is not the message held: the
   * caller resubscribes from its cursor and the server sends a full message first).
   */
  decode(message: WireMessage): DecodeResult {
    if (!message.delta) {
      this.#keep(message.channel, { id: message.id, text: JSON.stringify(message.data) });
      return { ok: true, data: message.data, saved: 0 };
    }
    const base = this.#last.get(message.channel);
    if (!base || base.id !== message.delta.base) {
      return { ok: false, problem: `delta ${message.id} needs base ${message.delta.base}, the client holds ${base?.id ?? 'nothing'}` };
    }
    let text: string;
    switch (message.delta.format) {
      case 'json-patch': {
        const patched = jsonPatch.applyPatch(JSON.parse(base.text), message.data as Operation[], false, true).newDocument;
        text = JSON.stringify(patched);
        break;
      }
      case 'vcdiff': {
        const target = decodeVcdiff(base64ToBytes(message.data as string), utf8Encoder.encode(base.text));
        text = utf8Decoder.decode(target);
        break;
      }
      default:
        return { ok: false, problem: `unknown delta format ${message.delta.format}` };
    }
    this.#keep(message.channel, { id: message.id, text });
    const sent = JSON.stringify(message.data).length + JSON.stringify(message.delta).length + '"delta":,'.length;
    return { ok: true, data: JSON.parse(text), saved: text.length - sent };
  }

  /** Forget the base, e.g. after a reset: the next message must be full. */
  clear(): void {
    this.#last.clear();
  }
}

function base64ToBytes(base64: string): Uint8Array {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
