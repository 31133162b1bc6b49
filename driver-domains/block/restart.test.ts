// Live restart (DESIGN.md 2.3): the block domain is "killed" at every interesting point of a
// workload and a fresh instance resumes from the same state region bytes, guest memory and
// disk. The guest must see a stall only: every request completes exactly once, with status OK,
// no used element duplicated, the data right (checked against patterns), and every write that
// completed before a FLUSH was submitted durable once that FLUSH completes.
import { describe, expect, it } from 'vitest';
import { STATUS } from '../virtio/device.js';
import { SECTOR } from './config.js';
import { DomainKilled } from './device.js';
import { FAULT_POINTS, type FaultHook, type FaultPoint } from './inflight.js';
import { VIRTIO_BLK_S, VIRTIO_BLK_T } from './request.js';
import { BlockGuest, MemoryBackend, firstDiff, pattern, type GuestRequest } from './testing.js';

const SECTORS = 256;
const RUNNING = STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK;

/** Kills the instance at the k-th fault point it reaches (never, for k < 0). */
class Killer {
  seen: FaultPoint[] = [];
  fired: FaultPoint | undefined;
  constructor(private readonly k: number) {}
  readonly hook: FaultHook = (p) => {
    this.seen.push(p);
    if (this.seen.length - 1 === this.k) {
      this.fired = p;
      throw new DomainKilled(p);
    }
  };
}

interface Expect {
  reads: { r: GuestRequest; want: Uint8Array }[];
  writes: { sector: number; bytes: Uint8Array }[];
  /** Per flush: the writes that had completed when it was submitted. */
  flushes: { r: GuestRequest; covers: { sector: number; bytes: Uint8Array }[] }[];
  all: GuestRequest[];
}

/**
 * Waits for the current instance; when it was killed, boots a successor (which must not be
 * killed: `successorKiller` lets a test kill it too) and waits for that one.
 */
async function settle(g: BlockGuest, killer: Killer, successors: Killer[]): Promise<void> {
  await g.domain.device.idle();
  while (g.domain.device.killed) {
    const next = successors.shift();
    g.boot(next?.hook);
    await g.domain.device.idle();
  }
  g.collect();
  void killer;
}

/** Three phases: writes and reads of seeded data; flush, reads back, more writes; a last flush. */
async function workload(g: BlockGuest, killer: Killer, successors: Killer[] = []): Promise<Expect> {
  const e: Expect = { reads: [], writes: [], flushes: [], all: [] };
  const write = (sector: number, count: number, gen: number, q = 0): void => {
    const bytes = pattern(sector, count, gen);
    e.all.push(g.write(sector, bytes, { q, kick: false }));
    e.writes.push({ sector, bytes });
  };
  const read = (sector: number, count: number, want: Uint8Array, indirect = false): void => {
    const r = g.read(sector, count, { kick: false, indirect });
    e.all.push(r);
    e.reads.push({ r, want });
  };
  const kick = (): void => {
    for (const dq of g.queues) dq.forceKick();
  };
  // Phase 1: four writes to fresh sectors, two reads of seeded ones.
  for (let i = 0; i < 4; i++) write(i * 8, 8, 1, i % g.queues.length);
  read(128, 4, pattern(128, 4, 0));
  read(160, 2, pattern(160, 2, 0), true);
  kick();
  await settle(g, killer, successors);
  // Phase 2: a flush covering phase 1, reads of what phase 1 wrote, two more writes.
  const f1 = g.flush({ kick: false });
  e.all.push(f1);
  e.flushes.push({ r: f1, covers: e.writes.slice() });
  for (let i = 0; i < 4; i++) read(i * 8, 8, pattern(i * 8, 8, 1));
  write(64, 16, 2);
  write(96, 1, 2);
  kick();
  await settle(g, killer, successors);
  // Phase 3: a flush covering everything.
  const f2 = g.flush({ kick: false });
  e.all.push(f2);
  e.flushes.push({ r: f2, covers: e.writes.slice() });
  kick();
  await settle(g, killer, successors);
  return e;
}

function seeded(): MemoryBackend {
  const b = new MemoryBackend(SECTORS * SECTOR);
  b.disk.set(pattern(0, SECTORS, 0));
  return b;
}

