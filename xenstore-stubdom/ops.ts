// The node operations of docs/misc/xenstore.txt, written once against a View so
// they behave the same inside and outside a transaction. Error choices follow
// Xen's xenstored: a missing node reports ENOENT only if the caller could have
// learnt that from the nearest existing ancestor, else EACCES.
import { XsError } from './errors.js';
import type { Limits } from './config.js';
import { PERM_OWNER, PERM_READ, PERM_WRITE, isPrivileged, parsePerm, permFor } from './perms.js';
import type { Identity, Perms } from './perms.js';
import { baseName, childPath, parentOf } from './paths.js';
import { entrySize } from './store.js';
import type { Node, View } from './store.js';
import { PAYLOAD_MAX } from './wire.js';

/** A change to report to watchers; `perms` are the permission sets any of which lets a watcher see it. */
export interface ChangeEvent {
  path: string;
  /** Only watches on exactly this path match (descendants removed with a subtree). */
  exact: boolean;
  perms: Perms[];
}

export interface Ctx {
  who: Identity;
  view: View;
  limits: Limits;
  events: ChangeEvent[];
}

function nearestAncestor(view: View, path: string): Node | undefined {
  let p = path;
  while (p !== '/') {
    p = parentOf(p);
    const n = view.get(p);
    if (n !== undefined) return n;
  }
  return undefined;
}

/** xenstored's get_node: the node if `who` holds all of `perm` on it. */
export function lookup(ctx: Ctx, path: string, perm: number): Node {
  const node = ctx.view.get(path);
  if (node !== undefined) {
    if ((permFor(ctx.who, node.perms) & perm) !== perm) throw new XsError('EACCES');
    return node;
  }
  const anc = nearestAncestor(ctx.view, path);
  if (anc === undefined || (permFor(ctx.who, anc.perms) & perm) === 0) throw new XsError('EACCES');
  throw new XsError('ENOENT');
}

function tryLookup(ctx: Ctx, path: string, perm: number): Node | undefined {
  try {
    return lookup(ctx, path, perm);
  } catch (e) {
    if (e instanceof XsError && e.code === 'ENOENT') return undefined;
    throw e;
  }
}

function parentPerms(view: View, path: string): Perms[] {
  if (path === '/') return [];
  const p = view.get(parentOf(path));
  return p === undefined ? [] : [p.perms];
}

function checkEntrySize(ctx: Ctx, value: Buffer, perms: Perms, children: readonly string[]): void {
  if (!isPrivileged(ctx.who) && entrySize(value, perms, children) >= ctx.limits.entrySize) {
    throw new XsError('ENOSPC', 'node too large');
  }
}

/** Creates `path` and any missing ancestors; each inherits its parent's perms. */
function create(ctx: Ctx, path: string, value: Buffer): void {
  const missing: string[] = [];
  let p = path;
  let parent: Node | undefined;
  for (;;) {
    missing.push(p);
    p = parentOf(p);
    parent = ctx.view.get(p);
    if (parent !== undefined) break;
    if (p === '/') throw new XsError('EIO', 'root node missing');
  }
  const priv = isPrivileged(ctx.who);
  if (!priv && ctx.view.ownedBy(ctx.who.domid) + missing.length > ctx.limits.nodesPerDomain) {
    throw new XsError('ENOSPC', 'node quota exceeded');
  }
  const [first, ...rest] = parent.perms;
  if (first === undefined) throw new XsError('EIO', 'node without owner');
  // Unprivileged domains own what they create; the rest of the ACL is inherited.
  const perms: Perms = priv ? parent.perms : [{ domid: ctx.who.domid, access: first.access }, ...rest];
  checkEntrySize(ctx, value, perms, []);
  const topmost = missing[missing.length - 1] as string;
  checkEntrySize(ctx, parent.value, parent.perms, [...parent.children, baseName(topmost)]);
  for (let i = missing.length - 1; i >= 0; i--) {
    const at = missing[i] as string;
    ctx.view.set(at, i === 0 ? value : Buffer.alloc(0), perms);
  }
}

export function read(ctx: Ctx, path: string): Buffer {
  return lookup(ctx, path, PERM_READ).value;
}

