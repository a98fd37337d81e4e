/**
 * Seeded input generators for the fuzz test: a small PRNG (mulberry32) and generators for channel
 * names, cursors, numbers, tokens, query strings, headers, JSON bodies and WebSocket frames. Each
 * generator mixes valid values, near-misses (one field wrong) and garbage, so that inputs reach past
 * the first check into the code behind it. Same seed, same inputs.
 */
import { SignJWT } from 'jose';

export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A derived generator: independent streams for parallel workers, reproducible by label. */
  fork(label: string): Rng {
    let h = this.#state ^ 0x9e3779b9;
    for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
    return new Rng(h >>> 0);
  }

  /** 0 ≤ x < 1. */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** 0 ≤ n < max. */
  int(max: number): number {
    return Math.floor(this.next() * max);
  }

  /** min ≤ n ≤ max, skewed towards small values (most inputs small, some large). */
  size(min: number, max: number): number {
    return min + Math.floor(Math.pow(this.next(), 3) * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  bytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }
}

const PRINTABLE = ' !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~';
const TOKEN_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const ODD_CHARS = ['\u0000', '\u0001', '\t', '\n', '\r', '\u007f', '\u0085', '\u00a0', '\u00ff', '\u0100', '\u2028', '\u202e', '\ufeff', '\ufffd', '\ud800', '\udc00', '😀', 'é', 'ß', '中', '/', '+', '#', '%', '&', '=', '?', '"', '\\', '.', '~', ' '];

/** A string from one of several alphabets: printable ASCII, base64url, odd characters, any code unit. */
export function randomString(rng: Rng, maxLength = 40): string {
  const length = rng.size(0, maxLength);
  const mode = rng.int(4);
  let out = '';
  for (let i = 0; i < length; i++) {
    if (mode === 0) out += PRINTABLE[rng.int(PRINTABLE.length)];
    else if (mode === 1) out += TOKEN_CHARS[rng.int(TOKEN_CHARS.length)];
    else if (mode === 2) out += rng.chance(0.3) ? rng.pick(ODD_CHARS) : PRINTABLE[rng.int(PRINTABLE.length)];
    else out += String.fromCharCode(rng.int(0x10000));
  }
  return out;
}

export const GOOD_CHANNELS = ['fuzz/a', 'fuzz/b/c', 'fuzz/+', 'fuzz/#', 'public/x', 'public/y/z', 'public/#', 'C++/x', 'ü/ñ/😀', 'a', '+/x', '#', 'private/secret'];

export function channel(rng: Rng): string {
  if (rng.chance(0.65)) return rng.pick(GOOD_CHANNELS);
  switch (rng.int(8)) {
    case 0:
      return rng.pick(['', '/', 'a//b', 'a/', '/a', '#/a', 'a/#/b', '++', 'a/+b']);
    case 1:
      return 'x'.repeat(rng.pick([255, 256, 1000]));
    case 2:
      return `fuzz/${rng.pick(ODD_CHARS)}`;
    case 3:
      return `fuzz/${randomString(rng, 20)}`;
    case 4:
      return Array.from({ length: rng.size(1, 60) }, () => 'l').join('/');
    default:
      return randomString(rng, 30);
  }
}

/** Cursors: real ones, near-misses of them, and garbage. `real` is a cursor the server minted. */
export function cursor(rng: Rng, real: string): string {
  const [epoch = 'x', parts = ''] = real.split('.');
  switch (rng.int(12)) {
    case 0:
      return real;
    case 1:
      return `${epoch}.${parts}1`;
    case 2:
      return `${epoch}.${'_'.repeat(rng.size(1, 2000))}`;
    case 3:
      return `${epoch}.${rng.pick(['-1', 'zzzzzzzzzzz', 'zzzzzzzzzzzz', '0~0', '0~zzzzzz', '0~zzzzzzz', '~', '0~', 'Z', '1e5', ' 1'])}`;
    case 4:
      return `otherepoch.${parts}`;
    case 5:
      return 'x'.repeat(rng.pick([8192, 8193, 20_000]));
    case 6:
      return rng.pick(['', '.', '..', `${epoch}`, `${epoch}..`, `.${parts}`, 'null', '0', `${epoch}.0.0`]);
    case 7:
      return `${epoch}.${Array.from({ length: rng.size(1, 300) }, () => rng.int(1000).toString(36)).join('_')}`;
    default:
      return randomString(rng, 60);
  }
}

