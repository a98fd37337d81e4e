// The control log on a real Kafka broker (docs/kafka.md, "The control topic"): server-API commands
// written by one node reach every node of the cluster, in order, through edgepush's own control
// topic; a node reads only the commands written after it started; edgepush creates the control topic
// when it is missing (and only it); a record that is no command is skipped and counted, never fatal.
// Two KafkaSource instances on one broker play two nodes.
import { ConfigResourceTypes } from '@platformatic/kafka';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { PushError } from '../../src/errors.js';
import { CONTROL_RETENTION_MS } from '../../src/kafka/kafka-control.js';
import type { KafkaOptions } from '../../src/kafka/kafka-options.js';
import { KafkaSource } from '../../src/kafka/kafka-source.js';
import type { ControlCommand, ControlLog } from '../../src/log/control.js';
import { withAdmin } from '../helpers/kafka-backend.js';
import { Resources, createTopics, kafkaAvail, kafkaSuiteTitle, useKafkaBroker, type KafkaBroker, type PlainKafka } from '../helpers/kafka.js';
import { KAFKA_VERSIONS } from '../kafka/broker.mjs';

/** The commands a node received, in order; `first(n)` resolves once it holds n of them. */
class Received {
  readonly commands: ControlCommand[] = [];
  #waiters: Array<{ count: number; resolve: () => void }> = [];

  constructor(control: ControlLog) {
    control.onCommand((command) => {
      this.commands.push(command);
      this.#waiters = this.#waiters.filter((waiter) => {
        if (this.commands.length < waiter.count) return true;
        waiter.resolve();
        return false;
      });
    });
  }

  async first(count: number): Promise<ControlCommand[]> {
    if (this.commands.length < count) await new Promise<void>((resolve) => this.#waiters.push({ count, resolve }));
    return this.commands.slice(0, count);
  }
}

/** Log lines of one node, parsed (pino writes one JSON object a line). */
class LogLines {
  readonly lines: Array<{ level: number; msg: string }> = [];
  readonly logger = pino({ level: 'info' }, { write: (line: string) => void this.lines.push(JSON.parse(line)) });

  matching(pattern: RegExp): string[] {
    return this.lines.map((l) => l.msg).filter((msg) => pattern.test(msg));
  }
}

interface Node {
  readonly source: KafkaSource;
  readonly received: Received;
  readonly logs: LogLines;
}

const disconnect = (user: string, reason: string): ControlCommand => ({ type: 'disconnect', target: { user }, code: 4503, reason });

