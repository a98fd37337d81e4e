// edgepush.schema.json: generated from the option table, shipped with the package, and in
// agreement with the server: a file the schema refuses, the server refuses too, and the reverse.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// ajv comes with fastify (its schema compiler) and the Kafka client: an independent validator.
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, describe, expect, it } from 'vitest';
import { configSchema, SCHEMA_FILE } from '../../src/config-schema.js';
import { ConfigError, OPTION_SPECS, resolveOptions } from '../../src/config.js';
import { REPO_ROOT } from '../helpers/edgepush-process.js';

const shipped = JSON.parse(readFileSync(join(REPO_ROOT, SCHEMA_FILE), 'utf8')) as Record<string, unknown>;
const validate = new Ajv2020({ strict: true }).compile(shipped);

const dir = mkdtempSync(join(tmpdir(), 'edgepush-schema-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Whether the server accepts `content` as its config file. */
function serverAccepts(content: Record<string, unknown>): boolean {
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(content));
  try {
    resolveOptions({ file });
    return true;
  } catch (error) {
    if (error instanceof ConfigError) return false;
    throw error;
  }
}

/** Files of one option each: its default, and values the table's type and bounds rule out. */
function samples(): [string, Record<string, unknown>, boolean][] {
  const out: [string, Record<string, unknown>, boolean][] = [];
  for (const [key, spec] of Object.entries(OPTION_SPECS)) {
    out.push([`${key}: its default`, { [key]: spec.default }, true]);
    const wrong = spec.kind === 'string' || spec.kind === 'level' ? 5 : 'text';
    out.push([`${key}: ${JSON.stringify(wrong)}`, { [key]: wrong }, false]);
    if (spec.min !== undefined) out.push([`${key}: below its minimum`, { [key]: spec.min - 1 }, false]);
    if (spec.max !== undefined) out.push([`${key}: above its maximum`, { [key]: spec.max + 1 }, false]);
    if (spec.kind === 'integer') out.push([`${key}: a fraction`, { [key]: (spec.min ?? 0) + 1.5 }, false]);
    if (spec.kind === 'level') out.push([`${key}: not a level`, { [key]: 'verbose' }, false]);
    if (spec.kind === 'string' && spec.default !== '') out.push([`${key}: empty`, { [key]: '' }, false]);
    if (spec.kind === 'object' || spec.kind === 'array') out.push([`${key}: the other of object and array`, { [key]: spec.kind === 'object' ? [] : {} }, false]);
  }
  out.push(['an unknown key', { prot: 8080 }, false]);
  out.push(['"$schema", for editors', { $schema: './node_modules/edgepush/edgepush.schema.json' }, true]);
  return out;
}

describe('edgepush.schema.json', () => {
  it('is what the option table generates (npm run schema writes it)', () => {
    expect(shipped).toEqual(configSchema());
  });

  it('is a draft 2020-12 schema that refuses keys it does not know', () => {
    expect(shipped['$schema']).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(shipped['additionalProperties']).toBe(false);
    expect(Object.keys(shipped['properties'] as object)).toEqual(['$schema', ...Object.keys(OPTION_SPECS)]);
  });

  it.each(samples())('agrees with the server on a file with %s', (_what, content, valid) => {
    expect({ schema: validate(content), server: serverAccepts(content) }).toEqual({ schema: valid, server: valid });
  });
});
