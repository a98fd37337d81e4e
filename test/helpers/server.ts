/** Starts a real server on 127.0.0.1 and port 0, with test-friendly options, and publishes to it. */
import { defaultOptions, type ServerOptions } from '../../src/config.js';
import { LOOPBACK_LIMITS } from './loopback-limits.js';
import { startServer, type RunningServer, type StartExtras } from '../../src/start.js';

export async function startTestServer(overrides: Partial<ServerOptions> = {}, extras: StartExtras = {}): Promise<RunningServer> {
  return startServer({ ...defaultOptions(), port: 0, host: '127.0.0.1', logLevel: 'silent', ...LOOPBACK_LIMITS, ...overrides }, { publicDir: false, ...extras });
}

export async function publish(baseUrl: string, messages: { channel: string; data: unknown }[]): Promise<string[]> {
  const response = await fetch(`${baseUrl}/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages }),
  });
  const body = (await response.json()) as { ids?: string[]; error?: unknown };
  if (response.status !== 201 || !body.ids) throw new Error(`publish failed: ${response.status} ${JSON.stringify(body)}`);
  return body.ids;
}
