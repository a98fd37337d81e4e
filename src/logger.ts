/**
 * One JSON-lines logger (pino, the logger fastify uses) for the whole process, so HTTP, engine and
 * Kafka lines share a format and a level.
 */
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = Pick<PinoLogger, 'info' | 'warn' | 'error' | 'debug' | 'child'>;

export function createLogger(level: string): PinoLogger {
  return pino({ level });
}
