// Real single-node Apache Kafka (KRaft) for development and integration tests.
//
// The broker jars come from Maven Central through Maven's dependency plugin and run on the
// machine's Java, so no Docker and no Kafka tarball download (Maven Central is reachable where
// the Apache mirrors may not be). Plain ESM JavaScript so that it runs as a CLI with no build step;
// types live in broker.d.mts.
//
//   node test/kafka/broker.mjs start [--version V] [--keep]   start a dev broker that outlives the command
//   node test/kafka/broker.mjs stop                            stop the dev broker from the state file
//   node test/kafka/broker.mjs status                          print the dev broker's bootstrap, if running
//   node test/kafka/broker.mjs fetch [--version V]             only download the jars

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Admin } from '@platformatic/kafka';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CACHE_DIR = path.join(REPO_ROOT, '.cache', 'kafka');
const RUN_ROOT = path.join(CACHE_DIR, 'run');
const STATE_FILE = path.join(CACHE_DIR, 'dev-broker.json');

/**
 * Exact Kafka versions the harness is tested with (verified on Maven Central as
 * `org.apache.kafka:kafka_2.13`): the newest 4.1.x and the newest 3.9.x, the last 3.x line.
 */
export const KAFKA_VERSIONS = Object.freeze({ latest: '4.1.2', previous: '3.9.2' });

// Pinned so that the download does not depend on whatever plugin version the local Maven prefers.
const DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1';
// Kafka 4.x moved to Log4j 2 (the Kafka 4.1 distribution ships 2.24.3) while its pom still only
// declares slf4j-api 1.7, so the slf4j 1.x -> Log4j 2 bridge is the binding. 3.9 keeps Log4j 1
// APIs, which reload4j provides.
const LOG4J2_VERSION = '2.24.3';
const RELOAD4J_BINDING_VERSION = '1.7.36';

const READY_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 30_000;
const KILL_GRACE_MS = 10_000;
const MARKER = '.complete';

/**
 * @typedef {(line: string) => void} LogFn
 */

/** @param {string | undefined} version */
function resolveVersion(version) {
  if (version === undefined || version === 'latest' || version === '4.1.x-default') return KAFKA_VERSIONS.latest;
  if (version === 'previous') return KAFKA_VERSIONS.previous;
  if (!/^\d+\.\d+\.\d+$/.test(version)) {
    throw new Error(`Kafka version must look like 4.1.2 (or be 'latest'/'previous'), got ${JSON.stringify(version)}`);
  }
  return version;
}

/** @param {string} version */
function usesLog4j2(version) {
  return Number(version.split('.')[0]) >= 4;
}

/** @param {unknown} log @returns {LogFn} */
function toLogFn(log) {
  return typeof log === 'function' ? /** @type {LogFn} */ (log) : () => {};
}

/** @param {number} ms */
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @param {number | undefined} pid */
function pidAlive(pid) {
  if (!pid || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM means it exists but belongs to someone else; still "alive" for our purposes.
    return /** @type {NodeJS.ErrnoException} */ (err).code === 'EPERM';
  }
}

/**
 * Guards against pid reuse: only signal a pid that is still a Kafka JVM for this run dir.
 * Where /proc is missing (macOS) we cannot tell and trust the pid.
 * @param {number} pid @param {string} runDir
 */
function isOurBroker(pid, runDir) {
  let cmdline;
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return process.platform !== 'linux' && pidAlive(pid);
  }
  return cmdline.includes('kafka.Kafka') && cmdline.includes(runDir);
}

/** @param {number} pid @param {NodeJS.Signals} signal */
function signalBroker(pid, signal) {
  // The JVM is spawned detached, so it leads its own process group; signalling the group also
  // reaches anything it may have forked.
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, signal);
      return;
    } catch (err) {
      if (/** @type {NodeJS.ErrnoException} */ (err).code !== 'ESRCH') throw err;
    }
  }
}

/** @param {string} file @param {number} lines */
function tail(file, lines = 40) {
  try {
    const text = fs.readFileSync(file, 'utf8').trimEnd();
    // Stack frames would push the actual error message (e.g. "Address already in use") out of view.
    return text.split('\n').filter((l) => !/^\s+(at |\.\.\. \d+ more)/.test(l)).slice(-lines).join('\n');
  } catch {
    return '(no output)';
  }
}

/**
 * @param {string} cmd @param {string[]} args @param {{ cwd?: string }} [opts]
 * @returns {Promise<{ code: number | null, output: string }>}
 */
