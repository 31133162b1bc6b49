// Restart of the pci domain: a successor restored from the state window carries on with the
// same config space, BAR placement and interrupt state, and loses or repeats no interrupt.
// (The randomized twin comparison is runtime/snapshot.test.ts, pci_resumes_exactly_*.)
import { describe, expect, it } from 'vitest';
import { PciCounter, PciMsixSignal } from '../runtime/abi.js';
import { FakeClock, StubHarness } from '../runtime/testing.js';
import {
  LEGACY, REG, VIRTIO, createPci, ecamRead, ecamWrite, enableMsix, msixPba, msixTable, programVector, type Pci,
} from './testing.js';

function successorOf(h: Pci): Promise<Pci> {
  return StubHarness.restore('pci', h.snapshotState(), new FakeClock());
}

const fire = (vector: number): number => (VIRTIO.slot << 16) | vector;

describe('pci restart', () => {
  it('successor_reads_the_same_config_space_through_ecam', async () => {
    const h = await createPci();
    ecamWrite(h, LEGACY.slot, REG.bar0 + 4 * LEGACY.memBar, 0xd000_0000);
    ecamWrite(h, VIRTIO.slot, REG.interruptLine, 0x33, 1);

    const successor = await successorOf(h);

    for (const slot of [0, VIRTIO.slot, LEGACY.slot, 9]) {
      for (let reg = 0; reg < 0x100; reg += 4) expect(ecamRead(successor, slot, reg)).toBe(ecamRead(h, slot, reg));
    }
    expect(successor.exports.bar_generation()).toBe(h.exports.bar_generation());
  });

  it('a_signal_held_before_the_restart_fires_once_after_the_unmask_on_the_successor', async () => {
    const h = await createPci();
    programVector(h, 1, 0xfee0_0000, 0x51, true);
    enableMsix(h);
    h.exports.msix_pending(VIRTIO.slot, 1);

    const successor = await successorOf(h);
    successor.mmioWrite(msixTable(successor) + 16 + 12, 0);

    expect(successor.exports.msix_fire_take()).toBe(fire(1));
    expect(successor.exports.msix_fire_take()).toBe(0);
  });

  it('a_fire_not_yet_taken_before_the_restart_is_taken_by_the_successor', async () => {
    const h = await createPci();
    programVector(h, 0, 0xfee0_0000, 0x50, true);
    enableMsix(h);
    h.exports.msix_pending(VIRTIO.slot, 0);
    h.mmioWrite(msixTable(h) + 12, 0);

    const successor = await successorOf(h);

    expect(successor.exports.msix_fire_take()).toBe(fire(0));
    expect(successor.mmioRead(msixPba(successor))).toBe(0);
  });

  it('a_fire_taken_and_committed_is_not_repeated_by_the_successor', async () => {
    const h = await createPci();
    programVector(h, 0, 0xfee0_0000, 0x50, true);
    enableMsix(h);
    h.exports.msix_pending(VIRTIO.slot, 0);
    h.mmioWrite(msixTable(h) + 12, 0);
    h.exports.msix_fire_take();

    const successor = await successorOf(h);

    expect(successor.exports.msix_fire_take()).toBe(0);
    expect(successor.exports.msix_pending(VIRTIO.slot, 0)).toBe(PciMsixSignal.Deliver);
  });

  it('line_levels_survive_so_the_successor_sends_only_real_changes', async () => {
    const h = await createPci();
    h.exports.intx_set(LEGACY.slot, 1);

    const successor = await successorOf(h);
    successor.exports.intx_set(LEGACY.slot, 1);
    const repeated = successor.pins().length;
    successor.exports.intx_set(LEGACY.slot, 0);

    expect(repeated).toBe(0);
    expect(successor.pins()).toEqual([{ kind: 'pin', gsi: h.exports.intx_gsi(LEGACY.slot), level: 0 }]);
  });

  it('counters_survive_the_restart', async () => {
    const h = await createPci();
    ecamRead(h, 9, REG.id);

    const successor = await successorOf(h);

    expect(successor.counter(PciCounter.AbsentFunction)).toBe(1n);
  });

  it('a_window_whose_device_table_points_outside_the_pool_is_refused', async () => {
    const h = await createPci();
    const image = h.snapshotState();
    // The first word of the device table section is the number of vectors handed out; no
    // valid table has more than the pool (224).
    const headerAt = findVectorsUsed(image, VIRTIO.vectors);
    image[headerAt] = 0xff;
    image[headerAt + 1] = 0xff;

    await expect(StubHarness.restore('pci', image, new FakeClock())).rejects.toMatchObject({ code: 'BAD_STATE' });
  });
});

/**
 * The offset of the device table's vectors-used field in a window, where pci/assembly/persist.ts
 * puts it (after the 32-byte header and eight counters); checked against the value it must hold.
 */
function findVectorsUsed(image: Uint8Array, used: number): number {
  const at = 32 + 8 * 8;
  expect((image[at] ?? 0) | ((image[at + 1] ?? 0) << 8)).toBe(used);
  return at;
}
