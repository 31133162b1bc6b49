// Request handlers, one per xs_wire.h request type. The table is data (as
// xenstored's wire_funcs): privilege and transaction flags are checked once,
// in Xenstored.handle, before a handler runs. Payload syntax per
// docs/misc/xenstore.txt; every field is client input.
import type { Session, Transaction, Xenstored } from './daemon.js';
import { watchKey } from './daemon.js';
import { XsError } from './errors.js';
import { QUOTA_NAMES } from './config.js';
import type { QuotaName } from './config.js';
import * as ops from './ops.js';
import { formatPerm, isValidDomid } from './perms.js';
import type { Perms } from './perms.js';
import { domainPath, resolveNodePath } from './paths.js';
import { isSpecialPath } from './records.js';
import { TxView } from './store.js';
import { Op, REL_PATH_MAX, oneArg, splitStrings, strings } from './wire.js';
import type { OpName } from './wire.js';

export type RequestOp = Exclude<OpName, 'WATCH_EVENT' | 'ERROR'>;
type RequestCode = (typeof Op)[RequestOp];

export interface Handler {
  /** Only the privileged domain (dom0) may send it: EACCES otherwise. */
  priv?: boolean;
  /** The header's tx_id is ignored. */
  notid?: boolean;
  run(d: Xenstored, s: Session, payload: Buffer, tx: Transaction | undefined): Buffer;
}

const OK = strings('OK');
const DOMID_SELF = 0x7ff0;

function args(payload: Buffer): string[] {
  const v = splitStrings(payload);
  // GUEST-INPUT: string arguments must be NUL-terminated.
  if (v === undefined) throw new XsError('EINVAL', 'argument not NUL-terminated');
  return v;
}

function single(payload: Buffer): string {
  const a = oneArg(payload);
  if (a === undefined) throw new XsError('EINVAL', 'expected exactly one argument');
  return a;
}

/** The C library's atoi, which xenstored uses for numeric arguments: leading digits, else 0. */
export function atoi(s: string): number {
  const m = /^\s*([+-]?\d+)/.exec(s);
  if (!m) return 0;
  const n = Number(m[1]);
  return Number.isFinite(n) ? Math.trunc(n) : 0;
}

function nodePath(d: Xenstored, s: Session, path: string | undefined): string {
  return resolveNodePath(path, s.home, d.state.limits.maxRelPathLen);
}

/** Runs a node operation in or out of a transaction and journals / fires its result. */
function withCtx<T>(d: Xenstored, s: Session, tx: Transaction | undefined, f: (ctx: ops.Ctx) => T): T {
  const ctx = d.ctx(s, tx);
  try {
    return f(ctx);
  } finally {
    d.finish(ctx, tx);
  }
}

function introducedDomain(d: Xenstored, payload: Buffer): number {
  const domid = atoi(single(payload));
  if (domid === 0) throw new XsError('EINVAL', 'not a guest domain');
  if (!d.state.domains.has(domid)) throw new XsError('ENOENT', 'domain not introduced');
  return domid;
}

function control(d: Xenstored, s: Session, payload: Buffer): Buffer {
  const [cmd, ...rest] = args(payload);
  switch (cmd) {
    case 'check': {
      if (rest.length > 0) throw new XsError('EINVAL');
      return OK;
    }
    case 'help':
      return strings('check\nhelp\nprint <string>\nquota [set <name> <val>|<domid>]\nsnapshot\nstats\n');
    case 'print':
      if (rest.length !== 1) throw new XsError('EINVAL');
      d.hooks.log?.(`print: ${rest[0] ?? ''}`);
      return OK;
    case 'snapshot':
      d.hooks.snapshot?.();
      return OK;
    case 'stats': {
      const c = d.counters;
      const errs = [...c.errors].map(([k, v]) => `${k}=${v}`).join(' ');
      return strings(`requests=${c.requests} sessions=${d.sessions.size} nodes=${d.state.tree.size} watches=${d.watches.size} ` +
        `tx-timeouts=${c.transactionsTimedOut} events-dropped=${c.eventsDropped} ${d.hooks.stats?.() ?? ''} errors: ${errs}\n`);
    }
    case 'quota': {
      if (rest.length === 0) {
        const lines = (Object.keys(QUOTA_NAMES) as QuotaName[]).map((n) => `${n}: ${d.state.limits[QUOTA_NAMES[n]]}`);
        return strings(`${lines.join('\n')}\n`);
      }
      if (rest[0] === 'set') {
        const [, name, val] = rest;
        if (name === undefined || val === undefined || !(name in QUOTA_NAMES) || !/^\d{1,9}$/.test(val)) throw new XsError('EINVAL');
        d.record({ t: 'limit', name: name as QuotaName, value: Number(val) });
        return OK;
      }
      if (rest.length === 1 && /^\d{1,5}$/.test(rest[0] ?? '')) {
        const domid = Number(rest[0]);
        return strings(`Domain ${domid}:\nnodes: ${d.state.tree.ownedBy(domid)}\n`);
      }
      throw new XsError('EINVAL');
    }
    default:
      throw new XsError('EINVAL', 'unknown control command');
  }
}

