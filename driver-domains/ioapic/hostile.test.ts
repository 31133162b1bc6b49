// Hostile guest accesses: any offset, size, direction and value must be answered exactly
// once (the harness throws otherwise), must not trap the module, and must be counted
// when invalid.
import { describe, expect, it } from 'vitest';
import { IOAPIC_BASE } from '../../boot/layout.js';
import { IoDir, IoSpace, IoapicCounter } from '../runtime/abi.js';
import { StubHarness } from '../runtime/testing.js';

/** xorshift64*: a fixed seed keeps every run identical. */
function rng(seed: bigint): () => bigint {
  let x = seed;
  return () => {
    x ^= x >> 12n; x ^= (x << 25n) & 0xffff_ffff_ffff_ffffn; x ^= x >> 27n;
    return (x * 0x2545f4914f6cdd1dn) & 0xffff_ffff_ffff_ffffn;
  };
}

describe('ioapic under hostile accesses', () => {
  it('every_offset_size_and_direction_of_the_page_is_answered_without_trapping', async () => {
    const h = await StubHarness.create('ioapic');
    let answered = 0;

    for (let offset = 0; offset < 0x1000; offset++) {
      for (const size of [1, 2, 4, 8]) {
        h.ioreq(IoSpace.Mmio, IOAPIC_BASE + offset, size, IoDir.Read);
        h.ioreq(IoSpace.Mmio, IOAPIC_BASE + offset, size, IoDir.Write, 0xffff_ffff_ffff_ffffn);
        answered += 2;
      }
    }

    expect(answered).toBe(0x1000 * 8);
    // Only IOREGSEL (sizes 1, 2, 4), IOWIN (4) and EOI (write, 1, 2, 4) are valid, and some
    // IOWIN accesses hit a missing register; everything else must have been counted.
    const validAtMost = 2 * 3 + 2 * 1 + 3;
    expect(h.counter(IoapicCounter.InvalidAccess)).toBeGreaterThanOrEqual(BigInt(0x1000 * 8 - validAtMost));
  });

  it('reads_of_unimplemented_offsets_return_zero', async () => {
    const h = await StubHarness.create('ioapic');

    const value = h.ioreq(IoSpace.Mmio, IOAPIC_BASE + 0x20, 4, IoDir.Read);

    expect(value).toBe(0n);
  });

  it('accesses_outside_the_page_or_with_bad_space_size_or_direction_are_counted', async () => {
    const h = await StubHarness.create('ioapic');

    h.ioreq(IoSpace.Mmio, IOAPIC_BASE - 4, 4, IoDir.Read);
    h.ioreq(IoSpace.Mmio, IOAPIC_BASE + 0x1000, 4, IoDir.Read);
    h.ioreq(IoSpace.Pio, 0x10, 4, IoDir.Read);
    h.ioreq(IoSpace.Mmio, IOAPIC_BASE, 3, IoDir.Read);
    h.ioreq(IoSpace.Mmio, IOAPIC_BASE, 4, 7);
    h.ioreq(9, IOAPIC_BASE, 4, IoDir.Read);

    expect(h.counter(IoapicCounter.InvalidAccess)).toBe(6n);
  });

  it('random_ioreqs_and_line_changes_never_trap_and_are_each_answered_once', async () => {
    const h = await StubHarness.create('ioapic');
    const next = rng(0x1234_5678_9abc_def1n);
    const sizes = [1, 2, 4, 8, 0, 3, 16, 0xffff_ffff];

    for (let i = 0; i < 20_000; i++) {
      const r = next();
      const space = Number(r & 3n) === 3 ? Number(next() & 0xffff_ffffn) : Number(r & 1n);
      const nearPage = (r >> 8n) & 1n;
      const addr = nearPage === 1n ? BigInt(IOAPIC_BASE) + ((r >> 16n) & 0x1fffn) - 0x800n : next();
      const size = sizes[Number((r >> 32n) & 7n)] ?? 4;
      const dir = Number((r >> 40n) & 3n);
      h.ioreq(space, addr, size, dir, next());
      if ((r & 0xf00n) === 0n) h.exports.set_irq(Number((r >> 44n) & 31n), Number((r >> 50n) & 1n));
      if ((r & 0xf000n) === 0n) h.exports.eoi(Number((r >> 52n) & 0x1ffn));
    }

    expect(h.counter(IoapicCounter.InvalidAccess)).toBeGreaterThan(0n);
    expect(h.exports.state_valid()).toBe(1);
  });

  it('set_irq_on_a_missing_pin_is_counted_and_ignored', async () => {
    const h = await StubHarness.create('ioapic');

    h.exports.set_irq(24, 1);
    h.exports.set_irq(0xffff_ffff, 1);

    expect(h.counter(IoapicCounter.BadPin)).toBe(2n);
    expect(h.msis()).toEqual([]);
  });

  it('invalid_access_logging_is_rate_limited_to_powers_of_two', async () => {
    const h = await StubHarness.create('ioapic');

    for (let i = 0; i < 1000; i++) h.ioreq(IoSpace.Mmio, IOAPIC_BASE + 0x20, 4, IoDir.Read);

    // 1, 2, 4, ..., 512: ten lines for a thousand bad accesses.
    const logs = h.effects().filter((e) => e.kind === 'log');
    expect(logs).toHaveLength(10);
    expect(logs[0]).toMatchObject({ kind: 'log', text: "ioapic: bad read at offset 0x20 size 4 (count 1)" });
  });

  it('unknown_counter_ids_read_zero', async () => {
    const h = await StubHarness.create('ioapic');
    h.ioreq(IoSpace.Mmio, 0, 3, 9);

    expect(h.counter(IoapicCounter.InvalidAccess)).toBe(1n);
    expect([h.counter(h.exports.counter_count()), h.counter(0xffff_ffff)]).toEqual([0n, 0n]);
  });
});
