/**
 * The few host facilities the client needs, found without DOM or Node type definitions, so the same
 * source compiles for browsers and Node. Anything missing can be injected through the options.
 */

/** The subset of the WHATWG WebSocket API the client uses (browsers' and Node 22+'s global, the `ws` package). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

type Listener = () => void;
interface EventHost {
  addEventListener(type: string, listener: Listener): void;
  removeEventListener(type: string, listener: Listener): void;
}

const host = globalThis as unknown as {
  WebSocket?: WebSocketConstructor;
  localStorage?: StorageLike;
  navigator?: { onLine?: boolean };
  document?: EventHost & { visibilityState?: string };
  window?: EventHost;
  crypto?: { randomUUID?: () => string; getRandomValues?: (array: Uint8Array) => Uint8Array };
};

/** Read at each client's construction, so a WebSocket installed on globalThis later is still found. */
export function globalWebSocket(): WebSocketConstructor | undefined {
  return host.WebSocket;
}

/** localStorage when it exists and works (it throws in some private modes and sandboxed frames). */
export function browserStorage(): StorageLike | undefined {
  try {
    const storage = host.localStorage;
    if (!storage) return undefined;
    storage.getItem('edgepush:probe');
    return storage;
  } catch {
    return undefined;
  }
}

/** False only when the browser is sure it is offline; Node is always "online". */
export function isOnline(): boolean {
  return host.navigator?.onLine !== false;
}

export function isHidden(): boolean {
  return host.document?.visibilityState === 'hidden';
}

/**
 * Calls `onWake` when the browser comes back online or the tab becomes visible, and `onOffline`
 * when it goes offline. Returns the function that stops listening. A no-op in Node.
 */
export function watchNetwork(onWake: () => void, onOffline: () => void): () => void {
  const win = host.window;
  const doc = host.document;
  const visibility = (): void => {
    if (doc?.visibilityState === 'visible') onWake();
  };
  win?.addEventListener('online', onWake);
  win?.addEventListener('offline', onOffline);
  doc?.addEventListener('visibilitychange', visibility);
  return () => {
    win?.removeEventListener('online', onWake);
    win?.removeEventListener('offline', onOffline);
    doc?.removeEventListener('visibilitychange', visibility);
  };
}

/** A random UUID; `crypto.randomUUID` only exists in secure contexts, getRandomValues everywhere. */
export function randomId(): string {
  const crypto = host.crypto;
  if (crypto?.randomUUID) return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  if (crypto?.getRandomValues) crypto.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
