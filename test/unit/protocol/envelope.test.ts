import { describe, expect, it } from 'vitest';
import { envelopeFields, singleLineJson, payloadFromBytes, payloadFromValue } from '../../../src/protocol/envelope.js';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('envelope', () => {
  describe('payloadFromBytes', () => {
    it('keeps JSON as written but for line breaks, so pretty-printed JSON becomes one line', () => {
      const pretty = '{\n  "symbol": "AAPL",\n  "bid": [1.5, 2],\n  "note": "a\\nb"\n}\n';
      const payload = payloadFromBytes(bytes(pretty));
      expect(payload.json).toBe('{  "symbol": "AAPL",  "bid": [1.5, 2],  "note": "a\\nb"}');
      expect(JSON.parse(payload.json)).toEqual({ symbol: 'AAPL', bid: [1.5, 2], note: 'a\nb' });
      expect(payload.json).not.toMatch(/[\r\n]/);
      expect(payload.bytes).toBe(Buffer.byteLength(pretty));
      expect(payload.encoding).toBeUndefined();
    });

    it('keeps 64-bit integers exactly (no round trip through doubles)', () => {
      expect(payloadFromBytes(bytes('{"id": 12345678901234567891}')).json).toBe('{"id": 12345678901234567891}');
    });

    it('keeps JSON scalars as JSON', () => {
      expect(payloadFromBytes(bytes(' 42 ')).json).toBe(' 42 ');
      expect(payloadFromBytes(bytes('true')).json).toBe('true');
      expect(payloadFromBytes(bytes('"quoted"')).json).toBe('"quoted"');
    });

    it('sends plain UTF-8 text as a JSON string', () => {
      const payload = payloadFromBytes(bytes('hello\nwörld €'));
      expect(payload.json).toBe('"hello\\nwörld €"');
      expect(JSON.parse(payload.json)).toBe('hello\nwörld €');
      expect(payload.encoding).toBeUndefined();
      expect(payload.bytes).toBe(Buffer.byteLength('hello\nwörld €'));
    });

    it('sends empty bytes as an empty string', () => {
      expect(payloadFromBytes(new Uint8Array(0))).toEqual({ json: '""', bytes: 0 });
    });

    it('sends bytes that are not UTF-8 as base64', () => {
      const raw = new Uint8Array([0xff, 0xfe, 0x00, 0x80, 0x41]);
      const payload = payloadFromBytes(raw);
      expect(payload.encoding).toBe('base64');
      expect(payload.bytes).toBe(5);
      expect(Buffer.from(JSON.parse(payload.json) as string, 'base64')).toEqual(Buffer.from(raw));
    });
  });

  describe('payloadFromValue', () => {
    it('serialises the value once, counting UTF-8 bytes', () => {
      expect(payloadFromValue({ a: [1, 'é'] })).toEqual({ json: '{"a":[1,"é"]}', bytes: 14 });
      expect(payloadFromValue(null)).toEqual({ json: 'null', bytes: 4 });
      expect(payloadFromValue('x')).toEqual({ json: '"x"', bytes: 3 });
    });
  });

  describe('singleLineJson', () => {
    it('returns undefined for text that is not JSON, and JSON without its line breaks', () => {
      expect(singleLineJson('{not json')).toBeUndefined();
      expect(singleLineJson('')).toBeUndefined();
      expect(singleLineJson('[1,\r\n 2]')).toBe('[1, 2]');
    });
  });

  describe('envelopeFields', () => {
    it('writes channel, id, ts and data in that order', () => {
      expect(envelopeFields('US/NASDAQ/AAPL', '0-12', 1700000000000, payloadFromValue({ bid: 1 }))).toBe(
        '"channel":"US/NASDAQ/AAPL","id":"0-12","ts":1700000000000,"data":{"bid":1}',
      );
    });

    it('escapes the channel name and adds the encoding of base64 payloads', () => {
      const payload = payloadFromBytes(new Uint8Array([0xff]));
      expect(envelopeFields('a"b\\c', '1-2-3', 5, payload)).toBe('"channel":"a\\"b\\\\c","id":"1-2-3","ts":5,"encoding":"base64","data":"/w=="');
      expect(JSON.parse('{' + envelopeFields('prix/€', '0-0', 0, payloadFromValue([1])) + '}')).toEqual({ channel: 'prix/€', id: '0-0', ts: 0, data: [1] });
    });
  });
});
