/**
 * The control log: server-API commands (subscribe, unsubscribe, disconnect on behalf of a user or
 * a session) reach every node through the log every node already reads, not through calls from
 * node to node: Kafka's control topic, or the embedded log in one process. A node acts on the
 * commands written after it started; a command for a connection it does not hold is a no-op.
 */

export type ControlCommand =
  | { readonly type: 'subscribe'; readonly target: ControlTarget; readonly channel: string; readonly cursor?: string }
  | { readonly type: 'unsubscribe'; readonly target: ControlTarget; readonly channel: string }
  | { readonly type: 'disconnect'; readonly target: ControlTarget; readonly code: number; readonly reason: string }
  /** An MQTT persistent session's state (null: ended), so that a reconnect to any node resumes it. */
  | { readonly type: 'mqtt-session'; readonly clientId: string; readonly session: MqttSessionState | null };

/** What a persistent MQTT session keeps between connections (docs/mqtt.md). */
export interface MqttSessionState {
  /** The token's `sub` that owns it: another user's CONNECT with the same client id starts clean. */
  readonly user: string | undefined;
  readonly filters: readonly { readonly topic: string; readonly qos: 0 | 1 }[];
  /** Everything up to here was delivered (QoS 0) or acknowledged (QoS 1). */
  readonly cursor: string | undefined;
  /** Up to here messages were sent: resent ones carry DUP. */
  readonly sentThrough: string | undefined;
  /** ms since the epoch: past it the session is gone. */
  readonly expiresAt: number;
}

/** Whose connections: every connection of a user (token `sub`), or one session. */
export type ControlTarget = { readonly user: string } | { readonly session: string };

export interface ControlLog {
  /** Appends a command; resolves once the log has it (every node will then act on it). */
  send(command: ControlCommand): Promise<void>;
  /** Receives every command appended from now on (on this node), in log order. */
  onCommand(handler: (command: ControlCommand) => void): void;
  /** False when this log cannot carry commands (e.g. the Kafka control topic is missing). */
  readonly available: boolean;
  /** Resolves once this node has read every command appended before the call (bounded wait). */
  caughtUp(): Promise<void>;
  /** Commands read by this node since start, handed to the handlers (for the metrics). */
  readonly received: number;
  /** Records read by this node that were no command, skipped (for the metrics). */
  readonly undecodable: number;
}

/** Encodes a command as the record value (JSON, with a version for later changes). */
export function encodeCommand(command: ControlCommand): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, ...command }));
}

/** Reads a record value back; undefined for anything that is not a version-1 command (skipped, not fatal). */
export function decodeCommand(bytes: Uint8Array | null): ControlCommand | undefined {
  if (!bytes) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { v, type, target, channel, cursor, code, reason, clientId, session } = value as Record<string, unknown>;
  if (v === 1 && type === 'mqtt-session' && typeof clientId === 'string' && (session === null || isSessionState(session))) return { type, clientId, session };
  if (v !== 1 || !isTarget(target)) return undefined;
  if ((type === 'subscribe' || type === 'unsubscribe') && typeof channel === 'string') {
    if (type === 'unsubscribe') return { type, target, channel };
    return typeof cursor === 'string' ? { type, target, channel, cursor } : { type, target, channel };
  }
  if (type === 'disconnect' && typeof code === 'number' && typeof reason === 'string') return { type, target, code, reason };
  return undefined;
}

function isSessionState(value: unknown): value is MqttSessionState {
  if (typeof value !== 'object' || value === null) return false;
  const { user, filters, cursor, sentThrough, expiresAt } = value as Record<string, unknown>;
  const optionalString = (x: unknown): boolean => x === undefined || typeof x === 'string';
  return (
    optionalString(user) && optionalString(cursor) && optionalString(sentThrough) && typeof expiresAt === 'number' &&
    Array.isArray(filters) && filters.every((f) => typeof f === 'object' && f !== null && typeof (f as { topic?: unknown }).topic === 'string' && ((f as { qos?: unknown }).qos === 0 || (f as { qos?: unknown }).qos === 1))
  );
}

function isTarget(value: unknown): value is ControlTarget {
  if (typeof value !== 'object' || value === null) return false;
  const { user, session } = value as Record<string, unknown>;
  return (typeof user === 'string') !== (typeof session === 'string');
}

/** One process's control log (the embedded log's): commands go straight to the handlers, in order. */
export class InProcessControlLog implements ControlLog {
  readonly available = true;
  readonly #handlers: ((command: ControlCommand) => void)[] = [];
  received = 0;
  undecodable = 0;

  async send(command: ControlCommand): Promise<void> {
    // Through the same encoding as Kafka's, so both carry exactly the same commands.
    const decoded = decodeCommand(encodeCommand(command));
    if (!decoded) {
      this.undecodable++;
      return;
    }
    this.received++;
    for (const handler of this.#handlers) handler(decoded);
  }

  onCommand(handler: (command: ControlCommand) => void): void {
    this.#handlers.push(handler);
  }

  /** Commands reach the handlers as they are sent: always caught up. */
  async caughtUp(): Promise<void> {}
}
