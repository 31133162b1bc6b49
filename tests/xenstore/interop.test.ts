// Debian's xenstore-utils (Xen 4.17) against our daemon through XENSTORED_PATH.
// Expected stdout, stderr and exit codes are what the utilities print for the
// replies Xen's own xenstored sends in each case: the messages come from
// tools/xenstore/xenstore_client.c, the errno from xenstored's rules (ENOENT
// for a missing node the caller may look for, EACCES otherwise).
//
// Denied access needs an unprivileged connection: every connection on the main
// socket is dom0, as in Xen. dom0 INTRODUCEs domain 5; the daemon then serves
// <domain-sockets>/5, and a utility pointed there (XENSTORED_PATH) is domain 5.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { XenstoreClient } from '../../xenstore-stubdom/client.js';
import { buildDaemon, run, startDaemon, tempDir, waitFor } from './harness.js';
import type { Daemon } from './harness.js';

let daemon: Daemon;
let dom0: XenstoreClient;
let dom5Socket: string;

beforeAll(async () => {
  buildDaemon();
  daemon = await startDaemon(tempDir('interop'));
  dom0 = new XenstoreClient({ path: daemon.socket });
  await dom0.introduce(5);
  dom5Socket = path.join(daemon.domainDir, '5');
  await waitFor(() => socketExists(dom5Socket), 5000, 'domain 5 socket');
  await dom0.write('/local/domain/5', '');
  await dom0.setPerms('/local/domain/5', ['n5']);
});

afterAll(async () => {
  dom0?.close();
  await daemon?.stop();
});

function socketExists(p: string): boolean {
  try {
    return (modeOf(p) & 0o170000) === 0o140000;
  } catch {
    return false;
  }
}
function modeOf(p: string): number {
  return fs.statSync(p).mode;
}

const xs = (tool: string, ...args: string[]) => run(`xenstore-${tool}`, args, daemon.socket);
const xs5 = (tool: string, ...args: string[]) => run(`xenstore-${tool}`, args, dom5Socket);

describe('xenstore-utils as dom0', () => {
  it('write_then_read_round_trips', async () => {
    expect(await xs('write', '/interop/a', 'hello')).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await xs('read', '/interop/a')).toEqual({ code: 0, stdout: 'hello\n', stderr: '' });
  });

  it('read_of_missing_node_fails_with_message_and_exit_1', async () => {
    expect(await xs('read', '/interop/missing')).toEqual({ code: 1, stdout: '', stderr: 'xenstore-read: couldn\'t read path /interop/missing\n' });
  });

  it('exists_exits_0_for_present_and_1_for_missing', async () => {
    await xs('write', '/interop/e', 'x');
    expect(await xs('exists', '/interop/e')).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await xs('exists', '/interop/nope')).toEqual({ code: 1, stdout: '', stderr: '' });
  });

  it('list_prints_children_and_fails_for_missing', async () => {
    await xs('write', '/interop/l/one', '1', '/interop/l/two', '2');
    expect(await xs('list', '/interop/l')).toEqual({ code: 0, stdout: 'one\ntwo\n', stderr: '' });
    expect(await xs('list', '/interop/none')).toEqual({ code: 1, stdout: '', stderr: 'xenstore-list: could not list path /interop/none\n' });
  });

  it('ls_prints_tree_and_reports_errno_for_missing', async () => {
    await xs('write', '/interop/t/x', 'v1', '/interop/t/y/z', 'v2');
    expect(await xs('ls', '/interop/t')).toEqual({ code: 0, stdout: 'x = "v1"\ny = ""\n z = "v2"\n', stderr: '' });
    expect(await xs('ls', '/interop/absent')).toEqual({ code: 1, stdout: '', stderr: 'xenstore-ls: xs_directory (/interop/absent): No such file or directory\n' });
  });

  it('rm_removes_and_tolerates_missing_leaf_but_not_missing_parent', async () => {
    await xs('write', '/interop/r/k', 'v');
    expect((await xs('rm', '/interop/r/k')).code).toBe(0);
    expect((await xs('exists', '/interop/r/k')).code).toBe(1);
    expect(await xs('rm', '/interop/r/k')).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await xs('rm', '/interop/q/k')).toEqual({ code: 1, stdout: '', stderr: 'xenstore-rm: could not remove path /interop/q/k\n' });
  });

  it('chmod_sets_acl_seen_by_ls_p', async () => {
    await xs('write', '/interop/c', 'v');
    expect(await xs('chmod', '/interop/c', 'n0', 'r5')).toEqual({ code: 0, stdout: '', stderr: '' });
    expect((await dom0.getPerms('/interop/c'))).toEqual(['n0', 'r5']);
    const ls = await xs('ls', '-p', '/interop');
    expect(ls.stdout).toMatch(/^c = "v" [ .]*\(n0,r5\)$/m);
  });

  it('watch_prints_initial_fire_then_changes', async () => {
    await xs('write', '/interop/w', '');
    const p = spawn('xenstore-watch', ['-n', '2', '/interop/w'], { env: { ...process.env, XENSTORED_PATH: daemon.socket } });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const exited = new Promise<number | null>((resolve) => p.on('close', resolve));
    await waitFor(() => out.includes('/interop/w\n'), 5000, 'initial watch fire');
    await xs('write', '/interop/w/child', 'x');
    expect(await exited).toBe(0);
    expect(out).toBe('/interop/w\n/interop/w/child\n');
  });
});

