/**
 * The docs are part of the contract: every error code, close code and option a user can meet is
 * documented where the README sends them.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OPTION_SPECS, envName, flagName } from '../src/config.js';
import { DISCONNECTS, ERROR_CODES } from '../src/errors.js';

const read = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');

describe('docs/protocol.md', () => {
  const protocol = read('docs/protocol.md');
  it.each(Object.keys(ERROR_CODES))('documents the error code %s', (code) => {
    expect(protocol).toContain(`\`${code}\``);
  });
  it.each(Object.values(DISCONNECTS).map((d) => d.code))('documents the close code %i', (code) => {
    expect(protocol).toContain(`\`${code}\``);
  });
  it.each(['cursor_expired', 'unknown_epoch', 'bad_cursor'])('documents the reset reason %s', (reason) => {
    expect(protocol).toContain(`\`${reason}\``);
  });
});

describe('docs/config.md', () => {
  const config = read('docs/config.md');
  it.each(Object.keys(OPTION_SPECS))('documents the option %s with its flag and variable', (key) => {
    expect(config).toContain(`\`${key}\``);
    expect(config).toContain(`\`--${flagName(key)}\``);
    expect(config).toContain(`\`${envName(key)}\``);
  });
});
