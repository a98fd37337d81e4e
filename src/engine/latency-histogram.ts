/**
 * A histogram kept in plain numbers: observing is a short scan of the bounds and two additions, no
 * allocation, so the engine can afford one observation per message. The metrics read it at
 * scrape time (src/metrics.ts).
 */

/** Upper bounds in seconds of the delivery-latency buckets: from a same-process publish to a Kafka backlog. */
export const DELIVERY_LATENCY_BOUNDS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class LatencyHistogram {
  /** Observations per bucket (not cumulative); the last slot holds those above every bound. */
  readonly counts: number[];
  /** Sum of every observation, in seconds. */
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[] = DELIVERY_LATENCY_BOUNDS) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  /** One observation in seconds; a negative one (the clocks of two machines disagree) counts as 0. */
  observe(seconds: number): void {
    const value = seconds > 0 ? seconds : 0;
    let i = 0;
    while (i < this.bounds.length && value > (this.bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count++;
  }
}
