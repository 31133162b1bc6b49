// The node tree, its transactions and its quota accounting.
//
// Every mutation goes through a View: the Tree itself outside a transaction,
// or a TxView (a copy-on-write overlay) inside one. Operations (ops.ts) are
// written once against View. Each View logs low-level effects (node set, subtree
// removed) in order; the journal records committed effects and a transaction
// commit replays its effects onto the Tree.
import type { Perms } from './perms.js';
import { baseName, childPath, parentOf } from './paths.js';
import { XsError } from './errors.js';

export interface Node {
  readonly value: Buffer;
  readonly perms: Perms;
  /** Child leaf names, in creation order (xenstored's order). */
  readonly children: readonly string[];
  /** Bumped on every change to this node, its value, perms or child list. */
  readonly generation: number;
}

export type Effect =
  | { kind: 'set'; path: string; value: Buffer; perms: Perms }
  | { kind: 'rm'; path: string };

export interface View {
  get(path: string): Node | undefined;
  /** Creates (appending to the parent's children) or updates a node. The parent must exist. */
  set(path: string, value: Buffer, perms: Perms): void;
  /** Removes `path` and everything beneath it; returns the removed nodes, deepest first. */
  removeSubtree(path: string): Array<{ path: string; node: Node }>;
  /** Nodes owned by `domid`, as this view sees them. */
  ownedBy(domid: number): number;
  readonly effects: Effect[];
}

/** Size of a node as xenstored's quota sees it: record header, perms, value, child names. */
export function entrySize(value: Buffer, perms: Perms, children: readonly string[]): number {
  let childBytes = 0;
  for (const c of children) childBytes += Buffer.byteLength(c) + 1;
  return 24 + 8 * perms.length + value.length + childBytes;
}

const NO_EFFECTS: Effect[] = [];

export class Tree implements View {
  private readonly nodes = new Map<string, Node>();
  private readonly owned = new Map<number, number>();
  private gen = 0;
  effects: Effect[] = [];

  constructor(rootPerms: Perms) {
    this.nodes.set('/', { value: Buffer.alloc(0), perms: rootPerms, children: [], generation: this.nextGeneration() });
    this.count(rootPerms, +1);
  }

  nextGeneration(): number {
    return ++this.gen;
  }

  get size(): number {
    return this.nodes.size;
  }

  get(path: string): Node | undefined {
    return this.nodes.get(path);
  }

  ownedBy(domid: number): number {
    return this.owned.get(domid) ?? 0;
  }

  /** Per-owner node counts, for CONTROL quota reports and restart checks. */
  ownership(): Map<number, number> {
    return new Map(this.owned);
  }

  set(path: string, value: Buffer, perms: Perms): void {
    const old = this.nodes.get(path);
    if (old === undefined) {
      const parentPath = parentOf(path);
      const parent = this.nodes.get(parentPath);
      if (parent === undefined) throw new XsError('EIO', `parent of ${path} missing`);
      this.nodes.set(parentPath, { ...parent, children: [...parent.children, baseName(path)], generation: this.nextGeneration() });
      this.nodes.set(path, { value, perms, children: [], generation: this.nextGeneration() });
      this.count(perms, +1);
    } else {
      this.count(old.perms, -1);
      this.nodes.set(path, { value, perms, children: old.children, generation: this.nextGeneration() });
      this.count(perms, +1);
    }
    this.effects.push({ kind: 'set', path, value, perms });
  }

  removeSubtree(path: string): Array<{ path: string; node: Node }> {
    const removed: Array<{ path: string; node: Node }> = [];
    const walk = (p: string): void => {
      const n = this.nodes.get(p);
      if (n === undefined) return;
      for (const c of n.children) walk(childPath(p, c));
      this.nodes.delete(p);
      this.count(n.perms, -1);
      removed.push({ path: p, node: n });
    };
    walk(path);
    if (removed.length > 0) {
      const parentPath = parentOf(path);
      const parent = this.nodes.get(parentPath);
      if (parent !== undefined) {
        const name = baseName(path);
        this.nodes.set(parentPath, { ...parent, children: parent.children.filter((c) => c !== name), generation: this.nextGeneration() });
      }
      this.effects.push({ kind: 'rm', path });
    }
    return removed;
  }

  /** Applies a journaled or committed effect. */
  apply(e: Effect): void {
    switch (e.kind) {
      case 'set':
        this.set(e.path, e.value, e.perms);
        return;
      case 'rm':
        this.removeSubtree(e.path);
        return;
      default: {
        const never: never = e;
        throw new Error(`unknown effect ${JSON.stringify(never)}`);
      }
    }
  }

