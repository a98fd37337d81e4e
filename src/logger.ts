/**
 * One JSON-lines logger (pino, the logger fastify uses) for the whole process, so HTTP, engine and
 * Kafka lines share a format and a level.
 */
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = Pick<PinoLogger, 'info' | 'warn' | 'error' | 'debug' | 'child'>;

export function createLogger(level: string): PinoLogger {
  return pino({ level });
}

/**
 * Logs at most `perSecond` lines a second and then says how many it held back, so a flood of bad
 * records or failing requests cannot drown the log (they are all counted in the metrics regardless).
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
