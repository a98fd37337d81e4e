/**
 * The live pattern subscriptions (`US/NASDAQ/#`, `vehicles/+`), in a topic trie as NATS, EMQX and
 * qlobber keep them: finding the patterns that match a channel walks the channel's levels once,
 * following the literal child, the `+` child and any `#` on the way, instead of testing every
 * pattern. Channels cache their result (see {@link Channel.patternMatches}); the generation
 * counter, bumped whenever a pattern is added or removed, says when a cached result is stale.
 */
import type { Subscriber } from './channel.js';

/** One pattern and everyone subscribed to it; the set is live, so adding a subscriber needs no invalidation. */
export interface PatternEntry {
  readonly pattern: string;
  readonly subscribers: Set<Subscriber>;
}

class TrieNode {
  readonly children = new Map<string, TrieNode>();
  /** The pattern ending here (its last level is this node's). */
  entry: PatternEntry | undefined;
  /** The pattern ending in `#` right below this node: matches this level and everything under it. */
  hash: PatternEntry | undefined;
}

export class PatternIndex {
  readonly #root = new TrieNode();
  readonly #entries = new Map<string, PatternEntry>();
  /** Bumped whenever a pattern appears or disappears: cached matches older than it are stale. */
  generation = 0;

  get size(): number {
    return this.#entries.size;
  }

  get(pattern: string): PatternEntry | undefined {
    return this.#entries.get(pattern);
  }

  patterns(): IterableIterator<string> {
    return this.#entries.keys();
  }

  add(pattern: string, subscriber: Subscriber): void {
    let entry = this.#entries.get(pattern);
    if (!entry) {
      entry = { pattern, subscribers: new Set() };
      this.#entries.set(pattern, entry);
      const levels = pattern.split('/');
      let node = this.#root;
      for (let i = 0; i < levels.length; i++) {
        const level = levels[i] as string;
        if (level === '#') {
          node.hash = entry;
          break;
        }
        let child = node.children.get(level);
        if (!child) node.children.set(level, (child = new TrieNode()));
        node = child;
        if (i === levels.length - 1) node.entry = entry;
      }
      this.generation++;
    }
    entry.subscribers.add(subscriber);
  }

  /** Removes `subscriber` from `pattern`; false when it was not there. */
  remove(pattern: string, subscriber: Subscriber): boolean {
    const entry = this.#entries.get(pattern);
    if (!entry || !entry.subscribers.delete(subscriber)) return false;
    if (entry.subscribers.size > 0) return true;
    this.#entries.delete(pattern);
    this.#prune(this.#root, pattern.split('/'), 0);
    this.generation++;
    return true;
  }

  /** The patterns matching the channel `name`, each once. */
  match(name: string): PatternEntry[] {
    const found: PatternEntry[] = [];
    if (this.#entries.size > 0) this.#walk(this.#root, name.split('/'), 0, found);
    return found;
  }

  #walk(node: TrieNode, levels: readonly string[], depth: number, found: PatternEntry[]): void {
    // `a/#` matches `a` itself as well as everything below it.
    if (node.hash) found.push(node.hash);
    if (depth === levels.length) {
      if (node.entry && node !== this.#root) found.push(node.entry);
      return;
    }
    const literal = node.children.get(levels[depth] as string);
    if (literal) this.#walk(literal, levels, depth + 1, found);
    const plus = node.children.get('+');
    if (plus && plus !== literal) this.#walk(plus, levels, depth + 1, found);
  }

  /** Clears the pattern's end marker and removes the nodes it leaves empty. */
  #prune(node: TrieNode, levels: readonly string[], depth: number): boolean {
    const level = levels[depth] as string;
    if (level === '#') node.hash = undefined;
    else {
      const child = node.children.get(level);
      if (child) {
        if (depth === levels.length - 1) child.entry = undefined;
        else this.#prune(child, levels, depth + 1);
        if (child.entry === undefined && child.hash === undefined && child.children.size === 0) node.children.delete(level);
      }
    }
    return node.entry === undefined && node.hash === undefined && node.children.size === 0;
  }
}
