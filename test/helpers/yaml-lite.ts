/**
 * A reader for the YAML the deploy/ manifests are written in (and Helm renders them to): block
 * mappings and sequences, plain and quoted scalars, comments, `---` between documents, and the
 * empty `[]` and `{}`. Anything else (anchors, block scalars, flow collections with items) is
 * refused rather than misread. The project has no YAML parser among its dependencies, and the
 * manifests need no more than this.
 */

interface Line {
  readonly indent: number;
  readonly text: string;
  /** 1-based, for errors. */
  readonly number: number;
}

/** Every non-empty document of `source`. */
export function parseYamlDocuments(source: string): unknown[] {
  const documents: Line[][] = [[]];
  source.split('\n').forEach((raw, index) => {
    if (/^---\s*$/.test(raw)) return void documents.push([]);
    const text = withoutComment(raw.replace(/\r$/, '')).trimEnd();
    if (text.trim() === '') return;
    (documents[documents.length - 1] as Line[]).push({ indent: text.length - text.trimStart().length, text: text.trimStart(), number: index + 1 });
  });
  return documents.filter((lines) => lines.length > 0).map((lines) => {
    const [value, next] = block(lines, 0);
    if (next < lines.length) throw new Error(`line ${(lines[next] as Line).number}: unexpected indentation`);
    return value;
  });
}

function withoutComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1] as string))) return line.slice(0, i);
  }
  return line;
}

const isItem = (text: string): boolean => text === '-' || text.startsWith('- ');

/** The key of a `key: value` line and the rest, or undefined for a line that is no mapping entry. */
function entry(text: string): [string, string] | undefined {
  const match = /^([^\s"'#{}[\],&*!|>-][^:]*?|-[^\s:][^:]*?):(?:\s+(.*))?$/.exec(text);
  return match ? [match[1] as string, match[2] ?? ''] : undefined;
}

function block(lines: Line[], start: number): [unknown, number] {
  const first = lines[start] as Line;
  return isItem(first.text) ? sequence(lines, start, first.indent) : mapping(lines, start, first.indent);
}

function sequence(lines: Line[], start: number, indent: number): [unknown[], number] {
  const out: unknown[] = [];
  let i = start;
  while (i < lines.length && (lines[i] as Line).indent === indent && isItem((lines[i] as Line).text)) {
    const line = lines[i] as Line;
    const rest = line.text.slice(1).trimStart();
    if (rest === '') {
      const next = lines[i + 1];
      if (!next || next.indent <= indent) throw new Error(`line ${line.number}: an empty item`);
      const [value, after] = block(lines, i + 1);
      out.push(value);
      i = after;
    } else if (entry(rest)) {
      // `- key: value` opens a mapping whose lines sit where `key` does.
      lines[i] = { indent: indent + line.text.indexOf(rest), text: rest, number: line.number };
      const [value, after] = mapping(lines, i, (lines[i] as Line).indent);
      out.push(value);
      i = after;
    } else {
      out.push(scalar(rest, line.number));
      i++;
    }
  }
  return [out, i];
}

function mapping(lines: Line[], start: number, indent: number): [Record<string, unknown>, number] {
  const out: Record<string, unknown> = {};
  let i = start;
  while (i < lines.length && (lines[i] as Line).indent === indent && !isItem((lines[i] as Line).text)) {
    const line = lines[i] as Line;
    const pair = entry(line.text);
    if (!pair) throw new Error(`line ${line.number}: expected "key: value", got ${JSON.stringify(line.text)}`);
    const [key, rest] = pair;
    if (Object.hasOwn(out, key)) throw new Error(`line ${line.number}: duplicate key ${key}`);
    const next = lines[i + 1];
    if (rest !== '') {
      out[key] = scalar(rest, line.number);
      i++;
    } else if (next && (next.indent > indent || (next.indent === indent && isItem(next.text)))) {
      [out[key], i] = block(lines, i + 1);
    } else {
      out[key] = null;
      i++;
    }
  }
  const next = lines[i];
  if (next && next.indent > indent) throw new Error(`line ${next.number}: unexpected indentation`);
  return [out, i];
}

function scalar(text: string, number: number): unknown {
  if (text.startsWith('"')) return JSON.parse(text);
  if (text.startsWith("'")) {
    if (!/^'(?:[^']|'')*'$/.test(text)) throw new Error(`line ${number}: bad quoted string ${text}`);
    return text.slice(1, -1).replaceAll("''", "'");
  }
  if (text === '[]') return [];
  if (text === '{}') return {};
  if (/^[[{&*!|>]/.test(text)) throw new Error(`line ${number}: ${JSON.stringify(text)} is YAML this reader does not take`);
  if (/^(true|false)$/.test(text)) return text === 'true';
  if (/^(null|~)$/.test(text)) return null;
  if (/^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/.test(text)) return Number(text);
  return text;
}
