/**
 * One MQTT client over a WebSocket (docs/mqtt.md): CONNECT with the JWT as password, SUBSCRIBE to
 * channels and patterns through the same subscribe path and entitlement check as every transport,
 * delivery at QoS 0 or 1 (an in-flight window, PUBACKs), retained snapshots at subscribe, client
 * PUBLISH into the log with PUBACK after the log's acknowledgement, keepalive.
 *
 * Packets are parsed by mqtt-packet's streaming parser (several per frame, or one across frames);
 * PUBLISH bytes come shared from src/protocol/mqtt-frames.ts. Nothing here knows about Kafka.
 */
import mqttPacket, { type IConnectPacket, type IPublishPacket, type ISubscribePacket, type IUnsubscribePacket, type Packet } from 'mqtt-packet';
import type WebSocket from 'ws';
import { SERVER_IDENTITY, type Identity } from '../src/auth/identity.js';
import { TokenError } from '../src/auth/token-verifier.js';
import type { PreparedMessage, WireFormat } from '../src/engine/prepared-message.js';
import { defineWireFormat } from '../src/engine/prepared-message.js';
import { Session, type SessionSink, type Subscription } from '../src/engine/session.js';
import { DISCONNECTS, PushError, type Disconnect } from '../src/errors.js';
import { subscriptionProblem } from '../src/protocol/channel-filter.js';
import { CONNACK, REASON, SUBACK_FAILURE, payloadBytes, publishTemplate, withPacketId, type MqttVersion, type PublishShape, type PublishTemplate } from '../src/protocol/mqtt-frames.js';
import { burstFor, TokenBucket } from '../src/limits/token-bucket.js';
import type { TransportContext } from './context.js';
import { newSessionId, type ControllableConnection } from './connection-registry.js';
import { toPushError } from './http-errors.js';
import type { TurnOutbox } from './turn-outbox.js';
import { webSocketOutbox } from './websocket-outbox.js';
import { binaryFrameHeader } from './websocket-format.js';
import type { MqttSessions } from './mqtt-sessions.js';
import type { Frontier } from '../src/log/position.js';
import type { MqttSessionState } from '../src/log/control.js';

/** MQTT delivery never goes through a byte format: writeMessage frames each message. */
const MQTT_UNUSED_FORMAT: WireFormat = defineWireFormat('mqtt', () => Buffer.alloc(0));

/** How long a 3.1.1 persistent session (clean=false) lives after its client leaves; MQTT 5 says its own. */
const DEFAULT_SESSION_EXPIRY_S = 86_400;
/** The longest a session is kept, whatever the client asks (MQTT 5 0xFFFFFFFF means "never"). */
const MAX_SESSION_EXPIRY_S = 7 * 86_400;
/** Saves of a session's state are at most this frequent (and always at the end). */
const SAVE_DELAY_MS = 250;

/** In-flight QoS 1 messages when the client names no Receive Maximum (3.1.1 has none). */
const DEFAULT_IN_FLIGHT = 100;

/** One shared template per delivery shape, as memo keys on each message. */
const SHAPES: Record<string, PublishShape> = {};
function shapeKey(shape: PublishShape): PublishShape {
  const key = `${shape.version}${shape.qos}${shape.retain ? 'r' : ''}`;
  return (SHAPES[key] ??= shape);
}

type Phase = 'connecting' | 'connected' | 'closed';

