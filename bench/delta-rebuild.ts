/**
 * The client side of delta streams, exactly as docs/protocol.md ("Delta-compressed streams")
 * tells a client to do it: keep the last message of each channel, check a delta names it as its
 * base, rebuild with fast-json-patch or a VCDIFF decoder whose source is JSON.stringify(base.data).
 */
import { decode as decodeVcdiff } from '@ably/vcdiff-decoder';
import jsonPatch, { type Operation } from 'fast-json-patch';

export interface WireEnvelope {
  channel: string;
  id: string;
  ts: number;
  data: unknown;
  delta?: { format: string; base: string };
}

export class DeltaRebuilder {
  readonly #last = new Map<string, { id: string; data: unknown }>();

  /** The full data of `message`; throws when a delta's base is not the message held. */
  apply(message: WireEnvelope): unknown {
    let data: unknown;
    if (!message.delta) {
      data = message.data;
    } else {
      const base = this.#last.get(message.channel);
      if (!base || base.id !== message.delta.base) {
        throw new Error(`delta ${message.id} on ${message.channel} names base ${message.delta.base}, the client holds ${base?.id ?? 'nothing'}`);
      }
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
