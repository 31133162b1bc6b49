// Hostile guest accesses to the console domain: answered exactly once (the harness throws
// otherwise), no trap, invalid ones counted.
import { describe, expect, it } from 'vitest';
import { ConsoleCounter, IoDir, IoSpace } from '../runtime/abi.js';
import { StubHarness } from '../runtime/testing.js';

function rng(seed: bigint): () => bigint {
  let x = seed;
  return () => {
    x ^= x >> 12n; x ^= (x << 25n) & 0xffff_ffff_ffff_ffffn; x ^= x >> 27n;
    return (x * 0x2545f4914f6cdd1dn) & 0xffff_ffff_ffff_ffffn;
  };
}

describe('console under hostile accesses', () => {
  it('every_port_size_and_direction_is_answered_without_trapping', async () => {
    const h = await StubHarness.create('console');

    for (let port = 0; port <= 0xffff; port++) {
      for (const size of [1, 2, 4, 8]) h.ioreq(IoSpace.Pio, port, size, IoDir.Read);
    }
    // Writes only around the devices: writing everywhere would mostly repeat the reads' path.
    for (const base of [0x3f0, 0x58, 0x5f8]) {
      for (let port = base; port < base + 0x20; port++) {
        for (const size of [1, 2, 4, 8]) h.ioreq(IoSpace.Pio, port, size, IoDir.Write, 0xffff_ffff_ffff_ffffn);
      }
    }

    expect(h.counter(ConsoleCounter.InvalidAccess)).toBeGreaterThan(0x10000n * 3n);
    expect(h.exports.state_valid()).toBe(1);
  });

  it('access_straddling_the_end_of_the_uart_is_rejected', async () => {
    const h = await StubHarness.create('console');

    const value = h.ioreq(IoSpace.Pio, 0x3fe, 4, IoDir.Read);

    expect(value).toBe(0n);
    expect(h.counter(ConsoleCounter.InvalidAccess)).toBe(1n);
  });

  it('mmio_or_out_of_range_ports_are_counted', async () => {
    const h = await StubHarness.create('console');

    h.ioreq(IoSpace.Mmio, 0x3f8, 1, IoDir.Read);
    h.ioreq(IoSpace.Pio, 0x1_03f8, 1, IoDir.Read);
    h.ioreq(IoSpace.Pio, 0x3f8, 3, IoDir.Read);
    h.ioreq(IoSpace.Pio, 0x3f8, 1, 2);

    expect(h.counter(ConsoleCounter.InvalidAccess)).toBe(4n);
  });

  it('random_ioreqs_and_host_input_never_trap_and_are_each_answered_once', async () => {
    const h = await StubHarness.create('console');
    const next = rng(0x0dd_ba11_cafe_f00dn);
    const ports = [0x3f8, 0x60, 0x64, 0x600, 0x604, 0x608];
    const sizes = [1, 2, 4, 8, 0, 5, 1, 1];

    for (let i = 0; i < 20_000; i++) {
      const r = next();
      const near = (r & 3n) !== 0n;
      const port = near ? (ports[Number((r >> 2n) % 6n)] ?? 0) + Number((r >> 8n) & 0xfn) - 4 : next();
      const space = (r >> 12n & 7n) === 0n ? Number(next() & 0xffn) : IoSpace.Pio;
      const dir = (r >> 16n & 7n) === 0n ? 5 : Number((r >> 20n) & 1n);
      h.ioreq(space, BigInt(port), sizes[Number((r >> 24n) & 7n)] ?? 1, dir, next());
      if ((r >> 28n & 3n) === 0n) h.exports.rx(Number((r >> 32n) & 0xffffn));
      if ((r >> 48n & 15n) === 0n) h.drainText();
    }

    expect(h.counter(ConsoleCounter.InvalidAccess)).toBeGreaterThan(0n);
    expect(h.exports.state_valid()).toBe(1);
  });

  it('unknown_counter_ids_read_zero', async () => {
    const h = await StubHarness.create('console');
    h.ioreq(IoSpace.Mmio, 0, 3, 9);

    expect(h.counter(ConsoleCounter.InvalidAccess)).toBe(1n);
    expect([h.counter(h.exports.counter_count()), h.counter(0xffff_ffff)]).toEqual([0n, 0n]);
  });
});
