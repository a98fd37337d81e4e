/**
 * Per-connection outboxes flushed once per event-loop turn.
 *
 * Fan-out costs a system call per write, and that call (writev) was two thirds of the server's
 * CPU when every published message went out in its own write to every subscriber. An outbox
 * holds what a connection is sent during one turn of the event loop and hands it to the socket
 * in one write after all of that turn's I/O callbacks have run (setImmediate): messages from
 * every publish request and log fetch read in the same turn share one system call per
 * connection, however many channels and messages there are. This is Centrifugo's per-connection
 * write queue flushed in batches, without its write delay: nothing waits past the current turn.
 *
 * The outbox writes to the TCP socket itself: the transports frame their bytes completely (an
 * SSE stream has no chunked encoding, a WebSocket message is a whole frame), so nothing between
 * the outbox and the kernel adds work per write.
 *
 * Most fan-out loads still give each connection one message per turn (every message of a turn on
 * another channel), so one write per delivery remains, and each write sent as its own packet
 * costs the kernel more than everything else a delivery does. Unless `tcpNoDelay` is set, an
 * outbox turns Nagle's algorithm back on for its socket, as nginx leaves it on for a response
 * that streams: a write made while an earlier one is still unacknowledged waits for that
 * acknowledgement and leaves with whatever else came meanwhile, in one packet. An idle stream's
 * first write goes at once; under load the kernel batches by the round trip. Measured with
 * `npm run bench:peers` (SSE, 1,000 subscribers flat out, 304,000 writes): packets sent fell from
 * 383,000 to 83,000, and the server's kernel time per delivery from 6.2 to 2.6–2.9 µs.
 */
import type { Socket } from 'node:net';

/** Outboxes with bytes waiting, flushed together at the end of the turn. */
let waiting: TurnOutbox[] = [];
let scheduled = false;
/** Settles once this turn's outboxes are flushed; made only when someone waits for it. */
let flushed: { promise: Promise<void>; resolve: () => void } | null = null;

function flushWaiting(): void {
  scheduled = false;
  const outboxes = waiting;
  waiting = [];
  const settled = flushed;
  flushed = null;
  try {
    for (const outbox of outboxes) outbox.flush();
  } finally {
    settled?.resolve();
  }
}

/**
 * A promise that settles once every outbox written to in this turn has handed its bytes to its
 * socket, or undefined when none waits. A publish answers its publisher after this: the
 * subscribers' writes go first, so the answer's system call and the framework's reply work are
 * not spent ahead of every delivery of the message (one promise per turn, however many wait).
 */
export function turnFlushed(): Promise<void> | undefined {
  if (!scheduled) return undefined;
  if (flushed === null) {
    let resolve!: () => void;
    const promise = new Promise<void>((settle) => (resolve = settle));
    flushed = { promise, resolve };
  }
  return flushed.promise;
}

export class TurnOutbox {
  /** Bytes of this turn, in order; null when empty (most connections, most of the time). */
  #chunks: Buffer[] | null = null;
  #pendingBytes = 0;

  /**
   * `onWritable`: called when the socket has taken a flush without buffering past its high-water
   * mark, and on its 'drain': what a conflating session waits for to catch its client up (bytes
   * that never had to wait in the socket raise no 'drain' of their own).
   */
  constructor(
    private readonly socket: Socket,
    /** Every write in its own packet at once (the `tcpNoDelay` option); false: let the kernel join them. */
    tcpNoDelay: boolean,
    private readonly onWritable?: () => void,
    /** False once the protocol above allows no more data (a WebSocket that sent its close frame). */
    private readonly open: () => boolean = () => true,
  ) {
    // Node's HTTP server and ws both turn Nagle off on every socket they take.
    socket.setNoDelay(tcpNoDelay);
    if (onWritable) socket.on('drain', onWritable);
  }

  /** Bytes not yet handed to the network: this turn's and the socket's own buffer. */
  get bufferedAmount(): number {
    return this.#pendingBytes + this.socket.writableLength;
  }

  /** Queues bytes for the end of this turn; order is kept across everything written here. */
  write(bytes: Buffer): void {
    if (this.#chunks === null) {
      this.#chunks = [bytes];
      waiting.push(this);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flushWaiting);
      }
    } else {
      this.#chunks.push(bytes);
    }
    this.#pendingBytes += bytes.length;
  }

  /**
   * Hands this turn's bytes to the socket now: at the end of the turn, and before anything that
   * writes around the outbox (a WebSocket close frame, the end of a stream).
   */
  flush(): void {
    const chunks = this.#chunks;
    if (chunks === null) return;
    this.#chunks = null;
    this.#pendingBytes = 0;
    if (this.socket.destroyed || !this.socket.writable || !this.open()) return;
    // One buffer, one iovec: copying a few hundred bytes per message is cheaper than a longer writev.
    const taken = this.socket.write(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
    if (taken && this.onWritable) this.onWritable();
  }
}