function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', (err) => {
      const code = /** @type {NodeJS.ErrnoException} */ (err).code;
      reject(code === 'ENOENT' ? new Error(`${cmd} not found on PATH`) : err);
    });
    child.on('close', (code) => resolve({ code, output }));
  });
}

// ---------------------------------------------------------------------------------------------
// Availability

/** @type {{ ok: true } | { ok: false, reason: string } | undefined} */
let availabilityCache;

/**
 * Whether this machine can run the harness: a Java 17+ runtime (Kafka 4 needs 17) and Maven.
 * Synchronous so that a test file can decide `describe.skipIf(...)` at collection time.
 * @returns {{ ok: true } | { ok: false, reason: string }}
 */
export function kafkaAvailability() {
  if (availabilityCache) return availabilityCache;
  const java = spawnSync('java', ['-version'], { encoding: 'utf8', timeout: 30_000 });
  if (java.error) {
    const code = /** @type {NodeJS.ErrnoException} */ (java.error).code;
    return (availabilityCache = { ok: false, reason: code === 'ENOENT' ? 'java not found on PATH' : `java -version failed: ${java.error.message}` });
  }
  if (java.status !== 0) return (availabilityCache = { ok: false, reason: `java -version exited with ${java.status}` });
  const match = /version "(\d+)(?:\.(\d+))?/.exec(`${java.stderr}${java.stdout}`);
  const major = match ? (match[1] === '1' ? Number(match[2]) : Number(match[1])) : NaN;
  if (!(major >= 17)) {
    return (availabilityCache = { ok: false, reason: `Java 17 or newer is required for Kafka 4 (found ${match ? match[0] : 'unknown version'})` });
  }
  const mvn = spawnSync('mvn', ['-v', '-B'], { encoding: 'utf8', timeout: 60_000 });
  if (mvn.error) {
    const code = /** @type {NodeJS.ErrnoException} */ (mvn.error).code;
    return (availabilityCache = { ok: false, reason: code === 'ENOENT' ? 'mvn not found on PATH' : `mvn -v failed: ${mvn.error.message}` });
  }
  if (mvn.status !== 0) return (availabilityCache = { ok: false, reason: `mvn -v exited with ${mvn.status}` });
  return (availabilityCache = { ok: true });
}

// ---------------------------------------------------------------------------------------------
// Download

/** @param {string} version */
function pomFor(version) {
  const dep = (/** @type {string} */ g, /** @type {string} */ a, /** @type {string} */ v) =>
    `    <dependency><groupId>${g}</groupId><artifactId>${a}</artifactId><version>${v}</version></dependency>`;
  const logging = usesLog4j2(version)
    ? [
        dep('org.apache.logging.log4j', 'log4j-slf4j-impl', LOG4J2_VERSION),
        dep('org.apache.logging.log4j', 'log4j-core', LOG4J2_VERSION),
      ]
    : [dep('org.slf4j', 'slf4j-reload4j', RELOAD4J_BINDING_VERSION)];
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by test/kafka/broker.mjs; only used to let Maven resolve the broker's runtime classpath. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>edgepush.dev</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>${version}</version>
  <packaging>pom</packaging>
  <dependencies>
${[dep('org.apache.kafka', 'kafka_2.13', version), ...logging].join('\n')}
  </dependencies>
</project>
`;
}

/**
 * A cross-process lock so that parallel test workers do not download the same jars twice.
 * Correctness does not depend on it (the libs dir only appears through an atomic rename), so a
 * rare race while breaking a stale lock costs at most a duplicate download.
 * @param {string} file @param {LogFn} say
 * @returns {Promise<() => void>}
 */
async function acquireLock(file, say) {
  const deadline = Date.now() + 15 * 60_000;
  let announced = false;
  for (;;) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => fs.rmSync(file, { force: true });
    } catch (err) {
      if (/** @type {NodeJS.ErrnoException} */ (err).code !== 'EEXIST') throw err;
    }
    let holder = NaN;
    let age = 0;
    try {
      holder = Number(fs.readFileSync(file, 'utf8'));
      age = Date.now() - fs.statSync(file).mtimeMs;
    } catch {
      continue; // released between our attempts
    }
    // An empty file is a holder between create and write, unless it has been empty for long.
    const stale = Number.isInteger(holder) && holder > 0 ? !pidAlive(holder) : age > 10_000;
    if (stale) {
      fs.rmSync(file, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${file} (held by pid ${holder})`);
    if (!announced) say(`Waiting for another process (pid ${holder}) that is downloading Kafka jars...`);
    announced = true;
    await delay(500);
  }
}

