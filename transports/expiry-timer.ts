/**
 * Ends a connection when its token expires. setTimeout cannot wait longer than about 24.8 days,
 * so longer lifetimes are waited in steps.
 */
const LONGEST_TIMEOUT_MS = 2 ** 31 - 1;

/** Calls `onExpired` at `expiresAt` (ms since the epoch); returns a function that cancels it. */
export function whenExpired(expiresAt: number | undefined, onExpired: () => void): () => void {
  if (expiresAt === undefined) return () => {};
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const left = expiresAt - Date.now();
    if (left <= 0) return onExpired();
    timer = setTimeout(arm, Math.min(left, LONGEST_TIMEOUT_MS));
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}
