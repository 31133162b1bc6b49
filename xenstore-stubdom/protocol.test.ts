import { describe, expect, it } from 'vitest';
import { FakeClient, newDaemon } from './testing.js';
import { HEADER_SIZE, Op, encodeFrame, strings } from './wire.js';

function setup(limits = {}) {
  const { d, journal } = newDaemon(limits);
  const dom0 = new FakeClient(d, 0);
  return { d, journal, dom0 };
}

/** Introduces a guest and returns a client connected as it. */
function guest(d: ReturnType<typeof setup>['d'], dom0: FakeClient, domid: number): FakeClient {
  expect(dom0.req(Op.INTRODUCE, [String(domid), '0', '1']).error).toBeUndefined();
  return new FakeClient(d, domid);
}

describe('READ and WRITE', () => {
  it('reads_back_written_value', () => {
    const { dom0 } = setup();
    dom0.write('/a/b', 'hello');
    expect(dom0.read('/a/b').text).toBe('hello');
  });

  it('write_creates_missing_parents_with_empty_values', () => {
    const { dom0 } = setup();
    dom0.write('/x/y/z', 'v');
    expect(dom0.read('/x/y').payload.length).toBe(0);
  });

  it('write_stores_binary_value_with_nuls', () => {
    const { dom0 } = setup();
    dom0.raw(Op.WRITE, Buffer.concat([strings('/bin'), Buffer.from([1, 0, 2])]));
    expect([...dom0.read('/bin').payload]).toEqual([1, 0, 2]);
  });

  it('read_of_missing_node_is_ENOENT', () => {
    const { dom0 } = setup();
    expect(dom0.read('/missing').error).toBe('ENOENT');
  });

  it('read_without_nul_terminator_is_EINVAL', () => {
    const { dom0 } = setup();
    expect(dom0.raw(Op.READ, Buffer.from('/a')).error).toBe('EINVAL');
  });

  it('read_with_two_arguments_is_EINVAL', () => {
    const { dom0 } = setup();
    expect(dom0.req(Op.READ, ['/a', '/b']).error).toBe('EINVAL');
  });

  it('write_without_any_nul_is_EINVAL', () => {
    const { dom0 } = setup();
    expect(dom0.raw(Op.WRITE, Buffer.from('/a')).error).toBe('EINVAL');
  });

  it.each([['//a'], ['/a/'], ['/a b'], [''], ['/a/../b'], ['/é']])('rejects_invalid_path_%s', (p) => {
    const { dom0 } = setup();
    expect(dom0.write(p, 'v').error).toBe('EINVAL');
  });

  it('rejects_path_longer_than_limit', () => {
    const { dom0 } = setup();
    expect(dom0.write(`/${'a'.repeat(2048)}`, 'v').error).toBe('EINVAL');
    expect(dom0.write(`/${'a'.repeat(2047)}`, 'v').error).toBeUndefined();
  });

  it('counts_path_limit_after_local_domain_prefix', () => {
    const { dom0 } = setup();
    expect(dom0.write(`/local/domain/7/${'a'.repeat(2048)}`, 'v').error).toBeUndefined();
  });

  it('relative_path_from_dom0_resolves_under_local_domain_0', () => {
    const { dom0 } = setup();
    dom0.write('rel/key', 'v');
    expect(dom0.read('/local/domain/0/rel/key').text).toBe('v');
  });

  it('relative_path_from_guest_resolves_under_its_home', () => {
    const { d, dom0 } = setup();
    dom0.write('/local/domain/5', '');
    dom0.req(Op.SET_PERMS, ['/local/domain/5', 'n5']);
    const g = guest(d, dom0, 5);
    expect(g.write('name', 'guest').error).toBeUndefined();
    expect(dom0.read('/local/domain/5/name').text).toBe('guest');
  });
});

