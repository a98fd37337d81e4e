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
