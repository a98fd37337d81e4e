/**
 * `edgepush healthcheck [options]`: asks the server this configuration would start whether it is
 * live (GET /healthz on 127.0.0.1 and the configured port), for container HEALTHCHECKs and probes
 * that cannot know the port the server was given. Exit code 0: healthy; 1: not.
 */
import type { ServerOptions } from './config.js';

/** How long the server has to answer. */
const TIMEOUT_MS = 3_000;

export async function healthcheck(options: Pick<ServerOptions, 'host' | 'port'>, path = '/healthz'): Promise<boolean> {
  // A server bound to every interface is reachable on loopback; a specific address, on that one.
  const host = options.host === '0.0.0.0' || options.host === '::' || options.host === '' ? '127.0.0.1' : options.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${options.port}${path}`;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    return response.ok;
  } catch {
    return false;
  }
}
