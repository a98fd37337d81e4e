/**
 * Nesting depth of JSON text, measured before parsing: a 10 KB body nested 5,000 levels deep is
 * cheap to send and expensive (or fatal) to parse, walk and re-encode. One pass, no allocation.
 */

/** True when `text` nests arrays and objects deeper than `max` (strings are skipped, escapes too). */
export function jsonTooDeep(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > max) return true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
  }
  return false;
}
