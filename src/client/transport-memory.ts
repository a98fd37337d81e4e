/**
 * Remembers which transport worked for a server, so the next page load (or the next client in the
 * same Node process) starts with it instead of rediscovering a restrictive proxy every time.
 */
import { browserStorage, type StorageLike } from './environment.js';
import type { TransportName } from './types.js';

const inMemory = new Map<string, string>();
const memoryStorage: StorageLike = {
  getItem: (key) => inMemory.get(key) ?? null,
  setItem: (key, value) => void inMemory.set(key, value),
};

export class TransportMemory {
  readonly #storage: StorageLike | undefined;
  readonly #key: string;

  constructor(serverUrl: string, setting: boolean | StorageLike, private readonly ttlMs: number) {
    this.#storage = setting === false ? undefined : setting === true ? (browserStorage() ?? memoryStorage) : setting;
    this.#key = `edgepush:transport:${serverUrl}`;
  }

  recall(): TransportName | undefined {
    try {
      const saved = JSON.parse(this.#storage?.getItem(this.#key) ?? 'null') as { transport?: TransportName; at?: number } | null;
      if (!saved?.transport || typeof saved.at !== 'number' || Date.now() - saved.at > this.ttlMs) return undefined;
      return saved.transport;
    } catch {
      return undefined;
    }
  }

  remember(transport: TransportName): void {
    try {
      this.#storage?.setItem(this.#key, JSON.stringify({ transport, at: Date.now() }));
    } catch {
      // Storage full or forbidden: remembering is an optimisation only.
    }
  }
}
