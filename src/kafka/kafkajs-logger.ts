/** kafkajs log lines into the process logger, at matching levels, tagged with their namespace. */
import { logLevel, type logCreator } from 'kafkajs';
import type { Logger } from '../logger.js';

export function kafkajsLogger(log: Logger): logCreator {
  const kafkaLog = log.child({ component: 'kafkajs' });
  return () => ({ namespace, level, log: entry }) => {
    const { message, ...details } = entry;
    const fields = { namespace, ...details };
    // Connection-level errors are the retriable kind (coordinator loading, broker restarting):
    // kafkajs retries them itself, so they are warnings here; real failures surface elsewhere.
    if (level === logLevel.ERROR && namespace !== 'Connection') kafkaLog.error(fields, message);
    else if (level === logLevel.ERROR) kafkaLog.warn(fields, message);
    else if (level === logLevel.WARN) kafkaLog.warn(fields, message);
    else if (level === logLevel.INFO) kafkaLog.info(fields, message);
    else kafkaLog.debug(fields, message);
  };
}
