import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from './config.js';
import { Journal, decodeSnapshot, encodeRecord, encodeSnapshot, readJournal, recover } from './persist.js';
import { freshState } from './records.js';
import type { JournalRecord } from './records.js';

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'xs-persist-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const set = (p: string, v: string): JournalRecord => ({ t: 'fx', fx: [{ kind: 'set', path: p, value: Buffer.from(v), perms: [{ domid: 0, access: 'n' }] }] });

describe('journal records', () => {
  it('round_trips_records', () => {
    const recs: JournalRecord[] = [set('/a', 'x'), { t: 'introduce', domid: 4 }, { t: 'special', name: '@releaseDomain', perms: [{ domid: 0, access: 'r' }] }];
    const { records, torn } = readJournal(Buffer.concat(recs.map(encodeRecord)));
    expect(torn).toBe(false);
    expect(records).toEqual(recs);
  });

  it('stops_at_torn_tail', () => {
    const whole = Buffer.concat([encodeRecord(set('/a', '1')), encodeRecord(set('/b', '2'))]);
    const { records, torn } = readJournal(whole.subarray(0, whole.length - 3));
    expect(records).toHaveLength(1);
    expect(torn).toBe(true);
  });

  it('stops_at_corrupt_record', () => {
    const first = encodeRecord(set('/a', '1'));
    const second = encodeRecord(set('/b', '2'));
    second.writeUInt8((second.at(-2) ?? 0) ^ 0xff, second.length - 2);
    expect(readJournal(Buffer.concat([first, second])).records).toHaveLength(1);
  });

  it('ignores_absurd_length_field', () => {
    const b = Buffer.alloc(16);
    b.writeUInt32LE(0xffffffff, 0);
    expect(readJournal(b)).toMatchObject({ records: [], torn: true });
  });
});

describe('snapshot', () => {
  it('round_trips_nodes_perms_domains_and_limits', () => {
    const s = freshState(DEFAULT_LIMITS);
    s.tree.set('/a', Buffer.from('v'), [{ domid: 3, access: 'r' }]);
    s.tree.set('/a/b', Buffer.from([0, 1]), [{ domid: 3, access: 'n' }, { domid: 4, access: 'b' }]);
    s.domains.set(3, { target: 4 });
    s.limits.nodesPerDomain = 17;
    const { state, epoch } = decodeSnapshot(encodeSnapshot(s, 9), DEFAULT_LIMITS);
    expect(epoch).toBe(9);
    expect([...state.tree.walk()].map(([p, n]) => [p, n.value, n.perms])).toEqual([...s.tree.walk()].map(([p, n]) => [p, n.value, n.perms]));
    expect(state.tree.ownedBy(3)).toBe(2);
    expect(state.domains.get(3)?.target).toBe(4);
    expect(state.limits.nodesPerDomain).toBe(17);
  });
});

describe('recovery', () => {
  it('restores_state_from_snapshot_and_journal_after_restart', async () => {
    const dir = tmp();
    const { state, report } = recover(dir, DEFAULT_LIMITS);
    const j = new Journal(dir, state, report.epoch, (e) => { throw e; });
    state.tree.set('/k', Buffer.from('1'), [{ domid: 0, access: 'n' }]);
    j.append({ t: 'fx', fx: state.tree.takeEffects() });
    await new Promise<void>((resolve) => j.onDurable(() => resolve()));
    const again = recover(dir, DEFAULT_LIMITS);
    expect(again.state.tree.get('/k')?.value.toString()).toBe('1');
    j.closeSync();
  });

  it('replays_journal_past_a_snapshot_taken_midway', async () => {
    const dir = tmp();
    const { state, report } = recover(dir, DEFAULT_LIMITS);
    const j = new Journal(dir, state, report.epoch, (e) => { throw e; });
    state.tree.set('/before', Buffer.from('b'), [{ domid: 0, access: 'n' }]);
    j.append({ t: 'fx', fx: state.tree.takeEffects() });
    const snap = j.snapshot();
    state.tree.set('/after', Buffer.from('a'), [{ domid: 0, access: 'n' }]);
    const seq = j.append({ t: 'fx', fx: state.tree.takeEffects() });
    await new Promise<void>((resolve) => j.onDurable((s) => { if (s >= seq) resolve(); }));
    await snap;
    const again = recover(dir, DEFAULT_LIMITS);
    expect(again.state.tree.get('/before')?.value.toString()).toBe('b');
    expect(again.state.tree.get('/after')?.value.toString()).toBe('a');
    j.closeSync();
  });
});
