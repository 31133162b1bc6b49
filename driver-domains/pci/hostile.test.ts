// Hostile guest accesses: any address, size, direction and value must be answered exactly once
// (the harness throws otherwise), must not trap the module, and must be counted when invalid.
import { describe, expect, it } from 'vitest';
import { PCI_ECAM } from '../../boot/layout.js';
import { IoDir, IoSpace, PciCounter } from '../runtime/abi.js';
import {
  CMD, CONFIG_ADDRESS, CONFIG_DATA, MSIX_CAP, MSIX_CTRL, REG, VIRTIO, createPci, ecamAddress, ecamWrite,
  msixPba, msixTable,
} from './testing.js';

/** u64 results cross as signed i64 bigints; read them unsigned. */
const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);

/** xorshift64*: a fixed seed keeps every run identical. */
function rng(seed: bigint): () => bigint {
  let x = seed;
  return () => {
    x ^= x >> 12n; x ^= (x << 25n) & 0xffff_ffff_ffff_ffffn; x ^= x >> 27n;
    return (x * 0x2545f4914f6cdd1dn) & 0xffff_ffff_ffff_ffffn;
  };
}

describe('pci under hostile accesses', () => {
  it('every_offset_and_size_of_a_functions_ecam_page_is_answered_without_trapping', async () => {
    const h = await createPci();
    let answered = 0;

    for (let reg = 0; reg < 0x1000; reg++) {
      for (const size of [1, 2, 4, 8]) {
        h.ioreq(IoSpace.Mmio, ecamAddress(VIRTIO.slot, reg), size, IoDir.Read);
        h.ioreq(IoSpace.Mmio, ecamAddress(VIRTIO.slot, reg), size, IoDir.Write, 0xffff_ffff_ffff_ffffn);
        answered += 2;
      }
    }

    expect(answered).toBe(0x1000 * 8);
    // Every 8-byte access and every access that crosses a dword is refused.
    const crossing = 0x1000 * 2 /* 8 */ + 0x400 * 2 * (1 /* size 2 at +3 */ + 3 /* size 4 at +1..+3 */);
    expect(h.counter(PciCounter.InvalidAccess)).toBe(BigInt(crossing));
    expect(h.exports.state_valid()).toBe(1);
  });

  it('misaligned_and_oversized_config_accesses_read_all_ones_of_their_size', async () => {
    const h = await createPci();

    const reads = [
      h.ioreq(IoSpace.Mmio, ecamAddress(VIRTIO.slot, 2), 4, IoDir.Read),
      h.ioreq(IoSpace.Mmio, ecamAddress(VIRTIO.slot, 3), 2, IoDir.Read),
      u64(h.ioreq(IoSpace.Mmio, ecamAddress(VIRTIO.slot, 0), 8, IoDir.Read)),
      h.ioreq(IoSpace.Pio, CONFIG_DATA + 2, 4, IoDir.Read),
      h.ioreq(IoSpace.Pio, CONFIG_ADDRESS + 1, 2, IoDir.Read),
    ];

    expect(reads).toEqual([0xffff_ffffn, 0xffffn, 0xffff_ffff_ffff_ffffn, 0xffff_ffffn, 0xffffn]);
    expect(h.counter(PciCounter.InvalidAccess)).toBe(5n);
  });

  it('accesses_with_a_bad_space_size_or_direction_are_counted_and_answer_zero', async () => {
    const h = await createPci();

    const answers = [
      h.ioreq(IoSpace.Pio, CONFIG_DATA, 3, IoDir.Read),
      h.ioreq(IoSpace.Pio, CONFIG_DATA, 0, IoDir.Read),
      h.ioreq(IoSpace.Pio, CONFIG_DATA, 16, IoDir.Read),
      h.ioreq(IoSpace.Mmio, PCI_ECAM.base, 4, 7),
      h.ioreq(9, PCI_ECAM.base, 4, IoDir.Read),
    ];

    expect(answers).toEqual([0n, 0n, 0n, 0n, 0n]);
    expect(h.counter(PciCounter.InvalidAccess)).toBe(5n);
  });

  it('ports_and_addresses_outside_everything_served_are_counted_and_read_all_ones', async () => {
    const h = await createPci();

    const reads = [
      h.ioreq(IoSpace.Pio, 0xcf7, 1, IoDir.Read),
      h.ioreq(IoSpace.Pio, 0x1_0000_0cfcn, 4, IoDir.Read),
      h.ioreq(IoSpace.Mmio, PCI_ECAM.base - 4, 4, IoDir.Read),
      h.ioreq(IoSpace.Mmio, 0xffff_ffff_ffff_fffcn, 4, IoDir.Read),
      h.ioreq(IoSpace.Mmio, 0, 1, IoDir.Read),
    ];

    expect(reads).toEqual([0xffn, 0xffff_ffffn, 0xffff_ffffn, 0xffff_ffffn, 0xffn]);
    expect(h.counter(PciCounter.InvalidAccess)).toBe(5n);
  });

  it('msix_structures_refuse_byte_word_and_misaligned_accesses_and_gaps', async () => {
    const h = await createPci();
    const table = msixTable(h);

    const reads = [
      h.ioreq(IoSpace.Mmio, table, 1, IoDir.Read),
      h.ioreq(IoSpace.Mmio, table + 2, 2, IoDir.Read),
      u64(h.ioreq(IoSpace.Mmio, table + 4, 8, IoDir.Read)),
      h.ioreq(IoSpace.Mmio, table + 16 * VIRTIO.vectors, 4, IoDir.Read),
      h.ioreq(IoSpace.Mmio, msixPba(h) + 8, 4, IoDir.Read),
      u64(h.ioreq(IoSpace.Mmio, table + 0xffc, 8, IoDir.Read)),
    ];
    h.ioreq(IoSpace.Mmio, table + 12, 2, IoDir.Write, 0);

    expect(reads).toEqual([0xffn, 0xffffn, 0xffff_ffff_ffff_ffffn, 0xffff_ffffn, 0xffff_ffffn, 0xffff_ffff_ffff_ffffn]);
    expect(h.mmioRead(table + 12)).toBe(1);
    expect(h.counter(PciCounter.InvalidAccess)).toBe(7n);
  });

  it('a_bar_moved_over_ecam_or_to_the_top_of_memory_never_traps', async () => {
    const h = await createPci();
    ecamWrite(h, VIRTIO.slot, REG.bar0 + 4 * VIRTIO.msixBar, 0xffff_ffff);
    ecamWrite(h, VIRTIO.slot, REG.command, CMD.memory | CMD.busMaster, 2);

    const top = h.ioreq(IoSpace.Mmio, 0xffff_f000, 4, IoDir.Read);
    ecamWrite(h, VIRTIO.slot, REG.bar0 + 4 * VIRTIO.msixBar, PCI_ECAM.base);
    const id = h.mmioRead(PCI_ECAM.base);

    expect(top).toBe(0n);
    expect(id >>> 0).toBe(0x0008_1b36);
  });

  it('huge_table_size_and_bir_writes_to_the_capability_change_nothing', async () => {
    const h = await createPci();

    ecamWrite(h, VIRTIO.slot, MSIX_CAP, 0xffff_ffff);
    ecamWrite(h, VIRTIO.slot, MSIX_CAP + 4, 0xffff_ffff);
    ecamWrite(h, VIRTIO.slot, MSIX_CAP + 8, 0xffff_ffff);

    expect(h.mmioRead(ecamAddress(VIRTIO.slot, MSIX_CAP)) >>> 16).toBe(MSIX_CTRL.enable | MSIX_CTRL.functionMask | (VIRTIO.vectors - 1));
    expect(h.mmioRead(ecamAddress(VIRTIO.slot, MSIX_CAP + 4))).toBe(VIRTIO.tableOffset | VIRTIO.msixBar);
    expect(h.mmioRead(ecamAddress(VIRTIO.slot, MSIX_CAP + 8))).toBe(VIRTIO.pbaOffset | VIRTIO.msixBar);
    expect(h.counter(PciCounter.ReadOnlyWrite)).toBe(2n);
  });

  it('random_ioreqs_and_host_calls_never_trap_and_are_each_answered_once', async () => {
    const h = await createPci();
    const next = rng(0x0bad_5eed_1234_5678n);
    const sizes = [1, 2, 4, 8, 0, 3, 16, 0xffff_ffff];
    const near = [CONFIG_ADDRESS, CONFIG_DATA, PCI_ECAM.base, PCI_ECAM.base + (VIRTIO.slot << 15), msixTable(h), msixPba(h)];

    for (let i = 0; i < 20_000; i++) {
      const r = next();
      const space = Number(r & 3n) === 3 ? Number(next() & 0xffff_ffffn) : Number(r & 1n);
      const base = near[Number((r >> 2n) % BigInt(near.length))] ?? 0;
      const addr = ((r >> 8n) & 1n) === 1n ? BigInt(base) + ((r >> 16n) & 0x1fffn) - 0x100n : next();
      const size = sizes[Number((r >> 32n) & 7n)] ?? 4;
      const dir = Number((r >> 40n) & 3n);
      h.ioreq(space, addr, size, dir, next());
      if ((r & 0xf00n) === 0n) h.exports.intx_set(Number((r >> 44n) & 31n), Number((r >> 50n) & 1n));
      if ((r & 0xf000n) === 0n) h.exports.msix_pending(Number((r >> 44n) & 31n), Number((r >> 52n) & 7n));
      if ((r & 0xf0000n) === 0n) h.exports.msix_fire_take();
      if ((r & 0xfffffn) === 0n) h.exports.reset();
    }

    expect(h.counter(PciCounter.InvalidAccess)).toBeGreaterThan(0n);
    expect(h.exports.state_valid()).toBe(1);
  });

  it('invalid_access_logging_is_rate_limited_to_powers_of_two', async () => {
    const h = await createPci();

    for (let i = 0; i < 1000; i++) h.ioreq(IoSpace.Mmio, ecamAddress(VIRTIO.slot, 0), 8, IoDir.Read);

    const logs = h.effects().filter((e) => e.kind === 'log');
    expect(logs).toHaveLength(10);
    expect(logs[0]).toMatchObject({ kind: 'log', text: `pci: ECAM access crossing a dword at 0x${ecamAddress(VIRTIO.slot, 0).toString(16)} size 8 (count 1)` });
  });

  it('unknown_counter_ids_read_zero', async () => {
    const h = await createPci();

    expect([h.counter(h.exports.counter_count()), h.counter(0xffff_ffff)]).toEqual([0n, 0n]);
  });
});
