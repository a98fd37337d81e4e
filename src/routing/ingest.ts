/**
 * Source → router → engine. A record the router refuses is reported and skipped, but the frontier
 * still moves past it, so cursors never point at a record that can never be delivered.
 */
import type { MessageSink } from '../log/routed-message.js';
import type { LogRecord, RecordHandler } from '../log/source.js';
import type { RecordRouter } from './record-router.js';

export function createIngest(engine: MessageSink, router: RecordRouter, onBadRecord: (record: LogRecord, problem: string) => void): RecordHandler {
  return (records) => {
    for (const record of records) {
      let result;
      try {
        result = router.route(record);
      } catch (error) {
        result = { ok: false as const, problem: `router failed: ${(error as Error).message}` };
      }
      if (result.ok) {
        for (const problem of result.skipped ?? []) onBadRecord(record, problem);
        engine.dispatchRecord(record.partition, record.offset, result.messages);
      } else {
        onBadRecord(record, result.problem);
        engine.dispatchRecord(record.partition, record.offset, []);
      }
    }
  };
}

/**
 * Logs at most `perSecond` lines a second and then says how many it held back, so a flood of bad
 * records cannot drown the log (they are all counted in the metrics regardless).
 */
export function rateLimitedLog(perSecond: number, write: (line: string, details?: object) => void): (line: string, details?: object) => void {
  let windowStart = 0;
  let written = 0;
  let held = 0;
  return (line, details) => {
    const now = Date.now();
    if (now - windowStart >= 1000) {
      if (held > 0) write(`${held} similar log lines held back in the last second`);
      windowStart = now;
      written = 0;
      held = 0;
    }
    if (written < perSecond) {
      written++;
      write(line, details);
    } else {
      held++;
    }
  };
}