describe('MKDIR, RM, DIRECTORY, DIRECTORY_PART', () => {
  it('mkdir_creates_empty_node_and_keeps_existing_value', () => {
    const { dom0 } = setup();
    dom0.req(Op.MKDIR, ['/d']);
    dom0.write('/d', 'keep');
    dom0.req(Op.MKDIR, ['/d']);
    expect(dom0.read('/d').text).toBe('keep');
  });

  it('directory_lists_children_in_creation_order', () => {
    const { dom0 } = setup();
    for (const c of ['z', 'a', 'm']) dom0.write(`/dir/${c}`, '');
    expect(dom0.req(Op.DIRECTORY, ['/dir']).payload.toString()).toBe('z\0a\0m\0');
  });

  it('directory_of_leaf_is_empty_payload', () => {
    const { dom0 } = setup();
    dom0.write('/leaf', 'v');
    expect(dom0.req(Op.DIRECTORY, ['/leaf']).payload.length).toBe(0);
  });

  it('directory_larger_than_payload_is_E2BIG_and_directory_part_pages_it', () => {
    const { dom0 } = setup();
    const names = Array.from({ length: 400 }, (_, i) => `child-number-${i}`);
    for (const n of names) dom0.write(`/big/${n}`, '');
    expect(dom0.req(Op.DIRECTORY, ['/big']).error).toBe('E2BIG');
    const got: string[] = [];
    let off = 0;
    let gen: string | undefined;
    for (;;) {
      const r = dom0.req(Op.DIRECTORY_PART, ['/big', String(off)]);
      const parts = r.payload.toString().split('\0');
      gen ??= parts[0];
      expect(parts[0]).toBe(gen);
      const body = r.payload.subarray(r.payload.indexOf(0) + 1);
      const done = body.length === 1 || body.subarray(-2).equals(Buffer.from([0, 0]));
      const chunk = body.subarray(0, done ? body.length - 1 : body.length);
      got.push(...chunk.toString().split('\0').filter((x) => x !== ''));
      off += chunk.length;
      if (done) break;
    }
    expect(got).toEqual(names);
  });

  it('directory_part_with_one_argument_is_EINVAL', () => {
    const { dom0 } = setup();
    expect(dom0.req(Op.DIRECTORY_PART, ['/']).error).toBe('EINVAL');
  });

  it('rm_removes_subtree', () => {
    const { dom0 } = setup();
    dom0.write('/t/a/b', '1');
    dom0.req(Op.RM, ['/t/a']);
    expect(dom0.read('/t/a/b').error).toBe('ENOENT');
    expect(dom0.req(Op.DIRECTORY, ['/t']).payload.length).toBe(0);
  });

  it('rm_of_missing_node_with_existing_parent_succeeds', () => {
    const { dom0 } = setup();
    dom0.write('/p', '');
    expect(dom0.req(Op.RM, ['/p/none']).error).toBeUndefined();
  });

  it('rm_of_missing_node_with_missing_parent_is_ENOENT', () => {
    const { dom0 } = setup();
    expect(dom0.req(Op.RM, ['/no/such']).error).toBe('ENOENT');
  });

  it('rm_of_root_is_EINVAL', () => {
    const { dom0 } = setup();
    expect(dom0.req(Op.RM, ['/']).error).toBe('EINVAL');
  });
});