export class MqttConnection implements SessionSink, ControllableConnection {
  readonly format = MQTT_UNUSED_FORMAT;
  /** One stream: a message that two of the client's filters match is delivered once. */
  readonly streamPerSubscription = false;
  readonly sessionId = newSessionId();
  readonly transport = 'mqtt';
  /** When the socket opened (ms), for the status page. */
  readonly connectedAt = Date.now();
  readonly session: Session;
  identity: Identity;
  #phase: Phase = 'connecting';
  #version: MqttVersion = 4;
  readonly #parser: ReturnType<typeof mqttPacket.parser>;
  /** Granted QoS per filter. */
  readonly #qos = new Map<string, 0 | 1>();
  #nextId = 1;
  /** QoS 1 deliveries awaiting PUBACK, by packet id. */
  readonly #inFlight = new Map<number, Buffer>();
  #maxInFlight = DEFAULT_IN_FLIGHT;
  /** QoS 1 deliveries waiting for room in the window (bounded by the outbox limit, see bufferedAmount). */
  readonly #queue: Buffer[] = [];
  #queuedBytes = 0;
  #keepalive: NodeJS.Timeout | undefined;
  #keepaliveMs = 0;
  readonly #ops: TokenBucket;
  /** The parser holds no part of a packet (a frame may then be read on its own). */
  #parserIdle = true;
  /** Packets of this connection run one after another (a SUBSCRIBE's retained messages before the next packet's effects). */
  #chain: Promise<void> = Promise.resolve();
  // A persistent session: its client id, how long it outlives the connection, and its position.
  #clientId = '';
  #persistent = false;
  #expiryMs = 0;
  /** Messages sent and not yet in the cursor, in order: QoS 1 until PUBACKed (packetId), QoS 0 (0) behind one. */
  readonly #unsettled: { frontier: Frontier; packetId: number }[] = [];
  /** Everything up to here was delivered (QoS 0) or acknowledged (QoS 1). */
  #cursor: Frontier | undefined;
  #sentThrough: Frontier | undefined;
  /** Messages up to here were sent to an earlier connection of this session: resent with DUP. */
  #dupThrough: Frontier | undefined;
  #saveTimer: NodeJS.Timeout | undefined;
  /** This turn's packets go out in one write (see turn-outbox.ts), each in its own binary frame. */
  readonly #outbox: TurnOutbox;

  constructor(
    private readonly socket: WebSocket,
    private readonly ctx: TransportContext,
    private readonly sessions: MqttSessions,
    private readonly onClosed: () => void,
  ) {
    this.identity = ctx.auth.anonymous;
    this.session = new Session(ctx.engine, this, { maxBufferedBytes: ctx.options.maxBufferedBytes });
    this.#ops = new TokenBucket(ctx.options.opRate, burstFor(ctx.options.opRate));
    this.#outbox = webSocketOutbox(socket, ctx.options.tcpNoDelay, () => this.session.drained());
    this.#parser = mqttPacket.parser({ protocolVersion: 5 });
    this.#parser.on('packet', (packet: Packet) => this.#enqueue(packet));
    this.#parser.on('error', (error: Error) => this.#protocolError(`malformed packet: ${error.message}`));
    // The first packet must be a CONNECT, in time.
    this.#armKeepalive(ctx.options.authTimeout * 1000);
  }

  get user(): string | undefined {
    return this.identity.user;
  }

  get bufferedAmount(): number {
    return this.#outbox.bufferedAmount + this.#queuedBytes;
  }

  /** A WebSocket frame of the client's: any number of packets, or part of one. */
  onFrame(data: Buffer, isBinary: boolean): void {
    if (this.#phase === 'closed') return;
    if (!isBinary) return this.#protocolError('MQTT packets travel in binary frames');
    this.#armKeepalive(this.#keepaliveMs);
    // The common case at QoS 1, a frame holding one plain PUBACK, skips the general parser.
    if (this.#parserIdle && data.length === 4 && data[0] === 0x40 && data[1] === 0x02 && this.#phase === 'connected') {
      if (this.#ops.take()) this.#acked(data.readUInt16BE(2));
      else this.#close(REASON.quotaExceeded, 'over the packet rate limit');
      return;
    }
    this.#parserIdle = this.#parser.parse(data) === 0;
    // A remaining length the server would never accept: refuse before buffering it.
    const pending = (this.#parser as unknown as { packet?: { length?: number } }).packet?.length ?? 0;
    if (pending > this.#maxPacketBytes) this.#protocolError(`a packet of ${pending} bytes is over the limit of ${this.#maxPacketBytes}`, REASON.packetTooLarge);
  }

  get #maxPacketBytes(): number {
    return 2 * this.ctx.options.maxMessageBytes + 4096;
  }

  #enqueue(packet: Packet): void {
    this.#chain = this.#chain.then(() => this.#handle(packet)).catch((error: unknown) => {
      this.ctx.logError(error, 'mqtt packet failed');
      this.#close(REASON.unspecified);
    });
  }

