/**
 * Dotted paths into parsed JSON (`vehicle.position.latitude`, `entity.0.id`): the small subset of
 * JSONPath that routing rules need, with no evaluation of expressions.
 */

export type Path = readonly string[];

export function parsePath(text: string): Path {
  if (text === '' || text === '$') return [];
  return text.replace(/^\$\./, '').split('.');
}

/** The value at `path`, or undefined when any step is missing. */
export function valueAt(value: unknown, path: Path): unknown {
  let current = value;
  for (const step of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[step];
  }
  return current;
}