export function numberText(rng: Rng): string {
  return rng.pick(['0', '1', '5', '50', '100', '101', '-1', '0.05', '0.1', '0.2', '1e9', '1e400', 'NaN', 'Infinity', '-Infinity', '0x10', ' 5', '5 ', '', '1,5', '٣', '1e-7', '00001', '+3', '9007199254740993', randomString(rng, 8)]);
}

export function jsonValue(rng: Rng, depth = 0, maxDepth = 5): unknown {
  const leaf = depth >= maxDepth || rng.chance(0.45);
  if (leaf) {
    switch (rng.int(9)) {
      case 0:
        return null;
      case 1:
        return rng.chance(0.5);
      case 2:
        return rng.int(1000) - 500;
      case 3:
        return rng.pick([0, -0, 1e308, -1e-308, 2 ** 53 + 1, 0.1, 123456789.123456789]);
      default:
        return randomString(rng, 24);
    }
  }
  if (rng.chance(0.5)) return Array.from({ length: rng.size(0, 6) }, () => jsonValue(rng, depth + 1, maxDepth));
  const out: Record<string, unknown> = {};
  for (let i = rng.size(0, 6); i > 0; i--) out[rng.chance(0.8) ? rng.pick(['channel', 'data', 'messages', 'op', 'id', 'cursor', 'user', 'session', 'code', 'reason', '__proto__', 'constructor', 'token', 'delta']) : randomString(rng, 10)] = jsonValue(rng, depth + 1, maxDepth);
  return out;
}

export function deepJson(rng: Rng, levels: number): string {
  if (rng.chance(0.5)) return '['.repeat(levels) + ']'.repeat(levels);
  return '{"a":'.repeat(levels) + '1' + '}'.repeat(levels);
}

// ---------------------------------------------------------------------------------------------
// Tokens

export interface TokenKit {
  readonly secret: string;
  readonly apiKey: string;
  /** Signed and unsigned variants made once (signing is async); generators pick and mutate them. */
  readonly pool: readonly string[];
  /** A token that is good on the closed server. */
  readonly valid: string;
}

function b64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

