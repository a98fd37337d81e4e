// createServer, the package's entry: partial options over the defaults, checked like the command's.
import { describe, expect, it } from 'vitest';
import { ConfigError, createServer } from '../../src/index.js';

describe('createServer', () => {
  it('starts a server from partial options and drains on close()', async () => {
    const server = await createServer({ port: 0, host: '127.0.0.1', logLevel: 'silent' });
    try {
      expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
      expect(await (await fetch(`${server.url}/readyz`)).json()).toEqual({ status: 'ready' });
    } finally {
      await server.close();
    }
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });

  it("refuses a bad option with the command's one-line message, and workers", async () => {
    await expect(createServer({ port: 0, historySize: 0 })).rejects.toThrow(new ConfigError('invalid configuration: "historySize" in the createServer options must be an integer >= 1 and <= 1000000, got 0'));
    await expect(createServer({ port: 0, workers: 2, kafkaBrokers: '127.0.0.1:9', kafkaTopics: 'jobs' })).rejects.toThrow(/workers is an option of the edgepush command/);
  });
});
