/**
 * Delta-compressed streams on every transport, both formats: decoding every delta of a long stream
 * reproduces the full messages exactly, across random disconnects and resumes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/start.js';
import { DeltaDecoder } from '../helpers/delta-decoder.js';
import { PollTestClient } from '../helpers/poll-client.js';
import { publish, startTestServer } from '../helpers/server.js';
import { SseTestClient } from '../helpers/sse-client.js';
import type { ClientFactory, TestClient } from '../helpers/test-client.js';
import { WsTestClient } from '../helpers/ws-client.js';

const transports: Record<string, ClientFactory> = {
  sse: (url, channels, options) => new SseTestClient(url, channels, options),
  poll: (url, channels, options) => new PollTestClient(url, channels, options),
  ws: (url, channels, options) => new WsTestClient(url, channels, options),
};

/**
 * A vehicle record like a GTFS-realtime entity: most fields stay put between updates, the position
 * and time move, and now and then something structural changes (an alert appears or goes).
 */
function vehicle(id: number, step: number): Record<string, unknown> {
  return {
    id: `veh-${id}`,
    vehicle: { id: `V${4000 + id}`, label: `Bus ${100 + id}`, licensePlate: `EP-${id}0-XK`, wheelchairAccessible: 'WHEELCHAIR_ACCESSIBLE' },
    trip: { tripId: `T-${id}-0815`, routeId: `R${id % 7}`, directionId: id % 2, startTime: '08:15:00', startDate: '20261121', scheduleRelationship: 'SCHEDULED' },
    position: { latitude: 52.37 + id / 100 + step / 10_000, longitude: 4.89 - step / 20_000, bearing: 90, speed: 8.5 },
    currentStopSequence: 12 + Math.floor(step / 20),
    stopId: `S${12 + Math.floor(step / 20)}`,
    currentStatus: 'IN_TRANSIT_TO',
    congestionLevel: 'RUNNING_SMOOTHLY',
    occupancyStatus: step % 40 < 20 ? 'MANY_SEATS_AVAILABLE' : 'FEW_SEATS_AVAILABLE',
    ...(step % 50 < 5 ? { alert: 'détour ↺ via Prinsengracht' } : {}),
    timestamp: 1_700_000_000 + step,
  };
}

describe('delta streams', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startTestServer({ historySize: 1000 });
  });
  afterAll(async () => {
    await server.close();
  });

  for (const [transport, open] of Object.entries(transports)) {
    for (const format of ['json-patch', 'vcdiff']) {
      it(`${transport} with ${format}: every message decodes exactly, across disconnects`, async () => {
        const channels = [`delta/${transport}/${format}/1`, `delta/${transport}/${format}/2`];
        const decoder = new DeltaDecoder();
        const decoded: Record<string, unknown[]> = { [channels[0]!]: [], [channels[1]!]: [] };
        const expected: Record<string, unknown[]> = { [channels[0]!]: [], [channels[1]!]: [] };
        const total = 300;
        let client: TestClient = open(server.url, channels, { delta: format });
        await client.ready;
        let taken = 0;
        let seenOnConnection = new Set<string>();
        const firstsThatWereDeltas: string[] = [];
        const take = (): void => {
          for (const message of client.received.slice(taken)) {
            // The protocol promises a full message first on every (re)subscribe.
            if (!seenOnConnection.has(message.channel) && message.delta) firstsThatWereDeltas.push(message.id);
            seenOnConnection.add(message.channel);
            decoded[message.channel]!.push(decoder.apply(message));
          }
          taken = client.received.length;
        };
        let sent = 0;
        let reconnects = 0;
        while (sent < total) {
          const batch = Array.from({ length: 30 }, (_, i) => {
            const channel = channels[(sent + i) % 2] as string;
            const data = vehicle((sent + i) % 2, sent + i);
            expected[channel]!.push(data);
            return { channel, data };
          });
          await publish(server.url, batch);
          sent += batch.length;
          const target = decoded[channels[0]!]!.length + decoded[channels[1]!]!.length + taken * 0 + batch.length;
          await client.waitFor(() => client.received.length >= taken + batch.length || client.received.length + (sent - total) >= target, `batch up to ${sent}`);
          take();
          if ((sent / 30) % 3 === 1) {
            // Cut the connection and resume with the same decoder state, as a real client would.
            client.drop();
            client = open(server.url, channels, { delta: format, cursor: client.cursor as string });
            await client.ready;
            taken = 0;
            seenOnConnection = new Set();
            reconnects++;
          }
        }
        await client.waitFor(() => decoded[channels[0]!]!.length + decoded[channels[1]!]!.length + client.received.length - taken >= total, 'all messages');
        take();
        client.drop();
        expect(reconnects).toBeGreaterThan(2);
        expect(decoded[channels[0]!]).toEqual(expected[channels[0]!]);
        expect(decoded[channels[1]!]).toEqual(expected[channels[1]!]);
        // Deltas were really used, and every (re)subscribe started with a full message.
        expect(firstsThatWereDeltas).toEqual([]);
        // Deltas were really used (long-poll only within one reply, so fewer there).
        expect(decoder.deltas).toBeGreaterThan(transport === 'poll' ? total / 4 : total / 2);
      });
    }
  }

  it('sends the full message when the delta would not be smaller', async () => {
    const client = new WsTestClient(server.url, ['delta/small'], { delta: 'json-patch' });
    await client.ready;
    await publish(server.url, [{ channel: 'delta/small', data: 1 }, { channel: 'delta/small', data: 2 }, { channel: 'delta/small', data: { a: 1 } }]);
    await client.waitFor(() => client.received.length === 3, '3 messages');
    expect(client.received.map((m) => m.delta)).toEqual([undefined, undefined, undefined]);
    client.drop();
  });

  it('refuses an unknown delta format with a precise error', async () => {
    const response = await fetch(`${server.url}/v1/poll?channel=a&delta=zstd`);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(/json-patch, vcdiff/);
  });
});