export async function makeTokenKit(secret: string, apiKey: string, user: string): Promise<TokenKit> {
  const key = new TextEncoder().encode(secret);
  const now = Math.floor(Date.now() / 1000);
  const caps = [{ match: 'fuzz/#', allow: ['sub', 'pub', 'hst'] }];
  const sign = (claims: Record<string, unknown>, header: Record<string, unknown> = {}, signKey: Uint8Array = key, alg = 'HS256'): Promise<string> =>
    new SignJWT(claims).setProtectedHeader({ alg, ...header }).sign(signKey);
  const valid = await sign({ sub: user, exp: now + 3600, edgepush: { caps } });
  const pool = [
    valid,
    await sign({ sub: user, exp: now + 3600 }),
    await sign({ sub: `${user}-other`, exp: now + 3600, edgepush: { caps, subs: ['fuzz/a'] } }),
    await sign({ sub: user, exp: now - 10, edgepush: { caps } }),
    await sign({ sub: user, exp: now + 3600, nbf: now + 3600 }),
    await sign({ sub: user }),
    await sign({ sub: user, exp: now + 3600 }, {}, new TextEncoder().encode('another-secret-of-at-least-32-bytes!!')),
    await sign({ sub: user, exp: now + 3600 }, {}, key, 'HS512'),
    await sign({ sub: user, exp: now + 3600 }, {}, key, 'HS384'),
    await sign({ sub: user, exp: now + 3600, edgepush: 'x' }),
    await sign({ sub: user, exp: now + 3600, edgepush: [] }),
    await sign({ sub: user, exp: now + 3600, edgepush: { caps: 'x' } }),
    await sign({ sub: user, exp: now + 3600, edgepush: { caps: [{ match: '#/a', allow: ['sub'] }] } }),
    await sign({ sub: user, exp: now + 3600, edgepush: { caps: [{ match: 'a', allow: [] }] } }),
    await sign({ sub: user, exp: now + 3600, edgepush: { caps: [{ match: 'a', allow: ['all'] }] } }),
    await sign({ sub: user, exp: now + 3600, edgepush: { subs: [1] } }),
    await sign({ sub: 'a/b', exp: now + 3600, edgepush: { caps: [{ match: 'u/{sub}/#', allow: ['sub'] }], subs: ['u/{sub}'] } }),
    await sign({ sub: '#', exp: now + 3600, edgepush: { caps: [{ match: '{sub}', allow: ['sub', 'pub'] }] } }),
    await sign({ sub: user, exp: now + 3600, edgepush: { subs: Array.from({ length: 200 }, (_, i) => `fuzz/s${i}`), caps } }),
    await sign({ sub: user, exp: now + 3600, edgepush: { rate: -1 } }),
    await sign({ sub: user, exp: now + 3600, edgepush: { rate: 'x' } }),
    await sign({ sub: 123, exp: now + 3600 }),
    await sign({ sub: '', exp: now + 3600, edgepush: { caps } }),
    await sign({ sub: user, exp: 'soon' }),
    await sign({ sub: user, exp: 1e20 }),
    await sign({ sub: user, exp: now + 3600, aud: 'someone-else', iss: 'evil' }),
    await sign({ sub: user, exp: now + 3600, iat: now + 100_000 }),
    await sign({ sub: user, exp: now + 3600 }, { kid: '../../etc/passwd' }),
    await sign({ sub: user, exp: now + 3600 }, { crit: ['b64'], b64: false }).catch(() => valid),
    await sign({ sub: user, exp: now + 3600 }, { jku: 'http://127.0.0.1:1/jwks', typ: 'nonsense' }),
    await sign({ sub: user, exp: now + 3600, big: 'x'.repeat(10_000) }),
    `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: user, exp: now + 3600, edgepush: { caps } })}.`,
    `${b64url({ alg: 'none' })}.${b64url({ sub: user, exp: now + 3600 })}.${b64url('sig')}`,
    `${b64url({ alg: 'NONE' })}.${b64url({ sub: user, exp: now + 3600 })}.`,
    `${b64url({ alg: 'RS256', kid: 'x' })}.${b64url({ sub: user, exp: now + 3600 })}.${b64url('not a signature')}`,
    `${b64url({ alg: 'HS256' })}.${b64url('not json')}.${b64url('sig')}`,
    `${b64url('[]')}.${b64url('{}')}.`,
    `${b64url({ alg: 'HS256', zip: 'DEF' })}.${b64url({ sub: user, exp: now + 3600 })}.${b64url('sig')}`,
    `${b64url({ alg: 'HS256' })}.${b64url({ sub: user, exp: now + 3600 })}`,
    `${b64url({ alg: 'HS256' })}.${b64url({ sub: user, exp: now + 3600 })}.${b64url('sig')}.${b64url('extra')}.${b64url('more')}`,
    apiKey,
  ];
  return { secret, apiKey, pool, valid };
}

