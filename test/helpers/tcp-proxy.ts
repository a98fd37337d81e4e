/**
 * A TCP proxy on 127.0.0.1 between a client and the test server, so a test can cut every
 * connection at once (as a network failure would) and refuse new ones for a while (an outage),
 * on any transport, without the client's cooperation.
 */
import { EventEmitter } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

/** Emits 'change' when a client sends bytes, for waitForChange. */
export class TcpProxy extends EventEmitter {
  readonly #sockets = new Set<Socket>();
  /** Client connections whose last bytes went to the server: a request the server is holding. */
  readonly #awaitingReply = new Set<Socket>();
  #down = false;
  /** Connections accepted so far (each reconnect of a client makes at least one). */
  accepted = 0;

  private constructor(private readonly server: Server, readonly url: string) {
    super();
  }

  /**
   * Connections with a request sent and not yet answered (a held long-poll). A cut between two
   * polls breaks nothing the client can see: its HTTP stack sends the next one on a new connection.
   */
  get awaitingReply(): number {
    return this.#awaitingReply.size;
  }

  static async start(targetUrl: string): Promise<TcpProxy> {
    const target = new URL(targetUrl);
    let proxy: TcpProxy | undefined;
    const server = createServer((client) => {
      if (!proxy || proxy.#down) return void client.destroy();
      proxy.accepted++;
      const upstream = connect(Number(target.port), target.hostname);
      proxy.#track(client);
      proxy.#track(upstream);
      client.pipe(upstream).pipe(client);
      const owner = proxy;
      client.on('data', () => {
        owner.#awaitingReply.add(client);
        owner.emit('change');
      });
      upstream.on('data', () => owner.#awaitingReply.delete(client));
      client.on('close', () => owner.#awaitingReply.delete(client));
      const cut = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', cut).on('close', cut);
      upstream.on('error', cut).on('close', cut);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (typeof address !== 'object' || !address) throw new Error('proxy did not bind');
    proxy = new TcpProxy(server, `http://127.0.0.1:${address.port}`);
    return proxy;
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
  }

  /** Resets every open connection. */
  cutAll(): void {
    for (const socket of this.#sockets) socket.resetAndDestroy();
  }

  /** While down, connections are accepted and closed at once (as a dead host's firewall might). */
  setDown(down: boolean): void {
    this.#down = down;
    if (down) this.cutAll();
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
