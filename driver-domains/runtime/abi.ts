// The stub-domain module ABI as TypeScript types and checks. ABI.md is the prose
// specification; the AssemblyScript side is driver-domains/common/assembly/.
import { StubDomainError } from './errors.js';
import { Wasm, type WasmInstance, type WasmMemory, type WasmModule } from './wasm.js';

/** Bumped on any incompatible change; every module exports abi_version() returning it. */
export const ABI_VERSION = 1;

/** The only import module name a stub domain may use. */
export const IMPORT_MODULE = 'env';

/** Linear-memory map (common/assembly/memory.ts mirrors it; layout.test.ts checks both). */
export const MEMORY_MAP = {
  stateBase: 0x100,
  stateLimit: 0x2100,
  scratchBase: 0x2100,
  txOutBase: 0x3000,
  txOutSize: 0x1000,
  /** Where the compiler places static data (asc --memoryBase). */
  staticDataBase: 0x4000,
  /** Linear memory is exactly one 64 KiB page and never grows. */
  pages: 1,
} as const;

/** ioreq `space` argument. The runtime maps IOREQ_TYPE_PIO/MMIO (idl/proto/ioreq.proto) onto it. */
export enum IoSpace { Pio = 0, Mmio = 1 }
/** ioreq `dir` argument. Note the IDL's IOREQ_DIR_* numbering differs; the runtime maps it. */
export enum IoDir { Read = 0, Write = 1 }
export type IoSize = 1 | 2 | 4 | 8;

export enum LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 }

/** What the console domain asks the runtime to do for the platform. */
export enum PlatformEvent { None = 0, PowerOff = 1, Reset = 2, Sleep = 3 }

/** Counter ids of the ioapic module (ioapic/assembly/persist.ts). */
export enum IoapicCounter { InvalidAccess = 0, MsiSent = 1, DroppedDelivery = 2, BadPin = 3 }
/** Counter ids of the console module (console/assembly/persist.ts). */
export enum ConsoleCounter { InvalidAccess = 0, TxDropped = 1, RxOverrun = 2, RxRejected = 3, IgnoredCommand = 4 }

/** What the runtime provides under module "env". u64 values cross as bigint. */
export interface StubImports {
  answer(seq: bigint, data: bigint): void;
  set_pin(gsi: number, level: number): void;
  msi(addr: bigint, data: number): void;
  log(level: number, ptr: number, len: number): void;
  now_ns(): bigint;
}
export type StubImportName = keyof StubImports;

export interface CommonExports {
  readonly memory: WasmMemory;
  abi_version(): number;
  state_base(): number;
  state_size(): number;
  state_valid(): number;
  init(): void;
  reset(): void;
  ioreq(seq: bigint, space: number, addr: bigint, size: number, dir: number, data: bigint): void;
  counter(id: number): bigint;
  counter_count(): number;
}

export interface IoapicExports extends CommonExports {
  set_irq(pin: number, level: number): void;
  eoi(vector: number): void;
  route_generation(): number;
  route_addr(pin: number): bigint;
  route_data(pin: number): number;
  route_flags(pin: number): number;
}

/** Bits of the ioapic's route_flags(pin). */
export enum RouteFlag { Masked = 1, Level = 2, Deliverable = 4 }

export interface ConsoleExports extends CommonExports {
  rx(byte: number): number;
  tx_buf(): number;
  tx_drain(): number;
  platform_event(): number;
  platform_event_clear(): void;
  power_button(): void;
}

export type StubKind = 'ioapic' | 'console';
export interface StubExportsByKind { ioapic: IoapicExports; console: ConsoleExports }

const COMMON_FUNCTIONS = [
  'abi_version', 'state_base', 'state_size', 'state_valid', 'init', 'reset', 'ioreq', 'counter', 'counter_count',
] as const;

/** Function exports each module must have. */
export const STUB_FUNCTIONS = {
  ioapic: [...COMMON_FUNCTIONS, 'set_irq', 'eoi', 'route_generation', 'route_addr', 'route_data', 'route_flags'],
  console: [...COMMON_FUNCTIONS, 'rx', 'tx_buf', 'tx_drain', 'platform_event', 'platform_event_clear', 'power_button'],
} as const satisfies Record<StubKind, readonly string[]>;

/** Imports each module may use (a module may use fewer). */
export const STUB_IMPORTS = {
  ioapic: ['answer', 'msi', 'log'],
  console: ['answer', 'set_pin', 'log', 'now_ns'],
} as const satisfies Record<StubKind, readonly StubImportName[]>;

export const STUB_KINDS: readonly StubKind[] = ['ioapic', 'console'];

/** Rejects a compiled module that imports anything beyond what its kind may use. */
export function checkImports(kind: StubKind, module: WasmModule): void {
  const allowed: readonly string[] = STUB_IMPORTS[kind];
  for (const imp of Wasm.Module.imports(module)) {
    if (imp.module !== IMPORT_MODULE || imp.kind !== 'function' || !allowed.includes(imp.name)) {
      throw new StubDomainError('ABI_VIOLATION', `${kind}: unexpected import ${imp.module}.${imp.name} (${imp.kind})`);
    }
  }
}

/** The instance's exports, typed, after checking that every required one is present. */
export function bindExports<K extends StubKind>(kind: K, instance: WasmInstance): StubExportsByKind[K] {
  const exports = instance.exports;
  if (!(exports['memory'] instanceof Wasm.Memory)) {
    throw new StubDomainError('MISSING_EXPORT', `${kind}: no exported memory`);
  }
  for (const name of STUB_FUNCTIONS[kind]) {
    if (typeof exports[name] !== 'function') {
      throw new StubDomainError('MISSING_EXPORT', `${kind}: missing function export ${name}`);
    }
  }
  const bound = exports as unknown as StubExportsByKind[K];
  if (bound.abi_version() !== ABI_VERSION) {
    throw new StubDomainError('ABI_VIOLATION', `${kind}: ABI version ${bound.abi_version()}, expected ${ABI_VERSION}`);
  }
  return bound;
}
