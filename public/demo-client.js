// A small edgepush client for the demo page: one subscription over WebSocket, SSE or long-poll,
// resuming from its cursor after every reconnect. The full client library (automatic fallback,
// deltas, backoff with jitter) is docs/client.md's subject; this is the minimum that is exact.

/**
 * @param {object} options
 * @param {string} options.baseUrl   e.g. location.origin
 * @param {string[]} options.channels
 * @param {'ws'|'sse'|'poll'} options.transport
 * @param {(message: {channel: string, id: string, ts: number, data: unknown}) => void} options.onMessage
 * @param {(status: {state: string, cursor?: string, reset?: object}) => void} [options.onStatus]
 * @param {string} [options.cursor]  resume from here
 */
export function subscribe({ baseUrl, channels, transport, onMessage, onStatus = () => {}, cursor }) {
  let closed = false;
  let stopCurrent = () => {};
  const status = (state, extra = {}) => onStatus({ state, cursor, ...extra });
  const advance = (next) => {
    if (next) cursor = next;
  };
  const query = () => channels.map((c) => `channel=${encodeURIComponent(c)}`).join('&');

  const reconnectLater = () => {
    if (closed) return;
    status('reconnecting');
    const timer = setTimeout(start, 1000 + Math.random() * 1000);
    stopCurrent = () => clearTimeout(timer);
  };

  function startWebSocket() {
    const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/v1/ws`);
    socket.onopen = () => {
      for (const channel of channels) socket.send(JSON.stringify({ op: 'subscribe', channel, ...(cursor ? { cursor } : {}) }));
    };
    socket.onmessage = (event) => {
      const op = JSON.parse(event.data);
      if (op.op === 'message') {
        const { op: _op, cursor: next, ...message } = op;
        advance(next);
        onMessage(message);
        status('live');
      } else if (op.op === 'subscribed') {
        advance(op.cursor);
        status('live');
      } else if (op.op === 'reset') {
        status('live', { reset: op });
      }
    };
    socket.onclose = reconnectLater;
    stopCurrent = () => {
      socket.onclose = null;
      socket.close();
    };
  }

  function startSse() {
    // EventSource reconnects by itself and sends Last-Event-ID; the query cursor covers the first connect.
    const source = new EventSource(`${baseUrl}/v1/sse?${query()}${cursor ? `&lastEventId=${encodeURIComponent(cursor)}` : ''}`);
    source.onmessage = (event) => {
      advance(event.lastEventId);
      onMessage(JSON.parse(event.data));
      status('live');
    };
    source.addEventListener('reset', (event) => status('live', { reset: JSON.parse(event.data) }));
    source.onopen = () => status('live');
    source.onerror = () => status(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
    stopCurrent = () => source.close();
  }

  function startPoll() {
    const controller = new AbortController();
    stopCurrent = () => controller.abort();
    (async () => {
      while (!closed) {
        const response = await fetch(`${baseUrl}/v1/poll?${query()}&timeout=25${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { signal: controller.signal });
        if (!response.ok) throw new Error(`poll answered ${response.status}`);
        const body = await response.json();
        for (const reset of body.resets ?? []) status('live', { reset });
        for (const message of body.messages) onMessage(message);
        advance(body.cursor);
        status('live');
      }
    })().catch(() => reconnectLater());
  }

  function start() {
    if (closed) return;
    status('connecting');
    if (transport === 'ws') startWebSocket();
    else if (transport === 'sse') startSse();
    else startPoll();
  }

  start();
  return {
    get cursor() {
      return cursor;
    },
    close() {
      closed = true;
      stopCurrent();
      status('closed');
    },
  };
}
