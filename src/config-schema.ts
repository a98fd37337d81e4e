/**
 * The JSON Schema (draft 2020-12) of the config file, generated from the option table, so an
 * editor can check and complete a config file before `edgepush check-config` does. What a schema
 * cannot say (rules across options, the inside of `kafka`, caps) is left to check-config.
 *
 * `npm run schema` writes it to edgepush.schema.json; a test checks that file is up to date.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOG_LEVELS, OPTION_SPECS, type OptionSpec } from './config.js';
import { packageRoot } from './package-root.js';

export const SCHEMA_FILE = 'edgepush.schema.json';

export function configSchema(): Record<string, unknown> {
  const properties: Record<string, unknown> = {
    $schema: { type: 'string', description: 'Where an editor finds this schema, e.g. "./node_modules/edgepush/edgepush.schema.json"; not an option.' },
  };
  for (const [key, spec] of Object.entries(OPTION_SPECS)) properties[key] = propertyOf(spec);
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'edgepush configuration',
    description: 'The JSON file given to edgepush --config (docs/config.md). Generated from the option table (src/config.ts) by npm run schema.',
    type: 'object',
    additionalProperties: false,
    properties,
  };
}

function propertyOf(spec: OptionSpec): Record<string, unknown> {
  return { ...typeOf(spec), default: spec.default, description: spec.description };
}

function typeOf(spec: OptionSpec): Record<string, unknown> {
  switch (spec.kind) {
    case 'integer':
    case 'number':
      return { type: spec.kind, ...(spec.min !== undefined ? { minimum: spec.min } : {}), ...(spec.max !== undefined ? { maximum: spec.max } : {}) };
    case 'boolean':
      return { type: 'boolean' };
    case 'level':
      return { enum: LOG_LEVELS };
    case 'string':
      // The server takes an empty string only where it is the default (unset).
      return spec.default === '' ? { type: 'string' } : { type: 'string', minLength: 1 };
    case 'object':
    case 'array':
      // null where it is the default (unset).
      return { type: spec.default === null ? [spec.kind, 'null'] : spec.kind };
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(join(packageRoot(), SCHEMA_FILE), JSON.stringify(configSchema(), null, 2) + '\n');
}
