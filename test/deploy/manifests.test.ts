// deploy/: the plain Kubernetes manifests and the Helm chart describe a deployment that works with
// this server: probes on routes it serves, the port it listens on, a PodDisruptionBudget and a
// Service that select its pods, a grace period longer than its drain, and only options it knows.
// The chart is rendered with `helm` when it is installed (.ci/setup-helm.sh builds it), and its
// default rendering is the plain manifests.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkConfig } from '../../src/check-config.js';
import { resolveOptions } from '../../src/config.js';
import type { RunningServer } from '../../src/start.js';
import { REPO_ROOT } from '../helpers/edgepush-process.js';
import { startTestServer } from '../helpers/server.js';
import { parseYamlDocuments } from '../helpers/yaml-lite.js';

type Manifest = { kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec: any; data?: Record<string, string> };

const CHART = join(REPO_ROOT, 'deploy', 'helm', 'edgepush');
const PLAIN = join(REPO_ROOT, 'deploy', 'kubernetes');
const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const plain = readdirSync(PLAIN)
  .filter((name) => name.endsWith('.yaml'))
  .sort()
  .flatMap((name) => parseYamlDocuments(readFileSync(join(PLAIN, name), 'utf8')) as Manifest[]);

function only(manifests: Manifest[], kind: string): Manifest {
  const found = manifests.filter((manifest) => manifest.kind === kind);
  expect(found, kind).toHaveLength(1);
  return found[0] as Manifest;
}

let server: RunningServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
});

/** What every rendering must hold. */
async function checkDeployment(manifests: Manifest[]): Promise<void> {
  const deployment = only(manifests, 'Deployment');
  const service = only(manifests, 'Service');
  const pdb = only(manifests, 'PodDisruptionBudget');
  const pod = deployment.spec.template;
  const podLabels = pod.metadata.labels as Record<string, string>;
  expect(podLabels).toMatchObject(deployment.spec.selector.matchLabels);
  expect(podLabels).toMatchObject(pdb.spec.selector.matchLabels);
  expect(podLabels).toMatchObject(service.spec.selector);
  expect(pdb.spec.maxUnavailable ?? pdb.spec.minAvailable).toBeDefined();

  const [container, ...others] = pod.spec.containers;
  expect(others).toEqual([]);
  // The environment is one the server starts with (an unknown EDGEPUSH_* name would stop it).
  const env = Object.fromEntries((container.env as { name: string; value: string }[]).map(({ name, value }) => [name, value]));
  const options = resolveOptions({ env });
  const ports = container.ports as { name: string; containerPort: number }[];
  const portOf = (port: string | number): number | undefined => (typeof port === 'number' ? port : ports.find((p) => p.name === port)?.containerPort);
  expect(portOf('http')).toBe(options.port);
  expect(portOf(service.spec.ports[0].targetPort)).toBe(options.port);

  // Liveness and start-up on /healthz, readiness on /readyz, on the port the server listens on,
  // and the server answers them.
  const probes = { startupProbe: '/healthz', livenessProbe: '/healthz', readinessProbe: '/readyz' };
  for (const [probe, path] of Object.entries(probes)) {
    expect(container[probe].httpGet.path, probe).toBe(path);
    expect(portOf(container[probe].httpGet.port), probe).toBe(options.port);
    expect((await fetch(`${server.url}${path}`)).status, `${probe} ${path}`).toBe(200);
  }

  // The kubelet's SIGKILL comes only after the preStop pause and the whole drain.
  const preStop = container.lifecycle.preStop.exec.command as string[];
  expect(preStop[0]).toBe('sleep');
  expect(pod.spec.terminationGracePeriodSeconds).toBeGreaterThan(Number(preStop[1]) + options.drainTimeout);

  expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: expect.any(Number) });
  expect(pod.spec.securityContext.runAsUser).toBeGreaterThan(0);
  expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  expect(container.resources.requests).toBeDefined();
}

