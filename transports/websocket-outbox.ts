/**
 * The outbox of a ws WebSocket (turn-outbox.ts): the transport's whole frames go straight to the
 * TCP socket under it, and nothing is written once the WebSocket has begun to close (its close
 * frame must be the last). ws keeps that socket in the private `_socket`; this is the one place
 * that reaches for it.
 */
import { Socket } from 'node:net';
import type WebSocket from 'ws';
import { TurnOutbox } from './turn-outbox.js';

/** `tcpNoDelay`, `onWritable`: as TurnOutbox's (a conflating session catches up). */
export function webSocketOutbox(socket: WebSocket, tcpNoDelay: boolean, onWritable: () => void): TurnOutbox {
  const raw = (socket as unknown as { _socket?: unknown })._socket;
  if (!(raw instanceof Socket)) throw new Error('the WebSocket has no TCP socket to write to');
  return new TurnOutbox(raw, tcpNoDelay, onWritable, () => socket.readyState === socket.OPEN);
}