/** @param {string} libsDir */
function libsComplete(libsDir) {
  return fs.existsSync(path.join(libsDir, MARKER));
}

/**
 * Makes sure the broker's runtime jars for `version` are in `.cache/kafka/<version>/libs`,
 * downloading them from Maven Central with Maven if they are not. Idempotent and safe to call
 * from several processes at once.
 * @param {string} [version] exact version, or 'latest' / 'previous'; defaults to the latest
 * @param {{ log?: LogFn }} [options] `log` receives progress lines (download start/end)
 * @returns {Promise<string>} absolute path of the libs directory
 */
export async function ensureKafkaLibs(version, options = {}) {
  const v = resolveVersion(version);
  const say = toLogFn(options.log);
  const versionDir = path.join(CACHE_DIR, v);
  const libsDir = path.join(versionDir, 'libs');
  if (libsComplete(libsDir)) return libsDir;

  await fsp.mkdir(versionDir, { recursive: true });
  const release = await acquireLock(path.join(versionDir, '.lock'), say);
  const staging = path.join(versionDir, `libs.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    if (libsComplete(libsDir)) return libsDir;
    const started = Date.now();
    say(`Downloading Kafka ${v} jars from Maven Central into ${path.relative(REPO_ROOT, libsDir)} ...`);
    const pom = path.join(versionDir, 'pom.xml');
    fs.writeFileSync(pom, pomFor(v));
    const args = ['-B', '-q', '-Dstyle.color=never', '-f', pom, `${DEPENDENCY_PLUGIN}:copy-dependencies`,
      '-DincludeScope=runtime', `-DoutputDirectory=${staging}`];
    let result;
    try {
      result = await run('mvn', args, { cwd: versionDir });
    } catch (err) {
      throw new Error(`Cannot download Kafka ${v}: ${/** @type {Error} */ (err).message}`);
    }
    if (result.code !== 0) {
      // Maven 3.8 still emits colour resets in batch mode; they only garble an error message.
      const out = result.output.replace(/\x1b\[[0-9;]*m/g, '').trim().split('\n').slice(-30).join('\n');
      throw new Error(
        `Maven failed (exit ${result.code}) to download Kafka ${v} from Maven Central.\n` +
          `Command: mvn ${args.join(' ')}\n${out}`,
      );
    }
    const jar = `kafka_2.13-${v}.jar`;
    const jars = fs.readdirSync(staging).filter((f) => f.endsWith('.jar')).sort();
    if (!jars.includes(jar)) throw new Error(`Maven finished but ${jar} is missing from ${staging}`);
    fs.writeFileSync(path.join(staging, MARKER), JSON.stringify({ version: v, jars, at: new Date().toISOString() }, null, 2));
    // A libs dir without the marker can only be left by hand or by an older layout; replace it.
    if (fs.existsSync(libsDir) && !libsComplete(libsDir)) fs.rmSync(libsDir, { recursive: true, force: true });
    try {
      fs.renameSync(staging, libsDir);
    } catch (err) {
      const code = /** @type {NodeJS.ErrnoException} */ (err).code;
      if (!((code === 'ENOTEMPTY' || code === 'EEXIST') && libsComplete(libsDir))) throw err;
    }
    say(`Kafka ${v}: ${jars.length} jars ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return libsDir;
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
    release();
  }
}

// ---------------------------------------------------------------------------------------------
// Broker

/** @returns {Promise<number[]>} */
async function freePorts(count) {
  /** @type {net.Server[]} */
  const servers = [];
  try {
    // Hold all listeners open until every port is known so the kernel cannot hand out one twice.
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      servers.push(server);
      await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve(undefined));
      });
    }
    return servers.map((s) => /** @type {net.AddressInfo} */ (s.address()).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(() => resolve(undefined)))));
  }
}

/** Kafka cluster ids are 16 random bytes in URL-safe base64; saves a JVM start over `StorageTool random-uuid`. */
function randomClusterId() {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    // Kafka's own generator rejects ids starting with '-' because they look like CLI flags.
    if (!id.startsWith('-')) return id;
  }
}

