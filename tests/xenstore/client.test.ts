// The client library against a daemon that is killed and restarted under it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ClientError } from '../../xenstore-stubdom/errors.js';
import { XenstoreClient } from '../../xenstore-stubdom/client.js';
import { buildDaemon, startDaemon, tempDir, waitFor } from './harness.js';
import type { Daemon } from './harness.js';

let daemon: Daemon | undefined;
const clients: XenstoreClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await daemon?.stop();
  daemon = undefined;
});

async function fresh(): Promise<{ dir: string; d: Daemon }> {
  buildDaemon();
  const dir = tempDir('client');
  daemon = await startDaemon(dir);
  return { dir, d: daemon };
}

function client(socket: string): XenstoreClient {
  const c = new XenstoreClient({ path: socket, minBackoffMs: 5, maxBackoffMs: 50 });
  clients.push(c);
  return c;
}

describe('XenstoreClient across daemon restarts', () => {
  it('transaction_open_across_a_restart_fails_with_EAGAIN_and_retry_commits', async () => {
    const { dir, d } = await fresh();
    const c = client(d.socket);
    const tx = await c.transactionStart();
    await c.write('/cl/t', 'in-tx', tx);
    await d.kill9();
    daemon = await startDaemon(dir);
    await waitFor(() => c.isConnected, 5000, 'reconnect');
    await expect(c.transactionEnd(tx, true)).rejects.toMatchObject({ code: 'EAGAIN' });
    await expect(c.read('/cl/t')).rejects.toMatchObject({ code: 'ENOENT' });
    await c.transaction(async (t) => c.write('/cl/t', 'retried', t));
    expect((await c.read('/cl/t')).toString()).toBe('retried');
  });

  it('watch_registered_before_restart_reports_change_made_while_watcher_was_away', async () => {
    const { dir, d } = await fresh();
    const watcher = client(d.socket);
    const seen: string[] = [];
    await watcher.watch('/cl/w', 'tok', (p) => seen.push(p));
    await d.kill9();
    daemon = await startDaemon(dir);
    // Another client changes the node; the watcher may not be back yet.
    const writer = client(daemon.socket);
    await writer.write('/cl/w/changed', 'x');
    const afterChange = seen.length;
    await waitFor(() => seen.slice(afterChange).length > 0 || seen.includes('/cl/w/changed'), 5000, 'watch fire after restart');
    await writer.write('/cl/w/later', 'y');
    await waitFor(() => seen.includes('/cl/w/later'), 5000, 'ordinary event after restart');
    expect(watcher.reconnects).toBe(1);
  });

  it('request_to_a_dead_store_fails_with_DomainDown_after_give_up_time', async () => {
    const { d } = await fresh();
    const c = new XenstoreClient({ path: d.socket, minBackoffMs: 5, maxBackoffMs: 20, giveUpAfterMs: 200 });
    clients.push(c);
    await c.write('/cl/x', '1');
    await d.stop();
    daemon = undefined;
    const pending = c.read('/cl/x');
    await expect(pending).rejects.toBeInstanceOf(ClientError);
    await expect(pending).rejects.toMatchObject({ code: 'DomainDown' });
  });

  it('acknowledged_writes_of_a_stopped_daemon_are_served_after_restart', async () => {
    const { dir, d } = await fresh();
    const c = client(d.socket);
    await c.write('/cl/p', 'persisted');
    await c.setPerms('/cl/p', ['n0', 'r7']);
    await d.kill9();
    daemon = await startDaemon(dir);
    expect((await c.read('/cl/p')).toString()).toBe('persisted');
    expect(await c.getPerms('/cl/p')).toEqual(['n0', 'r7']);
  });
});

describe('restart restores domains and quota accounting', () => {
  it('guest_at_its_node_quota_stays_there_after_restart', async () => {
    const { dir, d } = await fresh();
    const dom0 = client(d.socket);
    await dom0.control('quota', 'set', 'nodes', '4');
    await dom0.introduce(9);
    await dom0.write('/local/domain/9', '');
    await dom0.setPerms('/local/domain/9', ['n9']);
    const guestSocket = path.join(d.domainDir, '9');
    await waitFor(() => fs.existsSync(guestSocket), 5000, 'domain 9 socket');
    const guest = client(guestSocket);
    // /local/domain/9 itself counts: three more nodes reach the quota of 4.
    for (const k of ['a', 'b', 'c']) await guest.write(k, 'v');
    await expect(guest.write('d', 'v')).rejects.toMatchObject({ code: 'ENOSPC' });
    await d.kill9();
    daemon = await startDaemon(dir);
    await waitFor(() => guest.isConnected, 5000, 'guest reconnect');
    // Still domain 9 (its socket was re-created from the journal), still at quota.
    await expect(guest.write('d', 'v')).rejects.toMatchObject({ code: 'ENOSPC' });
    await guest.rm('a');
    await guest.write('d', 'v');
    expect(await dom0.getPerms('/local/domain/9/d')).toEqual(['n9']);
  });
});

describe('configuration from the environment', () => {
  it('daemon_listens_on_XENSTORED_PATH_and_keeps_state_in_XENSTORED_STATE_DIR', async () => {
    buildDaemon();
    const dir = tempDir('env');
    daemon = await startDaemon(dir, [], true);
    const c = client(path.join(dir, 'socket'));
    await c.write('/env/k', 'v');
    expect(fs.readdirSync(path.join(dir, 'state')).some((f) => f.startsWith('journal.'))).toBe(true);
  });
});
