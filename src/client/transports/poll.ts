/**
 * Long-poll: GET /v1/poll with the cursor, deliver the reply, poll again with the reply's cursor.
 * Plain request/response with a Content-Length, so it works through proxies that buffer streams.
 * One loop per subscription group (see groupSubscriptions). Each poll carries the newest token
 * (`Authorization: Bearer`).
 */
import type { Subscription } from '../subscription.js';
import type { ResetNotice, WireMessage } from '../types.js';
import {
  authorization,
  channelParams,
  deliver,
  groupSubscriptions,
  rejectForbidden,
  requestFailure,
  tokenFailure,
  type Transport,
  type TransportFailure,
  type TransportHost,
} from './transport.js';

interface PollReply {
  messages: WireMessage[];
  cursor: string;
  resets?: ResetNotice[];
}

/** Replies in a row whose delta base was missing before the loop gives up and reconnects. */
const MAX_CUT_REPLIES = 3;

export class PollTransport implements Transport {
  readonly name = 'poll';
  readonly #abort = new AbortController();
  #closed = false;

  constructor(private readonly host: TransportHost) {
    for (const group of groupSubscriptions(host.subscriptions())) void this.#loop(group);
  }

  subscriptionsChanged(): boolean {
    return false; // the channels are in the URL; a restart costs one request
  }

  close(): void {
    this.#closed = true;
    this.#abort.abort();
  }

  #fail(failure: TransportFailure): void {
    if (this.#closed) return;
    this.close();
    this.host.failed(failure);
  }

  async #loop(subscriptions: readonly Subscription[]): Promise<void> {
    const { options, baseUrl } = this.host;
    const byChannel = new Map(subscriptions.map((s) => [s.channel, s]));
    let cursor = subscriptions.find((s) => s.cursor !== undefined)?.cursor;
    // Ids already delivered from a reply that was cut short; the repeat poll skips them.
    const delivered = new Set<string>();
    let cutReplies = 0;
    while (!this.#closed) {
      const params = channelParams(subscriptions, subscriptions[0]?.delta);
      if (cursor !== undefined) params.set('cursor', cursor);
      params.set('timeout', String(options.pollTimeout));
      const reply = await this.#request(`${baseUrl}/v1/poll?${params}`, subscriptions);
      if (!reply) return;
      this.host.proven();
      for (const reset of reply.resets ?? []) this.host.reset(reset);
      let cut = false;
      for (const wire of reply.messages) {
        if (delivered.has(wire.id)) continue;
        if (!deliver(subscriptions, byChannel, wire)) {
          cut = true;
          break;
        }
        delivered.add(wire.id);
      }
      if (this.#closed) return;
      if (cut) {
        // The reply's cursor covers messages not delivered: ask again from the same cursor.
        if (++cutReplies >= MAX_CUT_REPLIES) return this.#fail({ kind: 'resubscribe', reason: 'delta bases keep missing' });
        continue;
      }
      cutReplies = 0;
      delivered.clear();
      cursor = reply.cursor;
      for (const subscription of subscriptions) subscription.advance(cursor);
    }
  }

  /** One poll; undefined when the loop must stop (closed, or the failure was reported). */
  async #request(url: string, subscriptions: readonly Subscription[]): Promise<PollReply | undefined> {
    const { options, tokens } = this.host;
    let token: string | undefined;
    try {
      token = await tokens.token();
    } catch (error) {
      this.#fail(tokenFailure(error));
      return undefined;
    }
    if (this.#closed) return undefined;
    // The server holds a poll up to pollTimeout; past that plus the request allowance, it is lost.
    const limit = options.pollTimeout * 1000 + options.requestTimeout;
    const timedOut = new AbortController();
    const timer = setTimeout(() => timedOut.abort(), limit);
    const onClose = (): void => timedOut.abort();
    this.#abort.signal.addEventListener('abort', onClose);
    try {
      const response = await options.fetch(url, { signal: timedOut.signal, headers: authorization(token) });
      if (response.status !== 200) {
        const failure = await requestFailure(response, 'poll', token);
        if (this.#closed) return undefined;
        // The client reconnects without the refused channels (and has closed this transport by then).
        if (failure.kind !== 'forbidden') this.#fail(failure);
        else {
          rejectForbidden(this.host, subscriptions, failure.error, failure.channels);
          this.#fail({ kind: 'resubscribe', reason: 'a subscription was refused' });
        }
        return undefined;
      }
      const text = await response.text();
      this.host.received(text.length);
      return JSON.parse(text) as PollReply;
    } catch (error) {
      this.#fail({ kind: 'network', reason: this.#closed ? 'closed' : `poll failed: ${String(error)}` });
      return undefined;
    } finally {
      clearTimeout(timer);
      this.#abort.signal.removeEventListener('abort', onClose);
    }
  }
}
