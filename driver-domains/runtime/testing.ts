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
import { SOCK_FILTER } from '../../microhv/sys/index.js';
import { StructView } from '../../microhv/sys/layout.js';
import { AUDIT_ARCH_X86_64, BPF, SECCOMP_DATA } from './seccomp.js';

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

/** One system call as a seccomp filter sees it. */
export interface SeccompCall {
  readonly nr: number;
  readonly arch?: number;
  readonly args?: readonly bigint[];
}

/**
 * Runs a seccomp program over one call and returns what it answers, like the kernel's classic BPF
 * interpreter for the instructions compile() emits. It first checks what the kernel's checker
 * refuses (a program that can run off its end, a jump out of range, a load outside seccomp_data or
 * unaligned, an unknown opcode), so a program that passes here is one the kernel accepts.
 */
export function runSeccomp(program: Uint8Array, call: SeccompCall): number {
  const n = program.byteLength / SOCK_FILTER.size;
  if (!Number.isInteger(n) || n < 1 || n > 4096) throw new RangeError(`program of ${program.byteLength} bytes`);
  const insn = (i: number) => new StructView(SOCK_FILTER, program, i * SOCK_FILTER.size).toObject();
  for (let i = 0; i < n; i++) {
    const { code, jt, jf, k } = insn(i);
    switch (code) {
      case BPF.LD_W_ABS:
        if (k % 4 !== 0 || k + 4 > SECCOMP_DATA.size) throw new RangeError(`insn ${i}: load at ${k}`);
        break;
      case BPF.JMP_JEQ_K: case BPF.JMP_JGE_K: case BPF.JMP_JSET_K:
        if (i + 1 + Math.max(jt, jf) >= n) throw new RangeError(`insn ${i}: jump past the end`);
        break;
      case BPF.RET_K:
        break;
      default:
        throw new RangeError(`insn ${i}: opcode 0x${code.toString(16)}`);
    }
    if (i === n - 1 && code !== BPF.RET_K) throw new RangeError('the program can run off its end');
  }
  const data = StructView.alloc(SECCOMP_DATA).set('nr', call.nr).set('arch', call.arch ?? AUDIT_ARCH_X86_64);
  const fields = ['arg0', 'arg1', 'arg2', 'arg3', 'arg4', 'arg5'] as const;
  (call.args ?? []).forEach((a, i) => { const f = fields[i]; if (f !== undefined) data.set(f, a); });
  const dv = new DataView(data.buffer.buffer);
  let a = 0;
  for (let pc = 0; pc < n;) {
    const { code, jt, jf, k } = insn(pc);
    switch (code) {
      // seccomp_data is read in native order, little-endian on x86-64.
      case BPF.LD_W_ABS: a = dv.getUint32(k, true); pc++; break;
      case BPF.JMP_JEQ_K: pc += 1 + (a === k ? jt : jf); break;
      case BPF.JMP_JGE_K: pc += 1 + (a >= k ? jt : jf); break;
      case BPF.JMP_JSET_K: pc += 1 + ((a & k) !== 0 ? jt : jf); break;
      case BPF.RET_K: return k;
      default: throw new RangeError(`opcode 0x${code.toString(16)}`);
    }
  }
  throw new RangeError('ran off the end');
}
