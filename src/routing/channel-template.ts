/**
 * Channel templates: `{countryCode}/{exchange}/{tickerSymbol}` or `vehicles/{vehicle.id}`, filled
 * from a record's JSON fields. Parsed once per rule; a missing or non-scalar field is an error the
 * router reports, never an empty channel level.
 */
import { parsePath, valueAt, type Path } from './json-path.js';

type Part = { text: string } | { field: string; path: Path };

export class ChannelTemplate {
  readonly #parts: Part[];
  readonly fields: string[];

  constructor(readonly source: string) {
    this.#parts = [];
    const pattern = /\{([^{}]+)\}/g;
    let last = 0;
    for (const match of source.matchAll(pattern)) {
      if (match.index > last) this.#parts.push({ text: source.slice(last, match.index) });
      const field = (match[1] as string).trim();
      this.#parts.push({ field, path: parsePath(field) });
      last = match.index + match[0].length;
    }
    if (last < source.length) this.#parts.push({ text: source.slice(last) });
    if (/[{}]/.test(this.#parts.map((p) => ('text' in p ? p.text : '')).join(''))) {
      throw new Error(`channel template ${JSON.stringify(source)} has an unbalanced brace`);
    }
    this.fields = this.#parts.flatMap((p) => ('field' in p ? [p.field] : []));
  }

  /** The channel for `value`, or a problem naming the missing field. */
  render(value: unknown): { channel: string } | { problem: string } {
    let channel = '';
    for (const part of this.#parts) {
      if ('text' in part) {
        channel += part.text;
        continue;
      }
      const field = valueAt(value, part.path);
      if (typeof field === 'string' && field !== '') channel += field;
      else if (typeof field === 'number' || typeof field === 'boolean') channel += String(field);
      else return { problem: `channel template field "${part.field}" is ${field === undefined ? 'missing' : 'not a string or number'}` };
    }
    return { channel };
  }
}
