// Fuzz target for the stub domains' guest-input path: byte strings decode into sequences of
// ioreqs and host events, which run against a fresh instance of each module. A run fails
// on a trap, an ioreq not answered exactly once, an answer wider than the access, a state
// image that stops being valid, or a restored twin that diverges from the original.
//
//   node dist/driver-domains/fuzz.js [--seconds N] [--seed S] [--replay HEX]
//
// Inputs come from a seeded generator, half of them mutated from earlier inputs, so a
// failing run is reproduced with its seed or with the hex input it prints.
import { pathToFileURL } from 'node:url';
import { COM1, IOAPIC_BASE, PCI_CONFIG_PORTS, PCI_ECAM, PCI_MMIO32 } from '../boot/layout.js';
import { stageTable } from './pci/testing.js';
import { IoDir, IoSpace, STUB_KINDS, type StubKind } from './runtime/abi.js';
import { FakeClock, StubHarness, type HarnessOptions } from './runtime/testing.js';

/** Bytes per decoded operation. */
const OP_BYTES = 16;

/** Interesting addresses per kind, so that random inputs reach the registers. */
const HOT: Record<StubKind, readonly number[]> = {
  ioapic: [IOAPIC_BASE, IOAPIC_BASE + 0x10, IOAPIC_BASE + 0x40],
  console: [COM1.port, 0x60, 0x64, 0x600, 0x604, 0x608],
  // The config ports, the ECAM pages of the host bridge and of the two functions of
  // pci/testing.ts (slots 3 and 5), and where firmware places the MSI-X BAR of slot 3.
  pci: [
    PCI_CONFIG_PORTS.base, PCI_CONFIG_PORTS.base + 4, PCI_ECAM.base, PCI_ECAM.base + (3 << 15), PCI_ECAM.base + (5 << 15),
    PCI_MMIO32.base + 0x10_4000, PCI_MMIO32.base + 0x10_4800,
  ],
};

/** The device table each kind powers on with (only pci has one). */
const OPTIONS: { [K in StubKind]: HarnessOptions<K> } = {
  ioapic: {},
  console: {},
  pci: { beforeInit: stageTable },
};

/** What an access to a hot address is by default: the ioapic and ECAM are MMIO, ports are PIO. */
function defaultSpace(kind: StubKind, addr: bigint): number {
  if (kind === 'ioapic') return IoSpace.Mmio;
  return addr > 0xffffn ? IoSpace.Mmio : IoSpace.Pio;
}

/** Data for a write: for pci's CONFIG_ADDRESS, mostly an enabled bus 0 or 1 address, so that CONFIG_DATA reaches functions. */
function shapeData(kind: StubKind, addr: bigint, data: bigint): bigint {
  if (kind === 'pci' && addr === BigInt(PCI_CONFIG_PORTS.base) && (data & 0x100_0000n) === 0n) {
    return 0x8000_0000n | (data & 0x1_fffcn);
  }
  return data;
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) | ((b[at + 1] ?? 0) << 8) | ((b[at + 2] ?? 0) << 16) | ((b[at + 3] ?? 0) << 24)) >>> 0;
}

/**
 * A write a driver makes to slot 3 of pci/testing.ts (command, MSI-X Message Control, a table
 * entry), or rarely a reset: random addresses alone hit these few bytes too seldom to reach
 * live, masked and pending vectors.
 */
function pciDriverWrite(h: StubHarness<'pci'>, a: number, b: number): void {
  const slot3 = PCI_ECAM.base + (3 << 15);
  switch (a & 7) {
    case 0: if (((a >> 3) & 0xf) === 0) h.exports.reset(); break;
    // Mostly what a working driver leaves: memory decoding and bus mastering on, MSI-X enabled.
    case 1: h.mmioWrite(slot3 + 0x04, (a & 0x38) === 0 ? b & 0x0407 : 0x0006, 2); break;
    case 2: h.mmioWrite(slot3 + 0x42, (a & 0x38) === 0 ? b & 0xc000 : 0x8000 | (b & 0x4000), 2); break;
    default: {
      // Half of them to Vector Control, the mask bit, which decides what is held and fired.
      const field = (a & 0x800) === 0 ? 12 : 4 * ((a >> 8) & 3);
      const table = Number(h.exports.bar_addr(3, 1));
      h.ioreq(IoSpace.Mmio, table + 16 * ((a >> 3) % 5) + field, 4, IoDir.Write, b);
    }
  }
}

