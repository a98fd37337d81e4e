/**
 * Which transport to try next. The rules (docs/client.md "Transport fallback"):
 *
 * 1. Start with the remembered transport, else the first of the list.
 * 2. A transport that shows it cannot work here ("unsuitable": the WebSocket upgrade fails, SSE
 *    events are held back or batched by a proxy) is left for the next one at once.
 * 3. A network failure (refused, reset, silent for too long, server asked to reconnect) retries the
 *    same transport after a backoff, if it has worked since the client started; if it never has,
 *    the failure says nothing against the better transports, so the next attempt starts at the top.
 * 4. "Unsuitable" on a transport that has worked before counts as a network failure, unless it
 *    happens `demoteAfter` times in a row (the network changed under us: new Wi-Fi, new proxy).
 */
import type { TransportName } from './types.js';

export type FailureKind = 'unsuitable' | 'network';

export interface NextAttempt {
  readonly transport: TransportName;
  /** True: go at once (a fallback); false: wait for the backoff. */
  readonly immediately: boolean;
}

export class FallbackPolicy {
  #index: number;
  readonly #worked = new Set<TransportName>();
  #strikes = 0;

  constructor(
    private readonly chain: readonly TransportName[],
    remembered: TransportName | undefined,
    private readonly demoteAfter: number,
  ) {
    const at = remembered ? chain.indexOf(remembered) : -1;
    this.#index = at >= 0 ? at : 0;
  }

  get current(): TransportName {
    return this.chain[this.#index] as TransportName;
  }

  succeeded(): void {
    this.#worked.add(this.current);
    this.#strikes = 0;
  }

  failed(kind: FailureKind, online: boolean): NextAttempt {
    const worked = this.#worked.has(this.current);
    // Offline, every transport fails: that is no evidence against this one.
    if (kind === 'unsuitable' && online && (!worked || ++this.#strikes >= this.demoteAfter)) {
      this.#strikes = 0;
      if (this.#index < this.chain.length - 1) {
        this.#index++;
        return { transport: this.current, immediately: true };
      }
      return { transport: this.current, immediately: false };
    }
    if (!worked) this.#index = 0;
    return { transport: this.current, immediately: false };
  }
}
