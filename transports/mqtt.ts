/**
 * `GET /mqtt`: MQTT 3.1.1 and 5 over WebSocket (subprotocol `mqtt`, or `mqttv3.1`), for MQTT.js
 * and other MQTT clients (docs/mqtt.md). The upgrade is checked like `/v1/ws` (the address's
 * limits, the page's origin); the connection is an MqttConnection.
 */
import type { FastifyInstance } from 'fastify';
import type WebSocket from 'ws';
import type { TransportContext } from './context.js';
import { MqttConnection } from './mqtt-connection.js';
import { upgradeGuard } from './upgrade-guard.js';
import { MqttSessions } from './mqtt-sessions.js';
import type { ControlLog } from '../src/log/control.js';
import { forgetUpgradeRequest } from './http-detach.js';
import { onWebSocketError } from './protocol-errors.js';

/** The WebSocket subprotocols an MQTT client offers; the first one offered that we speak is chosen. */
export function chooseSubprotocol(offered: ReadonlySet<string>): string | false {
  for (const protocol of offered) if (protocol === 'mqtt' || protocol === 'mqttv3.1') return protocol;
  return false;
}

export function registerMqtt(app: FastifyInstance, ctx: TransportContext, control: ControlLog): void {
  const connections = new Set<MqttConnection>();
  const sessions = new MqttSessions(control);
  ctx.onShutdown(() => {
    for (const connection of connections) connection.serverDisconnect(0, 'the server is shutting down: reconnect');
  });
  const guard = upgradeGuard(ctx, 'GET /mqtt is an MQTT-over-WebSocket endpoint: connect with an MQTT client (subprotocol "mqtt")');
  app.route({
    method: 'GET',
    url: '/mqtt',
    exposeHeadRoute: false,
    preHandler: guard.preHandler,
    handler: guard.handler,
    wsHandler: (socket: WebSocket, request) => {
      const release = guard.releaseOf(request);
      forgetUpgradeRequest(socket, request.raw.socket, (error) => onWebSocketError(ctx, error, socket));
      const connection = new MqttConnection(socket, ctx, sessions, () => {
        connections.delete(connection);
        release();
        ctx.metrics.connectionClosed('mqtt');
      });
      connections.add(connection);
      ctx.metrics.connectionOpened('mqtt');
      socket.on('message', (data: Buffer, isBinary: boolean) => connection.onFrame(data, isBinary));
      socket.on('error', (error) => ctx.log.debug({ err: error }, 'mqtt socket error'));
      socket.on('close', () => connection.closed());
    },
  });
}