/**
 * @typedef {object} RunState  persisted as <runDir>/broker.json so a run dir can be restarted
 *   and orphaned brokers can be found again
 * @property {string} version
 * @property {string} clusterId
 * @property {number} port
 * @property {number} controllerPort
 * @property {number | null} pid
 * @property {number | null} ownerPid  the Node process responsible for stopping it; null = persistent (CLI)
 * @property {boolean} keep
 */

/** @param {string} runDir @returns {RunState | undefined} */
function readRunState(runDir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(runDir, 'broker.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

/** @param {string} runDir @param {RunState} state */
function writeRunState(runDir, state) {
  const file = path.join(runDir, 'broker.json');
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2));
  fs.renameSync(`${file}.tmp`, file);
}

/** @param {string} runDir @param {RunState} s */
function writeConfig(runDir, s, overrides = {}) {
  const props = {
    'process.roles': 'broker,controller',
    'node.id': '1',
    'controller.quorum.voters': `1@127.0.0.1:${s.controllerPort}`,
    listeners: `PLAINTEXT://127.0.0.1:${s.port},CONTROLLER://127.0.0.1:${s.controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${s.port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'offsets.topic.replication.factor': '1',
    // One partition instead of 50 makes the first consumer-group join noticeably faster.
    'offsets.topic.num.partitions': '1',
    'transaction.state.log.replication.factor': '1',
    'transaction.state.log.min.isr': '1',
    'transaction.state.log.num.partitions': '1',
    'group.initial.rebalance.delay.ms': '0',
    'log.cleaner.dedupe.buffer.size': '1048577',
    'num.partitions': '1',
    // Tests create their topics explicitly; auto-creation would hide typos in topic names.
    'auto.create.topics.enable': 'false',
    'log.dirs': path.join(runDir, 'data'),
    ...overrides,
  };
  const text = Object.entries(props).map(([k, v]) => `${k}=${v}`).join('\n');
  fs.writeFileSync(path.join(runDir, 'server.properties'), `# Generated by test/kafka/broker.mjs\n${text}\n`);

  const warnLog = path.join(runDir, 'kafka-warn.log');
  if (usesLog4j2(s.version)) {
    fs.writeFileSync(
      path.join(runDir, 'log4j2.xml'),
      `<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="error">
  <Appenders>
    <File name="file" fileName="${warnLog.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;')}" append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Root level="warn"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
`,
    );
  } else {
    fs.writeFileSync(
      path.join(runDir, 'log4j.properties'),
      [
        'log4j.rootLogger=WARN, file',
        'log4j.appender.file=org.apache.log4j.FileAppender',
        `log4j.appender.file.File=${warnLog}`,
        'log4j.appender.file.Append=true',
        'log4j.appender.file.layout=org.apache.log4j.PatternLayout',
        'log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n',
        '',
      ].join('\n'),
    );
  }
}

/** @param {string} runDir @param {string} version */
function loggingFlag(runDir, version) {
  return usesLog4j2(version)
    ? `-Dlog4j2.configurationFile=${path.join(runDir, 'log4j2.xml')}`
    : `-Dlog4j.configuration=file:${path.join(runDir, 'log4j.properties')}`;
}

/** @param {string} libsDir @param {string} runDir @param {RunState} s */
async function formatStorage(libsDir, runDir, s) {
  if (fs.existsSync(path.join(runDir, 'data', 'meta.properties'))) return;
  // Static voters (controller.quorum.voters) format the same way on 3.9 and 4.x; --standalone is
  // only for the dynamic-quorum style of config.
  const args = [loggingFlag(runDir, s.version), '-cp', path.join(libsDir, '*'), 'kafka.tools.StorageTool', 'format',
    '-t', s.clusterId, '-c', path.join(runDir, 'server.properties'), '--ignore-formatted'];
  const result = await run('java', args, { cwd: runDir });
  if (result.code !== 0) {
    throw new Error(`Kafka ${s.version} StorageTool format failed (exit ${result.code}):\n${result.output.trim()}`);
  }
}

/** Brokers started by this Node process without `persistent`, stopped when it exits. @type {Set<{ pid: number }>} */
const ownedBrokers = new Set();
let exitHookInstalled = false;

function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Only synchronous work is possible here. SIGTERM rather than SIGKILL lets the JVM shut down
  // cleanly in the background; the run dir is removed by the next startKafka's sweep.
  process.on('exit', () => {
    for (const b of ownedBrokers) {
      try {
        signalBroker(b.pid, 'SIGTERM');
      } catch {
        // nothing more can be done while exiting
      }
    }
  });
}

