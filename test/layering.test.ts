/**
 * Dependencies point one way: the engine and everything below src/ (but the composition root)
 * knows nothing of HTTP, sockets or the transports; transports know nothing of Kafka.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('..', import.meta.url).pathname;
const filesUnder = (dir: string): string[] =>
  readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name);
    return statSync(join(root, path)).isDirectory() ? filesUnder(path) : path.endsWith('.ts') ? [path] : [];
  });
const importsOf = (file: string): string[] =>
  [...readFileSync(join(root, file), 'utf8').matchAll(/^\s*(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1] as string);

/** The composition roots wire everything together and may import anything. */
const COMPOSITION_ROOTS = ['src/start.ts', 'src/cli.ts'];

describe('layering', () => {
  it('src/ never imports transports/, fastify, ws or node:http (but the composition roots)', () => {
    const serverTransports = join(root, 'transports') + '/';
    const offenders = filesUnder('src')
      .filter((file) => !COMPOSITION_ROOTS.includes(file))
      .flatMap((file) =>
        importsOf(file)
          .filter((spec) => (spec.startsWith('.') && resolve(dirname(join(root, file)), spec).startsWith(serverTransports)) || /^fastify|^@fastify\/|^ws$|^node:(http|net)$/.test(spec))
          .map((spec) => `${file} → ${spec}`),
      );
    expect(offenders).toEqual([]);
  });

  it('transports/ never imports a Kafka client or the Kafka source', () => {
    const offenders = filesUnder('transports').flatMap((file) =>
      importsOf(file).filter((spec) => /kafka/i.test(spec)).map((spec) => `${relative(root, join(root, file))} → ${spec}`),
    );
    expect(offenders).toEqual([]);
  });

  it('the engine does not import the protocol framing of any transport', () => {
    const offenders = filesUnder('src/engine').flatMap((file) => importsOf(file).filter((spec) => /format|websocket|sse|poll/.test(spec)).map((spec) => `${file} → ${spec}`));
    expect(offenders).toEqual([]);
  });

  it('the log vocabulary sits below the engine: log/, kafka/ and routing/ never import engine/ or resume/', () => {
    const below = ['src/log', 'src/kafka', 'src/routing'];
    const above = ['src/engine', 'src/resume'].map((dir) => join(root, dir) + '/');
    const offenders = below.flatMap((dir) =>
      filesUnder(dir).flatMap((file) =>
        importsOf(file)
          .filter((spec) => spec.startsWith('.') && above.some((prefix) => resolve(dirname(join(root, file)), spec).startsWith(prefix)))
          .map((spec) => `${file} → ${spec}`),
      ),
    );
    expect(offenders).toEqual([]);
  });

  it('the engine stays synchronous and below resume: it imports neither resume/ nor routing/ nor kafka/', () => {
    const above = ['src/resume', 'src/routing', 'src/kafka'].map((dir) => join(root, dir) + '/');
    const offenders = filesUnder('src/engine').flatMap((file) =>
      importsOf(file)
        .filter((spec) => spec.startsWith('.') && above.some((prefix) => resolve(dirname(join(root, file)), spec).startsWith(prefix)))
        .map((spec) => `${file} → ${spec}`),
    );
    expect(offenders).toEqual([]);
  });

  it('transports ask for entitlements only through resume/ and publish/: they never import the checks or the caps', () => {
    const checks = ['src/auth/entitlements', 'src/auth/caps'].map((path) => join(root, path));
    const offenders = filesUnder('transports').flatMap((file) =>
      importsOf(file)
        .filter((spec) => spec.startsWith('.') && checks.some((check) => resolve(dirname(join(root, file)), spec).startsWith(check)))
        .map((spec) => `${file} → ${spec}`),
    );
    expect(offenders).toEqual([]);
  });

  it('auth/ and limits/ stand alone: they import neither the engine, resume/, the log nor Kafka', () => {
    const above = ['src/engine', 'src/resume', 'src/log', 'src/kafka', 'src/routing', 'src/publish'].map((dir) => join(root, dir) + '/');
    const offenders = [...filesUnder('src/auth'), ...filesUnder('src/limits')].flatMap((file) =>
      importsOf(file)
        .filter((spec) => spec.startsWith('.') && above.some((prefix) => resolve(dirname(join(root, file)), spec).startsWith(prefix)))
        .map((spec) => `${file} → ${spec}`),
    );
    expect(offenders).toEqual([]);
  });
});
