/**
 * The TCP socket under a ws WebSocket, which the outboxes write whole frames to. ws keeps it in
 * the private `_socket`; this is the one place that reaches for it.
 */
import { Socket } from 'node:net';
import type WebSocket from 'ws';

export function underlyingSocket(socket: WebSocket): Socket | undefined {
  const raw = (socket as unknown as { _socket?: unknown })._socket;
  return raw instanceof Socket ? raw : undefined;
}
