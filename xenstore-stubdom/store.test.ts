import { describe, expect, it } from 'vitest';
import { Tree, TxView } from './store.js';
import type { Perms } from './perms.js';

const P0: Perms = [{ domid: 0, access: 'n' }];
const P3: Perms = [{ domid: 3, access: 'n' }];
const v = (s: string): Buffer => Buffer.from(s);

function tree(): Tree {
  const t = new Tree(P0);
  t.set('/a', v('1'), P0);
  t.set('/a/b', v('2'), P3);
  t.takeEffects();
  return t;
}

describe('Tree', () => {
  it('counts_nodes_per_owner_through_set_and_remove', () => {
    const t = tree();
    t.set('/a/c', v(''), P3);
    expect(t.ownedBy(3)).toBe(2);
    t.removeSubtree('/a');
    expect([t.ownedBy(3), t.ownedBy(0)]).toEqual([0, 1]);
  });

  it('changing_owner_moves_the_count', () => {
    const t = tree();
    t.set('/a/b', v('2'), P0);
    expect([t.ownedBy(3), t.ownedBy(0)]).toEqual([0, 3]);
  });

  it('child_change_bumps_parent_generation', () => {
    const t = tree();
    const before = t.get('/a')?.generation ?? 0;
    t.set('/a/new', v(''), P0);
    expect(t.get('/a')?.generation).toBeGreaterThan(before);
  });

  it('replaying_effects_rebuilds_the_same_tree', () => {
    const t = tree();
    t.set('/x', v(''), P0);
    t.set('/x/y', v('z'), P3);
    t.removeSubtree('/a/b');
    const fx = t.takeEffects();
    const copy = tree();
    for (const e of fx) copy.apply(e);
    expect([...copy.walk()].map(([p, n]) => [p, n.value.toString(), n.children])).toEqual([...t.walk()].map(([p, n]) => [p, n.value.toString(), n.children]));
  });
});

describe('TxView', () => {
  it('sees_its_own_writes_and_deletes_but_the_tree_does_not', () => {
    const t = tree();
    const tx = new TxView(t, 100);
    tx.set('/a/n', v('new'), P0);
    tx.removeSubtree('/a/b');
    expect([tx.get('/a/n')?.value.toString(), tx.get('/a/b')]).toEqual(['new', undefined]);
    expect([t.get('/a/n'), t.get('/a/b')?.value.toString()]).toEqual([undefined, '2']);
  });

  it('conflicts_when_a_node_it_read_changes', () => {
    const t = tree();
    const tx = new TxView(t, 100);
    tx.get('/a/b');
    t.set('/a/b', v('changed'), P3);
    expect(tx.conflicts()).toBe(true);
  });

  it('conflicts_when_a_node_it_saw_absent_appears', () => {
    const t = tree();
    const tx = new TxView(t, 100);
    tx.get('/a/ghost');
    t.set('/a/ghost', v(''), P0);
    expect(tx.conflicts()).toBe(true);
  });

  it('does_not_conflict_on_untouched_nodes', () => {
    const t = tree();
    t.set('/other', v(''), P0);
    const tx = new TxView(t, 100);
    tx.get('/a/b');
    t.set('/other', v('x'), P0);
    expect(tx.conflicts()).toBe(false);
  });

  it('tracks_net_nodes_per_owner', () => {
    const t = tree();
    const tx = new TxView(t, 100);
    tx.set('/a/b/c', v(''), P3);
    tx.set('/a/b/d', v(''), P3);
    tx.removeSubtree('/a/b/c');
    expect([tx.netOwned(3), tx.ownedBy(3)]).toEqual([1, 2]);
  });

  it('refuses_to_touch_more_nodes_than_its_limit', () => {
    const t = tree();
    const tx = new TxView(t, 2);
    tx.get('/a');
    tx.get('/a/b');
    expect(() => tx.get('/zz')).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
  });
});
