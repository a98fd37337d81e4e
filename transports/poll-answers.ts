/**
 * Long-poll answers given at once, shared: pollers that come back with the same channels, cursor
 * and options while those channels got nothing new are sent the bytes the first of them was sent
 * (the spool does the same for held polls). After a wake-up, all the pollers of a channel come
 * back with the one cursor their shared reply carried, so most of a burst of polls is answered
 * without reading the rings or building a body again.
 *
 * An answer stays valid while the newest message its channels hold is the same
 * (ChannelEngine.newestSeq): it then holds exactly what a new read would, with a cursor at most as
 * new, which only means the next poll starts a little further back. Bounded by count and bytes,
 * the oldest answers going first; an answer over the byte budget alone is not kept.
 */
import { LruMap } from '../src/engine/lru-map.js';

interface SharedAnswer {
  readonly newestSeq: number;
  readonly body: Buffer;
}

export class PollAnswers {
  readonly #answers: LruMap<string, SharedAnswer>;

  constructor(maxAnswers: number, maxBytes: number) {
    this.#answers = new LruMap({ maxCount: maxAnswers, maxSize: maxBytes, sizeOf: (answer) => answer.body.length });
  }

  /** The shared body for `key` if its channels' newest message is still `newestSeq`. */
  get(key: string, newestSeq: number): Buffer | undefined {
    // peek: a hit is not a use worth reordering for; the oldest answer is the likeliest stale.
    const answer = this.#answers.peek(key);
    return answer !== undefined && answer.newestSeq === newestSeq ? answer.body : undefined;
  }

  set(key: string, newestSeq: number, body: Buffer): void {
    this.#answers.set(key, { newestSeq, body });
  }
}