describe('permissions', () => {
  it('get_perms_of_new_node_inherits_parent', () => {
    const { dom0 } = setup();
    dom0.write('/p', '');
    dom0.req(Op.SET_PERMS, ['/p', 'n0', 'r3']);
    dom0.write('/p/c', '');
    expect(dom0.req(Op.GET_PERMS, ['/p/c']).payload.toString()).toBe('n0\0r3\0');
  });

  it('unprivileged_creator_owns_new_node_and_keeps_inherited_acl', () => {
    const { d, dom0 } = setup();
    dom0.write('/shared', '');
    dom0.req(Op.SET_PERMS, ['/shared', 'n0', 'b4', 'r9']);
    const g = guest(d, dom0, 4);
    expect(g.write('/shared/mine', 'x').error).toBeUndefined();
    expect(dom0.req(Op.GET_PERMS, ['/shared/mine']).payload.toString()).toBe('n4\0b4\0r9\0');
  });

  it('guest_cannot_read_node_it_has_no_access_to', () => {
    const { d, dom0 } = setup();
    dom0.write('/secret', 's');
    const g = guest(d, dom0, 3);
    expect(g.read('/secret').error).toBe('EACCES');
  });

  it('guest_read_acl_grants_read_but_not_write', () => {
    const { d, dom0 } = setup();
    dom0.write('/pub', 'p');
    dom0.req(Op.SET_PERMS, ['/pub', 'n0', 'r3']);
    const g = guest(d, dom0, 3);
    expect(g.read('/pub').text).toBe('p');
    expect(g.write('/pub', 'no').error).toBe('EACCES');
  });

  it('missing_node_under_unreadable_parent_is_EACCES_not_ENOENT', () => {
    const { d, dom0 } = setup();
    dom0.write('/hidden', '');
    const g = guest(d, dom0, 3);
    expect(g.read('/hidden/none').error).toBe('EACCES');
  });

  it('missing_node_under_readable_parent_is_ENOENT', () => {
    const { d, dom0 } = setup();
    dom0.write('/vis', '');
    dom0.req(Op.SET_PERMS, ['/vis', 'r0']);
    const g = guest(d, dom0, 3);
    expect(g.read('/vis/none').error).toBe('ENOENT');
  });

  it('owner_may_change_acl_but_not_give_node_away', () => {
    const { d, dom0 } = setup();
    dom0.write('/local/domain/6', '');
    dom0.req(Op.SET_PERMS, ['/local/domain/6', 'n6']);
    const g = guest(d, dom0, 6);
    expect(g.req(Op.SET_PERMS, ['/local/domain/6', 'n6', 'r0']).error).toBeUndefined();
    expect(g.req(Op.SET_PERMS, ['/local/domain/6', 'n7']).error).toBe('EPERM');
  });

  it('non_owner_with_write_cannot_set_perms', () => {
    const { d, dom0 } = setup();
    dom0.write('/w', '');
    dom0.req(Op.SET_PERMS, ['/w', 'n0', 'b3']);
    const g = guest(d, dom0, 3);
    expect(g.req(Op.SET_PERMS, ['/w', 'n0', 'b3']).error).toBe('EACCES');
  });

  it.each([['x1'], ['r'], ['b99999999'], ['r-1']])('set_perms_rejects_bad_entry_%s', (bad) => {
    const { dom0 } = setup();
    dom0.write('/n', '');
    expect(dom0.req(Op.SET_PERMS, ['/n', bad]).error).toBe('EINVAL');
  });

  it('set_perms_without_entries_is_EINVAL', () => {
    const { dom0 } = setup();
    dom0.write('/n', '');
    expect(dom0.req(Op.SET_PERMS, ['/n']).error).toBe('EINVAL');
  });

  it('guest_setting_more_perms_than_quota_is_ENOSPC', () => {
    const { d, dom0 } = setup({ permsPerNode: 2 });
    dom0.write('/local/domain/6', '');
    dom0.req(Op.SET_PERMS, ['/local/domain/6', 'n6']);
    const g = guest(d, dom0, 6);
    expect(g.req(Op.SET_PERMS, ['/local/domain/6', 'n6', 'r1', 'r2']).error).toBe('ENOSPC');
  });

  it('set_target_grants_target_domains_access', () => {
    const { d, dom0 } = setup();
    dom0.write('/local/domain/8/dev', 'x');
    dom0.req(Op.SET_PERMS, ['/local/domain/8/dev', 'n8']);
    const dm = guest(d, dom0, 9);
    guest(d, dom0, 8);
    expect(dm.read('/local/domain/8/dev').error).toBe('EACCES');
    expect(dom0.req(Op.SET_TARGET, ['9', '8']).error).toBeUndefined();
    expect(dm.read('/local/domain/8/dev').text).toBe('x');
  });

  it('set_perms_on_special_path_lets_guest_see_introduce_events', () => {
    const { d, dom0 } = setup();
    const g = guest(d, dom0, 3);
    g.req(Op.WATCH, ['@introduceDomain', 'tok']);
    g.sink.clear();
    dom0.req(Op.INTRODUCE, ['11', '0', '1']);
    expect(g.sink.events()).toEqual([]);
    dom0.req(Op.SET_PERMS, ['@introduceDomain', 'n0', 'r3']);
    dom0.req(Op.INTRODUCE, ['12', '0', '1']);
    expect(g.sink.events()).toEqual([['@introduceDomain', 'tok']]);
  });
});

