// Test harness for stub-domain modules: instantiates a module with recording imports,
// plays ioreqs as a vCPU would, checks that each is answered exactly once, and moves the
// state image between instances the way the runtime does across a restart. Tests only.
import { readFileSync } from 'node:fs';
import { ensureBuilt, repoRoot } from '../build.js';
import {
  IMPORT_MODULE, IoDir, IoSpace, MEMORY_MAP, bindExports, checkImports,
  type IoSize, type StubExportsByKind, type StubImports, type StubKind,
} from './abi.js';
import { StubDomainError } from './errors.js';
import { Wasm, type WasmInstance, type WasmModule } from './wasm.js';

/** Everything a module did to the outside, in order. */
export type Recorded =
  | { readonly kind: 'answer'; readonly seq: bigint; readonly data: bigint }
  | { readonly kind: 'pin'; readonly gsi: number; readonly level: number }
  | { readonly kind: 'msi'; readonly addr: bigint; readonly data: number }
  | { readonly kind: 'log'; readonly level: number; readonly text: string };

/** A settable monotonic clock in nanoseconds, shared by the instances of one test. */
export class FakeClock {
  constructor(public nowNs: bigint = 1_000_000_000n) {}
  advance(ns: bigint): void { this.nowNs += ns; }
}

const modules = new Map<StubKind, Promise<WasmModule>>();

/** The compiled module of `kind`, rebuilt first when missing or stale (never skipped). */
export function loadStubModule(kind: StubKind): Promise<WasmModule> {
  let pending = modules.get(kind);
  if (pending === undefined) {
    pending = ensureBuilt(repoRoot(), kind).then((path) => {
      const module = new Wasm.Module(readFileSync(path));
      checkImports(kind, module);
      return module;
    });
    modules.set(kind, pending);
  }
  return pending;
}

export interface HarnessOptions<K extends StubKind = StubKind> {
  readonly clock?: FakeClock;
  /** Call init() (power-on). False for an instance that is about to receive a state image. */
  readonly init?: boolean;
  /** Runs before init(): the pci device table (cfg_* exports) is staged here. */
  readonly beforeInit?: (exports: StubExportsByKind[K]) => void;
}

export class StubHarness<K extends StubKind> {
  readonly events: Recorded[] = [];
  readonly exports: StubExportsByKind[K];
  readonly clock: FakeClock;
  private nextSeq = 1n;
  private inflight: bigint | undefined;
  private answersForInflight = 0;

  private constructor(readonly kind: K, module: WasmModule, clock: FakeClock) {
    this.clock = clock;
    const imports: StubImports = {
      answer: (seq, data) => {
        this.events.push({ kind: 'answer', seq, data });
        if (seq !== this.inflight) {
          throw new StubDomainError('ANSWER_UNEXPECTED', `answer for seq ${seq}, in flight: ${String(this.inflight)}`);
        }
        this.answersForInflight++;
      },
      set_pin: (gsi, level) => { this.events.push({ kind: 'pin', gsi, level }); },
      msi: (addr, data) => { this.events.push({ kind: 'msi', addr, data }); },
      log: (level, ptr, len) => { this.events.push({ kind: 'log', level, text: this.text(ptr, len) }); },
      now_ns: () => this.clock.nowNs,
    };
    const instance: WasmInstance = new Wasm.Instance(module, { [IMPORT_MODULE]: { ...imports } });
    this.exports = bindExports(kind, instance);
  }

  static async create<K extends StubKind>(kind: K, options: HarnessOptions<K> = {}): Promise<StubHarness<K>> {
    const harness = new StubHarness(kind, await loadStubModule(kind), options.clock ?? new FakeClock());
    if (options.init ?? true) {
      options.beforeInit?.(harness.exports);
      harness.exports.init();
    }
    return harness;
  }

  /** A fresh instance resumed from `image` (see snapshotState), as after a restart. */
  static async restore<K extends StubKind>(kind: K, image: Uint8Array, clock: FakeClock): Promise<StubHarness<K>> {
    const harness = await StubHarness.create(kind, { clock, init: false });
    harness.loadState(image);
    return harness;
  }

