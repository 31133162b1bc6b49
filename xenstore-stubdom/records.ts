// What the journal records and a snapshot holds: the durable state of the store.
// Connections, watches and transactions are not here; clients re-register
// watches after a restart (DESIGN.md 2.6) and open transactions fail.
import type { Limits, QuotaName } from './config.js';
import { QUOTA_NAMES } from './config.js';
import type { Perms } from './perms.js';
import type { Effect } from './store.js';
import { Tree } from './store.js';

export const SPECIAL_PATHS = ['@introduceDomain', '@releaseDomain'] as const;
export type SpecialPath = (typeof SPECIAL_PATHS)[number];

export function isSpecialPath(p: string): p is SpecialPath {
  return (SPECIAL_PATHS as readonly string[]).includes(p);
}

export interface DomainRecord {
  /** SET_TARGET: the domain this one acts for. */
  target: number | undefined;
}

export interface DurableState {
  tree: Tree;
  domains: Map<number, DomainRecord>;
  special: Map<SpecialPath, Perms>;
  limits: Limits;
}

export type JournalRecord =
  | { t: 'fx'; fx: Effect[] }
  | { t: 'introduce'; domid: number }
  | { t: 'release'; domid: number }
  | { t: 'target'; domid: number; target: number }
  | { t: 'special'; name: SpecialPath; perms: Perms }
  | { t: 'limit'; name: QuotaName; value: number };

const DOM0_ONLY: Perms = [{ domid: 0, access: 'n' }];

/** The store of a first start: xenstored's initial "/", "/tool", "/tool/xenstored". */
export function freshState(limits: Limits): DurableState {
  const tree = new Tree(DOM0_ONLY);
  tree.set('/tool', Buffer.alloc(0), DOM0_ONLY);
  tree.set('/tool/xenstored', Buffer.alloc(0), DOM0_ONLY);
  tree.takeEffects();
  return {
    tree,
    domains: new Map(),
    special: new Map(SPECIAL_PATHS.map((p) => [p, DOM0_ONLY])),
    limits: { ...limits },
  };
}

/** Applies one record; replay and the live daemon share this for everything but node effects. */
export function applyRecord(state: DurableState, r: JournalRecord): void {
  switch (r.t) {
    case 'fx':
      for (const e of r.fx) state.tree.apply(e);
      state.tree.takeEffects();
      return;
    case 'introduce':
      if (!state.domains.has(r.domid)) state.domains.set(r.domid, { target: undefined });
      return;
    case 'release':
      state.domains.delete(r.domid);
      for (const [name, perms] of state.special) {
        const kept = perms.filter((p, i) => i === 0 || p.domid !== r.domid);
        state.special.set(name, kept);
      }
      return;
    case 'target': {
      const d = state.domains.get(r.domid);
      if (d !== undefined) d.target = r.target;
      return;
    }
    case 'special':
      state.special.set(r.name, r.perms);
      return;
    case 'limit':
      state.limits[QUOTA_NAMES[r.name]] = r.value;
      return;
    default: {
      const never: never = r;
      throw new Error(`unknown record ${JSON.stringify(never)}`);
    }
  }
}
