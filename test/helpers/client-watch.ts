/**
 * Records what an EdgePush client (src/client) delivers, so Node tests can await conditions on it:
 * messages per channel, states, resets, errors. Every record wakes the waiters; no polling, no sleeps.
 */
import { EventEmitter } from 'node:events';
import type { EdgePush } from '../../src/client/index.js';
import type { Message, ResetNotice, StateChange } from '../../src/client/index.js';
import { waitForChange } from './wait-for-change.js';

export class ClientWatch extends EventEmitter {
  readonly messages: Message[] = [];
  readonly states: StateChange[] = [];
  readonly resets: ResetNotice[] = [];
  readonly errors: Error[] = [];

  constructor(readonly client: EdgePush) {
    super();
    this.setMaxListeners(0);
    client.on('state', (change) => this.#record(this.states, change));
    client.on('reset', (notice) => this.#record(this.resets, notice));
    client.on('error', (error) => this.#record(this.errors, error));
  }

  /** A message handler for subscribe() that records into this watch. */
  readonly handler = (message: Message): void => this.#record(this.messages, message);

  #record<T>(list: T[], item: T): void {
    list.push(item);
    this.emit('change');
  }

  /** How many times the client reached `connected`. */
  get connections(): number {
    return this.states.filter((s) => s.state === 'connected').length;
  }

  dataOf(channel: string): unknown[] {
    return this.messages.filter((m) => m.channel === channel).map((m) => m.data);
  }

  waitFor(predicate: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
    return waitForChange(this, predicate, () => {
      const last = this.states.at(-1);
      return `timed out waiting for ${what} (${this.messages.length} messages, state ${last?.state} ${last?.transport} ${last?.reason ?? ''})`;
    }, timeoutMs);
  }
}
