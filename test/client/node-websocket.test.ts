/**
 * The client in Node with no WebSocket option: Node 22+ has a global WebSocket, and the client must
 * find it on its own, as in a browser. The option stays for injecting another implementation.
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgePush } from '../../src/client/index.js';
import type { RunningServer } from '../../src/start.js';
import { ClientWatch } from '../helpers/client-watch.js';
import { publish, startTestServer } from '../helpers/server.js';

describe('client library in Node: WebSocket', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer({ heartbeatInterval: 0.2 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('uses the global WebSocket when given no options at all', async () => {
    expect(typeof globalThis.WebSocket).toBe('function');
    const client = new EdgePush(server.url);
    const watch = new ClientWatch(client);
    client.subscribe('node/global', watch.handler);
    await watch.waitFor(() => watch.connections >= 1, 'the first connection');
    expect(client.transport).toBe('ws');
    await publish(server.url, [{ channel: 'node/global', data: { hello: 'node' } }]);
    await watch.waitFor(() => watch.messages.length >= 1, 'the message');
    expect(watch.dataOf('node/global')).toEqual([{ hello: 'node' }]);
    expect(watch.states.map((s) => s.transport)).not.toContain('sse');
    client.close();
  });

  it('uses an injected WebSocket class instead of the global one', async () => {
    const made: string[] = [];
    class Counted extends WebSocket {
      constructor(url: string) {
        super(url);
        made.push(url);
      }
    }
    const client = new EdgePush(server.url, { transports: ['ws'], WebSocket: Counted as never, rememberTransport: false });
    const watch = new ClientWatch(client);
    client.subscribe('node/injected', watch.handler);
    await watch.waitFor(() => watch.connections >= 1, 'the first connection');
    await publish(server.url, [{ channel: 'node/injected', data: 1 }]);
    await watch.waitFor(() => watch.messages.length >= 1, 'the message');
    expect(made).toEqual([`${server.url.replace(/^http/, 'ws')}/v1/ws`]);
    client.close();
  });
});
