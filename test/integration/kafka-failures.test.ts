// What an operator sees when Kafka fails: at start, one line naming the brokers (or the topic) and
// the error, and exit code 2; while running, one log line per change of state and a metric, and the
// server goes on serving what it holds.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLI, EdgepushProcess, REPO_ROOT, ensureBuilt, freePort } from '../helpers/edgepush-process.js';
import { Resources, createTopics, eventually, history, kafkaAvail, kafkaSuiteTitle, metricValue, useKafkaBroker, type KafkaBroker, type PlainKafka } from '../helpers/kafka.js';
import { withAdmin } from '../helpers/kafka-backend.js';
import { KAFKA_VERSIONS } from '../kafka/broker.mjs';

interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI to its exit (bounded: killed after 60 s). */
async function runCli(args: readonly string[]): Promise<CliRun> {
  await ensureBuilt();
  const port = await freePort();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, '--port', String(port), '--host', '127.0.0.1', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('Kafka failures at start', () => {
  it('Kafka unreachable: one line naming the brokers and the error, exit code 2', async () => {
    const closed = await freePort();
    const run = await runCli(['--kafka-brokers', `127.0.0.1:${closed}`, '--kafka-topics', 'jobs']);
    expect(run.code).toBe(2);
    const lines = run.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`127.0.0.1:${closed}`);
    expect(lines[0]).toMatch(/ECONNREFUSED/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  }, 90_000);

  it('with --workers 2 the primary stops too, with exit code 2, instead of forking workers that fail again', async () => {
    const closed = await freePort();
    const run = await runCli(['--kafka-brokers', `127.0.0.1:${closed}`, '--kafka-topics', 'jobs', '--workers', '2']);
    expect(run.code).toBe(2);
    // Each worker may say it before it is stopped: the same one line.
    expect(new Set(run.stderr.trim().split('\n'))).toEqual(new Set([`edgepush: cannot use Kafka at 127.0.0.1:${closed}: connect ECONNREFUSED 127.0.0.1:${closed}`]));
  }, 90_000);

  it('a bad Kafka option: one line naming the key, exit code 2', async () => {
    const run = await runCli(['--kafka-brokers', 'no-port-here', '--kafka-topics', 'jobs']);
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toContain('kafka.brokers');
  }, 90_000);
});

describe.skipIf(!kafkaAvail.ok)(kafkaSuiteTitle(`Kafka failures with a broker (${KAFKA_VERSIONS.latest})`), () => {
  let broker: KafkaBroker;
  let kafka: PlainKafka;
  const res = new Resources();
  useKafkaBroker(KAFKA_VERSIONS.latest, res, (started, client) => {
    broker = started;
    kafka = client;
  });

  it('a missing topic: one line naming it, exit code 2', async () => {
    await createTopics(kafka, [{ topic: 'present' }]);
    const run = await runCli(['--kafka-brokers', broker.bootstrap, '--kafka-topics', 'zzz-absent,present']);
    expect(run.code).toBe(2);
    const lines = run.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^edgepush: Kafka topic zzz-absent not found/);
    expect(lines[0]).toMatch(/not found/);
  }, 90_000);

  it('a topic deleted while running: one log line, the failure metric, and the server still serves what it holds', async () => {
    await createTopics(kafka, [{ topic: 'doomed' }]);
    const node = await EdgepushProcess.start({ config: { kafka: { brokers: [broker.bootstrap], topics: ['doomed'] } }, captureStdout: true });
    try {
      const producer = res.producer(kafka);
      await producer.send('doomed', 1, [1, 2, 3].map((n) => ({ key: 'held/a', value: JSON.stringify({ n }) })));
      await eventually(async () => (await history(node.url, 'held/a')).messages.length === 3, 'three records held');
      expect(await metricValue(node.url, 'edgepush_kafka_reachable')).toBe(1);
      expect(await metricValue(node.url, 'edgepush_kafka_lag_records{topic="doomed",partition="0"}')).toBe(0);
      // Every Kafka series docs/metrics.md lists is served by a node reading Kafka.
      const served = (await (await fetch(`${node.url}/metrics`)).text()).split('\n').filter((l) => l.startsWith('# TYPE edgepush_kafka_')).map((l) => l.split(' ')[2]);
      const listed = [...readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8').matchAll(/^\| `(edgepush_kafka_[a-z_]+)` \|/gm)].map((m) => m[1]);
      expect(listed.filter((name) => !served.includes(name))).toEqual([]);

      await withAdmin(broker.bootstrap, 'delete', (admin) => admin.deleteTopics({ topics: ['doomed'] }));
      // Several failed reads, so that "one line per change of state" is really checked.
      await eventually(async () => ((await metricValue(node.url, 'edgepush_kafka_read_failures_total{kind="missing_topic"}')) ?? 0) >= 3, 'three failed reads');
      expect(await metricValue(node.url, 'edgepush_kafka_reachable')).toBe(0);
      expect((await history(node.url, 'held/a')).messages.map((m) => m.data)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
      const failureLines = node.stdout.split('\n').filter((line) => line.includes('kafka: cannot read'));
      expect(failureLines).toHaveLength(1);
      expect(failureLines[0]).toMatch(/missing topic/);
      // No stack trace in the JSON log lines (where a newline is written as \n).
      expect(node.stdout).not.toMatch(/\\n\s+at /);
    } finally {
      await node.stop();
    }
  }, 120_000);
});