/**
 * Removes run dirs whose owning Node process died without stopping its broker (a crashed or
 * SIGKILLed test worker), and stops such brokers. Persistent (CLI) and `keep` runs are left alone.
 */
function sweepOrphans() {
  let entries;
  try {
    entries = fs.readdirSync(RUN_ROOT);
  } catch {
    return;
  }
  for (const name of entries) {
    const runDir = path.join(RUN_ROOT, name);
    const s = readRunState(runDir);
    if (!s || s.ownerPid == null || s.keep || pidAlive(s.ownerPid)) continue;
    if (s.pid && pidAlive(s.pid)) {
      if (!isOurBroker(s.pid, runDir)) continue;
      try {
        signalBroker(s.pid, 'SIGKILL');
      } catch {
        continue;
      }
    }
    fs.rmSync(runDir, { recursive: true, force: true });
  }
}

/**
 * @param {string} bootstrap @param {() => string | undefined} exitReason
 * @param {string} runDir @param {string} version
 */
async function waitUntilReady(bootstrap, exitReason, runDir, version) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError = 'no attempt';
  while (Date.now() < deadline) {
    const exited = exitReason();
    if (exited) {
      throw new Error(`Kafka ${version} exited during startup (${exited}).\n${brokerLogs(runDir)}`);
    }
    // A fresh client per attempt, without retries of its own: this loop is the retry.
    const admin = new Admin({ clientId: 'edgepush-broker-probe', bootstrapBrokers: [bootstrap], retries: 0, connectTimeout: 1000, requestTimeout: 3000 });
    try {
      const metadata = await admin.metadata({ topics: [], forceUpdate: true });
      if (metadata.brokers.size > 0) return;
      lastError = 'no brokers in metadata yet';
    } catch (err) {
      lastError = /** @type {Error} */ (err).message;
    } finally {
      await admin.close().catch(() => {});
    }
    // There is no event for "the broker now answers"; a short poll is the only option.
    await delay(200);
  }
  throw new Error(
    `Kafka ${version} did not answer on ${bootstrap} within ${READY_TIMEOUT_MS / 1000} s (last error: ${lastError}).\n${brokerLogs(runDir)}`,
  );
}

/** @param {string} runDir */
function brokerLogs(runDir) {
  return (
    `--- ${path.join(runDir, 'kafka-warn.log')} (tail) ---\n${tail(path.join(runDir, 'kafka-warn.log'))}\n` +
    `--- ${path.join(runDir, 'stdout.log')} (tail) ---\n${tail(path.join(runDir, 'stdout.log'))}`
  );
}

/**
 * @typedef {object} StartKafkaOptions
 * @property {string} [version] exact Kafka version, 'latest' (default) or 'previous'
 * @property {string} [dir] run directory to use instead of a fresh `.cache/kafka/run/<random>`;
 *   an existing one that this harness created is restarted with its ports and data, and a
 *   caller-provided dir is never deleted
 * @property {boolean} [keep] keep the run dir (config, data, logs) on stop()
 * @property {boolean} [persistent] keep the broker running after this Node process exits
 *   (used by the CLI); otherwise it is sent SIGTERM when the process exits
 * @property {LogFn} [log] receives progress lines (download, start)
 * @property {Record<string, string>} [properties] broker properties over the harness's own, e.g.
 *   `{'group.initial.rebalance.delay.ms': '3000'}` for a broker with Kafka's default
 */

/**
 * Starts a single-node KRaft broker on 127.0.0.1 on two free ports and resolves once it
 * answers a metadata request. Downloads the jars first if needed.
 * @param {StartKafkaOptions} [options]
 */
