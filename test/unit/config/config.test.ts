import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, OPTION_SPECS, defaultOptions, envName, flagName, helpText, resolveOptions } from '../../../src/config.js';

const dir = mkdtempSync(join(tmpdir(), 'edgepush-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
function configFile(content: unknown): string {
  const path = join(dir, `config-${files++}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  describe('resolveOptions', () => {
    it('gives the defaults when nothing is set', () => {
      expect(resolveOptions({})).toEqual(defaultOptions());
      expect(defaultOptions()).toMatchObject({ port: 8080, host: '0.0.0.0', allowPublish: true, logLevel: 'info' });
    });

    it('takes the command line over the environment over the file over the defaults', () => {
      const file = configFile({ port: 1001, host: 'file-host', historySize: 7, demo: true });
      const env = { EDGEPUSH_PORT: '1002', EDGEPUSH_HOST: 'env-host' };
      const cli = { port: '1003' };
      expect(resolveOptions({ file, env, cli })).toMatchObject({ port: 1003, host: 'env-host', historySize: 7, demo: true, logLevel: 'info' });
      expect(resolveOptions({ file, env })).toMatchObject({ port: 1002, host: 'env-host' });
      expect(resolveOptions({ file })).toMatchObject({ port: 1001, host: 'file-host' });
    });

    it('ignores unset (undefined) values', () => {
      expect(resolveOptions({ cli: { port: undefined }, env: { EDGEPUSH_PORT: undefined } }).port).toBe(8080);
    });

    it('reads booleans, numbers and log levels from strings', () => {
      const options = resolveOptions({
        env: { EDGEPUSH_DEMO: '1', EDGEPUSH_ALLOW_PUBLISH: 'false', EDGEPUSH_HEARTBEAT_INTERVAL: '0.5', EDGEPUSH_LOG_LEVEL: 'debug' },
        cli: { maxIdleChannels: '42', corsOrigin: 'https://example.com' },
      });
      expect(options).toMatchObject({ demo: true, allowPublish: false, heartbeatInterval: 0.5, logLevel: 'debug', maxIdleChannels: 42, corsOrigin: 'https://example.com' });
      expect(resolveOptions({ cli: { demo: true } }).demo).toBe(true);
      expect(resolveOptions({ cli: { demo: '' } }).demo).toBe(true);
    });

    it('names the command-line flag in errors', () => {
      expect(errorOf(() => resolveOptions({ cli: { port: 'abc' } })).message).toMatch(/--port must be an integer >= 0 and <= 65535, got "abc"/);
      expect(errorOf(() => resolveOptions({ cli: { maxBufferedBytes: '100' } })).message).toContain('--max-buffered-bytes');
      expect(errorOf(() => resolveOptions({ cli: { demo: 'yes' } })).message).toContain('--demo must be true or false');
    });

    it('names the environment variable in errors', () => {
      expect(errorOf(() => resolveOptions({ env: { EDGEPUSH_PORT: '70000' } })).message).toContain('EDGEPUSH_PORT');
      expect(errorOf(() => resolveOptions({ env: { EDGEPUSH_LOG_LEVEL: 'loud' } })).message).toContain('EDGEPUSH_LOG_LEVEL must be one of');
      expect(errorOf(() => resolveOptions({ env: { EDGEPUSH_HOST: '' } })).message).toContain('EDGEPUSH_HOST must be a non-empty string');
      expect(errorOf(() => resolveOptions({ env: { EDGEPUSH_HISTORY_SIZE: '1.5' } })).message).toContain('EDGEPUSH_HISTORY_SIZE must be an integer');
      expect(errorOf(() => resolveOptions({ env: { EDGEPUSH_POLL_TIMEOUT: ' ' } })).message).toContain('EDGEPUSH_POLL_TIMEOUT must be a number');
    });

    it('names the key and the file in errors', () => {
      const file = configFile({ port: -1 });
      const message = errorOf(() => resolveOptions({ file })).message;
      expect(message).toContain(`"port" in ${file}`);
      expect(errorOf(() => resolveOptions({ file: configFile({ demo: 'maybe' }) })).message).toMatch(/"demo" in .* must be true or false/);
    });

    it('takes a file as typed JSON: a number or boolean given as a string is refused, naming the key', () => {
      expect(errorOf(() => resolveOptions({ file: configFile({ historySize: '500' }) })).message).toMatch(/"historySize" in .* must be an integer \(a JSON number, not a string\), got "500"/);
      expect(errorOf(() => resolveOptions({ file: configFile({ demo: 'true' }) })).message).toMatch(/"demo" in .* must be true or false \(a JSON boolean, not a string\)/);
      expect(errorOf(() => resolveOptions({ file: configFile({ kafka: '{"brokers":["k:9092"]}' }) })).message).toMatch(/"kafka" in .* must be a JSON object/);
      // The environment and the command line are strings by nature.
      expect(resolveOptions({ env: { EDGEPUSH_HISTORY_SIZE: '500' } }).historySize).toBe(500);
      expect(resolveOptions({ file: configFile({ historySize: 500, host: '127.0.0.1', logLevel: 'warn' }) })).toMatchObject({ historySize: 500, host: '127.0.0.1', logLevel: 'warn' });
    });

    it('says the config file must be JSON when it is not (YAML, say)', () => {
      expect(errorOf(() => resolveOptions({ file: configFile('historySize: 500\n') })).message).toMatch(/cannot read config file .* \(it must be JSON\)/);
    });

    it('rejects an unknown EDGEPUSH_* variable, suggesting the near one; other variables are not its business', () => {
      expect(errorOf(() => resolveOptions({ env: { EDGEPUSH_HISTORY_SIZ: '5' } })).message).toBe('invalid configuration: unknown environment variable EDGEPUSH_HISTORY_SIZ (did you mean EDGEPUSH_HISTORY_SIZE?)');
      expect(errorOf(() => resolveOptions({ env: { EDGEPUSH_WHATEVER: '1' } })).message).toBe('invalid configuration: unknown environment variable EDGEPUSH_WHATEVER');
      expect(resolveOptions({ env: { HOME: '/root', PATH: '/usr/bin', EDGEPUSH_PORT: '81' } }).port).toBe(81);
    });

    it('rejects an unknown key in the file', () => {
      const file = configFile({ port: 80, prot: 81 });
      expect(errorOf(() => resolveOptions({ file })).message).toContain(`unknown key "prot" in ${file}`);
    });

    it('rejects a file that cannot be read, is not JSON or is not an object', () => {
      expect(errorOf(() => resolveOptions({ file: join(dir, 'missing.json') })).message).toContain('cannot read config file');
      expect(errorOf(() => resolveOptions({ file: configFile('{ port: 80') })).message).toContain('cannot read config file');
      expect(errorOf(() => resolveOptions({ file: configFile([1, 2]) })).message).toContain('must hold a JSON object');
      expect(errorOf(() => resolveOptions({ file: configFile('null') })).message).toContain('must hold a JSON object');
    });

    it('checks that pollTimeout does not exceed pollMaxTimeout', () => {
      expect(errorOf(() => resolveOptions({ cli: { pollTimeout: '61' } })).message).toMatch(/pollTimeout \(61\) must not exceed pollMaxTimeout \(60\)/);
      expect(resolveOptions({ cli: { pollTimeout: '61', pollMaxTimeout: '61' } }).pollTimeout).toBe(61);
    });

    it('checks that maxIdleBytes is at least twice historyBytes and maxMessageBytes', () => {
      const env = { EDGEPUSH_MAX_IDLE_BYTES: '100000', EDGEPUSH_MAX_MESSAGE_BYTES: '1000' };
      expect(errorOf(() => resolveOptions({ env: { ...env, EDGEPUSH_HISTORY_BYTES: '50001' } })).message).toMatch(
        /maxIdleBytes \(100000\) must be at least twice historyBytes and maxMessageBytes \(50001\)/,
      );
      expect(resolveOptions({ env: { ...env, EDGEPUSH_HISTORY_BYTES: '50000' } }).historyBytes).toBe(50000);
      // A ring keeps its newest message even over historyBytes, so the message limit counts too.
      expect(errorOf(() => resolveOptions({ env: { EDGEPUSH_MAX_IDLE_BYTES: '100000', EDGEPUSH_HISTORY_BYTES: '1024', EDGEPUSH_MAX_MESSAGE_BYTES: '60000' } })).message).toMatch(/\(60000\)/);
    });

    it('rejects keys that only exist on Object.prototype', () => {
      const file = configFile({ constructor: 5 });
      expect(errorOf(() => resolveOptions({ file })).message).toMatch(/unknown key "constructor"/);
    });

    it('accepts the bounds of a range and rejects just outside', () => {
      expect(resolveOptions({ cli: { port: '0' } }).port).toBe(0);
      expect(resolveOptions({ cli: { port: '65535' } }).port).toBe(65535);
      expect(() => resolveOptions({ cli: { port: '65536' } })).toThrow(ConfigError);
      expect(() => resolveOptions({ cli: { historySize: '0' } })).toThrow(ConfigError);
    });

    it('takes typed options given in code (createServer) by the file\'s rules, over the file', () => {
      const file = configFile({ port: 1001, historySize: 7 });
      expect(resolveOptions({ file, values: { port: 0, demo: true, logLevel: undefined } })).toMatchObject({ port: 0, historySize: 7, demo: true, logLevel: 'info' });
      // A whole options object, defaults ("" and null) included, passes as it is.
      expect(resolveOptions({ values: { ...defaultOptions(), port: 0 } })).toEqual({ ...defaultOptions(), port: 0 });
      expect(errorOf(() => resolveOptions({ values: { port: '8080' } })).message).toBe('invalid configuration: "port" in the createServer options must be an integer (a JSON number, not a string), got "8080"');
      expect(errorOf(() => resolveOptions({ values: { prot: 1 } })).message).toBe('invalid configuration: unknown key "prot" in the createServer options');
    });

    it('ignores "$schema" in the file (an editor\'s pointer to edgepush.schema.json) and takes a default as unset', () => {
      const file = configFile({ $schema: './node_modules/edgepush/edgepush.schema.json', corsOrigin: '', kafka: null });
      expect(resolveOptions({ file })).toEqual(defaultOptions());
    });
  });

  describe('flagName and envName', () => {
    it('derive kebab-case flags and EDGEPUSH_ variables from keys', () => {
      expect(flagName('maxIdleChannels')).toBe('max-idle-channels');
      expect(envName('maxIdleChannels')).toBe('EDGEPUSH_MAX_IDLE_CHANNELS');
      expect(envName('port')).toBe('EDGEPUSH_PORT');
    });
  });

  describe('helpText', () => {
    it('lists every option with its flag, environment variable and default', () => {
      const text = helpText();
      for (const [key, spec] of Object.entries(OPTION_SPECS)) {
        // Boolean switches may be shown with their negation, `--[no-]flag`; they take no value.
        const value = spec.kind === 'boolean' ? ' ' : spec.kind === 'object' || spec.kind === 'array' ? ' <json>' : ' <value>';
        const flag = new RegExp(`--(\\[no-\\])?${flagName(key)}${value}`);
        expect(text).toMatch(flag);
        expect(text).toContain(`[${envName(key)}, default ${JSON.stringify(spec.default)}]`);
        expect(text).toContain(spec.description);
      }
      expect(text).toContain('--config <file>');
      expect(text).toContain('--help');
    });
  });
});
