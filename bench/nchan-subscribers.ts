/**
 * Subscribers that speak nginx + Nchan's protocols, for the load generator when bench/peers.ts
 * measures Nchan: the same three transports as edgepush's, on the locations bench/nchan-server.ts
 * configures (`/sse/<channel>`, `/ws/<channel>`, `/poll/<channel>`).
 *
 * A Nchan message is the published body alone, with no envelope: the payload's seq and sentAt are
 * read with Tally.scanData, and each connection carries one channel, the one in its URL.
 */
import http from 'node:http';
import WebSocket, { type RawData } from 'ws';
import type { Transport } from './ipc.js';
import type { Opener } from './load-client.js';
import type { Subscriber, Tally } from './tally.js';

const MAX_POLL_RETRIES = 5;
const SSE_DATA = '\ndata: ';

/** What the openers share with the load generator. */
export interface NchanContext {
  /** One socket per SSE stream. */
  readonly streamAgent: http.Agent;
  /** Keep-alive sockets, reused by each poller's next request. */
  readonly pollAgent: http.Agent;
  /** True once the load generator tears everything down: errors are expected from then on. */
  stopping(): boolean;
}

export function nchanOpeners(ctx: NchanContext): Partial<Record<Transport, Opener>> {
  return { sse: openSse(ctx), ws: openWs(ctx), poll: openPoll(ctx) };
}

/**
 * EventSource: open once the response headers arrive (with a `: hi` comment); peers.ts then waits
 * for Nchan's own subscriber count. Events are `id: <time>:<tag>\ndata: <payload>\n\n`.
 */
function openSse(ctx: NchanContext): Opener {
  return (cmd, sub, t) =>
    new Promise((resolve, reject) => {
      const req = http.get(`${cmd.baseUrl}/sse/${sub.channel}`, { agent: ctx.streamAgent, headers: { accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`nchan sse: HTTP ${res.statusCode}`));
          return;
        }
        res.setEncoding('utf8');
        let buffer = '';
        res.on('data', (chunk: string) => {
          buffer += chunk;
          let start = 0;
          let end: number;
          while ((end = buffer.indexOf('\n\n', start)) !== -1) {
            const data = buffer.indexOf(SSE_DATA, start);
            if (data !== -1 && data < end) t.scanData(sub, true, buffer, data + SSE_DATA.length, end);
            start = end + 2;
          }
          buffer = start === 0 ? buffer : buffer.slice(start);
        });
        res.on('close', () => {
          if (!ctx.stopping()) t.disconnects++;
        });
        resolve({ close: () => req.destroy() });
      });
      req.on('error', (error) => {
        if (!ctx.stopping()) reject(error);
      });
    });
}

/** WebSocket: one text frame per message, carrying the payload as published. */
function openWs(ctx: NchanContext): Opener {
  return (cmd, sub, t) =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(`${cmd.baseUrl.replace('http', 'ws')}/ws/${sub.channel}`, { perMessageDeflate: false });
      socket.on('open', () => resolve({ close: () => socket.terminate() }));
      // Text frames arrive as one Buffer (binaryType 'nodebuffer').
      socket.on('message', (data: RawData) => t.scanData(sub, true, (data as Buffer).toString('utf8')));
      socket.on('close', () => {
        if (!ctx.stopping()) t.disconnects++;
      });
      socket.on('error', (error) => {
        if (!ctx.stopping()) reject(error);
      });
    });
}

interface PollReply {
  contentType: string;
  lastModified: string | undefined;
  etag: string | undefined;
  body: string;
}

/**
 * Long-poll: each request waits for the messages after the position given by `If-Modified-Since`
 * and `If-None-Match` (the previous reply's `Last-Modified` and `Etag`); the first, with neither,
 * starts at the channel's oldest message (`nchan_subscriber_first_message oldest`). A poller counts
 * as open once its first request is written: nothing answers it until a message is published, so
 * peers.ts confirms the subscription with Nchan's own subscriber count instead.
 */
function openPoll(ctx: NchanContext): Opener {
  return (cmd, sub, t) =>
    new Promise((resolve, reject) => {
      const url = `${cmd.baseUrl}/poll/${sub.channel}`;
      let current: http.ClientRequest | undefined;
      let open = false;
      const track = (req: http.ClientRequest): void => {
        current = req;
        if (open) return;
        req.once('finish', () => {
          open = true;
          resolve({ close: () => current?.destroy() });
        });
      };
      const loop = async (): Promise<void> => {
        const headers: Record<string, string> = {};
        let retries = 0;
        // Bounded: ends when the bench stops (every request is aborted then) or retries run out.
        while (!ctx.stopping()) {
          let reply: PollReply;
          try {
            reply = await poll(url, headers, ctx.pollAgent, track);
          } catch (error) {
            if (ctx.stopping()) return;
            if (!open) return reject(error);
            t.pollRetries++;
            if (++retries > MAX_POLL_RETRIES) {
              t.disconnects++;
              process.stderr.write(`load-client: nchan poller on ${sub.channel} gave up: ${(error as Error).message}\n`);
              return;
            }
            await new Promise((resolve) => setTimeout(resolve, 50));
            continue;
          }
          retries = 0;
          t.pollReplies++;
          scanPollReply(sub, t, reply);
          if (reply.lastModified === undefined || reply.etag === undefined) {
            t.disconnects++;
            process.stderr.write(`load-client: nchan poll reply on ${sub.channel} without Last-Modified and Etag\n`);
            return;
          }
          headers['if-modified-since'] = reply.lastModified;
          headers['if-none-match'] = reply.etag;
        }
      };
      void loop();
    });
}

function poll(url: string, headers: Record<string, string>, agent: http.Agent, onRequest: (req: http.ClientRequest) => void): Promise<PollReply> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`nchan poll: HTTP ${res.statusCode} ${body.slice(0, 200)}`));
        resolve({ contentType: res.headers['content-type'] ?? '', lastModified: res.headers['last-modified'], etag: res.headers.etag, body });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    onRequest(req);
  });
}

const BOUNDARY = /^multipart\/mixed; boundary=(.+)$/;

/**
 * One message is sent as it was published; several (`nchan_longpoll_multipart_response on`) as
 * multipart/mixed: `--B\r\n[Content-Type: …\r\n]\r\n<payload>\r\n` per message, then `--B--\r\n`.
 */
function scanPollReply(sub: Subscriber, t: Tally, reply: PollReply): void {
  const boundary = BOUNDARY.exec(reply.contentType)?.[1];
  if (boundary === undefined) {
    t.scanData(sub, true, reply.body);
    return;
  }
  const { body } = reply;
  const delimiter = `--${boundary}`;
  if (!body.startsWith(delimiter)) {
    t.unexpected++;
    return;
  }
  // `at` is where a delimiter line starts; the closing one ends in `--`.
  for (let at = 0; !body.startsWith('--', at + delimiter.length); ) {
    const headersEnd = body.indexOf('\r\n\r\n', at + delimiter.length);
    const next = headersEnd === -1 ? -1 : body.indexOf(`\r\n${delimiter}`, headersEnd + 4);
    if (next === -1) {
      t.unexpected++;
      return;
    }
    t.scanData(sub, true, body, headersEnd + 4, next);
    at = next + 2;
  }
}