function verify(g: BlockGuest, e: Expect, label: string): void {
  expect(g.anomalies, `${label}: used elements for no outstanding request`).toEqual([]);
  expect(g.pending, `${label}: requests never completed`).toBe(0);
  for (const r of e.all) {
    expect(r.completions, `${label}: head ${r.head} type ${r.type} completions`).toBe(1);
    expect(g.status(r), `${label}: head ${r.head} type ${r.type} status`).toBe(VIRTIO_BLK_S.OK);
  }
  for (const { r, want } of e.reads) expect(firstDiff(g.data(r), want), `${label}: read of head ${r.head}`).toBe(-1);
  for (const w of e.writes) expect(firstDiff(g.backend.disk.subarray(w.sector * SECTOR, w.sector * SECTOR + w.bytes.byteLength), w.bytes), `${label}: disk at ${w.sector}`).toBe(-1);
  for (const f of e.flushes) {
    for (const w of f.covers) expect(firstDiff(g.backend.durable.subarray(w.sector * SECTOR, w.sector * SECTOR + w.bytes.byteLength), w.bytes), `${label}: durable at ${w.sector}`).toBe(-1);
  }
  expect(g.driver.status(), `${label}: device status`).toBe(RUNNING);
}

async function killedAt(k: number, opts: { queues?: number; successors?: Killer[] } = {}): Promise<{ g: BlockGuest; e: Expect; killer: Killer }> {
  const killer = new Killer(k);
  const queues = opts.queues ?? 1;
  const g = new BlockGuest({ backend: seeded(), faultHook: killer.hook, ramBytes: 2 << 20, options: { numQueues: queues, queueSize: 32 }, queues }).init();
  const e = await workload(g, killer, opts.successors);
  return { g, e, killer };
}

describe('live restart', () => {
  it('the_workload_is_correct_without_a_kill', async () => {
    const { g, e, killer } = await killedAt(-1);

    verify(g, e, 'no kill');
    expect(new Set(killer.seen)).toEqual(new Set(FAULT_POINTS));
  });

  it('every_request_completes_exactly_once_with_correct_data_when_killed_at_any_point', async () => {
    const total = (await killedAt(-1)).killer.seen.length;
    const fired = new Set<FaultPoint>();
    for (let k = 0; k < total; k++) {
      const { g, e, killer } = await killedAt(k);
      expect(killer.fired, `kill ${k} fired`).toBeDefined();
      fired.add(killer.fired ?? 'recorded');
      verify(g, e, `kill at #${k} (${killer.fired})`);
    }
    expect(fired).toEqual(new Set(FAULT_POINTS));
  });

  it('survives_a_second_kill_during_the_successors_recovery', async () => {
    const total = (await killedAt(-1)).killer.seen.length;
    for (let k = 0; k < total; k += 3) {
      for (let j = 0; j < 4; j++) {
        const { g, e, killer } = await killedAt(k, { successors: [new Killer(j)] });
        verify(g, e, `kill at #${k} (${killer.fired}), successor killed at #${j}`);
      }
    }
  });

  it('multiqueue_requests_survive_a_kill_in_each_queue', async () => {
    const total = (await killedAt(-1, { queues: 2 })).killer.seen.length;
    for (let k = 0; k < total; k += 2) {
      const { g, e, killer } = await killedAt(k, { queues: 2 });
      verify(g, e, `2 queues, kill at #${k} (${killer.fired})`);
    }
  });
});

