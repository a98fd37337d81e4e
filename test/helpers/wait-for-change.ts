/**
 * Resolves when `predicate` holds, re-checking on every 'change' event of `emitter`: the one way
 * tests await a condition on a recording client. The timeout is a failure bound, never a sync tool.
 */
import type { EventEmitter } from 'node:events';

export function waitForChange(emitter: EventEmitter, predicate: () => boolean, failure: () => string, timeoutMs: number): Promise<void> {
  if (predicate()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!predicate()) return;
      cleanup();
      resolve();
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(failure()));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      emitter.off('change', check);
    };
    emitter.on('change', check);
  });
}