describe('deploy/kubernetes (plain manifests)', () => {
  it('a Deployment, a Service and a PodDisruptionBudget that fit the server', async () => {
    expect(plain.map((manifest) => manifest.kind).sort()).toEqual(['Deployment', 'PodDisruptionBudget', 'Service']);
    await checkDeployment(plain);
  });

  it("deploy this package's version", () => {
    expect(only(plain, 'Deployment').spec.template.spec.containers[0].image).toBe(`edgepush:${VERSION}`);
    expect(parseYamlDocuments(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'))[0]).toMatchObject({ name: 'edgepush', appVersion: VERSION });
  });
});

/** helm from .ci/setup-helm.sh, or on PATH. */
function findHelm(): string | undefined {
  const local = join(REPO_ROOT, '.cache', 'bin', 'helm');
  if (existsSync(local)) return local;
  return spawnSync('helm', ['version', '--short'], { encoding: 'utf8' }).status === 0 ? 'helm' : undefined;
}
const helm = findHelm();
if (!helm) console.warn('Helm chart rendering skipped: no helm (bash .ci/setup-system.sh builds it when Go is installed)');

describe.skipIf(!helm)('deploy/helm/edgepush (rendered with helm)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgepush-helm-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const helmRun = (...args: string[]): { status: number | null; output: string } => {
    const result = spawnSync(helm as string, args, { encoding: 'utf8', timeout: 60_000, env: { ...process.env, HELM_CACHE_HOME: join(dir, 'cache'), HELM_CONFIG_HOME: join(dir, 'config'), HELM_DATA_HOME: join(dir, 'data') } });
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
  };
  const render = (values: Record<string, unknown> = {}): Manifest[] => {
    const file = join(dir, 'values.json');
    writeFileSync(file, JSON.stringify(values));
    const { status, output } = helmRun('template', 'edgepush', CHART, '--values', file);
    expect(status, output).toBe(0);
    return parseYamlDocuments(output) as Manifest[];
  };

  it('passes helm lint --strict', () => {
    const { status, output } = helmRun('lint', '--strict', CHART);
    expect(status, output).toBe(0);
  });

  it('renders, with its defaults, the plain manifests (plus Helm’s labels)', () => {
    const helmOnly = ['app.kubernetes.io/managed-by', 'helm.sh/chart', 'app.kubernetes.io/version'];
    const rendered = render().map((manifest) => {
      for (const key of helmOnly) delete manifest.metadata.labels?.[key];
      delete manifest.spec.template?.metadata.annotations?.['checksum/config'];
      if (manifest.spec.template?.metadata.annotations && Object.keys(manifest.spec.template.metadata.annotations).length === 0) delete manifest.spec.template.metadata.annotations;
      return manifest;
    });
    const byKind = (manifests: Manifest[]): Manifest[] => [...manifests].sort((a, b) => a.kind.localeCompare(b.kind));
    expect(byKind(rendered)).toEqual(byKind(plain));
  });

  it('with Kafka, replicas, a config file and more variables: a deployment that fits the server, a config check-config accepts', async () => {
    const config = { historySize: 500, kafka: { brokers: ['kafka-0.kafka:9092'], topics: [{ topic: 'jobs', channel: 'jobs/{key}' }] } };
    const manifests = render({ replicaCount: 3, drainTimeout: 60, port: 9000, config, env: { EDGEPUSH_TRUST_PROXY: 'true' }, envFrom: [{ secretRef: { name: 'edgepush-secrets' } }] });
    await checkDeployment(manifests);
    const deployment = only(manifests, 'Deployment');
    expect(deployment.spec.replicas).toBe(3);
    const container = deployment.spec.template.spec.containers[0];
    expect(container.envFrom).toEqual([{ secretRef: { name: 'edgepush-secrets' } }]);
    // The config file: from the ConfigMap, mounted where --config looks, as valid as check-config says.
    const configMap = only(manifests, 'ConfigMap');
    expect(deployment.spec.template.spec.volumes).toEqual([{ name: 'config', configMap: { name: configMap.metadata.name } }]);
    expect(container.args).toEqual(['--config', `${container.volumeMounts[0].mountPath}/config.json`]);
    const file = join(dir, 'config.json');
    writeFileSync(file, configMap.data?.['config.json'] as string);
    expect(checkConfig(file)).toMatch(/^ok: .* source: Kafka at kafka-0\.kafka:9092, topics jobs;/);
  });

  it('refuses more than one replica on the embedded log', () => {
    const file = join(dir, 'replicas.json');
    writeFileSync(file, JSON.stringify({ replicaCount: 2 }));
    const { status, output } = helmRun('template', 'edgepush', CHART, '--values', file);
    expect(status).not.toBe(0);
    expect(output).toContain('replicaCount > 1 needs Kafka');
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8').replace(/\\\n\s*/g, '');
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  const instruction = (name: string): string | undefined => new RegExp(`^${name} (.+)$`, 'm').exec(runtime)?.[1];

  it('runs the server under tini, so signals reach it and children are reaped', () => {
    expect(runtime).toMatch(/^RUN apt-get update && apt-get install -y --no-install-recommends tini\b/m);
    expect(JSON.parse(instruction('ENTRYPOINT') as string)).toEqual(['tini', '--', 'node', '--max-semi-space-size=8', 'dist/src/cli.js']);
  });

  it('checks health with `edgepush healthcheck`, as a user other than root', () => {
    expect(instruction('HEALTHCHECK')).toMatch(/ CMD \["node", "dist\/src\/cli\.js", "healthcheck"\]$/);
    expect(instruction('USER')).toBe('node');
  });
});
