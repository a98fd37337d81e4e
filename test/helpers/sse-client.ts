/**
 * A raw SSE client over node:http, parsing the stream by the spec's rules (fields apply when the
 * blank line ends an event), so tests can cut, pause and inspect the stream byte by byte.
 */
import { get, type ClientRequest, type IncomingMessage } from 'node:http';
import { BaseTestClient, type OpenOptions } from './test-client.js';

export class SseTestClient extends BaseTestClient {
  readonly ready: Promise<void>;
  /** Event types seen, in order (message, reset, disconnect, or id-only for cursor updates). */
  readonly events: string[] = [];
  status: number | undefined;
  errorBody: unknown;
  #request: ClientRequest | undefined;
  #response: IncomingMessage | undefined;

  constructor(baseUrl: string, channels: string[], options: OpenOptions = {}, query = '') {
    super();
    const params = new URLSearchParams();
    for (const channel of channels) params.append('channel', channel);
    const headers: Record<string, string> = {};
    if (options.cursor !== undefined) headers['last-event-id'] = options.cursor;
    if (options.delta !== undefined) params.set('delta', options.delta);
    if (options.snapshot !== undefined) params.set('snapshot', options.snapshot);
    if (options.maxRate !== undefined) params.set('maxRate', String(options.maxRate));
    if (options.onSlow !== undefined) params.set('onSlow', options.onSlow);
    const url = `${baseUrl}/v1/sse?${params}${query}`;
    this.ready = new Promise((resolve, reject) => {
      this.#request = get(url, { headers }, (response) => {
        this.#response = response;
        this.status = response.statusCode;
        response.setEncoding('utf8');
        if (response.statusCode !== 200) {
          let body = '';
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', () => {
            this.errorBody = JSON.parse(body);
            this.ended = {};
            this.changed();
            reject(Object.assign(new Error(`SSE answered ${response.statusCode}`), { code: (this.errorBody as { error?: { code?: string } }).error?.code }));
          });
          return;
        }
        let buffer = '';
        let id: string | undefined;
        let event = '';
        let data: string[] = [];
        response.on('data', (chunk: string) => {
          buffer += chunk;
          let newline: number;
          while ((newline = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, newline).replace(/\r$/, '');
            buffer = buffer.slice(newline + 1);
            if (line === '') {
              this.#dispatch(event, data, id);
              if (id !== undefined && this.cursor !== undefined) resolve();
              event = '';
              data = [];
              id = undefined;
              continue;
            }
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'id') id = value;
            else if (field === 'event') event = value;
            else if (field === 'data') data.push(value);
          }
        });
        response.on('end', () => this.#end());
        response.on('close', () => this.#end());
        response.on('error', () => this.#end());
      });
      this.#request.on('error', (error) => {
        this.#end();
        reject(error);
      });
    });
    this.ready.catch(() => {});
  }

  #dispatch(event: string, data: string[], id: string | undefined): void {
    if (id !== undefined) this.cursor = id;
    if (data.length === 0) {
      if (id !== undefined) this.events.push('id');
      this.changed();
      return;
    }
    const payload = JSON.parse(data.join('\n')) as Record<string, unknown>;
    const type = event || 'message';
    this.events.push(type);
    if (type === 'message') this.received.push(payload as never);
    else if (type === 'reset') this.resets.push(payload as never);
    else if (type === 'disconnect') this.ended = { code: payload['code'] as number };
    this.changed();
  }

  #end(): void {
    this.ended ??= {};
    this.changed();
  }

  drop(): void {
    this.#request?.destroy();
    this.#end();
  }

  pause(): void {
    this.#response?.pause();
  }

  resume(): void {
    this.#response?.resume();
  }
}
