/**
 * In-memory stand-ins for an edgepush server, plugged into the client through its `WebSocket` and
 * `fetch` options: the test plays the server's side of the protocol by hand. Everything the client
 * does (a socket opened, a frame sent, a request made) is an arrival the test can await, so tests
 * run under fake timers with no sleeps.
 */
import type { WebSocketConstructor, WebSocketLike } from '../../src/client/index.js';

/** Things that happen, in order; `next()` waits for the next one not yet taken. */
export class Arrivals<T> {
  readonly all: T[] = [];
  #taken = 0;
  #waiters: (() => void)[] = [];

  push(item: T): void {
    this.all.push(item);
    for (const wake of this.#waiters.splice(0)) wake();
  }

  async next(matching: (item: T) => boolean = () => true): Promise<T> {
    for (;;) {
      while (this.#taken < this.all.length) {
        const item = this.all[this.#taken++] as T;
        if (matching(item)) return item;
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }
}

export type Op = Record<string, unknown> & { op: string };

export class FakeSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  /** Frames the client sent, parsed. */
  readonly frames = new Arrivals<Op>();
  closedByClient: { code: number | undefined; reason: string | undefined } | undefined;

  constructor(readonly url: string) {}

  send(data: string): void {
    this.frames.push(JSON.parse(data) as Op);
  }

  close(code?: number, reason?: string): void {
    this.readyState = 3;
    this.closedByClient = { code, reason };
  }

  /** The next frame the client sends with this op (others are skipped). */
  nextOp(op: string): Promise<Op> {
    return this.frames.next((frame) => frame.op === op);
  }

  ops(op: string): Op[] {
    return this.frames.all.filter((frame) => frame.op === op);
  }

  // The server's side.
  accept(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  reply(op: Op): void {
    this.onmessage?.({ data: JSON.stringify(op) });
  }

  drop(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

/** A WebSocket class for the `WebSocket` option, and the sockets the client opened with it. */
export function fakeWebSockets(): { WebSocket: WebSocketConstructor; sockets: Arrivals<FakeSocket> } {
  const sockets = new Arrivals<FakeSocket>();
  class Tracked extends FakeSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  }
  return { WebSocket: Tracked, sockets };
}

export class FakeRequest {
  readonly url: URL;
  readonly method: string;
  readonly headers: Headers;
  readonly body: string | undefined;
  readonly response: Promise<Response>;
  #resolve!: (response: Response) => void;
  #reject!: (error: unknown) => void;
  #stream: ReadableStreamDefaultController<Uint8Array> | undefined;
  #settled = false;

  constructor(input: string | URL | Request, init: RequestInit | undefined) {
    this.url = new URL(String(input));
    this.method = init?.method ?? 'GET';
    this.headers = new Headers(init?.headers);
    this.body = typeof init?.body === 'string' ? init.body : undefined;
    this.response = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    init?.signal?.addEventListener('abort', () => {
      const error = new DOMException('aborted', 'AbortError');
      if (!this.#settled) this.#reject(error);
      try {
        this.#stream?.error(error);
      } catch {
        // already closed
      }
    });
  }

  /** The bearer token the request carries, if any. */
  get token(): string | undefined {
    return /^Bearer (.+)$/.exec(this.headers.get('authorization') ?? '')?.[1];
  }

  get channels(): string[] {
    return this.url.searchParams.getAll('channel');
  }

  respond(status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.#settled = true;
    this.#resolve(new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } }));
  }

  /** Answers 200 with an event stream; returns how to write to it. */
  openStream(): { write(text: string): void; end(): void } {
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({ start: (controller) => void (this.#stream = controller) });
    this.#settled = true;
    this.#resolve(new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } }));
    return {
      write: (text) => this.#stream?.enqueue(encoder.encode(text)),
      end: () => this.#stream?.close(),
    };
  }
}

/** A fetch for the `fetch` option, and the requests the client made with it. */
export function fakeFetch(): { fetch: typeof fetch; requests: Arrivals<FakeRequest> } {
  const requests = new Arrivals<FakeRequest>();
  const fetch = ((input: string | URL | Request, init?: RequestInit) => {
    const request = new FakeRequest(input, init);
    requests.push(request);
    return request.response;
  }) as typeof globalThis.fetch;
  return { fetch, requests };
}

/** A promise the test resolves or rejects by hand. */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
