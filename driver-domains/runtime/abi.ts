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
  /** pci only: the device table cfg_* builds before init(), and the capability input buffer. */
  pciStagingBase: 0x2200,
  pciStagingSize: 0xd00,
  pciCapInBase: 0x2f00,
  pciCapInSize: 0x100,
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

/** Counter ids of the pci module (pci/assembly/persist.ts). */
export enum PciCounter {
  InvalidAccess = 0, AbsentFunction = 1, ReadOnlyWrite = 2, BarChanged = 3, MsixHeld = 4, MsixFired = 5,
  BadHostCall = 6, IntxChanged = 7,
}

/** pci: a BAR's kind (cfg_bar, bar_kind); Mem64High is the upper register of the Mem64 BAR below it. */
export enum PciBarKind { None = 0, Mem32 = 1, Mem64 = 2, Io = 3, Mem64High = 4 }
/** pci: cfg_bar flags (Prefetchable, ServedByPci) and bar_flags bits (the same, plus Decoding). */
export enum PciBarFlag { Prefetchable = 1, ServedByPci = 2, Decoding = 4 }
/** pci: what each cfg_* call returns. */
export enum PciConfigStatus {
  Ok = 0, BadSlot = 1, NoDevice = 2, AlreadyPresent = 3, BadIds = 4, BadPin = 5, BadBar = 6,
  WindowFull = 7, BadMsix = 8, VectorsFull = 9, BadCap = 10, CapSpaceFull = 11, CapsNotContiguous = 12,
}
/** pci: msix_pending's answer. */
export enum PciMsixSignal { Held = 0, Deliver = 1, Ignored = 2 }
/** pci: msix_flags bits. */
export enum PciMsixFlag { Effective = 1, Pending = 2, Fire = 4, Masked = 8 }

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

/** u32 results cross as JS numbers read as signed 32-bit; apply `>>> 0` where bit 31 may be set. */
export interface PciExports extends CommonExports {
  cfg_device(slot: number, ids: number, subsystem: number, classRev: number, pin: number): number;
  cfg_bar(slot: number, bar: number, kind: number, sizeLog2: number, flags: number): number;
  cfg_msix(slot: number, vectors: number, tableBar: number, tableOffset: number, pbaBar: number, pbaOffset: number): number;
  cfg_cap_buf(): number;
  cfg_cap(slot: number, len: number): number;
  dev_command(slot: number): number;
  bar_generation(): number;
  bar_kind(slot: number, bar: number): number;
  bar_flags(slot: number, bar: number): number;
  bar_addr(slot: number, bar: number): bigint;
  bar_size(slot: number, bar: number): bigint;
  msix_generation(): number;
  msix_vectors(slot: number): number;
  msix_addr(slot: number, vector: number): bigint;
  msix_data(slot: number, vector: number): number;
  msix_flags(slot: number, vector: number): number;
  msix_pending(slot: number, vector: number): number;
  msix_fire_take(): number;
  intx_set(slot: number, level: number): void;
  intx_gsi(slot: number): number;
}

export type StubKind = 'ioapic' | 'console' | 'pci';
export interface StubExportsByKind { ioapic: IoapicExports; console: ConsoleExports; pci: PciExports }

const COMMON_FUNCTIONS = [
  'abi_version', 'state_base', 'state_size', 'state_valid', 'init', 'reset', 'ioreq', 'counter', 'counter_count',
] as const;

/** Function exports each module must have. */
export const STUB_FUNCTIONS = {
  ioapic: [...COMMON_FUNCTIONS, 'set_irq', 'eoi', 'route_generation', 'route_addr', 'route_data', 'route_flags'],
  console: [...COMMON_FUNCTIONS, 'rx', 'tx_buf', 'tx_drain', 'platform_event', 'platform_event_clear', 'power_button'],
  pci: [
    ...COMMON_FUNCTIONS, 'cfg_device', 'cfg_bar', 'cfg_msix', 'cfg_cap_buf', 'cfg_cap', 'dev_command', 'bar_generation',
    'bar_kind', 'bar_flags', 'bar_addr', 'bar_size', 'msix_generation', 'msix_vectors', 'msix_addr', 'msix_data',
    'msix_flags', 'msix_pending', 'msix_fire_take', 'intx_set', 'intx_gsi',
  ],
} as const satisfies Record<StubKind, readonly string[]>;

/** Imports each module may use (a module may use fewer). */
export const STUB_IMPORTS = {
  ioapic: ['answer', 'msi', 'log'],
  console: ['answer', 'set_pin', 'log', 'now_ns'],
  pci: ['answer', 'set_pin', 'log'],
} as const satisfies Record<StubKind, readonly StubImportName[]>;

export const STUB_KINDS: readonly StubKind[] = ['ioapic', 'console', 'pci'];

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
