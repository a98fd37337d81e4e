/**
 * Routing rules for log topics (docs/kafka.md): where a record's channel comes from (its key, a
 * header, or a template over JSON fields, with an optional prefix), which fields it keeps (a
 * transform that picks and renames), and whether an array inside it becomes one message per item
 * (a split). A record a rule cannot apply to is reported with the reason and skipped.
 */
import type { RoutedMessage } from '../log/routed-message.js';
import { publishedChannelProblem } from '../protocol/channel-filter.js';
import { payloadFromBytes, payloadFromValue, type Payload } from '../protocol/envelope.js';
import type { LogRecord } from '../log/source.js';
import { ChannelTemplate } from './channel-template.js';
import { parsePath, valueAt, type Path } from './json-path.js';
import type { RecordRouter, RouteResult } from './record-router.js';

/** A routing rule as written in the configuration. */
export interface RouteRule {
  /** Channel template over JSON fields, e.g. `{countryCode}/{exchange}/{tickerSymbol}`. Default: the record key. */
  readonly channel?: string;
  /** Take the channel from this record header instead of the key. */
  readonly channelHeader?: string;
  /** Prepended to every channel of the rule, e.g. `prices/`. */
  readonly prefix?: string;
  /** Path of an array in the record's JSON; each item becomes its own message (`channel` applies to the item). */
  readonly split?: string;
  /** Output field → input path: keep only these fields, renamed (applies to each item when splitting). */
  readonly fields?: Readonly<Record<string, string>>;
}

export class RuleError extends Error {}

/** A rule checked and parsed once, applied to every record of its topic. */
export class CompiledRule {
  readonly #template: ChannelTemplate | undefined;
  readonly #split: Path | undefined;
  readonly #fields: [string, Path][] | undefined;
  readonly #needsJson: boolean;

  constructor(readonly rule: RouteRule, private readonly maxMessageBytes: number) {
    if (rule.channel !== undefined && rule.channelHeader !== undefined) throw new RuleError('give either channel (a template) or channelHeader, not both');
    this.#template = rule.channel === undefined ? undefined : new ChannelTemplate(rule.channel);
    if (this.#template && this.#template.fields.length === 0 && rule.split !== undefined) {
      throw new RuleError(`split items would all share channel ${JSON.stringify(rule.channel)}: give the template an item field, e.g. "vehicles/{id}"`);
    }
    this.#split = rule.split === undefined ? undefined : parsePath(rule.split);
    this.#fields = rule.fields === undefined ? undefined : Object.entries(rule.fields).map(([name, path]) => [name, parsePath(path)]);
    this.#needsJson = this.#template !== undefined || this.#split !== undefined || this.#fields !== undefined;
  }

  route(record: LogRecord): RouteResult {
    let value: unknown;
    if (this.#needsJson) {
      const text = record.value === null ? '' : Buffer.from(record.value.buffer, record.value.byteOffset, record.value.byteLength).toString('utf8');
      try {
        value = JSON.parse(text);
      } catch {
        return { ok: false, problem: 'record value is not JSON, and this topic routes by JSON fields' };
      }
    }
    if (this.#split === undefined) {
      const channel = this.#channelFor(record, value);
      if ('problem' in channel) return { ok: false, problem: channel.problem };
      const payload = this.#fields ? payloadFromValue(this.#pick(value)) : (record.payload ?? payloadFromBytes(record.value ?? new Uint8Array(0)));
      const tooLarge = this.#sizeProblem(payload);
      if (tooLarge) return { ok: false, problem: tooLarge };
      return { ok: true, messages: [{ channel: channel.channel, payload, ts: record.timestamp }] };
    }
    const items = valueAt(value, this.#split);
    if (!Array.isArray(items)) return { ok: false, problem: `split path "${this.rule.split}" is not an array in this record` };
    const messages: RoutedMessage[] = [];
    const problems: string[] = [];
    items.forEach((item: unknown, index) => {
      const channel = this.#channelFor(record, item);
      if ('problem' in channel) return void problems.push(`item ${index}: ${channel.problem}`);
      const payload = payloadFromValue(this.#fields ? this.#pick(item) : item);
      const tooLarge = this.#sizeProblem(payload);
      if (tooLarge) return void problems.push(`item ${index}: ${tooLarge}`);
      // Items keep their index in the array, so a message's id is the same whatever else was skipped.
      messages.push({ channel: channel.channel, payload, ts: record.timestamp, item: index });
    });
    if (problems.length > 0 && messages.length === 0) return { ok: false, problem: problems.slice(0, 3).join('; ') };
    return { ok: true, messages, ...(problems.length > 0 ? { skipped: problems } : {}) };
  }

  #channelFor(record: LogRecord, value: unknown): { channel: string } | { problem: string } {
    let channel: string;
    if (this.#template) {
      const rendered = this.#template.render(value);
      if ('problem' in rendered) return rendered;
      channel = rendered.channel;
    } else if (this.rule.channelHeader !== undefined) {
      const header = record.headers[this.rule.channelHeader];
      if (header === undefined) return { problem: `record has no "${this.rule.channelHeader}" header to name its channel` };
      channel = header;
    } else {
      if (record.key === null) return { problem: 'record has no key to name its channel' };
      channel = record.key;
    }
    channel = (this.rule.prefix ?? '') + channel;
    const problem = publishedChannelProblem(channel);
    return problem ? { problem: `channel ${JSON.stringify(channel.slice(0, 80))} is not valid: ${problem}` } : { channel };
  }

  #pick(value: unknown): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, path] of this.#fields as [string, Path][]) {
      const field = valueAt(value, path);
      if (field !== undefined) out[name] = field;
    }
    return out;
  }

  #sizeProblem(payload: Payload): string | undefined {
    return payload.bytes > this.maxMessageBytes ? `message is ${payload.bytes} bytes, over the ${this.maxMessageBytes}-byte limit` : undefined;
  }
}

/** Routes each record by the rule of the topic its partition belongs to. */
export class RuleRouter implements RecordRouter {
  constructor(private readonly ruleOfPartition: readonly CompiledRule[]) {}

  route(record: LogRecord): RouteResult {
    const rule = this.ruleOfPartition[record.partition];
    if (!rule) return { ok: false, problem: `no routing rule for partition index ${record.partition}` };
    return rule.route(record);
  }
}
