/**
 * The text/event-stream format, parsed by the HTML standard's rules, but with id-only events kept:
 * EventSource swallows them, and they are exactly what edgepush sends as heartbeats and as the
 * current cursor. That is why the client reads SSE with fetch rather than EventSource.
 */

export interface SseEvent {
  /** `message` (the default), `reset`, `disconnect`, or `id` for an event with an id and no data. */
  readonly type: string;
  readonly data: string;
  /** The event's own `id:` field, when it had one. */
  readonly id: string | undefined;
}

export class SseParser {
  #buffer = '';
  #event = '';
  #data: string[] = [];
  #id: string | undefined;
  #afterCarriageReturn = false;

  /**
   * Feeds decoded text; returns the events it completed, and the last `retry:` and `heartbeat:`
   * (edgepush's announced heartbeat interval, ms) it saw, if any.
   */
  feed(text: string): { events: SseEvent[]; retry: number | undefined; heartbeat: number | undefined } {
    const events: SseEvent[] = [];
    let retry: number | undefined;
    let heartbeat: number | undefined;
    // A "\r\n" split across two chunks: the "\n" ends nothing new.
    if (this.#afterCarriageReturn && text.startsWith('\n')) text = text.slice(1);
    this.#afterCarriageReturn = text.endsWith('\r');
    this.#buffer += text;
    const lines = this.#buffer.split(/\r\n|\r|\n/);
    this.#buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '') {
        const event = this.#dispatch();
        if (event) events.push(event);
        continue;
      }
      if (line.startsWith(':')) continue; // a comment
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') this.#data.push(value);
      else if (field === 'event') this.#event = value;
      else if (field === 'id' && !value.includes('\0')) this.#id = value;
      else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value);
      else if (field === 'heartbeat' && /^\d+$/.test(value)) heartbeat = Number(value);
    }
    return { events, retry, heartbeat };
  }

  #dispatch(): SseEvent | undefined {
    const event = this.#event;
    const data = this.#data;
    const id = this.#id;
    this.#event = '';
    this.#data = [];
    this.#id = undefined;
    if (data.length === 0) return id === undefined ? undefined : { type: 'id', data: '', id };
    return { type: event || 'message', data: data.join('\n'), id };
  }
}