describe.skipIf(!kafkaAvail.ok)(kafkaSuiteTitle(`the control topic on Kafka ${KAFKA_VERSIONS.latest}`), () => {
  let broker: KafkaBroker;
  let kafka: PlainKafka;
  const res = new Resources();
  const nodes: KafkaSource[] = [];
  let count = 0;

  useKafkaBroker(KAFKA_VERSIONS.latest, res, (started, client) => {
    broker = started;
    kafka = client;
  });

  afterEach(async () => {
    await Promise.allSettled(nodes.splice(0).map((source) => source.close()));
  });

  /** A data topic of its own (edgepush needs one to start) and a control topic of its own (`null`: the default one). */
  async function cluster(controlTopic: string | null = `control-${++count}`): Promise<Partial<KafkaOptions>> {
    const data = `data-${++count}`;
    await createTopics(kafka, [{ topic: data }]);
    return { topics: [{ topic: data }], publishTopic: data, ...(controlTopic !== null ? { controlTopic } : {}) };
  }

  /** Starts a node: connects (the control topic's end is fixed here) and opens (reading begins). */
  async function node(options: Partial<KafkaOptions>): Promise<Node> {
    const logs = new LogLines();
    const full: KafkaOptions = {
      brokers: [broker.bootstrap],
      clientId: `node-${++count}`,
      topics: [],
      publishTopic: '',
      readBack: 0,
      deepResumeMaxRecords: 100,
      publishTimeout: 10_000,
      controlTopic: 'edgepush-control',
      sessionTopic: 'edgepush-sessions',
      ...options,
    };
    const source = await KafkaSource.connect(full, logs.logger);
    nodes.push(source);
    const received = new Received(source.control);
    await source.open(() => {});
    return { source, received, logs };
  }

  async function topicExists(topic: string): Promise<boolean> {
    return withAdmin(kafka.bootstrap, 'list-topics', async (admin) => (await admin.listTopics()).includes(topic));
  }

  it('a command sent from one node reaches both nodes, in order, for several commands', async () => {
    const options = await cluster();
    const a = await node(options);
    const b = await node(options);
    expect(a.source.control.available).toBe(true);

    const sent: ControlCommand[] = [
      { type: 'subscribe', target: { user: 'u1' }, channel: 'jobs/1' },
      { type: 'subscribe', target: { session: 's-9' }, channel: 'jobs/2', cursor: 'abc.1_2' },
      { type: 'unsubscribe', target: { user: 'u1' }, channel: 'jobs/1' },
      disconnect('u2', 'account closed'),
    ];
    for (const command of sent) await a.source.control.send(command);
    // And one from the other node: the log is shared, whoever writes.
    const fromB = disconnect('u3', 'from node b');
    await b.source.control.send(fromB);

    const expected = [...sent, fromB];
    expect(await a.received.first(expected.length)).toEqual(expected);
    expect(await b.received.first(expected.length)).toEqual(expected);
  });

  it('commands sent at the same time from both nodes reach both in one and the same order', async () => {
    const options = await cluster();
    const a = await node(options);
    const b = await node(options);
    const fromA = Array.from({ length: 10 }, (_, i) => disconnect(`a${i}`, 'x'));
    const fromB = Array.from({ length: 10 }, (_, i) => disconnect(`b${i}`, 'x'));
    await Promise.all([Promise.all(fromA.map((c) => a.source.control.send(c))), Promise.all(fromB.map((c) => b.source.control.send(c)))]);

    const seenByA = await a.received.first(20);
    const seenByB = await b.received.first(20);
    expect(seenByB).toEqual(seenByA);
    // Each node's own commands keep the order it sent them in.
    const userOf = (c: ControlCommand): string => (c.type !== 'mqtt-session' && 'user' in c.target ? c.target.user : '');
    expect(seenByA.filter((c) => userOf(c).startsWith('a'))).toEqual(fromA);
    expect(seenByA.filter((c) => userOf(c).startsWith('b'))).toEqual(fromB);
  });

  it('a node started after a command does not receive it, only the commands written after it started', async () => {
    const options = await cluster();
    const a = await node(options);
    const before = disconnect('early', 'before b started');
    await a.source.control.send(before);
    expect(await a.received.first(1)).toEqual([before]);

    const b = await node(options);
    const after = disconnect('late', 'after b started');
    await a.source.control.send(after);
    expect(await b.received.first(1)).toEqual([after]);
    expect(await a.received.first(2)).toEqual([before, after]);
    expect(b.received.commands).toEqual([after]);
  });

  it('creates the control topic when it is missing: one partition, 1 h retention, delete policy', async () => {
    // The default name, on a broker where nothing has created it yet.
    const options = await cluster(null);
    expect(await topicExists('edgepush-control')).toBe(false);

    const a = await node(options);
    expect(a.source.control.available).toBe(true);
    expect(a.logs.matching(/created edgepush-control/)).toHaveLength(1);
    const [partitions, configs] = await withAdmin(kafka.bootstrap, 'describe-control', async (admin) => {
      const metadata = await admin.metadata({ topics: ['edgepush-control'] });
      const [described] = await admin.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: 'edgepush-control', configurationKeys: ['retention.ms', 'cleanup.policy'] }] });
      return [metadata.topics.get('edgepush-control')?.partitionsCount, new Map(described?.configs.map((c) => [c.name, c.value]))] as const;
    });
    expect(partitions).toBe(1);
    expect(configs.get('retention.ms')).toBe(String(CONTROL_RETENTION_MS));
    expect(configs.get('cleanup.policy')).toBe('delete');

    // A second node finds it and creates nothing; commands flow between them at once.
    const b = await node(options);
    expect(b.logs.matching(/created/)).toEqual([]);
    const command = disconnect('u', 'on a new topic');
    await b.source.control.send(command);
    expect(await a.received.first(1)).toEqual([command]);
    expect(await b.received.first(1)).toEqual([command]);
  });

  it('a record that is no command is skipped and counted; the commands after it still arrive', async () => {
    const options = await cluster();
    const a = await node(options);
    const b = await node(options);
    const producer = res.producer(kafka);
    await producer.send(options.controlTopic as string, 1, [
      { partition: 0, value: 'not json at all' },
      { partition: 0, value: JSON.stringify({ v: 2, type: 'disconnect', target: { user: 'u' }, code: 4503, reason: 'a later version' }) },
      { partition: 0, value: JSON.stringify({ v: 1, type: 'subscribe', target: { user: 'u', session: 's' }, channel: 'c' }) },
    ]);
    const command = { type: 'unsubscribe', target: { session: 's1' }, channel: 'jobs/7' } as const;
    await a.source.control.send(command);

    expect(await a.received.first(1)).toEqual([command]);
    expect(await b.received.first(1)).toEqual([command]);
    // Read in order: the three bad records came before the command.
    expect(a.source.control.undecodable).toBe(3);
    expect(b.source.control.undecodable).toBe(3);
    expect(a.logs.matching(/skipped a record that is no command/)).toHaveLength(3);
    expect(a.source.control.state?.failing).toBeUndefined();
  });

  it('a control topic that cannot be created: one warning, unavailable, and send rejects with unavailable', async () => {
    // Kafka refuses a topic whose name collides with an existing one ('.' and '_' are the same to it).
    const existing = `collide_${++count}`;
    await createTopics(kafka, [{ topic: existing }]);
    const options = await cluster(existing.replace('_', '.'));
    const a = await node(options);

    expect(a.source.control.available).toBe(false);
    expect(a.logs.matching(/control topic .* could not be created/)).toHaveLength(1);
    const sent = a.source.control.send(disconnect('u', 'nowhere'));
    await expect(sent).rejects.toBeInstanceOf(PushError);
    await expect(sent).rejects.toMatchObject({ code: 'unavailable', message: expect.stringMatching(/control topic .* missing/) });
    // The data side works as before.
    expect(a.source.writable).toBe(true);
  });
});