export async function startKafka(options = {}) {
  const version = resolveVersion(options.version);
  const say = toLogFn(options.log);
  const libsDir = await ensureKafkaLibs(version, { log: say });
  sweepOrphans();

  const callerDir = options.dir !== undefined;
  const runDir = path.resolve(options.dir ?? path.join(RUN_ROOT, randomBytes(6).toString('hex')));
  await fsp.mkdir(runDir, { recursive: true });
  const previous = readRunState(runDir);
  if (previous && previous.version !== version) {
    throw new Error(`${runDir} holds data of Kafka ${previous.version}, not ${version}`);
  }
  if (previous?.pid && pidAlive(previous.pid) && isOurBroker(previous.pid, runDir)) {
    throw new Error(`A broker (pid ${previous.pid}) is already running in ${runDir}`);
  }
  const [port, controllerPort] = previous ? [previous.port, previous.controllerPort] : await freePorts(2);
  /** @type {RunState} */
  const state = {
    version,
    clusterId: previous?.clusterId ?? randomClusterId(),
    port: /** @type {number} */ (port),
    controllerPort: /** @type {number} */ (controllerPort),
    pid: null,
    ownerPid: options.persistent ? null : process.pid,
    keep: Boolean(options.keep || callerDir),
  };
  writeRunState(runDir, state);
  writeConfig(runDir, state, options.properties);
  await formatStorage(libsDir, runDir, state);

  const bootstrap = `127.0.0.1:${state.port}`;
  /** @type {{ pid: number, exited: Promise<void>, exitReason: string | undefined } | undefined} */
  let proc;
  let removed = false;

  const spawnBroker = () => {
    const out = fs.openSync(path.join(runDir, 'stdout.log'), 'a');
    let child;
    try {
      child = spawn(
        'java',
        ['-Xms64m', '-Xmx512m', '-XX:+UseSerialGC', '-XX:+ExitOnOutOfMemoryError', '-Djava.awt.headless=true',
          loggingFlag(runDir, version), '-cp', path.join(libsDir, '*'), 'kafka.Kafka', path.join(runDir, 'server.properties')],
        // Detached: its own process group, so a Ctrl-C in the terminal reaches the test runner,
        // which then stops the broker in order, instead of killing Kafka mid-test.
        { cwd: runDir, detached: true, stdio: ['ignore', out, out] },
      );
    } finally {
      fs.closeSync(out);
    }
    if (child.pid === undefined) throw new Error('Could not start java');
    /** @type {NonNullable<typeof proc>} */
    const p = {
      pid: child.pid,
      exitReason: undefined,
      exited: new Promise((resolve) => {
        child.once('exit', (code, signal) => {
          p.exitReason = signal ? `signal ${signal}` : `exit code ${code}`;
          resolve();
        });
      }),
    };
    child.once('error', (err) => {
      p.exitReason = err.message;
    });
    if (options.persistent) child.unref();
    else {
      installExitHook();
      ownedBrokers.add(p);
    }
    proc = p;
    writeRunState(runDir, { ...state, pid: p.pid });
    return p;
  };

  const kill = async () => {
    const p = proc;
    if (!p) return;
    if (!p.exitReason) {
      signalBroker(p.pid, 'SIGTERM');
      const stopped = await Promise.race([p.exited.then(() => true), delay(STOP_GRACE_MS).then(() => false)]);
      if (!stopped) {
        signalBroker(p.pid, 'SIGKILL');
        const killed = await Promise.race([p.exited.then(() => true), delay(KILL_GRACE_MS).then(() => false)]);
        if (!killed) throw new Error(`Kafka broker pid ${p.pid} did not exit after SIGKILL`);
      }
    }
    ownedBrokers.delete(p);
    proc = undefined;
    writeRunState(runDir, { ...state, pid: null });
  };

  const start = async () => {
    if (removed) throw new Error(`Broker in ${runDir} was stopped and its run dir removed; start a new one`);
    if (proc) return;
    const p = spawnBroker();
    try {
      await waitUntilReady(bootstrap, () => p.exitReason, runDir, version);
    } catch (err) {
      // The run dir stays for inspection (its logs are quoted in the error); the orphan sweep
      // removes it once this process is gone.
      await kill().catch(() => {});
      throw err;
    }
    say(`Kafka ${version} ready at ${bootstrap} (pid ${p.pid}, run dir ${runDir})`);
  };

  await start();

  return {
    version,
    bootstrap,
    runDir,
    port: state.port,
    controllerPort: state.controllerPort,
    clusterId: state.clusterId,
    get pid() {
      return proc?.pid ?? null;
    },
    get running() {
      return proc !== undefined && !proc.exitReason;
    },
    start,
    kill,
    async restart() {
      await kill();
      await start();
    },
    /** @param {{ keep?: boolean }} [opts] */
    async stop(opts = {}) {
      await kill();
      if (!state.keep && !opts.keep && !removed) {
        removed = true;
        await fsp.rm(runDir, { recursive: true, force: true });
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// CLI

/** @returns {{ pid: number, bootstrap: string, version: string, runDir: string } | undefined} */
function readDevState() {
  try {
    return JSON.parse(fs.readFileSync(STATE_FILE, 'utf8'));
  } catch {
    return undefined;
  }
}

/** @param {number} pid @param {number} ms */
async function waitForPidExit(pid, ms) {
  const deadline = Date.now() + ms;
  // Not our child (the CLI process that spawned it is gone), so there is no exit event to await.
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    await delay(100);
  }
  return true;
}

/** @param {string[]} argv */
async function cli(argv) {
  const [command, ...rest] = argv;
  /** @type {string | undefined} */
  let version;
  let keep = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = /** @type {string} */ (rest[i]);
    if (arg === '--version' || arg === '-v') version = rest[++i];
    else if (arg.startsWith('--version=')) version = arg.slice('--version='.length);
    else if (arg === '--keep') keep = true;
    else throw new Error(`Unknown argument ${arg}`);
  }
  const log = (/** @type {string} */ line) => console.error(line);

  switch (command) {
    case 'fetch': {
      const libs = await ensureKafkaLibs(version, { log });
      console.log(libs);
      return 0;
    }
    case 'start': {
      const avail = kafkaAvailability();
      if (!avail.ok) throw new Error(avail.reason);
      const existing = readDevState();
      if (existing && pidAlive(existing.pid) && isOurBroker(existing.pid, existing.runDir)) {
        const other = version !== undefined && resolveVersion(version) !== existing.version;
        log(`Kafka ${existing.version} dev broker already running (pid ${existing.pid})${other ? '; stop it first to switch versions' : ''}`);
        console.log(existing.bootstrap);
        return 0;
      }
      const started = Date.now();
      const broker = await startKafka({ version, keep, persistent: true, log });
      await fsp.mkdir(path.dirname(STATE_FILE), { recursive: true });
      fs.writeFileSync(
        STATE_FILE,
        JSON.stringify({ pid: broker.pid, bootstrap: broker.bootstrap, version: broker.version, runDir: broker.runDir }, null, 2),
      );
      log(`Started in ${((Date.now() - started) / 1000).toFixed(1)} s; stop with: node test/kafka/broker.mjs stop`);
      // Only the address on stdout, so that BOOTSTRAP=$(node test/kafka/broker.mjs start) works.
      console.log(broker.bootstrap);
      return 0;
    }
    case 'stop': {
      const s = readDevState();
      if (!s) {
        log('No dev broker state file; nothing to stop');
        return 0;
      }
      if (pidAlive(s.pid) && isOurBroker(s.pid, s.runDir)) {
        signalBroker(s.pid, 'SIGTERM');
        if (!(await waitForPidExit(s.pid, STOP_GRACE_MS))) {
          log(`Kafka pid ${s.pid} ignored SIGTERM for ${STOP_GRACE_MS / 1000} s; sending SIGKILL`);
          signalBroker(s.pid, 'SIGKILL');
          if (!(await waitForPidExit(s.pid, KILL_GRACE_MS))) throw new Error(`Kafka pid ${s.pid} did not exit`);
        }
        log(`Stopped Kafka ${s.version} (pid ${s.pid}) at ${s.bootstrap}`);
      } else {
        log(`Kafka pid ${s.pid} was not running`);
      }
      const runState = readRunState(s.runDir);
      if (!runState?.keep && s.runDir.startsWith(RUN_ROOT + path.sep)) fs.rmSync(s.runDir, { recursive: true, force: true });
      fs.rmSync(STATE_FILE, { force: true });
      return 0;
    }
    case 'status': {
      const s = readDevState();
      if (s && pidAlive(s.pid) && isOurBroker(s.pid, s.runDir)) {
        log(`Kafka ${s.version} running (pid ${s.pid}, run dir ${s.runDir})`);
        console.log(s.bootstrap);
        return 0;
      }
      log('No dev broker running');
      return 1;
    }
    default:
      console.error('Usage: node test/kafka/broker.mjs <start|stop|status|fetch> [--version V] [--keep]');
      console.error(`Versions: ${KAFKA_VERSIONS.latest} (latest, default), ${KAFKA_VERSIONS.previous} (previous), or any x.y.z on Maven Central`);
      return command ? 2 : 0;
  }
}

const invokedDirectly = (() => {
  try {
    return process.argv[1] !== undefined && fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();

if (invokedDirectly) {
  cli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      console.error(`kafka broker: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