describe('privileged operations', () => {
  it.each([
    ['INTRODUCE', Op.INTRODUCE, ['4', '0', '1']],
    ['RELEASE', Op.RELEASE, ['4']],
    ['RESUME', Op.RESUME, ['4']],
    ['SET_TARGET', Op.SET_TARGET, ['4', '5']],
    ['IS_DOMAIN_INTRODUCED', Op.IS_DOMAIN_INTRODUCED, ['4']],
    ['CONTROL', Op.CONTROL, ['check']],
  ] as const)('guest_sending_%s_is_EACCES', (_n, op, args) => {
    const { d, dom0 } = setup();
    const g = guest(d, dom0, 3);
    expect(g.req(op, [...args]).error).toBe('EACCES');
  });

  it('introduce_marks_domain_introduced_and_release_forgets_it', () => {
    const { dom0 } = setup();
    expect(dom0.req(Op.IS_DOMAIN_INTRODUCED, ['4']).text).toBe('F');
    dom0.req(Op.INTRODUCE, ['4', '0', '1']);
    expect(dom0.req(Op.IS_DOMAIN_INTRODUCED, ['4']).text).toBe('T');
    dom0.req(Op.RELEASE, ['4']);
    expect(dom0.req(Op.IS_DOMAIN_INTRODUCED, ['4']).text).toBe('F');
  });

  it.each([[['4', '0', '0']], [['0', '0', '1']], [['4', '0']], [['70000', '0', '1']]])('introduce_rejects_%j', (args) => {
    const { dom0 } = setup();
    expect(dom0.req(Op.INTRODUCE, args).error).toBe('EINVAL');
  });

  it('release_of_unknown_domain_is_ENOENT_and_of_dom0_EINVAL', () => {
    const { dom0 } = setup();
    expect(dom0.req(Op.RELEASE, ['9']).error).toBe('ENOENT');
    expect(dom0.req(Op.RELEASE, ['0']).error).toBe('EINVAL');
  });

  it('release_removes_nodes_owned_by_domain_and_closes_its_sessions', () => {
    const { d, dom0 } = setup();
    dom0.write('/local/domain/4', '');
    dom0.req(Op.SET_PERMS, ['/local/domain/4', 'n4']);
    const g = guest(d, dom0, 4);
    g.write('data', 'x');
    dom0.req(Op.RELEASE, ['4']);
    expect(dom0.read('/local/domain/4').error).toBe('ENOENT');
    expect(g.sink.closedReason).toBe('domain released');
  });

  it('resume_needs_introduced_domain', () => {
    const { dom0 } = setup();
    expect(dom0.req(Op.RESUME, ['4']).error).toBe('ENOENT');
    dom0.req(Op.INTRODUCE, ['4', '0', '1']);
    expect(dom0.req(Op.RESUME, ['4']).error).toBeUndefined();
  });

  it('set_target_needs_both_domains_introduced', () => {
    const { dom0 } = setup();
    dom0.req(Op.INTRODUCE, ['4', '0', '1']);
    expect(dom0.req(Op.SET_TARGET, ['4', '5']).error).toBe('ENOENT');
  });

  it('get_domain_path_names_local_domain', () => {
    const { dom0 } = setup();
    expect(dom0.req(Op.GET_DOMAIN_PATH, ['12']).text).toBe('/local/domain/12');
  });

  it('control_check_and_unknown_command', () => {
    const { dom0 } = setup();
    expect(dom0.req(Op.CONTROL, ['check']).text).toBe('OK');
    expect(dom0.req(Op.CONTROL, ['frobnicate']).error).toBe('EINVAL');
  });

  it('control_quota_set_changes_limit', () => {
    const { d, dom0 } = setup();
    expect(dom0.req(Op.CONTROL, ['quota', 'set', 'nodes', '5']).text).toBe('OK');
    expect(d.state.limits.nodesPerDomain).toBe(5);
    expect(dom0.req(Op.CONTROL, ['quota', 'set', 'bogus', '5']).error).toBe('EINVAL');
  });
});

describe('wire-level errors', () => {
  it('unknown_type_is_ENOSYS', () => {
    const { dom0 } = setup();
    expect(dom0.raw(999, strings('/')).error).toBe('ENOSYS');
    expect(dom0.raw(20, strings('/')).error).toBe('ENOSYS');
  });

  it('client_sending_watch_event_or_error_type_is_ENOSYS', () => {
    const { dom0 } = setup();
    expect(dom0.raw(Op.WATCH_EVENT, strings('/', 't')).error).toBe('ENOSYS');
    expect(dom0.raw(Op.ERROR, strings('EINVAL')).error).toBe('ENOSYS');
  });

  it('reply_echoes_req_id_and_tx_id', () => {
    const { d, dom0 } = setup();
    const tx = dom0.txStart();
    const frame = encodeFrame(Op.READ, 0xdeadbeef, tx, strings('/tool'));
    d.handle(dom0.session, { header: { type: Op.READ, reqId: 0xdeadbeef, txId: tx, len: frame.length - HEADER_SIZE }, payload: frame.subarray(HEADER_SIZE) });
    const last = dom0.sink.frames.at(-1);
    expect(last?.frame.header.reqId).toBe(0xdeadbeef);
    expect(last?.frame.header.txId).toBe(tx);
  });

  it('unknown_transaction_id_is_ENOENT', () => {
    const { dom0 } = setup();
    expect(dom0.read('/tool', 77).error).toBe('ENOENT');
  });
});

