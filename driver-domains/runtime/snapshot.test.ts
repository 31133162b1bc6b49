// Restart exactness: a module resumed from its state image in a fresh instance behaves
// exactly as the original from then on. Each test runs a sequence, snapshots, restores
// into a new instance, continues the same sequence on both, and compares every output.
import { describe, expect, it } from 'vitest';
import { ACPI_PM, COM1, I8042, IOAPIC_BASE, PCI_ECAM } from '../../boot/layout.js';
import { CONFIG_ADDRESS, CONFIG_DATA, VIRTIO, msixTable, stageTable } from '../pci/testing.js';
import { IoDir, IoSpace, type StubKind } from './abi.js';
import { StubDomainError } from './errors.js';
import { FakeClock, StubHarness, type HarnessOptions, type Recorded } from './testing.js';

function rng(seed: bigint): () => bigint {
  let x = seed;
  return () => {
    x ^= x >> 12n; x ^= (x << 25n) & 0xffff_ffff_ffff_ffffn; x ^= x >> 27n;
    return (x * 0x2545f4914f6cdd1dn) & 0xffff_ffff_ffff_ffffn;
  };
}

/** One step of a mixed workload: register programming, line changes, EOIs. */
function ioapicStep(h: StubHarness<'ioapic'>, r: bigint): void {
  const pin = Number((r >> 8n) % 24n);
  switch (Number(r & 7n)) {
    case 0: case 1: {
      const level = (r >> 20n) & 1n;
      const mask = (r >> 21n & 7n) === 0n ? 1n : 0n;
      const polarity = pin >= 16 || pin === 9 ? 1n : 0n;
      const low = 0x30n + BigInt(pin) | (level << 15n) | (polarity << 13n) | (mask << 16n);
      h.mmioWrite(IOAPIC_BASE, 0x10 + 2 * pin);
      h.mmioWrite(IOAPIC_BASE + 0x10, Number(low));
      break;
    }
    case 2: case 3: case 4: h.exports.set_irq(pin, Number((r >> 16n) & 1n)); break;
    case 5: h.exports.eoi(0x30 + pin); break;
    case 6: h.mmioWrite(IOAPIC_BASE + 0x40, 0x30 + pin); break;
    default: h.ioreq(IoSpace.Mmio, IOAPIC_BASE + Number((r >> 24n) & 0xfffn), 4, Number((r >> 40n) & 1n), r >> 44n);
  }
}

function consoleStep(h: StubHarness<'console'>, r: bigint): void {
  const uartReg = COM1.port + Number((r >> 8n) & 7n);
  switch (Number(r & 7n)) {
    case 0: case 1: h.pioWrite(uartReg, Number((r >> 16n) & 0xffn)); break;
    case 2: h.pioRead(uartReg); break;
    case 3: h.exports.rx(Number((r >> 16n) & 0xffn)); break;
    case 4: h.clock.advance((r >> 16n) & 0xffff_ffffn); h.pioRead(ACPI_PM.pmTimer, 4); break;
    case 5: h.pioWrite(ACPI_PM.pm1aEvent + Number((r >> 8n) & 3n), Number((r >> 16n) & 0xffn)); break;
    case 6: h.ioreq(IoSpace.Pio, ACPI_PM.pm1aEvent + Number((r >> 8n) & 7n), 2, IoDir.Read); break;
    default: {
      // Leave the mode registers in a sane state now and then, so the sequence keeps moving.
      if ((r >> 12n & 3n) === 0n) h.pioWrite(COM1.port + 4, 0x0b);
      else h.drainText();
    }
  }
}

/** Config writes and reads through both paths, MSI-X programming and signals, INTx, resets. */
function pciStep(h: StubHarness<'pci'>, r: bigint): void {
  const slot = [0, VIRTIO.slot, 5, 9][Number((r >> 8n) & 3n)] ?? 0;
  const reg = Number((r >> 12n) & 0xfcn);
  const value = Number((r >> 24n) & 0xffff_ffffn);
  switch (Number(r & 7n)) {
    case 0: h.mmioWrite(PCI_ECAM.base + (slot << 15) + reg, value, 4); break;
    case 1: {
      h.pioWrite(CONFIG_ADDRESS, (0x8000_0000 | (slot << 11) | reg) >>> 0, 4);
      h.pioRead(CONFIG_DATA + Number((r >> 20n) & 3n), 1);
      break;
    }
    case 2: {
      // Keep decoding, bus mastering and MSI-X on most of the time, so that vectors go live.
      h.mmioWrite(PCI_ECAM.base + (VIRTIO.slot << 15) + 0x04, 0x6, 2);
      h.mmioWrite(PCI_ECAM.base + (VIRTIO.slot << 15) + 0x42, Number((r >> 16n) & 0xc000n), 2);
      break;
    }
    case 3: h.mmioWrite(msixTable(h) + Number((r >> 16n) & 0x3cn), value & 0x1f, 4); break;
    case 4: h.exports.msix_pending(VIRTIO.slot, Number((r >> 16n) & 3n)); break;
    case 5: h.exports.msix_fire_take(); break;
    case 6: h.exports.intx_set([VIRTIO.slot, 5][Number((r >> 16n) & 1n)] ?? 0, Number((r >> 17n) & 1n)); break;
    default: if (((r >> 16n) & 0xffn) === 0n) h.exports.reset(); else h.mmioRead(msixTable(h) + 0x800, 8);
  }
}