export function write(ctx: Ctx, path: string, value: Buffer): void {
  const node = tryLookup(ctx, path, PERM_WRITE);
  if (node === undefined) {
    create(ctx, path, value);
  } else {
    checkEntrySize(ctx, value, node.perms, node.children);
    ctx.view.set(path, value, node.perms);
  }
  const now = ctx.view.get(path);
  ctx.events.push({ path, exact: false, perms: [...(now ? [now.perms] : []), ...parentPerms(ctx.view, path)] });
}

export function mkdir(ctx: Ctx, path: string): void {
  if (tryLookup(ctx, path, PERM_WRITE) !== undefined) return;
  create(ctx, path, Buffer.alloc(0));
  const now = ctx.view.get(path);
  ctx.events.push({ path, exact: false, perms: [...(now ? [now.perms] : []), ...parentPerms(ctx.view, path)] });
}

export function rm(ctx: Ctx, path: string): void {
  const node = tryLookup(ctx, path, PERM_WRITE);
  if (node === undefined) {
    // Removing what is not there is fine, if its parent exists.
    if (ctx.view.get(parentOf(path)) !== undefined) return;
    throw new XsError('ENOENT');
  }
  if (path === '/') throw new XsError('EINVAL', 'cannot remove the root');
  const parent = parentPerms(ctx.view, path);
  const removed = ctx.view.removeSubtree(path);
  const gone = new Map(removed.map((r) => [r.path, r.node.perms]));
  for (const r of removed) {
    const up = r.path === path ? parent : [gone.get(parentOf(r.path))].filter((x): x is Perms => x !== undefined);
    ctx.events.push({ path: r.path, exact: r.path !== path, perms: [r.node.perms, ...up] });
  }
}

export function directory(ctx: Ctx, path: string): readonly string[] {
  return lookup(ctx, path, PERM_READ).children;
}

/**
 * DIRECTORY_PART: "<gencnt>\0" then as many whole child names as fit from byte
 * `offset` of the child list; a final extra NUL marks its end.
 */
export function directoryPart(ctx: Ctx, path: string, offset: number): Buffer {
  const node = lookup(ctx, path, PERM_READ);
  const gen = Buffer.from(`${node.generation}\0`);
  const all = Buffer.from(node.children.map((c) => `${c}\0`).join(''));
  if (offset >= all.length) return Buffer.concat([gen, Buffer.from([0])]);
  const max = PAYLOAD_MAX - gen.length - 1;
  let end = offset;
  for (;;) {
    const nul = all.indexOf(0, end);
    if (nul < 0 || nul + 1 - offset > max) break;
    end = nul + 1;
    if (end === all.length) break;
  }
  const parts = [gen, all.subarray(offset, end)];
  if (end === all.length) parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

export function getPerms(ctx: Ctx, path: string): Perms {
  return lookup(ctx, path, PERM_READ).perms;
}

export function parsePermList(ctx: Ctx, specs: readonly string[]): Perms {
  if (specs.length < 1) throw new XsError('EINVAL', 'no permissions');
  if (!isPrivileged(ctx.who) && specs.length > ctx.limits.permsPerNode) throw new XsError('ENOSPC', 'too many permissions');
  return specs.map(parsePerm);
}

export function setPerms(ctx: Ctx, path: string, perms: Perms): void {
  const node = lookup(ctx, path, PERM_WRITE | PERM_OWNER);
  // Only the privileged domain may give a node away.
  if (!isPrivileged(ctx.who) && perms[0]?.domid !== node.perms[0]?.domid) throw new XsError('EPERM');
  checkEntrySize(ctx, node.value, perms, node.children);
  ctx.view.set(path, node.value, perms);
  ctx.events.push({ path, exact: false, perms: [perms, node.perms, ...parentPerms(ctx.view, path)] });
}

/** Every path owned by `domid`, outermost first (xenstored removes a released domain's nodes). */
export function ownedSubtrees(view: View, domid: number): string[] {
  const out: string[] = [];
  const walk = (p: string): void => {
    const n = view.get(p);
    if (n === undefined) return;
    if (p !== '/' && n.perms[0]?.domid === domid) {
      out.push(p);
      return;
    }
    for (const c of n.children) walk(childPath(p, c));
  };
  walk('/');
  return out;
}