describe('watches', () => {
  it('watch_fires_once_on_registration_after_ack', () => {
    const { dom0 } = setup();
    dom0.req(Op.WATCH, ['/w', 'tok']);
    const kinds = dom0.sink.frames.map((f) => f.kind);
    expect(kinds).toEqual(['reply', 'event']);
    expect(dom0.sink.events()).toEqual([['/w', 'tok']]);
  });

  it('fires_on_create_change_and_remove_in_subtree', () => {
    const { dom0 } = setup();
    const watcher = new FakeClient(dom0.d, 0);
    watcher.req(Op.WATCH, ['/w', 'tok']);
    watcher.sink.clear();
    dom0.write('/w/a', '1');
    dom0.write('/w/a', '2');
    dom0.req(Op.RM, ['/w/a']);
    dom0.write('/other', 'x');
    expect(watcher.sink.events()).toEqual([['/w/a', 'tok'], ['/w/a', 'tok'], ['/w/a', 'tok']]);
  });

  it('removing_ancestor_fires_watch_on_existing_descendant', () => {
    const { dom0 } = setup();
    dom0.write('/r/a/b', '');
    const watcher = new FakeClient(dom0.d, 0);
    watcher.req(Op.WATCH, ['/r/a/b', 't']);
    watcher.sink.clear();
    dom0.req(Op.RM, ['/r']);
    expect(watcher.sink.events()).toEqual([['/r/a/b', 't']]);
  });

  it('relative_watch_reports_relative_paths', () => {
    const { dom0 } = setup();
    dom0.req(Op.WATCH, ['dev', 'rel']);
    dom0.sink.clear();
    dom0.write('/local/domain/0/dev/vif', '1');
    expect(dom0.sink.events()).toEqual([['dev/vif', 'rel']]);
  });

  it('duplicate_watch_is_EEXIST_and_unwatch_of_unknown_is_ENOENT', () => {
    const { dom0 } = setup();
    dom0.req(Op.WATCH, ['/w', 't']);
    expect(dom0.req(Op.WATCH, ['/w', 't']).error).toBe('EEXIST');
    expect(dom0.req(Op.UNWATCH, ['/w', 'other']).error).toBe('ENOENT');
  });

  it('unwatch_stops_events', () => {
    const { dom0 } = setup();
    dom0.req(Op.WATCH, ['/w', 't']);
    dom0.req(Op.UNWATCH, ['/w', 't']);
    dom0.sink.clear();
    dom0.write('/w', 'x');
    expect(dom0.sink.events()).toEqual([]);
  });

  it('watch_with_wrong_argument_count_is_EINVAL', () => {
    const { dom0 } = setup();
    expect(dom0.req(Op.WATCH, ['/w']).error).toBe('EINVAL');
    expect(dom0.req(Op.WATCH, ['/w//x', 't']).error).toBe('EINVAL');
  });

  it('watches_beyond_connection_limit_are_E2BIG', () => {
    const { d } = setup({ watchesPerConnection: 3 });
    const dom0 = new FakeClient(d, 0);
    dom0.req(Op.INTRODUCE, ['3', '0', '1']);
    const g = new FakeClient(d, 3);
    const results = Array.from({ length: 6 }, (_, i) => g.req(Op.WATCH, [`/w${i}`, 't']).error);
    expect(results).toEqual([undefined, undefined, undefined, undefined, 'E2BIG', 'E2BIG']);
  });

  it('guest_does_not_see_events_for_unreadable_nodes', () => {
    const { d, dom0 } = setup();
    const g = guest(d, dom0, 3);
    g.req(Op.WATCH, ['/private', 't']);
    g.sink.clear();
    dom0.write('/private/x', 'secret');
    expect(g.sink.events()).toEqual([]);
  });

  it('introduce_and_release_fire_special_watches_for_dom0', () => {
    const { dom0 } = setup();
    dom0.req(Op.WATCH, ['@introduceDomain', 'i']);
    dom0.req(Op.WATCH, ['@releaseDomain', 'r']);
    dom0.sink.clear();
    dom0.req(Op.INTRODUCE, ['5', '0', '1']);
    dom0.req(Op.RELEASE, ['5']);
    expect(dom0.sink.events()).toEqual([['@introduceDomain', 'i'], ['@releaseDomain', 'r']]);
  });

  it('reset_watches_drops_watches_and_transactions', () => {
    const { dom0 } = setup();
    dom0.req(Op.WATCH, ['/w', 't']);
    const tx = dom0.txStart();
    dom0.req(Op.RESET_WATCHES, ['']);
    dom0.sink.clear();
    dom0.write('/w', '1');
    expect(dom0.sink.events()).toEqual([]);
    expect(dom0.read('/w', tx).error).toBe('ENOENT');
  });
});