describe('xenstore-utils as unprivileged domain 5', () => {
  beforeAll(async () => {
    await dom0.write('/interop/secret', 'hidden');
    await dom0.write('/interop/shared', 'visible');
    await dom0.setPerms('/interop/shared', ['n0', 'r5']);
  });

  it('read_denied_node_fails_like_missing', async () => {
    expect(await xs5('read', '/interop/secret')).toEqual({ code: 1, stdout: '', stderr: 'xenstore-read: couldn\'t read path /interop/secret\n' });
  });

  it('read_granted_node_succeeds', async () => {
    expect(await xs5('read', '/interop/shared')).toEqual({ code: 0, stdout: 'visible\n', stderr: '' });
  });

  it('write_to_read_only_node_is_denied', async () => {
    expect(await xs5('write', '/interop/shared', 'mine')).toEqual({ code: 1, stdout: '', stderr: 'xenstore-write: could not write path /interop/shared\n' });
    expect((await dom0.read('/interop/shared')).toString()).toBe('visible');
  });

  it('chmod_of_foreign_node_reports_permission_denied', async () => {
    expect(await xs5('chmod', '/interop/shared', 'b5')).toEqual({
      code: 1, stdout: '', stderr: 'xenstore-chmod: Error occurred setting permissions on \'/interop/shared\': Permission denied\n',
    });
  });

  it('ls_of_unreadable_node_reports_permission_denied', async () => {
    expect(await xs5('ls', '/interop/secret')).toEqual({ code: 1, stdout: '', stderr: 'xenstore-ls: xs_directory (/interop/secret): Permission denied\n' });
  });

  it('exists_and_rm_of_unreadable_node_fail', async () => {
    expect(await xs5('exists', '/interop/secret')).toEqual({ code: 1, stdout: '', stderr: '' });
    expect(await xs5('rm', '/interop/secret')).toEqual({ code: 1, stdout: '', stderr: 'xenstore-rm: could not remove path /interop/secret\n' });
    expect((await dom0.read('/interop/secret')).toString()).toBe('hidden');
  });

  it('relative_write_lands_in_domain_home_and_is_owned_by_domain', async () => {
    expect((await xs5('write', 'name', 'guest5')).code).toBe(0);
    expect((await dom0.read('/local/domain/5/name')).toString()).toBe('guest5');
    expect(await dom0.getPerms('/local/domain/5/name')).toEqual(['n5']);
    expect(await xs5('read', 'name')).toEqual({ code: 0, stdout: 'guest5\n', stderr: '' });
  });
});
