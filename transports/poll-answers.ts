/**
 * Long-poll answers given at once, shared: pollers that come back with the same channels, cursor
 * and options while those channels got nothing new are sent the bytes the first of them was sent
 * (the spool does the same for held polls). After a wake-up, all the pollers of a channel come
 * back with the one cursor their shared reply carried, so most of a burst of polls is answered
 * without reading the rings or building a body again.
 *
 * An answer stays valid while the newest message its channels hold is the same
 * (ChannelEngine.newestSeq): it then holds exactly what a new read would, with a cursor at most as
 * new, which only means the next poll starts a little further back. Bounded by count and bytes;
 * when full, it starts again.
 */

interface SharedAnswer {
  readonly newestSeq: number;
  readonly body: Buffer;
}

export class PollAnswers {
  readonly #answers = new Map<string, SharedAnswer>();
  #bytes = 0;

  constructor(
    private readonly maxAnswers: number,
    private readonly maxBytes: number,
  ) {}

  /** The shared body for `key` if its channels' newest message is still `newestSeq`. */
  get(key: string, newestSeq: number): Buffer | undefined {
    const answer = this.#answers.get(key);
    return answer !== undefined && answer.newestSeq === newestSeq ? answer.body : undefined;
  }

  set(key: string, newestSeq: number, body: Buffer): void {
    const old = this.#answers.get(key);
    if (old !== undefined) {
      this.#answers.delete(key);
      this.#bytes -= old.body.length;
    }
    if (body.length > this.maxBytes) return;
    if (this.#answers.size >= this.maxAnswers || this.#bytes + body.length > this.maxBytes) {
      this.#answers.clear();
      this.#bytes = 0;
    }
    this.#answers.set(key, { newestSeq, body });
    this.#bytes += body.length;
  }
}