describe('transactions', () => {
  it('writes_in_transaction_are_invisible_until_commit', () => {
    const { dom0 } = setup();
    const other = new FakeClient(dom0.d, 0);
    const tx = dom0.txStart();
    dom0.write('/t', 'v', tx);
    expect(other.read('/t').error).toBe('ENOENT');
    expect(dom0.read('/t', tx).text).toBe('v');
    dom0.req(Op.TRANSACTION_END, ['T'], tx);
    expect(other.read('/t').text).toBe('v');
  });

  it('abort_discards_changes', () => {
    const { dom0 } = setup();
    const tx = dom0.txStart();
    dom0.write('/t', 'v', tx);
    dom0.req(Op.TRANSACTION_END, ['F'], tx);
    expect(dom0.read('/t').error).toBe('ENOENT');
  });

  it('conflicting_write_makes_commit_EAGAIN', () => {
    const { dom0 } = setup();
    dom0.write('/c', '0');
    const tx = dom0.txStart();
    dom0.read('/c', tx);
    new FakeClient(dom0.d, 0).write('/c', 'other');
    dom0.write('/c2', 'x', tx);
    expect(dom0.req(Op.TRANSACTION_END, ['T'], tx).error).toBe('EAGAIN');
    expect(dom0.read('/c2').error).toBe('ENOENT');
  });

  it('unrelated_write_does_not_conflict', () => {
    const { dom0 } = setup();
    dom0.write('/c', '0');
    const tx = dom0.txStart();
    dom0.read('/c', tx);
    new FakeClient(dom0.d, 0).write('/elsewhere', 'x');
    expect(dom0.req(Op.TRANSACTION_END, ['T'], tx).error).toBeUndefined();
  });

  it('watch_fires_only_at_commit', () => {
    const { dom0 } = setup();
    const watcher = new FakeClient(dom0.d, 0);
    watcher.req(Op.WATCH, ['/tw', 't']);
    watcher.sink.clear();
    const tx = dom0.txStart();
    dom0.write('/tw/a', '1', tx);
    expect(watcher.sink.events()).toEqual([]);
    dom0.req(Op.TRANSACTION_END, ['T'], tx);
    expect(watcher.sink.events()).toEqual([['/tw/a', 't']]);
  });

  it('transaction_end_with_bad_argument_is_EINVAL_and_without_tx_ENOENT', () => {
    const { dom0 } = setup();
    const tx = dom0.txStart();
    expect(dom0.req(Op.TRANSACTION_END, ['X'], tx).error).toBe('EINVAL');
    expect(dom0.req(Op.TRANSACTION_END, ['T']).error).toBe('ENOENT');
  });

  it('nested_transaction_start_is_EBUSY', () => {
    const { dom0 } = setup();
    const tx = dom0.txStart();
    expect(dom0.req(Op.TRANSACTION_START, [''], tx).error).toBe('EBUSY');
  });

  it('too_many_transactions_is_ENOSPC', () => {
    const { d, dom0 } = setup({ transactionsPerConnection: 2 });
    const g = guest(d, dom0, 3);
    const errs = Array.from({ length: 5 }, () => g.req(Op.TRANSACTION_START, ['']).error);
    expect(errs).toEqual([undefined, undefined, undefined, 'ENOSPC', 'ENOSPC']);
  });

  it('transaction_left_open_expires_and_its_id_becomes_ENOENT', () => {
    let now = 1000;
    const { d } = newDaemon({ transactionTimeoutMs: 50 }, () => now);
    const c = new FakeClient(d, 0);
    const tx = c.txStart();
    now += 100;
    d.sweep();
    expect(c.read('/tool', tx).error).toBe('ENOENT');
    expect(d.counters.transactionsTimedOut).toBe(1);
  });

  it('transaction_touching_too_many_nodes_is_ENOSPC', () => {
    const { d, dom0 } = setup({ transactionNodes: 4 });
    for (let i = 0; i < 6; i++) dom0.write(`/many/k${i}`, '');
    dom0.req(Op.SET_PERMS, ['/many', 'b0']);
    const g = guest(d, dom0, 3);
    const tx = g.txStart();
    const errs = Array.from({ length: 6 }, (_, i) => g.read(`/many/k${i}`, tx).error);
    expect(errs).toContain('ENOSPC');
  });
});

