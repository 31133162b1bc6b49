// Node permissions (docs/misc/xenstore.txt "SET_PERMS"): the first entry names
// the owner and the access of everyone not listed; later entries grant a
// domain n(one), r(ead), w(rite) or b(oth).
import { XsError } from './errors.js';

export type Access = 'n' | 'r' | 'w' | 'b';
export interface PermEntry {
  domid: number;
  access: Access;
}
export type Perms = readonly PermEntry[];

export const PERM_READ = 1;
export const PERM_WRITE = 2;
export const PERM_OWNER = 4;
const ALL = PERM_READ | PERM_WRITE | PERM_OWNER;

const MAX_DOMID = 0x7fef; // DOMID_FIRST_RESERVED - 1 in xen.h

function accessBits(a: Access): number {
  switch (a) {
    case 'n': return 0;
    case 'r': return PERM_READ;
    case 'w': return PERM_WRITE;
    case 'b': return PERM_READ | PERM_WRITE;
    default: {
      const never: never = a;
      return never;
    }
  }
}

/** Parses one "<letter><domid>" entry; throws EINVAL on anything else. */
export function parsePerm(s: string): PermEntry {
  // GUEST-INPUT: letter must be one of nrwb and domid a bounded decimal.
  const m = /^([nrwb])(\d{1,5})$/.exec(s);
  if (!m) throw new XsError('EINVAL', `bad permission ${JSON.stringify(s.slice(0, 16))}`);
  const domid = Number(m[2]);
  if (domid > 0xffff) throw new XsError('EINVAL', 'domid out of range');
  return { domid, access: m[1] as Access };
}

export function formatPerm(p: PermEntry): string {
  return `${p.access}${p.domid}`;
}

export interface Identity {
  domid: number;
  /** SET_TARGET: this domain acts for `target` (a device model for its guest). */
  target?: number | undefined;
}

export function isPrivileged(who: Identity): boolean {
  return who.domid === 0;
}

/** xenstored's perm_for_conn: what `who` may do to a node with `perms`. */
export function permFor(who: Identity, perms: Perms): number {
  const owner = perms[0];
  if (owner === undefined) return 0;
  if (isPrivileged(who) || owner.domid === who.domid || (who.target !== undefined && owner.domid === who.target)) {
    return ALL;
  }
  for (let i = 1; i < perms.length; i++) {
    const e = perms[i];
    if (e !== undefined && (e.domid === who.domid || (who.target !== undefined && e.domid === who.target))) {
      return accessBits(e.access);
    }
  }
  return accessBits(owner.access);
}

export function isValidDomid(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= MAX_DOMID;
}
