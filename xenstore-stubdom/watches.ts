// Watch registry, indexed by watched path so a change costs one lookup per
// ancestor of the changed path rather than a scan of every watch.
import { selfAndAncestors } from './paths.js';

export interface Watch<S> {
  session: S;
  /** Absolute path or @special name, as matched. */
  path: string;
  token: string;
  /** Set if the client gave a relative path: events are reported relative to it. */
  relativeTo: string | undefined;
}

export class WatchRegistry<S> {
  private readonly byPath = new Map<string, Set<Watch<S>>>();

  add(w: Watch<S>): void {
    let set = this.byPath.get(w.path);
    if (set === undefined) {
      set = new Set();
      this.byPath.set(w.path, set);
    }
    set.add(w);
  }

  remove(w: Watch<S>): void {
    const set = this.byPath.get(w.path);
    if (set === undefined) return;
    set.delete(w);
    if (set.size === 0) this.byPath.delete(w.path);
  }

  /** Watches an event on `path` triggers: exact ones only, or also every ancestor's. */
  *matching(path: string, exact: boolean): Generator<Watch<S>> {
    const keys = exact || path.startsWith('@') ? [path] : selfAndAncestors(path);
    for (const k of keys) {
      const set = this.byPath.get(k);
      if (set !== undefined) yield* set;
    }
  }

  get size(): number {
    let n = 0;
    for (const s of this.byPath.values()) n += s.size;
    return n;
  }
}

/** The path a watch event carries: relative if the watch was registered relative. */
export function eventPath(w: { relativeTo: string | undefined }, path: string): string {
  if (w.relativeTo === undefined || path.startsWith('@')) return path;
  if (path === w.relativeTo) return '';
  return path.startsWith(`${w.relativeTo}/`) ? path.slice(w.relativeTo.length + 1) : path;
}