describe('live restart: the named cases', () => {
  /** Runs one write and kills at the first `point`; returns the guest after a successor settled. */
  async function oneWrite(point: FaultPoint, dropHeld = false): Promise<{ g: BlockGuest; w: GuestRequest; firstUsed: number }> {
    let killed = false;
    const hook: FaultHook = (p) => {
      if (p === point && !killed) {
        killed = true;
        throw new DomainKilled(p);
      }
    };
    const g = new BlockGuest({ backend: seeded(), faultHook: hook, ramBytes: 2 << 20 }).init();
    if (dropHeld) g.backend.hold = true;
    const w = g.write(8, pattern(8, 2, 9));
    await g.domain.device.idle();
    const firstUsed = g.queue(0).usedIdx();
    if (dropHeld) {
      // The old instance's I/O dies with it: its held operations never run.
      g.backend.held.splice(0);
      g.backend.hold = false;
    }
    expect(g.domain.device.killed).toBe(true);
    g.boot(undefined);
    await g.settle();
    return { g, w, firstUsed };
  }

  it('resubmits_a_request_killed_while_its_io_was_in_flight', async () => {
    const { g, w } = await oneWrite('submitted', true);

    expect(w.completions).toBe(1);
    expect(g.status(w)).toBe(VIRTIO_BLK_S.OK);
    expect(firstDiff(g.backend.disk.subarray(8 * SECTOR, 10 * SECTOR), pattern(8, 2, 9))).toBe(-1);
  });

  it('takes_a_chain_recorded_before_the_cursor_moved_only_once', async () => {
    const { g, w } = await oneWrite('recorded');

    expect(w.completions).toBe(1);
    expect(g.anomalies).toEqual([]);
  });

  it('repairs_a_batch_whose_elements_were_written_but_not_published', async () => {
    const { g, w, firstUsed } = await oneWrite('element');

    expect(firstUsed).toBe(0);
    expect(g.queue(0).usedIdx()).toBe(1);
    expect(w.completions).toBe(1);
  });

  it('finishes_a_batch_published_before_the_cursor_was_committed_without_repeating_it', async () => {
    const { g, w, firstUsed } = await oneWrite('published');

    expect(firstUsed).toBe(1);
    expect(g.queue(0).usedIdx()).toBe(1);
    expect(w.completions).toBe(1);
    expect(g.anomalies).toEqual([]);
  });

  it('interrupts_after_resuming_since_the_predecessor_may_have_died_before_its_interrupt', async () => {
    const { g } = await oneWrite('published');

    expect(g.interrupts.raises + g.interrupts.vectors.length).toBeGreaterThan(0);
    expect(g.interrupts.level).toBe(true);
  });

  it('a_flush_killed_after_its_sync_is_synced_again_and_completes_once', async () => {
    let n = 0;
    const hook: FaultHook = (p) => {
      if (p === 'completed' && ++n === 2) throw new DomainKilled(p);
    };
    const g = new BlockGuest({ backend: seeded(), faultHook: hook, ramBytes: 2 << 20 }).init();
    g.write(0, pattern(0, 4, 3));
    await g.settle();
    const f = g.flush();
    await g.domain.device.idle();
    expect(g.domain.device.killed).toBe(true);
    const flushesBefore = g.backend.flushes;
    g.boot(undefined);
    await g.settle();

    expect(f.completions).toBe(1);
    expect(g.backend.flushes).toBe(flushesBefore + 1);
    expect(firstDiff(g.backend.durable.subarray(0, 4 * SECTOR), pattern(0, 4, 3))).toBe(-1);
  });

  it('finishes_a_reset_the_predecessor_was_draining', async () => {
    const g = new BlockGuest({ backend: seeded(), ramBytes: 2 << 20 }).init();
    g.backend.hold = true;
    g.read(0, 1);
    g.driver.setStatus(0);
    expect(g.driver.status()).not.toBe(0);
    g.backend.held.splice(0);
    g.backend.hold = false;
    g.boot(undefined);

    expect(g.driver.status()).toBe(0);
    g.init();
    const r = g.read(0, 1);
    await g.settle();
    expect(firstDiff(g.data(r), pattern(0, 1, 0))).toBe(-1);
  });

  it('refuses_a_state_region_made_for_another_disk', () => {
    const g = new BlockGuest({ backend: seeded(), ramBytes: 2 << 20 }).init();
    const other = new BlockGuest({ backend: new MemoryBackend(2 * SECTORS * SECTOR), ramBytes: 2 << 20 });
    other.region.u8.set(g.region.u8);

    expect(() => other.boot(undefined)).toThrow(/capacity/);
  });

  it('a_guest_that_writes_used_idx_cannot_make_the_successor_complete_twice', async () => {
    let killed = false;
    const hook: FaultHook = (p) => {
      if (p === 'published' && !killed) {
        killed = true;
        throw new DomainKilled(p);
      }
    };
    const g = new BlockGuest({ backend: seeded(), faultHook: hook, ramBytes: 2 << 20 }).init();
    const w = g.write(0, pattern(0, 1, 1));
    await g.domain.device.idle();
    g.collect();
    // The hostile guest rewinds used->idx; the successor must not hand back a finished chain.
    const used = g.fake.at(g.queue(0).used + 2, 2);
    used.mem.dv.setUint16(used.at, 0, true);
    g.boot(undefined);
    await g.domain.device.idle();

    expect(w.completions).toBe(1);
    expect(g.domain.device.inFlight).toBe(0);
    void VIRTIO_BLK_T;
  });
});
