/**
 * Graceful drain: how the HTTP server closes. fastify's close stops the listener (new connections
 * are refused, and a request on a kept-alive one gets 503, /readyz included), runs the shutdown
 * hooks that tell every client to reconnect elsewhere with its cursor (SSE `disconnect`, WebSocket
 * close 4001, held long-polls answered, MQTT DISCONNECT), and waits for the connections to go.
 * Those still open when the timeout passes (a peer that never answers a close frame, a request in
 * flight) are cut, so a shutdown always ends within the time an orchestrator grants it.
 */
import type { FastifyInstance } from 'fastify';

export async function drain(app: FastifyInstance, timeoutMs: number): Promise<void> {
  const closed = app.close();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)));
  const timedOut = await Promise.race([closed.then(() => false), late]);
  clearTimeout(timer);
  if (!timedOut) return;
  app.log.warn(`drain timeout (${timeoutMs / 1000} s) passed: closing the connections still open`);
  for (const client of app.websocketServer.clients) client.terminate();
  app.server.closeAllConnections();
  await closed;
}