type Stepper<K extends StubKind> = (h: StubHarness<K>, r: bigint) => void;

/** Outputs of `steps` steps after the split point, with answers' seqs dropped (each harness counts its own). */
function run<K extends StubKind>(h: StubHarness<K>, step: Stepper<K>, next: () => bigint, steps: number): unknown[] {
  h.clearEvents();
  const out: unknown[] = [];
  for (let i = 0; i < steps; i++) {
    step(h, next());
    out.push(...h.events.map((e: Recorded) => (e.kind === 'answer' ? { answer: e.data } : e)));
    h.clearEvents();
    for (let c = 0; c < h.exports.counter_count(); c++) out.push(h.counter(c));
  }
  if (h.kind === 'console') out.push((h as unknown as StubHarness<'console'>).drainText());
  return out;
}

async function splitAndCompare<K extends StubKind>(kind: K, step: Stepper<K>, image: 'state' | 'memory', options: HarnessOptions<K> = {}): Promise<void> {
  const clock = new FakeClock();
  const original = await StubHarness.create(kind, { ...options, clock });
  const warmup = rng(42n);
  for (let i = 0; i < 3000; i++) step(original, warmup());

  const snapshot = image === 'state' ? original.snapshotState() : original.snapshotMemory();
  const restoredClock = new FakeClock(clock.nowNs);
  const restored = await StubHarness.restore(kind, snapshot, restoredClock);

  const a = run(original, step, rng(7n), 3000);
  const b = run(restored, step, rng(7n), 3000);
  expect(b).toEqual(a);
  expect(restored.snapshotState()).toEqual(original.snapshotState());
}

describe('restart from a state image', () => {
  it('ioapic_resumes_exactly_from_its_state_window', async () => {
    await splitAndCompare('ioapic', ioapicStep, 'state');
  });

  it('ioapic_resumes_exactly_from_a_whole_memory_image', async () => {
    await splitAndCompare('ioapic', ioapicStep, 'memory');
  });

  it('console_resumes_exactly_from_its_state_window', async () => {
    await splitAndCompare('console', consoleStep, 'state');
  });

  it('pci_resumes_exactly_from_its_state_window', async () => {
    await splitAndCompare('pci', pciStep, 'state', { beforeInit: stageTable });
  });

  it('pci_resumes_exactly_from_a_whole_memory_image', async () => {
    await splitAndCompare('pci', pciStep, 'memory', { beforeInit: stageTable });
  });

  it('remote_irr_survives_restart_and_eoi_redelivers_on_the_successor', async () => {
    const h = await StubHarness.create('ioapic');
    h.mmioWrite(IOAPIC_BASE, 0x10 + 2 * 16);
    h.mmioWrite(IOAPIC_BASE + 0x10, 0x41 | (1 << 15) | (1 << 13));
    h.exports.set_irq(16, 1);

    const successor = await StubHarness.restore('ioapic', h.snapshotState(), new FakeClock());
    successor.exports.set_irq(16, 1);
    const beforeEoi = successor.msis().length;
    successor.exports.eoi(0x41);

    expect(beforeEoi).toBe(0);
    expect(successor.msis()).toHaveLength(1);
  });

  it('undrained_console_output_survives_restart', async () => {
    const h = await StubHarness.create('console');
    for (const c of 'boot') h.pioWrite(COM1.port, c.charCodeAt(0));
    h.pioWrite(I8042.command, I8042.resetCommand);

    const successor = await StubHarness.restore('console', h.snapshotState(), new FakeClock());

    expect(successor.drainText()).toBe('boot');
    expect(successor.exports.platform_event()).toBe(2);
  });

  it('restore_refuses_an_image_of_another_module', async () => {
    const console = await StubHarness.create('console');
    const image = console.snapshotState().slice(0, (await StubHarness.create('ioapic')).exports.state_size());

    await expect(StubHarness.restore('ioapic', image, new FakeClock())).rejects.toMatchObject({ code: 'BAD_STATE' });
  });

  it('restore_refuses_a_zeroed_image', async () => {
    const h = await StubHarness.create('ioapic');

    const attempt = StubHarness.restore('ioapic', new Uint8Array(h.exports.state_size()), new FakeClock());

    await expect(attempt).rejects.toBeInstanceOf(StubDomainError);
  });
});