/** Applies one operation; returns a description of any broken invariant. */
function apply(h: StubHarness<StubKind>, op: Uint8Array): string | undefined {
  const kind = op[0] ?? 0;
  const a = u32(op, 4), b = u32(op, 8), c = u32(op, 12);
  if (kind < 0xc0) {
    const hot = HOT[h.kind];
    const addr = (kind & 1) === 0 ? BigInt((hot[a % hot.length] ?? 0) + ((b & 0xff) - 0x80)) : (BigInt(a) << 32n) | BigInt(b);
    const size = [1, 2, 4, 8, 1, 4, 3, 0][(kind >> 1) & 7] ?? 1;
    const dir = (kind & 0x10) === 0 ? IoDir.Read : (kind & 0x20) === 0 ? IoDir.Write : (op[1] ?? 0);
    const space = (kind & 0x40) === 0 ? defaultSpace(h.kind, addr) : (op[2] ?? 0);
    const data = h.ioreq(space, addr, size, dir, shapeData(h.kind, addr, (BigInt(c) << 32n) | BigInt(a)));
    if (size <= 4 && size > 0 && BigInt.asUintN(64, data) >> BigInt(size * 8) !== 0n) return `answer 0x${data.toString(16)} wider than ${size} bytes`;
    if (dir !== IoDir.Read && data !== 0n) return `write answered 0x${data.toString(16)}`;
  } else if (h.kind === 'ioapic') {
    const io = h as StubHarness<'ioapic'>;
    if ((kind & 1) === 0) io.exports.set_irq(a % 32, b & 1);
    else io.exports.eoi(a & 0x1ff);
  } else if (h.kind === 'pci') {
    const pci = h as StubHarness<'pci'>;
    // Mostly the functions of pci/testing.ts (3 with four vectors, 5), sometimes any slot.
    const slot = (a & 7) === 0 ? a % 33 : (a & 8) === 0 ? 3 : 5;
    switch (kind & 3) {
      case 0: pci.exports.intx_set(slot, b & 1); break;
      case 1: pci.exports.msix_pending(slot, b % 5); break;
      case 2: pci.exports.msix_fire_take(); break;
      default: pciDriverWrite(pci, a, b);
    }
  } else {
    const con = h as StubHarness<'console'>;
    switch (kind & 3) {
      case 0: con.exports.rx(a & 0x1ff); break;
      case 1: con.drainText(); break;
      case 2: con.clock.advance(BigInt(a) * 1000n); break;
      default: con.exports.power_button();
    }
  }
  if (h.exports.state_valid() !== 1) return 'state image no longer valid';
  return undefined;
}

function outputs(h: StubHarness<StubKind>): unknown[] {
  return h.events.map((e) => (e.kind === 'answer' ? { answer: e.data } : e));
}

/** Runs one input on `kind`; throws with a description on the first broken invariant. */
export async function runInput<K extends StubKind>(kind: K, input: Uint8Array): Promise<void> {
  const clock = new FakeClock();
  const options: HarnessOptions<K> = OPTIONS[kind];
  const h: StubHarness<StubKind> = await StubHarness.create(kind, { ...options, clock });
  const ops = Math.floor(input.length / OP_BYTES);
  const split = Math.floor(ops / 2);
  let twin: StubHarness<StubKind> | undefined;
  for (let i = 0; i < ops; i++) {
    if (i === split) {
      twin = await StubHarness.restore(kind, h.snapshotState(), new FakeClock(clock.nowNs));
      h.clearEvents();
    }
    const op = input.subarray(i * OP_BYTES, (i + 1) * OP_BYTES);
    const problem = apply(h, op);
    if (problem !== undefined) throw new Error(`${kind} op ${i}: ${problem}`);
    if (twin !== undefined) {
      const twinProblem = apply(twin, op);
      if (twinProblem !== undefined) throw new Error(`${kind} restored twin op ${i}: ${twinProblem}`);
      const mine = JSON.stringify(outputs(h), bigintJson), theirs = JSON.stringify(outputs(twin), bigintJson);
      if (mine !== theirs) throw new Error(`${kind} op ${i}: restored twin diverged: ${theirs} vs ${mine}`);
      h.clearEvents();
      twin.clearEvents();
    }
  }
}

function bigintJson(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString(16) : value;
}

function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x;
  };
}

function generate(next: () => number, corpus: Uint8Array[]): Uint8Array {
  const parent = corpus.length > 0 && next() % 2 === 0 ? corpus[next() % corpus.length] : undefined;
  if (parent !== undefined) {
    const child = parent.slice();
    for (let flips = 1 + (next() % 8); flips > 0; flips--) child[next() % child.length] = next() & 0xff;
    return child;
  }
  const out = new Uint8Array(OP_BYTES * (1 + (next() % 256)));
  for (let i = 0; i < out.length; i++) out[i] = next() & 0xff;
  return out;
}

async function main(argv: readonly string[]): Promise<number> {
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const replay = arg('--replay');
  if (replay !== undefined) {
    const [kind, hex] = replay.split(':');
    const known = STUB_KINDS.find((k) => k === kind);
    if (known === undefined) throw new Error(`--replay: unknown kind ${kind ?? ''}; one of ${STUB_KINDS.join(', ')}`);
    await runInput(known, Uint8Array.from(Buffer.from(hex ?? '', 'hex')));
    process.stdout.write('replay passed\n');
    return 0;
  }
  const seconds = Number(arg('--seconds') ?? '10');
  const seed = Number(arg('--seed') ?? String(Date.now() % 0x7fffffff));
  const next = prng(seed);
  const corpus: Uint8Array[] = [];
  const deadline = Date.now() + seconds * 1000;
  let runs = 0;
  while (Date.now() < deadline) {
    for (const kind of STUB_KINDS) {
      const input = generate(next, corpus);
      try {
        await runInput(kind, input);
      } catch (err) {
        process.stderr.write(`driver-domains fuzz: seed ${seed}, run ${runs}: ${err instanceof Error ? err.message : String(err)}\n`);
        process.stderr.write(`replay: --replay ${kind}:${Buffer.from(input).toString('hex')}\n`);
        return 1;
      }
      if (corpus.length < 64) corpus.push(input);
      else corpus[next() % corpus.length] = input;
      runs++;
    }
  }
  process.stdout.write(`driver-domains fuzz: ${runs} inputs in ${seconds} s (seed ${seed}), no failures\n`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`driver-domains fuzz: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  });
}
