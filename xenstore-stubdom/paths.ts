// Path rules of docs/misc/xenstore.txt: absolute, '/'-separated, characters
// [A-Za-z0-9-/_@], no '//' and no trailing '/' except the root.
import { XsError } from './errors.js';
import { ABS_PATH_MAX } from './wire.js';

const VALID = /^[A-Za-z0-9\-/_@]*$/;
const LOCAL_DOMAIN = /^\/local\/domain\/(\d{1,5})\//;

export function domainPath(domid: number): string {
  return `/local/domain/${domid}`;
}

/**
 * Whether `path` is an acceptable absolute node name. As xenstored does, the
 * length limit counts only what follows a "/local/domain/<id>/" prefix, so a
 * domain's own subtree gets the full relative budget.
 */
export function isValidNodeName(path: string, maxRelLen: number): boolean {
  if (!path.startsWith('/')) return false;
  if (path.length > 1 && path.endsWith('/')) return false;
  if (path.includes('//')) return false;
  // GUEST-INPUT: bound path length before any further work on it.
  if (path.length > ABS_PATH_MAX) return false;
  const local = LOCAL_DOMAIN.exec(path);
  const prefix = local ? local[0].length : 0;
  if (path.length - prefix > maxRelLen) return false;
  return VALID.test(path);
}

/** A relative path is relative to the caller's domain home; '@' names are special. */
export function canonicalize(path: string, home: string | undefined): string {
  if (path.startsWith('/') || path.startsWith('@') || home === undefined) return path;
  return `${home}/${path}`;
}

/** Canonicalizes and validates, throwing EINVAL as xenstored does for bad names. */
export function resolveNodePath(path: string | undefined, home: string | undefined, maxRelLen: number): string {
  if (path === undefined) throw new XsError('EINVAL', 'malformed path argument');
  const abs = canonicalize(path, home);
  if (!isValidNodeName(abs, maxRelLen)) throw new XsError('EINVAL', 'invalid path');
  return abs;
}

export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

/** xenstored's is_child: `child` equals `parent` or lies beneath it. */
export function isSubPath(child: string, parent: string): boolean {
  if (parent === '/') return child.startsWith('/');
  if (!child.startsWith(parent)) return false;
  const next = child.charCodeAt(parent.length);
  return Number.isNaN(next) || next === 0x2f;
}

/** The path itself and every ancestor up to and including '/'. */
export function selfAndAncestors(path: string): string[] {
  const out = [path];
  let p = path;
  while (p !== '/') {
    p = parentOf(p);
    out.push(p);
  }
  return out;
}