  takeEffects(): Effect[] {
    // Reads are the hot path: do not allocate when nothing changed.
    if (this.effects.length === 0) return NO_EFFECTS;
    const out = this.effects;
    this.effects = [];
    return out;
  }

  /** Pre-order walk from '/', parents before children, in child order. */
  *walk(): Generator<[string, Node]> {
    const stack: string[] = ['/'];
    while (stack.length > 0) {
      const p = stack.pop() as string;
      const n = this.nodes.get(p);
      if (n === undefined) continue;
      yield [p, n];
      for (let i = n.children.length - 1; i >= 0; i--) stack.push(childPath(p, n.children[i] as string));
    }
  }

  private count(perms: Perms, delta: number): void {
    const owner = perms[0]?.domid ?? 0;
    const next = (this.owned.get(owner) ?? 0) + delta;
    if (next === 0) this.owned.delete(owner);
    else this.owned.set(owner, next);
  }
}

const ABSENT = -1;

/**
 * A transaction: reads fall through to the tree at first access and record the
 * generation they saw; writes go to an overlay. Commit fails with EAGAIN if any
 * node the transaction touched has changed since (optimistic concurrency; an
 * abandoned transaction holds no lock and blocks nobody).
 */
export class TxView implements View {
  private readonly overlay = new Map<string, Node | null>();
  private readonly accessed = new Map<string, number>();
  private readonly ownedDelta = new Map<number, number>();
  readonly effects: Effect[] = [];

  constructor(private readonly tree: Tree, private readonly maxAccessed: number) {}

  get accessedCount(): number {
    return this.accessed.size;
  }

  get(path: string): Node | undefined {
    const o = this.overlay.get(path);
    if (o !== undefined) return o ?? undefined;
    const base = this.tree.get(path);
    this.touch(path, base);
    return base;
  }

  ownedBy(domid: number): number {
    return this.tree.ownedBy(domid) + (this.ownedDelta.get(domid) ?? 0);
  }

  set(path: string, value: Buffer, perms: Perms): void {
    const old = this.get(path);
    if (old === undefined) {
      const parentPath = parentOf(path);
      const parent = this.get(parentPath);
      if (parent === undefined) throw new XsError('EIO', `parent of ${path} missing`);
      this.overlay.set(parentPath, { ...parent, children: [...parent.children, baseName(path)], generation: 0 });
      this.overlay.set(path, { value, perms, children: [], generation: 0 });
    } else {
      this.count(old.perms, -1);
      this.overlay.set(path, { value, perms, children: old.children, generation: 0 });
    }
    this.count(perms, +1);
    this.effects.push({ kind: 'set', path, value, perms });
  }

  removeSubtree(path: string): Array<{ path: string; node: Node }> {
    const removed: Array<{ path: string; node: Node }> = [];
    const walk = (p: string): void => {
      const n = this.get(p);
      if (n === undefined) return;
      for (const c of n.children) walk(childPath(p, c));
      this.overlay.set(p, null);
      this.count(n.perms, -1);
      removed.push({ path: p, node: n });
    };
    walk(path);
    if (removed.length > 0) {
      const parentPath = parentOf(path);
      const parent = this.get(parentPath);
      if (parent !== undefined) {
        const name = baseName(path);
        this.overlay.set(parentPath, { ...parent, children: parent.children.filter((c) => c !== name), generation: 0 });
      }
      this.effects.push({ kind: 'rm', path });
    }
    return removed;
  }

  /** Nodes whose generation moved since this transaction first saw them. */
  conflicts(): boolean {
    for (const [path, gen] of this.accessed) {
      if ((this.tree.get(path)?.generation ?? ABSENT) !== gen) return true;
    }
    return false;
  }

  /** Net nodes this transaction adds to `domid`'s count. */
  netOwned(domid: number): number {
    return this.ownedDelta.get(domid) ?? 0;
  }

  private touch(path: string, base: Node | undefined): void {
    if (this.accessed.has(path)) return;
    // GUEST-INPUT: a transaction's footprint is bounded, so one left open
    // forever costs a bounded amount of memory.
    if (this.accessed.size >= this.maxAccessed) throw new XsError('ENOSPC', 'transaction touches too many nodes');
    this.accessed.set(path, base?.generation ?? ABSENT);
  }

  private count(perms: Perms, delta: number): void {
    const owner = perms[0]?.domid ?? 0;
    this.ownedDelta.set(owner, (this.ownedDelta.get(owner) ?? 0) + delta);
  }
}
