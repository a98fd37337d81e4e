/**
 * Serves the demo page and client from public/: a handful of small files, read once at start and
 * sent from memory. Only files that exist in the folder are routable, so no path can escape it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
};

export function registerStaticFiles(app: FastifyInstance, dir: string): void {
  const files = new Map<string, { body: Buffer; type: string }>();
  const walk = (folder: string, prefix: string): void => {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) walk(path, `${prefix}${name}/`);
      else files.set(`/${prefix}${name}`, { body: readFileSync(path), type: CONTENT_TYPES[extname(name)] ?? 'application/octet-stream' });
    }
  };
  walk(dir, '');
  for (const [path, file] of files) {
    const routes = path.endsWith('/index.html') ? [path, path.slice(0, -'index.html'.length)] : [path];
    for (const route of routes) {
      app.get(route, async (_request, reply) => reply.header('content-type', file.type).header('cache-control', 'no-cache').send(file.body));
    }
  }
}

/**
 * MQTT.js's browser bundle at `/vendor/mqtt.min.js`, for the demo board's MQTT choice, when the
 * `mqtt` package is installed (it is a development dependency: present in a clone, not in an
 * installed package, where the page then hides the choice).
 */
export function registerVendorMqtt(app: FastifyInstance): void {
  let body: Buffer;
  try {
    const require = createRequire(import.meta.url);
    body = readFileSync(join(dirname(require.resolve('mqtt/package.json')), 'dist', 'mqtt.min.js'));
  } catch {
    return;
  }
  app.get('/vendor/mqtt.min.js', async (_request, reply) => reply.header('content-type', CONTENT_TYPES['.js'] as string).header('cache-control', 'no-cache').send(body));
}
