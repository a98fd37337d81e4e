/**
 * Every test client connects from 127.0.0.1, so one address stands for thousands of clients: the
 * per-address limits are lifted for tests that are not about them (the limit tests set their own).
 */
import type { ServerOptions } from '../../src/config.js';

export const LOOPBACK_LIMITS = {
  maxConnectionsPerIp: 1_000_000,
  connectionRatePerIp: 1_000_000,
  opRate: 1_000_000,
  publishRate: 1_000_000,
} as const satisfies Partial<ServerOptions>;
