/**
 * Holds a WebSocket's frames of one tick in its TCP socket and sends them in one writev on the next
 * tick: a publish batch of many messages then costs one system call per subscriber instead of one
 * per message, which is where fan-out spends most of its time. ws corks each frame itself; this
 * outer cork spans frames.
 */
import { Socket } from 'node:net';
import type WebSocket from 'ws';

export class TickCork {
  #corked = false;

  constructor(private readonly socket: WebSocket) {}

  /** Call before each send: the first of a tick corks, and the next tick uncorks. */
  hold(): void {
    if (this.#corked) return;
    const raw = underlyingSocket(this.socket);
    if (!raw) return;
    raw.cork();
    this.#corked = true;
    process.nextTick(() => {
      this.#corked = false;
      raw.uncork();
    });
  }
}

/**
 * The TCP socket under a ws WebSocket. ws keeps it in the private `_socket`; this is the one place
 * that reaches for it, and it degrades to no corking if that ever changes.
 */
export function underlyingSocket(socket: WebSocket): Socket | undefined {
  const raw = (socket as unknown as { _socket?: unknown })._socket;
  return raw instanceof Socket ? raw : undefined;
}
