/**
 * Opens many connections in parallel batches, each open bounded by a timeout: quick setup without a
 * SYN flood on the server's accept queue, and a failed open counted rather than hanging the run.
 */
export interface OpenedBatch<T> {
  readonly opened: T[];
  readonly failed: number;
  readonly firstError?: string;
}

export async function openInBatches<I, T>(items: readonly I[], concurrency: number, timeoutMs: number, open: (item: I) => Promise<T>): Promise<OpenedBatch<T>> {
  const opened: T[] = [];
  let failed = 0;
  let firstError: string | undefined;
  const withTimeout = (promise: Promise<T>): Promise<T> =>
    Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('open timed out')), timeoutMs).unref())]);
  for (let i = 0; i < items.length; i += concurrency) {
    const results = await Promise.allSettled(items.slice(i, i + concurrency).map((item) => withTimeout(open(item))));
    for (const result of results) {
      if (result.status === 'fulfilled') opened.push(result.value);
      else {
        failed++;
        firstError ??= String((result.reason as Error).message ?? result.reason);
      }
    }
  }
  return firstError === undefined ? { opened, failed } : { opened, failed, firstError };
}
