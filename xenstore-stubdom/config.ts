// Limits and quotas. Defaults follow Xen 4.17's xenstored where it has one
// (quota_* in xenstored_core.c); the per-connection bounds for the privileged
// socket are ours, because a dom0 socket client may still be buggy or hostile.
import { REL_PATH_MAX } from './wire.js';

export interface Limits {
  /** Nodes a non-privileged domain may own (ENOSPC). */
  nodesPerDomain: number;
  /** Node record size a non-privileged domain may write (ENOSPC). */
  entrySize: number;
  /** Permission entries a non-privileged domain may set on a node (ENOSPC). */
  permsPerNode: number;
  /** Watches per connection, non-privileged (E2BIG) and privileged (E2BIG). */
  watchesPerConnection: number;
  watchesPerPrivilegedConnection: number;
  /** Open transactions per connection (ENOSPC). */
  transactionsPerConnection: number;
  transactionsPerPrivilegedConnection: number;
  /** Nodes one transaction may touch (ENOSPC). */
  transactionNodes: number;
  transactionNodesPrivileged: number;
  /** A transaction open longer than this is discarded; its id then gives ENOENT. */
  transactionTimeoutMs: number;
  /** Path length after any /local/domain/<id>/ prefix (EINVAL). */
  maxRelPathLen: number;
  /**
   * Bytes of replies and events queued for a connection that is not reading.
   * Above `outputPauseBytes` we stop reading its requests; above
   * `outputDropBytes` (only watch events can get it there) we close it, since
   * silently dropping a watch event would lose a change.
   */
  outputPauseBytes: number;
  outputDropBytes: number;
}

export const DEFAULT_LIMITS: Limits = {
  nodesPerDomain: 1000,
  entrySize: 2048,
  permsPerNode: 5,
  watchesPerConnection: 128,
  watchesPerPrivilegedConnection: 1024,
  transactionsPerConnection: 10,
  transactionsPerPrivilegedConnection: 64,
  transactionNodes: 1024,
  transactionNodesPrivileged: 16384,
  transactionTimeoutMs: 60_000,
  maxRelPathLen: REL_PATH_MAX,
  outputPauseBytes: 256 * 1024,
  outputDropBytes: 1024 * 1024,
};

/** Limits settable at run time through CONTROL quota (names as xenstored's). */
export const QUOTA_NAMES = {
  nodes: 'nodesPerDomain',
  'node-size': 'entrySize',
  permissions: 'permsPerNode',
  watches: 'watchesPerConnection',
  transactions: 'transactionsPerConnection',
  'transaction-nodes': 'transactionNodes',
} as const satisfies Record<string, keyof Limits>;
export type QuotaName = keyof typeof QUOTA_NAMES;