  private bytes(): Uint8Array { return new Uint8Array(this.exports.memory.buffer); }

  private text(ptr: number, len: number): string {
    const mem = this.bytes();
    if (ptr < 0 || len < 0 || ptr + len > mem.length) throw new StubDomainError('ABI_VIOLATION', `log outside memory: ${ptr}+${len}`);
    return new TextDecoder().decode(mem.subarray(ptr, ptr + len));
  }

  /** One ioreq; returns the data answered. Throws unless answer() came exactly once for it. */
  ioreq(space: number, addr: bigint | number, size: number, dir: number, data: bigint | number = 0n): bigint {
    const seq = this.nextSeq++;
    this.inflight = seq;
    this.answersForInflight = 0;
    try {
      this.exports.ioreq(seq, space, BigInt(addr), size, dir, BigInt(data));
    } finally {
      this.inflight = undefined;
    }
    if (this.answersForInflight !== 1) {
      throw new StubDomainError('ANSWER_MISSING', `seq ${seq} answered ${this.answersForInflight} times`);
    }
    const answer = this.events.findLast((e) => e.kind === 'answer');
    return answer !== undefined && answer.kind === 'answer' ? answer.data : 0n;
  }

  pioRead(port: number, size: IoSize = 1): number { return Number(this.ioreq(IoSpace.Pio, port, size, IoDir.Read)); }
  pioWrite(port: number, value: number, size: IoSize = 1): void { this.ioreq(IoSpace.Pio, port, size, IoDir.Write, value); }
  mmioRead(addr: number, size: IoSize = 4): number { return Number(this.ioreq(IoSpace.Mmio, addr, size, IoDir.Read)); }
  mmioWrite(addr: number, value: number, size: IoSize = 4): void { this.ioreq(IoSpace.Mmio, addr, size, IoDir.Write, value); }

  /** Everything recorded but answers, which every ioreq produces. */
  effects(): Recorded[] { return this.events.filter((e) => e.kind !== 'answer'); }
  msis(): Extract<Recorded, { kind: 'msi' }>[] {
    return this.events.filter((e): e is Extract<Recorded, { kind: 'msi' }> => e.kind === 'msi');
  }
  pins(): Extract<Recorded, { kind: 'pin' }>[] {
    return this.events.filter((e): e is Extract<Recorded, { kind: 'pin' }> => e.kind === 'pin');
  }
  clearEvents(): void { this.events.length = 0; }

  counter(id: number): bigint { return this.exports.counter(id); }

  /** The persisted window [state_base, state_base + state_size): what the runtime saves. */
  snapshotState(): Uint8Array {
    const base = this.exports.state_base();
    return this.bytes().slice(base, base + this.exports.state_size());
  }

  /** The whole linear memory (for checking that nothing outside the window matters). */
  snapshotMemory(): Uint8Array { return this.bytes().slice(); }

  private loadState(image: Uint8Array): void {
    const base = this.exports.state_base();
    const size = this.exports.state_size();
    if (image.length === this.bytes().length) {
      this.bytes().set(image);
    } else if (image.length === size) {
      this.bytes().set(image, base);
    } else {
      throw new StubDomainError('BAD_STATE', `state image of ${image.length} bytes; expected ${size} or a whole memory`);
    }
    if (this.exports.state_valid() !== 1) throw new StubDomainError('BAD_STATE', `${this.kind}: state image has the wrong magic or layout`);
  }

  /** Bytes of the module's memory (tests that stage input for an export, such as pci's cfg_cap). */
  writeMemory(at: number, bytes: Uint8Array): void {
    if (at < 0 || at + bytes.length > this.bytes().length) throw new StubDomainError('ABI_VIOLATION', `write outside memory: ${at}+${bytes.length}`);
    this.bytes().set(bytes, at);
  }

  /** Pending console output as text (console only). */
  drainText(this: StubHarness<'console'>): string {
    const n = this.exports.tx_drain();
    const at = this.exports.tx_buf();
    if (n > MEMORY_MAP.txOutSize) throw new StubDomainError('ABI_VIOLATION', `tx_drain returned ${n}`);
    return Buffer.from(this.bytes().subarray(at, at + n)).toString('latin1');
  }
}