export function token(rng: Rng, kit: TokenKit): string {
  const base = rng.pick(kit.pool);
  switch (rng.int(10)) {
    case 0:
    case 1:
      return base;
    case 2: {
      // One character changed.
      const at = rng.int(base.length);
      return base.slice(0, at) + TOKEN_CHARS[rng.int(TOKEN_CHARS.length)] + base.slice(at + 1);
    }
    case 3: {
      const at = rng.int(base.length + 1);
      return base.slice(0, at) + rng.pick(['.', '=', '==', '+', '/', ' ', '%', '..', '\u00e9']) + base.slice(at);
    }
    case 4:
      return base.slice(0, rng.int(base.length));
    case 5: {
      const parts = base.split('.');
      return rng.pick([[parts[1], parts[0], parts[2]], [parts[0], parts[0], parts[2]], [parts[0], parts[1], ''], [parts[0], b64url(jsonValue(rng)), parts[2]]]).join('.');
    }
    case 6:
      return rng.chance(0.5) ? 'x'.repeat(rng.pick([1000, 10_000, 15_000])) : `${base}${'A'.repeat(rng.pick([5000, 12_000]))}`;
    case 7:
      return `${b64url(jsonValue(rng, 0, 3))}.${b64url(jsonValue(rng, 0, 3))}.${randomString(rng, 40)}`;
    default:
      return randomString(rng, 120);
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP

export interface HttpInput {
  readonly category: 'query' | 'headers' | 'body' | 'token';
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: string | Buffer;
}

/** Characters Node's client sends unescaped in a path (it refuses the rest). */
const RAW_PATH_CHARS = '!"$\'()*+,-./0123456789:;<>@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\u00e9\u00ff';

/** A query value, encoded one of several ways: properly, raw, as raw bytes (invalid UTF-8 included), or broken. */
export function encodeValue(rng: Rng, value: string): string {
  switch (rng.int(8)) {
    case 0: {
      let out = '';
      for (const char of value) out += RAW_PATH_CHARS.includes(char) ? char : encodeURIComponent(char.replace(/[\ud800-\udfff]/g, '?'));
      return out;
    }
    case 1:
      return Array.from(rng.bytes(rng.size(1, 12)), (byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
    case 2:
      return encodeURIComponent(value.replace(/[\ud800-\udfff]/g, '?')) + rng.pick(['%', '%G1', '%e', '%%', '%00', '%C0%80', '%ED%A0%80', '+', '%2B', '#frag', '&', '=']);
    default:
      return encodeURIComponent(value.replace(/[\ud800-\udfff]/g, '?'));
  }
}

/** Only what Node's client allows in a header value (it refuses control characters and above U+00FF). */
export function headerSafe(value: string): string {
  return value.replace(/[^\t\x20-\x7e\x80-\xff]/g, '?');
}

const GET_ROUTES = ['/v1/sse', '/v1/poll', '/v1/history', '/v1/ws'];

function mutatedPath(rng: Rng, path: string): string {
  return rng.pick([`${path}/`, path.replace('/v1/', '/v1//'), path.toUpperCase(), `${path}%00`, `${path};x=1`, `/..${path}`, `/${path}`, path.replace('/v1/', '/v1/%'), path.replace('/v1/', '/v1/%zz'), path.replace(/(.)$/, '%$1'), `${path}/${encodeValue(rng, randomString(rng, 10))}`, '/v1', '/', '/v2/sse', `${path}%2F`, `${path}..`]);
}

export function queryInput(rng: Rng, ctx: { cursor: string; kit: TokenKit }): HttpInput {
  const route = rng.pick(GET_ROUTES);
  const params: string[] = [];
  const count = rng.size(0, 7);
  for (let i = 0; i < count; i++) {
    const key = rng.chance(0.85) ? rng.pick(['channel', 'channel', 'channel', 'cursor', 'timeout', 'limit', 'delta', 'lastEventId', 'token']) : rng.pick(['__proto__', 'constructor', 'channel[]', 'channel[0]', 'Channel', '', 'a.b', randomString(rng, 8)]);
    let value: string;
    switch (key) {
      case 'channel':
        value = channel(rng);
        break;
      case 'cursor':
      case 'lastEventId':
        value = cursor(rng, ctx.cursor);
        break;
      case 'timeout':
      case 'limit':
        value = numberText(rng);
        break;
      case 'delta':
        value = rng.pick(['none', 'json-patch', 'vcdiff', '', 'JSON-PATCH', 'xdelta', 'null', randomString(rng, 10)]);
        break;
      case 'token':
        value = token(rng, ctx.kit);
        break;
      default:
        value = randomString(rng, 20);
    }
    const encodedKey = key === '' || key === 'a.b' || key.startsWith('_') || key.startsWith('c') || key === 'Channel' ? key.replace(/[^\x21-\x7e]/g, '') : encodeValue(rng, key);
    params.push(rng.chance(0.03) ? encodedKey : `${encodedKey}=${encodeValue(rng, value)}`);
  }
  if (rng.chance(0.1)) params.push(...Array.from({ length: rng.pick([9, 20, 150]) }, (_, i) => `channel=fuzz/many/${i}`));
  if (route === '/v1/poll' && !params.some((param) => param.startsWith('timeout='))) params.push('timeout=0');
  let path = `${route}?${params.join(rng.chance(0.05) ? rng.pick(['&&', ';', '&amp;']) : '&')}`;
  if (rng.chance(0.04)) path = mutatedPath(rng, route) + (rng.chance(0.5) ? `?${params.join('&')}` : '');
  const method = rng.chance(0.05) ? rng.pick(['HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE']) : 'GET';
  return { category: 'query', method, path, headers: method === 'POST' ? { 'content-type': 'application/json' } : {}, ...(method === 'POST' ? { body: '{}' } : {}) };
}

export function authorization(rng: Rng, kit: TokenKit): string {
  const t = headerSafe(token(rng, kit));
  return rng.pick([
    `Bearer ${t}`,
    `Bearer ${t}`,
    `Bearer ${t}`,
    `bearer ${t}`,
    `BEARER   ${t}`,
    `Bearer ${t}   `,
    `Bearer\t${t}`,
    'Bearer',
    'Bearer ',
    `Basic ${Buffer.from('user:pass').toString('base64')}`,
    `Bearer ${t} extra`,
    `Token ${t}`,
    t,
    '',
    `Bearer ${kit.apiKey}`,
    `Bearer ${kit.apiKey.slice(0, -1)}`,
    `Bearer ${kit.apiKey}x`,
    `Bearer ${headerSafe(randomString(rng, 30))}`,
  ]);
}

export function origin(rng: Rng, selfUrl: string): string {
  return headerSafe(rng.pick(['null', 'http://evil.example', selfUrl, `${selfUrl}/`, 'https://app.example.com', '', 'file://', 'http://[::1]', 'http://127.0.0.1', 'not a url', `${selfUrl}:99999`, 'http://a@b', randomString(rng, 30)]));
}

export function contentType(rng: Rng): string {
  return headerSafe(rng.pick(['application/json', 'application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json;charset=latin1', 'application/json; charset=utf-16', 'application/jsonx', 'application/vnd.api+json', 'text/plain', 'text/json', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', '', 'application/json; boundary', ';;;', 'application/*', '*/*', 'application/json, text/plain', randomString(rng, 20)]));
}

export function messageBody(rng: Rng): string | Buffer {
  switch (rng.int(14)) {
    case 0:
    case 1:
    case 2:
      return JSON.stringify({ channel: channel(rng), data: jsonValue(rng) });
    case 3:
      return JSON.stringify({ messages: Array.from({ length: rng.size(0, 6) }, () => (rng.chance(0.8) ? { channel: channel(rng), data: jsonValue(rng) } : jsonValue(rng))) });
    case 4:
      return JSON.stringify(rng.pick([{ channel: channel(rng) }, { data: 1 }, { channel: 5, data: 1 }, { channel: null, data: 1 }, { channel: ['fuzz/a'], data: 1 }, { messages: 'x' }, { messages: {} }, { messages: [] }, { channel: 'fuzz/a', data: 'x'.repeat(5000) }, { messages: Array.from({ length: 1001 }, () => ({ channel: 'fuzz/a', data: 1 })) }, { channel: 'fuzz/a', data: null }]));
    case 5:
      return JSON.stringify(jsonValue(rng, 0, 4));
    case 6:
      return deepJson(rng, rng.size(30, 5000));
    case 7:
      return `{"channel":"fuzz/a","data":${deepJson(rng, rng.size(28, 40))}}`;
    case 8:
      return rng.bytes(rng.size(0, 200));
    case 9:
      return rng.pick(['', ' ', 'null', 'true', '1', '"s"', '[]', '{}', 'NaN', '{"a":1,}', '{"a":1} {"b":2}', '\ufeff{"channel":"fuzz/a","data":1}', '{"channel":"fuzz/a","data":1e999999}', '{"channel":"fuzz/a","data":123456789012345678901234567890}', '{"__proto__":{"admin":true},"channel":"fuzz/a","data":1}', '{"channel":"fuzz/a","channel":"private/x","data":1}', '{"channel":"fuzz/\\ud800","data":1}', '// c\n{}', '{"channel":"fuzz/a","data":"\\u0000"}']);
    case 10: {
      const text = JSON.stringify({ channel: channel(rng), data: jsonValue(rng) });
      return text.slice(0, rng.int(text.length));
    }
    case 11:
      return JSON.stringify(rng.pick([{ user: rng.pick(['u1', 'alice', '', 'x'.repeat(256)]), channel: channel(rng) }, { session: randomString(rng, 20), channel: channel(rng), cursor: randomString(rng, 10) }, { user: 'u1', session: 's' }, { user: 'u1', code: rng.pick([4000, 4999, 3999, 5000, 4500.5, '4001', -1]), reason: rng.pick(['bye', 'x'.repeat(124), 5]) }, {}]));
    case 12:
      return rng.chance(0.05) ? Buffer.alloc(1_100_000, 0x20) : JSON.stringify({ channel: 'fuzz/a', data: randomString(rng, 3000) });
    default:
      return randomString(rng, 200);
  }
}

const POST_ROUTES = ['/v1/publish', '/v1/publish', '/v1/publish', '/v1/server/publish', '/v1/server/subscribe', '/v1/server/unsubscribe', '/v1/server/disconnect'];

export function bodyInput(rng: Rng, kit: TokenKit, open: boolean): HttpInput {
  const path = rng.pick(POST_ROUTES);
  const headers: Record<string, string> = { 'content-type': rng.chance(0.85) ? 'application/json' : contentType(rng) };
  if (!open || rng.chance(0.3)) headers['authorization'] = rng.chance(0.6) ? `Bearer ${rng.chance(0.5) ? kit.apiKey : kit.valid}` : authorization(rng, kit);
  return { category: 'body', method: 'POST', path, headers, body: messageBody(rng) };
}

export function headersInput(rng: Rng, ctx: { cursor: string; kit: TokenKit; selfUrl: string }): HttpInput {
  const headers: Record<string, string> = {};
  const post = rng.chance(0.4);
  const path = post ? rng.pick(POST_ROUTES) : rng.pick([`/v1/sse?channel=${rng.pick(['fuzz/a', 'public/x'])}`, `/v1/poll?channel=fuzz/a&timeout=0`, '/v1/history?channel=public/x', '/v1/ws', '/metrics', '/healthz', '/readyz', '/v1/sse']);
  for (const name of ['authorization', 'last-event-id', 'content-type', 'idempotency-key', 'origin', 'x-forwarded-for', 'accept', 'accept-encoding', 'cookie', 'user-agent', 'host']) {
    if (!rng.chance(name === 'authorization' || name === 'last-event-id' || name === 'origin' ? 0.5 : 0.2)) continue;
    switch (name) {
      case 'authorization':
        headers[name] = authorization(rng, ctx.kit);
        break;
      case 'last-event-id':
        headers[name] = headerSafe(cursor(rng, ctx.cursor));
        break;
      case 'content-type':
        headers[name] = contentType(rng);
        break;
      case 'idempotency-key':
        headers[name] = headerSafe(rng.pick(['', 'k', 'k', 'key-1', 'x'.repeat(255), 'x'.repeat(256), randomString(rng, 40)]));
        break;
      case 'origin':
        headers[name] = origin(rng, ctx.selfUrl);
        break;
      case 'x-forwarded-for':
        headers[name] = headerSafe(rng.pick(['1.2.3.4', '1.2.3.4, 5.6.7.8', 'unknown', '', '::1', randomString(rng, 30)]));
        break;
      case 'host':
        headers[name] = headerSafe(rng.pick(['', 'evil.example', 'a b', '127.0.0.1:1', randomString(rng, 20)]));
        break;
      default:
        headers[name] = headerSafe(randomString(rng, 60));
    }
  }
  if (post && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
  return { category: 'headers', method: post ? 'POST' : rng.chance(0.05) ? 'HEAD' : 'GET', path, headers, ...(post ? { body: messageBody(rng) } : {}) };
}

export function tokenInput(rng: Rng, kit: TokenKit): HttpInput {
  const t = token(rng, kit);
  const inHeader = rng.chance(0.6);
  const route = rng.pick(['/v1/history?channel=fuzz/a', '/v1/poll?channel=fuzz/a&timeout=0', '/v1/sse?channel=fuzz/a', '/v1/poll?timeout=0', '/v1/sse', 'POST /v1/publish', 'POST /v1/server/publish', '/metrics', 'POST /v1/server/disconnect']);
  const post = route.startsWith('POST ');
  let path = post ? route.slice(5) : route;
  const headers: Record<string, string> = {};
  if (inHeader) headers['authorization'] = `Bearer ${headerSafe(t)}`;
  else path += `${path.includes('?') ? '&' : '?'}token=${encodeValue(rng, t)}`;
  if (post) headers['content-type'] = 'application/json';
  return { category: 'token', method: post ? 'POST' : 'GET', path, headers, ...(post ? { body: path.endsWith('disconnect') ? '{"user":"nobody-at-all"}' : JSON.stringify({ channel: 'fuzz/a', data: { t: t.length } }) } : {}) };
}

// ---------------------------------------------------------------------------------------------
// WebSocket

export interface WsFrame {
  readonly data: string | Buffer;
  readonly binary: boolean;
  /** What the frame is, for the report. */
  readonly kind: string;
}

const OPS = ['subscribe', 'unsubscribe', 'publish', 'ping', 'auth'];

function opTemplate(rng: Rng, ctx: { cursor: string; kit: TokenKit }): Record<string, unknown> {
  const op = rng.pick(OPS);
  const id = rng.chance(0.6) ? `f${rng.int(1e6)}` : undefined;
  const base: Record<string, unknown> = { op, ...(id !== undefined ? { id } : {}) };
  switch (op) {
    case 'subscribe':
      return { ...base, channel: channel(rng), ...(rng.chance(0.4) ? { cursor: cursor(rng, ctx.cursor) } : {}), ...(rng.chance(0.2) ? { delta: rng.pick(['json-patch', 'vcdiff', 'none', null, 'x', 1]) } : {}) };
    case 'unsubscribe':
      return { ...base, channel: channel(rng) };
    case 'publish':
      return { ...base, channel: channel(rng), data: rng.chance(0.05) ? 'x'.repeat(rng.pick([4000, 5000])) : jsonValue(rng) };
    case 'auth':
      return { ...base, token: token(rng, ctx.kit), ...(rng.chance(0.3) ? { cursor: cursor(rng, ctx.cursor) } : {}) };
    default:
      return base;
  }
}

function mutate(rng: Rng, op: Record<string, unknown>): Record<string, unknown> {
  const out = { ...op };
  const keys = Object.keys(out);
  switch (rng.int(6)) {
    case 0:
      if (keys.length > 0) delete out[rng.pick(keys)];
      break;
    case 1:
      if (keys.length > 0) out[rng.pick(keys)] = jsonValue(rng, 0, 3);
      break;
    case 2:
      out['op'] = rng.pick(['PING', 'Subscribe', '', ' ping', 'ping\u0000', 'hello', 'message', 'ack', 'error', 'pong', 'toString', '__proto__', 'constructor', randomString(rng, 10)]);
      break;
    case 3:
      out['id'] = rng.pick([5, null, true, {}, [], '', 'x'.repeat(255), 'x'.repeat(256), '\ud800']);
      break;
    case 4:
      out[randomString(rng, 8)] = jsonValue(rng, 0, 3);
      break;
    default:
      out['channel'] = rng.pick([5, null, {}, ['fuzz/a'], '', channel(rng)]);
  }
  return out;
}

/** Invalid UTF-8 in a text frame: the socket is closed (1007) by the WebSocket layer. */
function invalidUtf8(rng: Rng): Buffer {
  const bad = rng.pick([[0xff], [0xfe, 0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0x80], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80]]);
  return Buffer.concat([Buffer.from('{"op":"ping","id":"'), Buffer.from(bad), Buffer.from('"}')]);
}

export function wsFrame(rng: Rng, ctx: { cursor: string; kit: TokenKit; frameLimit: number; maxPayload: number }): WsFrame {
  const roll = rng.int(100);
  if (roll < 35) return { kind: 'op', binary: false, data: JSON.stringify(opTemplate(rng, ctx)) };
  if (roll < 60) return { kind: 'mutated op', binary: false, data: JSON.stringify(mutate(rng, rng.chance(0.3) ? mutate(rng, opTemplate(rng, ctx)) : opTemplate(rng, ctx))) };
  if (roll < 68) return { kind: 'json', binary: false, data: JSON.stringify(jsonValue(rng, 0, 4)) ?? 'null' };
  if (roll < 75) {
    const text = JSON.stringify(opTemplate(rng, ctx));
    return { kind: 'truncated', binary: false, data: rng.chance(0.5) ? text.slice(0, rng.int(text.length)) : randomString(rng, 80).replace(/[\ud800-\udfff]/g, '?') };
  }
  if (roll < 81) return { kind: 'binary', binary: true, data: rng.chance(0.5) ? rng.bytes(rng.size(0, 300)) : Buffer.from(JSON.stringify({ op: 'ping', id: 'bin' })) };
  if (roll < 88) {
    const levels = rng.size(30, Math.floor(ctx.frameLimit / 2) - 10);
    return { kind: 'deep', binary: false, data: rng.chance(0.5) ? deepJson(rng, levels) : `{"op":"publish","channel":"fuzz/a","data":${deepJson(rng, Math.min(levels, 2000))}}` };
  }
  if (roll < 93) return { kind: 'large', binary: false, data: JSON.stringify({ op: 'publish', channel: 'fuzz/a', data: 'x'.repeat(ctx.frameLimit + rng.int(ctx.maxPayload - ctx.frameLimit - 60)) }) };
  if (roll < 95) return { kind: 'too large', binary: rng.chance(0.3), data: 'x'.repeat(ctx.maxPayload + 1 + rng.int(10_000)) };
  if (roll < 97) return { kind: 'invalid utf-8', binary: false, data: invalidUtf8(rng) };
  return { kind: 'empty', binary: rng.chance(0.5), data: rng.pick(['', ' ', '\n', '{}', '[]', 'null', '0']) };
}