describe('quotas', () => {
  it('guest_creating_more_nodes_than_quota_is_ENOSPC', () => {
    const { d, dom0 } = setup({ nodesPerDomain: 3 });
    dom0.write('/local/domain/3', '');
    dom0.req(Op.SET_PERMS, ['/local/domain/3', 'n0', 'b3']);
    const g = guest(d, dom0, 3);
    const errs = ['a', 'b', 'c', 'd'].map((k) => g.write(k, 'v').error);
    expect(errs).toEqual([undefined, undefined, undefined, 'ENOSPC']);
  });

  it('removing_nodes_returns_quota', () => {
    const { d, dom0 } = setup({ nodesPerDomain: 1 });
    dom0.write('/local/domain/3', '');
    dom0.req(Op.SET_PERMS, ['/local/domain/3', 'n0', 'b3']);
    const g = guest(d, dom0, 3);
    g.write('a', 'v');
    g.req(Op.RM, ['a']);
    expect(g.write('b', 'v').error).toBeUndefined();
  });

  it('guest_entry_larger_than_quota_is_ENOSPC', () => {
    const { d, dom0 } = setup({ entrySize: 100 });
    dom0.write('/local/domain/3', '');
    dom0.req(Op.SET_PERMS, ['/local/domain/3', 'n3']);
    const g = guest(d, dom0, 3);
    expect(g.write('big', 'x'.repeat(200)).error).toBe('ENOSPC');
    expect(g.write('small', 'x').error).toBeUndefined();
  });

  it('dom0_is_exempt_from_node_quota', () => {
    const { dom0 } = setup({ nodesPerDomain: 1 });
    const errs = ['a', 'b', 'c'].map((k) => dom0.write(`/q/${k}`, 'v').error);
    expect(errs).toEqual([undefined, undefined, undefined]);
  });

  it('quota_counts_are_rebuilt_from_the_journal', () => {
    const { d, dom0, journal } = setup();
    dom0.write('/local/domain/3', '');
    dom0.req(Op.SET_PERMS, ['/local/domain/3', 'n0', 'b3']);
    const g = guest(d, dom0, 3);
    g.write('a', '1');
    g.write('b/c', '2');
    const restored = journal.replay();
    expect(restored.tree.ownedBy(3)).toBe(d.state.tree.ownedBy(3));
    expect(restored.tree.ownedBy(3)).toBe(3);
  });
});

describe('durability barrier', () => {
  it('reply_to_a_write_waits_for_its_journal_record', () => {
    const { dom0, journal } = setup();
    dom0.write('/d', 'v');
    const reply = dom0.sink.frames.at(-1);
    expect(reply?.needSeq).toBe(journal.appendedSeq);
    expect(journal.appendedSeq).toBeGreaterThan(0);
  });
});

describe('special paths', () => {
  it('get_perms_of_special_path_is_EINVAL_as_in_xenstored', () => {
    const { dom0 } = setup();
    expect(dom0.req(Op.GET_PERMS, ['@introduceDomain']).error).toBe('EINVAL');
  });

  it('set_perms_on_unknown_special_path_is_EINVAL', () => {
    const { dom0 } = setup();
    expect(dom0.req(Op.SET_PERMS, ['@other', 'n0']).error).toBe('EINVAL');
  });

  it('guest_cannot_set_special_path_perms', () => {
    const { d, dom0 } = setup();
    const g = guest(d, dom0, 3);
    expect(g.req(Op.SET_PERMS, ['@releaseDomain', 'n0', 'r3']).error).toBe('EACCES');
  });
});