export const HANDLERS = {
  [Op.CONTROL]: { priv: true, run: (d, s, p) => control(d, s, p) },

  [Op.DIRECTORY]: {
    run: (d, s, p, tx) => withCtx(d, s, tx, (ctx) => {
      const kids = ops.directory(ctx, nodePath(d, s, oneArg(p)));
      return kids.length === 0 ? Buffer.alloc(0) : strings(...kids);
    }),
  },

  [Op.DIRECTORY_PART]: {
    run: (d, s, p, tx) => {
      const a = args(p);
      if (a.length !== 2) throw new XsError('EINVAL');
      return withCtx(d, s, tx, (ctx) => ops.directoryPart(ctx, nodePath(d, s, a[0]), Math.max(0, atoi(a[1] ?? ''))));
    },
  },

  [Op.READ]: { run: (d, s, p, tx) => withCtx(d, s, tx, (ctx) => ops.read(ctx, nodePath(d, s, oneArg(p)))) },

  [Op.GET_PERMS]: {
    // As in xenstored, special paths have ACLs but GET_PERMS does not show them (EINVAL).
    run: (d, s, p, tx) => withCtx(d, s, tx, (ctx) => strings(...ops.getPerms(ctx, nodePath(d, s, oneArg(p))).map(formatPerm))),
  },

  [Op.WATCH]: {
    notid: true,
    run: (d, s, p) => {
      const a = args(p);
      if (a.length !== 2) throw new XsError('EINVAL');
      const [raw, token] = a as [string, string];
      let path: string;
      let relativeTo: string | undefined;
      if (raw.startsWith('@')) {
        if (raw.length > REL_PATH_MAX) throw new XsError('EINVAL');
        path = raw;
      } else {
        relativeTo = raw.startsWith('/') ? undefined : s.home;
        path = nodePath(d, s, raw);
      }
      const key = watchKey(path, token);
      if (s.watches.has(key)) throw new XsError('EEXIST');
      const max = s.who.domid === 0 ? d.state.limits.watchesPerPrivilegedConnection : d.state.limits.watchesPerConnection;
      // GUEST-INPUT: watches cost memory and fan-out work; bounded per connection.
      if (s.watches.size > max) throw new XsError('E2BIG', 'too many watches');
      const w = { session: s, path, token, relativeTo };
      s.watches.set(key, w);
      d.watches.add(w);
      // xenstored fires every new watch once, after the ack.
      d.afterReply(() => d.fireInitial(w));
      return OK;
    },
  },

  [Op.UNWATCH]: {
    notid: true,
    run: (_d, s, p) => {
      const a = args(p);
      if (a.length !== 2) throw new XsError('EINVAL');
      const [raw, token] = a as [string, string];
      const path = raw.startsWith('/') || raw.startsWith('@') ? raw : `${s.home}/${raw}`;
      const key = watchKey(path, token);
      const w = s.watches.get(key);
      if (w === undefined) throw new XsError('ENOENT');
      s.watches.delete(key);
      _d.watches.remove(w);
      return OK;
    },
  },

  [Op.TRANSACTION_START]: {
    run: (d, s, p, tx) => {
      if (tx !== undefined) throw new XsError('EBUSY', 'nested transaction');
      if (p.length > 0 && splitStrings(p) === undefined) throw new XsError('EINVAL');
      d.expireTransactions(s);
      const priv = s.who.domid === 0;
      const max = priv ? d.state.limits.transactionsPerPrivilegedConnection : d.state.limits.transactionsPerConnection;
      // GUEST-INPUT: open transactions per connection are bounded (xenstored allows max+1 too).
      if (s.txs.size > max) throw new XsError('ENOSPC', 'too many transactions');
      let id = s.nextTxId;
      while (id === 0 || s.txs.has(id)) id = (id + 1) >>> 0;
      s.nextTxId = (id + 1) >>> 0;
      const maxNodes = priv ? d.state.limits.transactionNodesPrivileged : d.state.limits.transactionNodes;
      s.txs.set(id, { id, view: new TxView(d.state.tree, maxNodes), events: [], startedAt: d.now() });
      return strings(String(id));
    },
  },

  [Op.TRANSACTION_END]: {
    run: (d, s, p, tx) => {
      const arg = oneArg(p);
      if (arg !== 'T' && arg !== 'F') throw new XsError('EINVAL');
      if (tx === undefined) throw new XsError('ENOENT');
      s.txs.delete(tx.id);
      if (arg === 'F') return OK;
      if (tx.view.conflicts()) throw new XsError('EAGAIN');
      const domid = s.who.domid;
      const net = tx.view.netOwned(domid);
      if (domid !== 0 && net > 0 && d.state.tree.ownedBy(domid) + net > d.state.limits.nodesPerDomain) throw new XsError('ENOSPC');
      for (const e of tx.view.effects) d.state.tree.apply(e);
      const ctx = d.ctx(s, undefined);
      ctx.events.push(...tx.events);
      d.finish(ctx, undefined);
      return OK;
    },
  },

  [Op.INTRODUCE]: {
    priv: true,
    run: (d, _s, p) => {
      const a = args(p);
      if (a.length < 3) throw new XsError('EINVAL');
      const domid = atoi(a[0] ?? '');
      const port = atoi(a[2] ?? '');
      // GUEST-INPUT: a real guest domid and a positive event channel, as xenstored requires.
      if (port <= 0 || domid === 0 || !isValidDomid(domid)) throw new XsError('EINVAL');
      if (!d.state.domains.has(domid)) {
        d.record({ t: 'introduce', domid });
        d.hooks.domainIntroduced?.(domid);
        d.fire([{ path: '@introduceDomain', exact: true, perms: [] }]);
      }
      return OK;
    },
  },

  [Op.RELEASE]: {
    priv: true,
    run: (d, s, p) => {
      const domid = introducedDomain(d, p);
      for (const other of d.sessions) if (other.who.domid === domid) other.sink.close('domain released');
      // As xenstored does (without --keep-orphans), a released domain's nodes go with it.
      withCtx(d, s, undefined, (ctx) => {
        for (const path of ops.ownedSubtrees(ctx.view, domid)) {
          const removed = ctx.view.removeSubtree(path);
          for (const r of removed) ctx.events.push({ path: r.path, exact: r.path !== path, perms: [r.node.perms] });
        }
      });
      d.record({ t: 'release', domid });
      d.hooks.domainReleased?.(domid);
      d.fire([{ path: '@releaseDomain', exact: true, perms: [] }]);
      return OK;
    },
  },

  [Op.GET_DOMAIN_PATH]: { run: (_d, _s, p) => strings(domainPath(atoi(single(p)))) },

  [Op.WRITE]: {
    run: (d, s, p, tx) => {
      const nul = p.indexOf(0);
      // GUEST-INPUT: the path is the bytes before the first NUL; the rest is the value.
      if (nul < 0) throw new XsError('EINVAL', 'path not NUL-terminated');
      const path = nodePath(d, s, p.toString('utf8', 0, nul));
      const value = Buffer.from(p.subarray(nul + 1));
      withCtx(d, s, tx, (ctx) => ops.write(ctx, path, value));
      return OK;
    },
  },

  [Op.MKDIR]: { run: (d, s, p, tx) => (withCtx(d, s, tx, (ctx) => ops.mkdir(ctx, nodePath(d, s, oneArg(p)))), OK) },

  [Op.RM]: { run: (d, s, p, tx) => (withCtx(d, s, tx, (ctx) => ops.rm(ctx, nodePath(d, s, oneArg(p)))), OK) },

  [Op.SET_PERMS]: {
    run: (d, s, p, tx) => {
      const a = args(p);
      if (a.length < 2) throw new XsError('EINVAL');
      const [raw, ...specs] = a as [string, ...string[]];
      return withCtx(d, s, tx, (ctx) => {
        const perms: Perms = ops.parsePermList(ctx, specs);
        if (raw.startsWith('@')) {
          if (!isSpecialPath(raw)) throw new XsError('EINVAL');
          if (s.who.domid !== 0) throw new XsError('EACCES');
          d.record({ t: 'special', name: raw, perms });
          return OK;
        }
        ops.setPerms(ctx, nodePath(d, s, raw), perms);
        return OK;
      });
    },
  },

  [Op.IS_DOMAIN_INTRODUCED]: {
    priv: true,
    run: (d, _s, p) => {
      const domid = atoi(single(p));
      return strings(domid === 0 || domid === DOMID_SELF || d.state.domains.has(domid) ? 'T' : 'F');
    },
  },

  [Op.RESUME]: { priv: true, run: (d, _s, p) => (introducedDomain(d, p), OK) },

  [Op.SET_TARGET]: {
    priv: true,
    run: (d, _s, p) => {
      const a = args(p);
      if (a.length < 2) throw new XsError('EINVAL');
      const domid = atoi(a[0] ?? '');
      const target = atoi(a[1] ?? '');
      if (!d.state.domains.has(domid) || !d.state.domains.has(target)) throw new XsError('ENOENT');
      d.record({ t: 'target', domid, target });
      d.retarget(domid, target);
      return OK;
    },
  },

  [Op.RESET_WATCHES]: { run: (d, s) => (d.resetSession(s), OK) },
} satisfies Record<RequestCode, Handler>;

export function isRequestOp(type: number): type is RequestCode {
  return Object.prototype.hasOwnProperty.call(HANDLERS, type);
}
