/**
 * A long-poll client loop: GET with the cursor, take the messages and the next cursor, repeat.
 * Dropping it aborts the request in flight, as a lost connection would.
 */
import { BaseTestClient, type OpenOptions } from './test-client.js';

export class PollTestClient extends BaseTestClient {
  readonly ready: Promise<void>;
  #abort = new AbortController();
  #stopped = false;
  polls = 0;

  readonly #delta: string | undefined;
  readonly #snapshot: string | undefined;
  readonly #maxRate: number | undefined;

  constructor(private readonly baseUrl: string, private readonly channels: string[], options: OpenOptions = {}, private readonly timeout = 5) {
    super();
    this.cursor = options.cursor;
    this.#delta = options.delta;
    this.#snapshot = options.snapshot;
    this.#maxRate = options.maxRate;
    const firstReply = this.#loop();
    firstReply.catch(() => {});
    // Long-poll is stateless: with a cursor the client is live at once (whatever follows the cursor
    // will come); without one it needs the first reply, which carries the starting cursor.
    this.ready = options.cursor === undefined ? firstReply : Promise.resolve();
  }

  /** Resolves after the first reply (which carries the starting cursor); keeps polling after. */
  #loop(): Promise<void> {
    return new Promise((resolve, reject) => {
      const next = async (): Promise<void> => {
        while (!this.#stopped) {
          const params = new URLSearchParams();
          for (const channel of this.channels) params.append('channel', channel);
          if (this.cursor !== undefined) params.set('cursor', this.cursor);
          params.set('timeout', String(this.timeout));
          if (this.#delta !== undefined) params.set('delta', this.#delta);
          if (this.#snapshot !== undefined) params.set('snapshot', this.#snapshot);
          if (this.#maxRate !== undefined) params.set('maxRate', String(this.#maxRate));
          let body: { messages: never[]; cursor: string; resets?: never[] };
          try {
            const response = await fetch(`${this.baseUrl}/v1/poll?${params}`, { signal: this.#abort.signal });
            if (response.status !== 200) {
              const error = ((await response.json()) as { error?: { code?: string } }).error;
              throw Object.assign(new Error(`poll answered ${response.status}`), { code: error?.code });
            }
            body = (await response.json()) as typeof body;
          } catch (error) {
            this.ended ??= {};
            this.changed();
            reject(error);
            return;
          }
          if (this.#stopped) return;
          this.polls++;
          this.resets.push(...(body.resets ?? []));
          this.received.push(...body.messages);
          this.cursor = body.cursor;
          resolve();
          this.changed();
        }
      };
      void next();
    });
  }

  drop(): void {
    this.#stopped = true;
    this.#abort.abort();
    this.ended ??= {};
    this.changed();
  }

  pause(): void {
    throw new Error('a long-poll client cannot be paused: each reply is bounded by pollMaxMessages');
  }

  resume(): void {}
}