  async #handle(packet: Packet): Promise<void> {
    if (this.#phase === 'closed') return;
    if (this.#phase === 'connecting') {
      if (packet.cmd !== 'connect') return this.#protocolError('the first packet must be CONNECT');
      return this.#connect(packet);
    }
    if (!this.#ops.take()) return this.#close(REASON.quotaExceeded, 'over the packet rate limit');
    switch (packet.cmd) {
      case 'subscribe':
        return (packet as { server?: boolean }).server ? this.#serverSubscribe(packet) : this.#subscribe(packet);
      case 'unsubscribe':
        return this.#unsubscribe(packet);
      case 'publish':
        return this.#publish(packet);
      case 'puback':
        return this.#acked(packet.messageId ?? 0);
      case 'pingreq':
        return this.#send({ cmd: 'pingresp' });
      case 'disconnect':
        // The session's last state is saved before the connection goes, so another node has it.
        if (this.#persistent) await this.#save().catch(() => {});
        return this.#close(undefined);
      case 'connect':
        return this.#protocolError('a second CONNECT');
      default:
        return this.#protocolError(`${packet.cmd} is not supported (QoS 2 and AUTH are not)`);
    }
  }

  async #connect(packet: IConnectPacket): Promise<void> {
    const version = packet.protocolVersion;
    if (version !== 4 && version !== 5) {
      // 3.1 (MQIsdp) and others: answered in 3.1.1's terms, then closed.
      this.#version = 4;
      this.#send({ cmd: 'connack', returnCode: CONNACK.badProtocol[4], sessionPresent: false });
      return this.#close(undefined);
    }
    this.#version = version;
    const password = packet.password?.toString('utf8');
    try {
      this.identity = await this.ctx.auth.identify(password === undefined || password === '' ? undefined : password);
    } catch (error) {
      const code = toPushError(error).code === 'unavailable' ? CONNACK.unavailable : CONNACK.badCredentials;
      this.ctx.metrics.auth('refused', error instanceof TokenError && error.expired ? 'expired' : 'mqtt');
      this.#connack(code[version]);
      return this.#close(undefined);
    }
    if (this.#phase === 'closed') return;
    // Anonymous with no caps may do nothing at all: say so at once.
    if (this.identity.kind === 'anonymous' && this.identity.grants.length === 0) {
      this.ctx.metrics.auth('refused', 'mqtt');
      this.#connack(CONNACK.notAuthorized[version]);
      return this.#close(undefined);
    }
    this.#clientId = packet.clientId ?? '';
    const expiry = version === 5 ? (packet.properties?.sessionExpiryInterval ?? 0) : packet.clean === false ? DEFAULT_SESSION_EXPIRY_S : 0;
    this.#persistent = expiry > 0;
    this.#expiryMs = Math.min(expiry, MAX_SESSION_EXPIRY_S) * 1000;
    if (this.#persistent && this.#clientId === '') {
      this.#connack(CONNACK.badClientId[version]);
      return this.#close(undefined);
    }
    const stored = this.#persistent ? await this.sessions.load(this.#clientId) : undefined;
    // Someone else's session under the same client id is not this client's to resume.
    const state = stored !== undefined && stored.user === this.identity.user ? stored : undefined;
    if (!this.#persistent && this.#clientId !== '' && this.sessions.has(this.#clientId)) void this.sessions.save(this.#clientId, null).catch(() => {});
    if ((this.#phase as Phase) === 'closed') return; // the socket went while the session was looked up
    this.#phase = 'connected';
    this.#maxInFlight = Math.max(1, Math.min(packet.properties?.receiveMaximum ?? DEFAULT_IN_FLIGHT, 65_535));
    this.#keepaliveMs = (packet.keepalive ?? 0) * 1500;
    this.#armKeepalive(this.#keepaliveMs);
    this.ctx.registry.add(this);
    this.ctx.metrics.auth('ok', 'mqtt');
    this.#connack(CONNACK.accepted[version], state !== undefined);
    if (state) await this.#resume(state);
  }

  /**
   * Picks a persistent session up where it stopped, on whichever node saved it: its subscriptions
   * (those the token still grants), and every message after its cursor, exactly once, in order.
   */
  async #resume(state: MqttSessionState): Promise<void> {
    const from = this.ctx.resumer.resumePoint(state.cursor);
    if (from.kind === 'cursor') this.#cursor = from.cursor;
    const sent = this.ctx.resumer.resumePoint(state.sentThrough);
    if (sent.kind === 'cursor') this.#dupThrough = sent.cursor;
    const topics: string[] = [];
    for (const { topic, qos } of state.filters) {
      try {
        this.ctx.resumer.checkSubscribe(this.identity, [topic], topics);
      } catch {
        continue; // no longer granted: dropped from the session
      }
      this.#qos.set(topic, qos);
      topics.push(topic);
    }
    if (topics.length === 0) return;
    const plan = await this.ctx.resumer.subscribe(this.identity, this.session, topics, from, null, this.identity.rate ? { maxRate: this.identity.rate } : {});
    if (!plan || this.session.closed) return;
    // MQTT cannot tell a client what is gone (a reset): what is held follows. The loss is counted
    // where every transport's is (edgepush_resume_resets_total, by the resumer); the client sent
    // nothing wrong, so it is no bad input.
    this.session.replayFromLog(plan.fromLog);
    this.session.replay(plan.backlog);
    this.session.release();
    this.#scheduleSave();
  }

  #connack(code: number, sessionPresent = false): void {
    if (this.#version === 5) this.#send({ cmd: 'connack', reasonCode: code, sessionPresent, properties: { receiveMaximum: 65_535, retainAvailable: true, wildcardSubscriptionAvailable: true, sharedSubscriptionAvailable: false, maximumQoS: 1, maximumPacketSize: this.#maxPacketBytes } });
    else this.#send({ cmd: 'connack', returnCode: code, sessionPresent });
  }

  /** A SUBSCRIBE (or a backend's server-API subscribe: `ack` false, no SUBACK the client did not ask for). */
  async #subscribe(packet: ISubscribePacket, ack = true): Promise<void> {
    const granted: number[] = [];
    const accepted: { topic: string; retained: boolean }[] = [];
    const held = this.session.channels();
    for (const { topic, qos, rh } of packet.subscriptions) {
      const problem = subscriptionProblem(topic);
      if (problem) {
        granted.push(SUBACK_FAILURE.badFilter[this.#version]);
        continue;
      }
      try {
        this.ctx.resumer.checkSubscribe(this.identity, [topic], held.filter((channel) => channel !== topic));
      } catch (error) {
        const code = toPushError(error).code;
        granted.push(code === 'too_many_channels' ? SUBACK_FAILURE.quotaExceeded[this.#version] : code === 'bad_channel' ? SUBACK_FAILURE.badFilter[this.#version] : SUBACK_FAILURE.notAuthorized[this.#version]);
        continue;
      }
      // Counted with this SUBSCRIBE's earlier filters, which are not subscribed yet.
      if (!held.includes(topic) && held.length >= this.ctx.options.maxChannelsPerSubscription) {
        granted.push(SUBACK_FAILURE.quotaExceeded[this.#version]);
        continue;
      }
      const level = qos >= 1 ? 1 : 0;
      // MQTT 5 Retain Handling: 0 send retained messages, 1 only for a new subscription, 2 never.
      const retain = rh === 2 ? false : rh === 1 ? !this.session.has(topic) : true;
      this.#qos.set(topic, level);
      granted.push(level);
      if (!held.includes(topic)) held.push(topic);
      accepted.push({ topic, retained: retain });
    }
    // Registered (held) before the SUBACK goes out, so that nothing published after the client
    // sees its SUBACK can be missed; the retained snapshot and anything held follow the SUBACK.
    const plans = accepted.map(({ topic, retained }) =>
      this.ctx.resumer.subscribe(this.identity, this.session, [topic], { kind: 'now' }, null, {
        ...(retained ? { snapshot: 'latest' as const } : {}),
        ...(this.identity.rate ? { maxRate: this.identity.rate } : {}),
      }),
    );
    if (ack) this.#send(this.#version === 5 ? { cmd: 'suback', messageId: packet.messageId, granted, properties: {} } : { cmd: 'suback', messageId: packet.messageId, granted });
    for (const [i, planned] of plans.entries()) {
      const plan = await planned;
      if (!plan || this.session.closed) return;
      // A persistent session's position starts where its first subscription did.
      if (this.#persistent && this.#cursor === undefined) this.#cursor = plan.startCursor;
      this.session.replaySnapshot(plan.snapshot, plan.startCursor, [(accepted[i] as { topic: string }).topic]);
    }
    this.session.release();
    if (accepted.length > 0) this.#scheduleSave();
  }

  async #serverSubscribe(packet: ISubscribePacket): Promise<void> {
    const topic = packet.subscriptions[0]?.topic;
    if (topic === undefined) return;
    this.#qos.set(topic, 0);
    const plan = await this.ctx.resumer.subscribe(SERVER_IDENTITY, this.session, [topic], { kind: 'now' }, null);
    if (!plan || this.session.closed) return;
    this.session.release();
  }

  #unsubscribe(packet: IUnsubscribePacket): void {
    for (const topic of packet.unsubscriptions) {
      this.session.unsubscribe(topic);
      this.#qos.delete(topic);
    }
    this.#scheduleSave();
    // 3.1.1's UNSUBACK carries no codes (mqtt-packet ignores `granted` for it).
    this.#send({ cmd: 'unsuback', messageId: packet.messageId, granted: packet.unsubscriptions.map(() => 0), ...(this.#version === 5 ? { properties: {} } : {}) });
  }

  async #publish(packet: IPublishPacket): Promise<void> {
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const data = dataOf(payload);
    try {
      const client = this.identity.kind === 'user' ? this.identity.scope : `mqtt:${this.sessionId}`;
      await this.ctx.publisher.publish(this.identity, [{ channel: packet.topic, data }], undefined, () => this.ctx.guard.publish(client, 1));
    } catch (error) {
      const pushError = toPushError(error);
      const reason =
        pushError.code === 'forbidden' || pushError.code === 'unauthorized' || pushError.code === 'publish_disabled' ? REASON.notAuthorized
        : pushError.code === 'bad_channel' ? REASON.topicNameInvalid
        : pushError.code === 'rate_limited' ? REASON.quotaExceeded
        : pushError.code === 'message_too_large' ? REASON.packetTooLarge
        : REASON.unspecified;
      // 3.1.1 cannot say no to a PUBLISH: the connection closes. 5 says why on the PUBACK.
      if (this.#version === 5 && packet.qos === 1) return this.#send({ cmd: 'puback', messageId: packet.messageId, reasonCode: reason });
      return this.#close(reason, pushError.message);
    }
    // Acknowledged once the log has it.
    if (packet.qos >= 1) this.#send({ cmd: 'puback', messageId: packet.messageId });
  }

  /** The session's delivery of one message: shared PUBLISH bytes, a packet id for QoS 1. */
  writeMessage(subscription: Subscription, message: PreparedMessage, snapshot: boolean): void {
    if (this.#phase !== 'connected') return;
    const qos = this.#qos.get(subscription.channel) ?? 0;
    const template = message.memo(shapeKey({ version: this.#version, qos, retain: snapshot }), (): PublishTemplate => publishTemplate(message.channel, payloadBytes(message.payload), { version: this.#version, qos, retain: snapshot }));
    const packetId = qos === 0 ? 0 : this.#takeId();
    if (this.#persistent && !snapshot) this.#sent(message.frontier, packetId);
    if (qos === 0) return this.#out(template.bytes);
    const dup = this.#dupThrough !== undefined && message.isCoveredBy(this.#dupThrough);
    const bytes = withPacketId(template, packetId, dup);
    if (this.#inFlight.size < this.#maxInFlight) {
      this.#inFlight.set(packetId, bytes);
      this.#out(bytes);
    } else {
      // Over the client's window: wait for PUBACKs, counted against the outbox like unsent bytes.
      this.#queue.push(bytes);
      this.#queuedBytes += bytes.length;
    }
  }

  #acked(packetId: number): void {
    if (!this.#inFlight.delete(packetId)) return;
    if (this.#persistent) this.#settle(packetId);
    const next = this.#queue.shift();
    if (!next) return;
    this.#queuedBytes -= next.length;
    this.#inFlight.set(next.readUInt16BE(idOffsetOf(next)), next);
    this.#out(next);
  }

  /** A message went out: its position joins the cursor now (QoS 0, nothing unacknowledged before it) or once settled. */
  #sent(frontier: Frontier, packetId: number): void {
    this.#sentThrough = this.#sentThrough ? this.#sentThrough.max(frontier) : frontier;
    if (packetId === 0 && this.#unsettled.length === 0) this.#cursor = this.#cursor ? this.#cursor.max(frontier) : frontier;
    else this.#unsettled.push({ frontier, packetId });
    this.#scheduleSave();
  }

  /** A PUBACK: the cursor moves over every message sent before the first still unacknowledged one. */
  #settle(packetId: number): void {
    const entry = this.#unsettled.find((e) => e.packetId === packetId);
    if (entry) entry.packetId = 0;
    while (this.#unsettled.length > 0 && (this.#unsettled[0] as { packetId: number }).packetId === 0) {
      const { frontier } = this.#unsettled.shift() as { frontier: Frontier };
      this.#cursor = this.#cursor ? this.#cursor.max(frontier) : frontier;
    }
    this.#scheduleSave();
  }

  /** What another connection of this session resumes from. */
  #state(): MqttSessionState {
    // Nothing waiting for a PUBACK: every message of its filters up to the node's position is delivered.
    const idle = this.#unsettled.length === 0 && this.#phase === 'connected' ? this.session.idleCursor() : undefined;
    const cursor = idle && this.#cursor ? idle.max(this.#cursor) : (idle ?? this.#cursor);
    return {
      user: this.identity.user,
      filters: [...this.#qos].map(([topic, qos]) => ({ topic, qos })),
      cursor: cursor?.toString(),
      sentThrough: this.#sentThrough?.toString(),
      expiresAt: Date.now() + this.#expiryMs,
    };
  }

  #scheduleSave(): void {
    if (!this.#persistent || this.#saveTimer !== undefined || this.#phase !== 'connected') return;
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = undefined;
      void this.#save().catch((error: unknown) => this.ctx.logError(error, 'mqtt session save failed'));
    }, SAVE_DELAY_MS);
    this.#saveTimer.unref();
  }

  #save(): Promise<void> {
    clearTimeout(this.#saveTimer);
    this.#saveTimer = undefined;
    return this.sessions.save(this.#clientId, this.#state());
  }

  #takeId(): number {
    for (let tries = 0; tries < 65_535; tries++) {
      const id = this.#nextId;
      this.#nextId = id === 65_535 ? 1 : id + 1;
      if (!this.#inFlight.has(id)) return id;
    }
    throw new PushError('over_capacity', 'no free MQTT packet id');
  }

  write(bytes: Buffer): void {
    this.#out(bytes);
  }

  disconnect(reason: Disconnect): void {
    if (reason === DISCONNECTS.slow) this.ctx.metrics.slowDisconnect('mqtt');
    this.#close(reason === DISCONNECTS.tokenExpired ? REASON.notAuthorized : reason === DISCONNECTS.slow ? REASON.serverBusy : reason === DISCONNECTS.shutdown ? REASON.serverShuttingDown : REASON.unspecified, reason.reason);
  }

  serverSubscribe(channel: string): void {
    // The backend decided: no entitlement check against the client's token, as on the other transports.
    this.#enqueue({ cmd: 'subscribe', messageId: 0, subscriptions: [{ topic: channel, qos: 0 }], server: true } as unknown as Packet);
  }

  serverUnsubscribe(channel: string): void {
    this.session.unsubscribe(channel);
    this.#qos.delete(channel);
  }

  serverDisconnect(_code: number, reason: string): void {
    this.#close(REASON.unspecified, reason);
  }

  #armKeepalive(ms: number): void {
    clearTimeout(this.#keepalive);
    if (ms <= 0) return;
    this.#keepalive = setTimeout(() => this.#close(REASON.keepAliveTimeout, this.#phase === 'connecting' ? 'no CONNECT in time' : 'no packet within 1.5 × keepalive'), ms);
    this.#keepalive.unref();
  }

  #protocolError(message: string, reason: number = REASON.protocolError): void {
    this.ctx.metrics.badInput('mqtt', 'bad_request');
    this.#close(reason, message);
  }

  #send(packet: Packet): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    this.#out(mqttPacket.generate(packet, { protocolVersion: this.#version }));
  }

  /** Every packet goes out here, counted for the metrics. */
  #out(bytes: Buffer): void {
    this.#outbox.write(binaryFrameHeader(bytes.length));
    this.#outbox.write(bytes);
    this.ctx.metrics.writtenBytes.mqtt += bytes.length;
  }

  /** Ends the connection: MQTT 5 first says why with a DISCONNECT (3.1.1 has none from the server). */
  #close(reason: number | undefined, message?: string): void {
    if (this.#phase === 'closed') return;
    const wasConnected = this.#phase === 'connected';
    this.#finalSave(wasConnected);
    this.#phase = 'closed';
    clearTimeout(this.#keepalive);
    if (wasConnected && this.#version === 5 && reason !== undefined) {
      this.#send({ cmd: 'disconnect', reasonCode: reason, ...(message ? { properties: { reasonString: message.slice(0, 200) } } : {}) });
    }
    // What was written before the close frame goes before it.
    this.#outbox.flush();
    this.socket.close(1000);
    this.session.close();
  }

  /** The last state of a persistent session, as the connection ends (however it ends). */
  #finalSave(wasConnected: boolean): void {
    if (!this.#persistent || !wasConnected) return;
    const state = this.#state();
    clearTimeout(this.#saveTimer);
    this.#saveTimer = undefined;
    this.#persistent = false; // nothing more to save from this connection
    void this.sessions.save(this.#clientId, state).catch((error: unknown) => this.ctx.logError(error, 'mqtt session save failed'));
  }

  /** The socket ended (either side). */
  closed(): void {
    if (this.#phase !== 'closed') {
      this.#finalSave(this.#phase === 'connected');
      this.#phase = 'closed';
      clearTimeout(this.#keepalive);
      this.session.close();
    }
    this.ctx.registry.remove(this);
    this.onClosed();
  }
}

/** Where a QoS 1 PUBLISH keeps its packet id: after the fixed header and the topic. */
function idOffsetOf(bytes: Buffer): number {
  let offset = 1;
  while ((bytes[offset] as number) & 0x80) offset++;
  offset++;
  return offset + 2 + bytes.readUInt16BE(offset);
}

/** A client's PUBLISH payload as message data: JSON when it parses, else the text. */
function dataOf(payload: Buffer): unknown {
  const text = payload.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
