/**
 * Fields every benchmark report prints the same way (run.ts, peers.ts): the delivery checks of a
 * load generator's result and what opening the subscribers cost the server.
 */
import type { ReadyReport, ResultReport, Transport } from './ipc.js';
import { round2 } from './tally.js';

/** The checks and counts of a result as a benchmark prints them (the same fields in every report). */
export interface DeliveryChecks {
  readonly expectedDeliveries: number;
  readonly delivered: number;
  readonly lost: number;
  readonly duplicates: number;
  readonly outOfOrder: number;
  readonly unexpected: number;
  readonly resets: number;
  readonly disconnects: number;
  readonly pollRetries: number;
  readonly pollReplies?: number;
}

export function deliveryChecks(result: ResultReport, transport: Transport): DeliveryChecks {
  return {
    expectedDeliveries: result.expected,
    delivered: result.delivered,
    lost: result.lost,
    duplicates: result.duplicates,
    outOfOrder: result.outOfOrder,
    unexpected: result.unexpected,
    resets: result.resets,
    disconnects: result.disconnects,
    pollRetries: result.pollRetries,
    ...(transport === 'poll' ? { pollReplies: result.pollReplies } : {}),
  };
}

/** What opening the subscribers cost the server, as a benchmark prints it (RSS in KiB from /proc). */
export function openingCost(ready: ReadyReport, rssBeforeKiB: number, rssIdleKiB: number): { openMs: number; rssPerIdleConnectionKiB: number | null; serverRssBeforeMiB: number; serverRssIdleMiB: number } {
  return {
    openMs: ready.openMs,
    rssPerIdleConnectionKiB: ready.opened > 0 ? round2((rssIdleKiB - rssBeforeKiB) / ready.opened) : null,
    serverRssBeforeMiB: round2(rssBeforeKiB / 1024),
    serverRssIdleMiB: round2(rssIdleKiB / 1024),
  };
}
