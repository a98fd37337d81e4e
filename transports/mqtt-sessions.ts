/**
 * MQTT persistent sessions as every node sees them (docs/mqtt.md): each node keeps the latest state
 * of each session from the sessions log every node reads from its start (Kafka's compacted
 * sessions topic, or the embedded log), so a client that reconnects to any node finds its
 * subscriptions and position. Bounded in count; a session past its expiry is gone.
 */
import { LRUCache } from 'lru-cache';
import type { ControlLog, MqttSessionState } from '../src/log/control.js';

/** Most sessions a node remembers; the least recently saved go first. */
const MAX_SESSIONS = 100_000;

export class MqttSessions {
  readonly #byClient = new LRUCache<string, MqttSessionState>({ max: MAX_SESSIONS });

  constructor(private readonly control: ControlLog) {
    control.onCommand((command) => {
      if (command.type !== 'mqtt-session') return;
      if (command.session === null || command.session.expiresAt <= Date.now()) this.#byClient.delete(command.clientId);
      else this.#byClient.set(command.clientId, command.session);
    });
  }

  /** The session of `clientId`, once this node has read every state saved before now. */
  async load(clientId: string): Promise<MqttSessionState | undefined> {
    await this.control.caughtUp();
    const state = this.#byClient.get(clientId);
    if (state === undefined || state.expiresAt <= Date.now()) return undefined;
    return state;
  }

  /** True when this node knows a live session of `clientId` (a clean start then ends it). */
  has(clientId: string): boolean {
    return this.#byClient.has(clientId);
  }

  /**
   * Saves (or, with null, ends) a session for every node; resolves once the log has it. Without a
   * sessions log (its topic missing and not creatable: warned once at start) there is nothing to do.
   */
  async save(clientId: string, state: MqttSessionState | null): Promise<void> {
    if (!this.control.available) return;
    await this.control.send({ type: 'mqtt-session', clientId, session: state });
  }
}
