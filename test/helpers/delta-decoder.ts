/**
 * The client side of delta streams, as a client library would do it: keep the last message of each
 * channel, check a delta names it as its base, and rebuild the full data.
 */
import { decode as decodeVcdiff } from '@ably/vcdiff-decoder';
import jsonPatch, { type Operation } from 'fast-json-patch';
import type { ReceivedMessage } from './test-client.js';

export class DeltaDecoder {
  readonly #last = new Map<string, { id: string; data: unknown }>();
  deltas = 0;
  fulls = 0;

  /** The full data of `message`; throws when a delta's base is not the message held. */
  apply(message: ReceivedMessage): unknown {
    let data: unknown;
    if (!message.delta) {
      data = message.data;
      this.fulls++;
    } else {
      const base = this.#last.get(message.channel);
      if (!base || base.id !== message.delta.base) {
        throw new Error(`delta ${message.id} on ${message.channel} names base ${message.delta.base}, the client holds ${base?.id ?? 'nothing'}`);
      }
      this.deltas++;
      if (message.delta.format === 'json-patch') {
        data = jsonPatch.applyPatch(jsonPatch.deepClone(base.data), message.data as Operation[], true, false).newDocument;
      } else if (message.delta.format === 'vcdiff') {
        const target = decodeVcdiff(Buffer.from(message.data as string, 'base64'), Buffer.from(JSON.stringify(base.data)));
        data = JSON.parse(Buffer.from(target).toString('utf8'));
      } else {
        throw new Error(`unknown delta format ${message.delta.format}`);
      }
    }
    this.#last.set(message.channel, { id: message.id, data });
    return data;
  }
}
