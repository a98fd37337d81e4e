/**
 * This node's live connections by session id and by user, so that server-API commands (carried
 * to every node by the control log) find the connections they name, and the status page finds the
 * slowest. Long-polls hold no connection between requests and are not here: the server API acts
 * on WebSocket and SSE connections (and MQTT).
 */
import { randomBytes } from 'node:crypto';
import type { ControlCommand } from '../src/log/control.js';
import type { Session } from '../src/engine/session.js';
import type { Transport } from '../src/metrics.js';
import type { ConsumerStatus } from '../src/status.js';

export interface ControllableConnection {
  readonly sessionId: string;
  /** The token's `sub` once known. */
  readonly user: string | undefined;
  readonly transport: Transport;
  /** When the connection opened, in ms. */
  readonly connectedAt: number;
  /** Bytes written and not yet handed to the network (its outbox). */
  readonly bufferedAmount: number;
  readonly session: Session;
  serverSubscribe(channel: string, cursor: string | undefined): void;
  serverUnsubscribe(channel: string): void;
  serverDisconnect(code: number, reason: string): void;
}

/** A session id: unguessable, URL-safe, 16 characters. */
export function newSessionId(): string {
  return randomBytes(12).toString('base64url');
}

export class ConnectionRegistry {
  readonly #bySession = new Map<string, ControllableConnection>();
  readonly #byUser = new Map<string, Set<ControllableConnection>>();

  add(connection: ControllableConnection): void {
    this.#bySession.set(connection.sessionId, connection);
    this.#index(connection, connection.user);
  }

  remove(connection: ControllableConnection): void {
    this.#bySession.delete(connection.sessionId);
    this.#unindex(connection, connection.user);
  }

  /** The connection's user changed (its first token arrived by an `auth` op). */
  userChanged(connection: ControllableConnection, previous: string | undefined): void {
    this.#unindex(connection, previous);
    if (this.#bySession.has(connection.sessionId)) this.#index(connection, connection.user);
  }

  /**
   * The `limit` connections with the fullest outboxes (the slowest readers), fullest first; those
   * with an empty outbox are left out. One pass over the connections.
   */
  slowest(limit: number): ConsumerStatus[] {
    const top: ControllableConnection[] = [];
    for (const connection of this.#bySession.values()) {
      const buffered = connection.bufferedAmount;
      if (buffered === 0 || (top.length === limit && buffered <= (top[limit - 1] as ControllableConnection).bufferedAmount)) continue;
      let at = top.length;
      while (at > 0 && (top[at - 1] as ControllableConnection).bufferedAmount < buffered) at--;
      top.splice(at, 0, connection);
      if (top.length > limit) top.pop();
    }
    return top.map((connection) => ({
      session: connection.sessionId,
      transport: connection.transport,
      user: connection.user ?? null,
      bufferedBytes: connection.bufferedAmount,
      channels: connection.session.channelCount,
      connectedAt: connection.connectedAt,
    }));
  }

  /** Acts on the command; returns how many connections of this node it reached. */
  apply(command: ControlCommand): number {
    // Session state travels the same log, for the MQTT sessions (mqtt-sessions.ts), not for connections.
    if (command.type === 'mqtt-session') return 0;
    const targets = 'session' in command.target ? [this.#bySession.get(command.target.session)].filter((c) => c !== undefined) : [...(this.#byUser.get(command.target.user) ?? [])];
    for (const connection of targets) {
      switch (command.type) {
        case 'subscribe':
          connection.serverSubscribe(command.channel, command.cursor);
          break;
        case 'unsubscribe':
          connection.serverUnsubscribe(command.channel);
          break;
        case 'disconnect':
          connection.serverDisconnect(command.code, command.reason);
          break;
      }
    }
    return targets.length;
  }

  #index(connection: ControllableConnection, user: string | undefined): void {
    if (user === undefined) return;
    let set = this.#byUser.get(user);
    if (!set) this.#byUser.set(user, (set = new Set()));
    set.add(connection);
  }

  #unindex(connection: ControllableConnection, user: string | undefined): void {
    if (user === undefined) return;
    const set = this.#byUser.get(user);
    set?.delete(connection);
    if (set?.size === 0) this.#byUser.delete(user);
  }
}
