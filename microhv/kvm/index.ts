// Typed KVM: the system fd, VMs and vCPUs, and the shared kvm_run page. Every struct
// goes through the layouts in abi.ts; every failure is a KvmError wrapping its SysError.
import * as sys from '../sys/index.js';
import { StructView, type ScalarValues } from '../sys/layout.js';
import {
  KVM_API_VERSION, KVM_CAP, KVM_CPUID2, KVM_CPUID_ENTRY2, KVM_DTABLE, KVM_ENABLE_CAP, KVM_EXIT, KVM_IOCTL,
  KVM_IOEVENTFD, KVM_IOEVENTFD_FLAG_DATAMATCH, KVM_IOEVENTFD_FLAG_DEASSIGN, KVM_IOEVENTFD_FLAG_PIO, KVM_IRQFD,
  KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_RESAMPLE, KVM_IRQ_ROUTING, KVM_IRQ_ROUTING_ENTRY, KVM_IRQ_ROUTING_IRQCHIP,
  KVM_IRQ_ROUTING_MSI, KVM_LAPIC_STATE, KVM_MP_STATE, KVM_VCPU_EVENTS, KVM_MSI, KVM_MSI_VALID_DEVID, KVM_MSRS, KVM_MSR_ENTRY, KVM_REGS, KVM_RUN,
  KVM_SEGMENT, KVM_SIGNAL_MASK, KVM_SREGS, KVM_USERSPACE_MEMORY_REGION, type KvmExitName,
} from './abi.js';

export * from './abi.js';

export type KvmErrorCode = 'IOCTL' | 'OPEN' | 'API_VERSION' | 'BAD_ARGUMENT' | 'BAD_RUN_PAGE' | 'TIMEOUT' | 'NOT_BUILT';

export class KvmError extends Error {
  constructor(readonly code: KvmErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KvmError';
  }
}

function kvmIoctl(what: string, fd: number, request: number, arg: number | bigint | Uint8Array): number {
  try {
    return sys.ioctl(fd, request, arg);
  } catch (e) {
    throw new KvmError('IOCTL', `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

export type Regs = ScalarValues<typeof KVM_REGS>;
export type Segment = ScalarValues<typeof KVM_SEGMENT>;
export type DTable = ScalarValues<typeof KVM_DTABLE>;
const SEGMENTS = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
export type Sregs = ScalarValues<typeof KVM_SREGS> & Record<(typeof SEGMENTS)[number], Segment> & {
  gdt: DTable; idt: DTable; interrupt_bitmap: Uint8Array;
};
export type CpuidEntry = ScalarValues<typeof KVM_CPUID_ENTRY2>;
export interface MsrEntry { index: number; data: bigint }
export type GsiRoute =
  | { kind: 'msi'; gsi: number; addressLo: number; addressHi: number; data: number; devid?: number }
  | { kind: 'irqchip'; gsi: number; irqchip: number; pin: number };

const MAX_CPUID_ENTRIES = 1024; // KVM_MAX_CPUID_ENTRIES (arch/x86/include/asm/kvm_host.h)
const MAX_IRQ_ROUTES = 4096; // KVM_MAX_IRQ_ROUTES
const MAX_MSRS = 256;

export class Kvm {
  private constructor(readonly fd: number) {}

  /** Opens the KVM system fd and refuses any API version other than the stable 12. */
  static open(path = '/dev/kvm'): Kvm {
    let fd: number;
    try {
      fd = sys.open(path, sys.consts.O_RDWR | sys.consts.O_CLOEXEC);
    } catch (e) {
      throw new KvmError('OPEN', `cannot open ${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    const kvm = new Kvm(fd);
    const version = kvm.apiVersion();
    if (version !== KVM_API_VERSION) {
      kvm.close();
      throw new KvmError('API_VERSION', `KVM API version ${version}, expected ${KVM_API_VERSION}`);
    }
    return kvm;
  }

  apiVersion(): number { return kvmIoctl('KVM_GET_API_VERSION', this.fd, KVM_IOCTL.GET_API_VERSION, 0); }
  checkExtension(cap: number): number { return kvmIoctl('KVM_CHECK_EXTENSION', this.fd, KVM_IOCTL.CHECK_EXTENSION, cap); }
  vcpuMmapSize(): number { return kvmIoctl('KVM_GET_VCPU_MMAP_SIZE', this.fd, KVM_IOCTL.GET_VCPU_MMAP_SIZE, 0); }

  supportedCpuid(maxEntries = 256): CpuidEntry[] {
    if (maxEntries < 1 || maxEntries > MAX_CPUID_ENTRIES) throw new KvmError('BAD_ARGUMENT', `maxEntries ${maxEntries}`);
    const head = StructView.alloc(KVM_CPUID2, maxEntries * KVM_CPUID_ENTRY2.size).set('nent', maxEntries);
    kvmIoctl('KVM_GET_SUPPORTED_CPUID', this.fd, KVM_IOCTL.GET_SUPPORTED_CPUID, head.buffer);
    const n = Math.min(head.get('nent'), maxEntries);
    return Array.from({ length: n }, (_, i) => head.element(KVM_CPUID_ENTRY2, KVM_CPUID2.size, i).toObject());
  }

  createVm(type = 0): Vm {
    return new Vm(kvmIoctl('KVM_CREATE_VM', this.fd, KVM_IOCTL.CREATE_VM, type), this.vcpuMmapSize());
  }

  close(): void { sys.close(this.fd); }
}

export class Vm {
  constructor(readonly fd: number, private readonly vcpuMmapSize: number) {}

  checkExtension(cap: number): number { return kvmIoctl('KVM_CHECK_EXTENSION', this.fd, KVM_IOCTL.CHECK_EXTENSION, cap); }

  setUserMemoryRegion(r: { slot: number; flags?: number; guestPhysAddr: bigint; memorySize: bigint; userspaceAddr: bigint }): void {
    const v = StructView.alloc(KVM_USERSPACE_MEMORY_REGION).assign({
      slot: r.slot, flags: r.flags ?? 0, guest_phys_addr: r.guestPhysAddr, memory_size: r.memorySize, userspace_addr: r.userspaceAddr,
    });
    kvmIoctl('KVM_SET_USER_MEMORY_REGION', this.fd, KVM_IOCTL.SET_USER_MEMORY_REGION, v.buffer);
  }

  /** Three pages KVM needs below 4 GiB for real-mode emulation on VMX; accepted and unused on SVM. */
  setTssAddr(addr: number): void { kvmIoctl('KVM_SET_TSS_ADDR', this.fd, KVM_IOCTL.SET_TSS_ADDR, addr); }
  setIdentityMapAddr(addr: bigint): void {
    const v = new BigUint64Array([addr]);
    kvmIoctl('KVM_SET_IDENTITY_MAP_ADDR', this.fd, KVM_IOCTL.SET_IDENTITY_MAP_ADDR, new Uint8Array(v.buffer));
  }

  enableCap(cap: number, args: bigint[] = [], flags = 0): void {
    if (args.length > 4) throw new KvmError('BAD_ARGUMENT', `enable_cap takes 4 args, got ${args.length}`);
    const v = StructView.alloc(KVM_ENABLE_CAP).assign({ cap, flags, arg0: args[0] ?? 0n, arg1: args[1] ?? 0n, arg2: args[2] ?? 0n, arg3: args[3] ?? 0n });
    kvmIoctl('KVM_ENABLE_CAP', this.fd, KVM_IOCTL.ENABLE_CAP, v.buffer);
  }

  /** LAPICs in the kernel, IO-APIC and PIC in userspace; `ioapicPins` GSIs are reserved for the userspace IO-APIC. */
  enableSplitIrqchip(ioapicPins = 24): void { this.enableCap(KVM_CAP.SPLIT_IRQCHIP, [BigInt(ioapicPins)]); }

  /** Replaces the whole GSI routing table. */
  setGsiRouting(routes: GsiRoute[]): void {
    if (routes.length > MAX_IRQ_ROUTES) throw new KvmError('BAD_ARGUMENT', `${routes.length} routes exceed ${MAX_IRQ_ROUTES}`);
    const head = StructView.alloc(KVM_IRQ_ROUTING, routes.length * KVM_IRQ_ROUTING_ENTRY.size).set('nr', routes.length);
    routes.forEach((r, i) => {
      const e = head.element(KVM_IRQ_ROUTING_ENTRY, KVM_IRQ_ROUTING.size, i).set('gsi', r.gsi);
      switch (r.kind) {
        case 'msi':
          e.set('type', KVM_IRQ_ROUTING_MSI).set('flags', r.devid === undefined ? 0 : KVM_MSI_VALID_DEVID);
          e.struct('msi').assign({ address_lo: r.addressLo, address_hi: r.addressHi, data: r.data, devid: r.devid ?? 0 });
          break;
        case 'irqchip':
          e.set('type', KVM_IRQ_ROUTING_IRQCHIP).struct('irqchip').assign({ irqchip: r.irqchip, pin: r.pin });
          break;
        default: { const never: never = r; throw new KvmError('BAD_ARGUMENT', `route kind ${String(never)}`); }
      }
    });
    kvmIoctl('KVM_SET_GSI_ROUTING', this.fd, KVM_IOCTL.SET_GSI_ROUTING, head.buffer);
  }

  /**
   * Signalling `fd` injects `gsi`. With `resampleFd`, a level-triggered line: KVM signals it on
   * EOI so the source can re-assert. KVM accepts resampling only with its full in-kernel
   * irqchip; under the split irqchip it fails with EINVAL and level lines use KVM_EXIT_IOAPIC_EOI.
   */
  irqfd(o: { fd: number; gsi: number; resampleFd?: number; deassign?: boolean }): void {
    const flags = (o.deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0) | (o.resampleFd !== undefined ? KVM_IRQFD_FLAG_RESAMPLE : 0);
    const v = StructView.alloc(KVM_IRQFD).assign({ fd: o.fd, gsi: o.gsi, flags, resamplefd: o.resampleFd ?? 0 });
    kvmIoctl('KVM_IRQFD', this.fd, KVM_IOCTL.IRQFD, v.buffer);
  }

  /** A guest write of `len` bytes to `addr` (optionally only of `datamatch`) signals `fd` without leaving the kernel. */
  ioeventfd(o: { fd: number; addr: bigint; len: 0 | 1 | 2 | 4 | 8; space: 'pio' | 'mmio'; datamatch?: bigint; deassign?: boolean }): void {
    const flags = (o.space === 'pio' ? KVM_IOEVENTFD_FLAG_PIO : 0) | (o.datamatch !== undefined ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
      (o.deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0);
    const v = StructView.alloc(KVM_IOEVENTFD).assign({ datamatch: o.datamatch ?? 0n, addr: o.addr, len: o.len, fd: o.fd, flags });
    kvmIoctl('KVM_IOEVENTFD', this.fd, KVM_IOCTL.IOEVENTFD, v.buffer);
  }

  /** Returns >0 if delivered, 0 if the guest blocked it. */
  signalMsi(m: { addressLo: number; addressHi: number; data: number; devid?: number }): number {
    const v = StructView.alloc(KVM_MSI).assign({
      address_lo: m.addressLo, address_hi: m.addressHi, data: m.data,
      flags: m.devid === undefined ? 0 : KVM_MSI_VALID_DEVID, devid: m.devid ?? 0,
    });
    return kvmIoctl('KVM_SIGNAL_MSI', this.fd, KVM_IOCTL.SIGNAL_MSI, v.buffer);
  }

  createVcpu(id: number): Vcpu {
    const fd = kvmIoctl('KVM_CREATE_VCPU', this.fd, KVM_IOCTL.CREATE_VCPU, id);
    try {
      const map = sys.mmap(this.vcpuMmapSize, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, fd, 0);
      return new Vcpu(fd, map);
    } catch (e) {
      sys.close(fd);
      throw new KvmError('IOCTL', 'mmap of kvm_run failed', { cause: e });
    }
  }

  close(): void { sys.close(this.fd); }
}

export class Vcpu {
  readonly run: RunPage;

  constructor(readonly fd: number, private readonly map: sys.Mapping) {
    this.run = new RunPage(new Uint8Array(map.buffer));
  }

  getRegs(): Regs {
    const v = StructView.alloc(KVM_REGS);
    kvmIoctl('KVM_GET_REGS', this.fd, KVM_IOCTL.GET_REGS, v.buffer);
    return v.toObject();
  }

  setRegs(r: Regs): void { kvmIoctl('KVM_SET_REGS', this.fd, KVM_IOCTL.SET_REGS, StructView.alloc(KVM_REGS).assign(r).buffer); }

  getSregs(): Sregs {
    const v = StructView.alloc(KVM_SREGS);
    kvmIoctl('KVM_GET_SREGS', this.fd, KVM_IOCTL.GET_SREGS, v.buffer);
    const segs = Object.fromEntries(SEGMENTS.map((s) => [s, v.struct(s).toObject()])) as Record<(typeof SEGMENTS)[number], Segment>;
    return {
      ...v.toObject(), ...segs, gdt: v.struct('gdt').toObject(), idt: v.struct('idt').toObject(),
      interrupt_bitmap: v.bytes('interrupt_bitmap').slice(),
    };
  }

  setSregs(s: Sregs): void {
    const { cs, ds, es, fs, gs, ss, tr, ldt, gdt, idt, interrupt_bitmap, ...scalars } = s;
    const v = StructView.alloc(KVM_SREGS).assign(scalars);
    const segs = { cs, ds, es, fs, gs, ss, tr, ldt };
    for (const name of SEGMENTS) v.struct(name).assign(segs[name]);
    v.struct('gdt').assign(gdt);
    v.struct('idt').assign(idt);
    v.bytes('interrupt_bitmap').set(interrupt_bitmap.subarray(0, 32));
    kvmIoctl('KVM_SET_SREGS', this.fd, KVM_IOCTL.SET_SREGS, v.buffer);
  }

  private msrs(entries: readonly MsrEntry[]): StructView<typeof KVM_MSRS> {
    if (entries.length > MAX_MSRS) throw new KvmError('BAD_ARGUMENT', `${entries.length} MSRs exceed ${MAX_MSRS}`);
    const head = StructView.alloc(KVM_MSRS, entries.length * KVM_MSR_ENTRY.size).set('nmsrs', entries.length);
    entries.forEach((e, i) => head.element(KVM_MSR_ENTRY, KVM_MSRS.size, i).set('index', e.index).set('data', e.data));
    return head;
  }

  /** Reads the given MSRs; fails if KVM stops short (it returns how many it read). */
  getMsrs(indices: number[]): MsrEntry[] {
    const head = this.msrs(indices.map((index) => ({ index, data: 0n })));
    const n = kvmIoctl('KVM_GET_MSRS', this.fd, KVM_IOCTL.GET_MSRS, head.buffer);
    if (n !== indices.length) throw new KvmError('IOCTL', `KVM_GET_MSRS read ${n} of ${indices.length}; MSR ${indices[n]} refused`);
    return indices.map((index, i) => ({ index, data: head.element(KVM_MSR_ENTRY, KVM_MSRS.size, i).get('data') }));
  }

  setMsrs(entries: MsrEntry[]): void {
    const n = kvmIoctl('KVM_SET_MSRS', this.fd, KVM_IOCTL.SET_MSRS, this.msrs(entries).buffer);
    if (n !== entries.length) throw new KvmError('IOCTL', `KVM_SET_MSRS wrote ${n} of ${entries.length}; MSR ${entries[n]?.index} refused`);
  }

  setCpuid2(entries: CpuidEntry[]): void {
    if (entries.length > MAX_CPUID_ENTRIES) throw new KvmError('BAD_ARGUMENT', `${entries.length} CPUID entries`);
    const head = StructView.alloc(KVM_CPUID2, entries.length * KVM_CPUID_ENTRY2.size).set('nent', entries.length);
    entries.forEach((e, i) => head.element(KVM_CPUID_ENTRY2, KVM_CPUID2.size, i).assign(e));
    kvmIoctl('KVM_SET_CPUID2', this.fd, KVM_IOCTL.SET_CPUID2, head.buffer);
  }

  /** The 1024-byte LAPIC register page. */
  getLapic(): Uint8Array {
    const v = StructView.alloc(KVM_LAPIC_STATE);
    kvmIoctl('KVM_GET_LAPIC', this.fd, KVM_IOCTL.GET_LAPIC, v.buffer);
    return v.buffer;
  }

  setLapic(regs: Uint8Array): void {
    if (regs.byteLength !== KVM_LAPIC_STATE.size) throw new KvmError('BAD_ARGUMENT', `LAPIC state is ${KVM_LAPIC_STATE.size} bytes`);
    kvmIoctl('KVM_SET_LAPIC', this.fd, KVM_IOCTL.SET_LAPIC, regs);
  }

  getMpState(): number {
    const v = StructView.alloc(KVM_MP_STATE);
    kvmIoctl('KVM_GET_MP_STATE', this.fd, KVM_IOCTL.GET_MP_STATE, v.buffer);
    return v.get('mp_state');
  }

  setMpState(state: number): void {
    kvmIoctl('KVM_SET_MP_STATE', this.fd, KVM_IOCTL.SET_MP_STATE, StructView.alloc(KVM_MP_STATE).set('mp_state', state).buffer);
  }

  /** Drops any exception, interrupt or NMI that KVM holds for injection (platform reset). */
  clearPendingEvents(): void {
    kvmIoctl('KVM_SET_VCPU_EVENTS', this.fd, KVM_IOCTL.SET_VCPU_EVENTS, StructView.alloc(KVM_VCPU_EVENTS).buffer);
  }

  /**
   * The signal mask in force while inside KVM_RUN (null: the thread's own). With a kick
   * signal blocked in the thread but open here, a kick sent at any moment ends the next or
   * current KVM_RUN, and is never delivered to a handler.
   */
  setSignalMask(unblocked: number[] | null): void {
    if (unblocked === null) {
      kvmIoctl('KVM_SET_SIGNAL_MASK', this.fd, KVM_IOCTL.SET_SIGNAL_MASK, 0);
      return;
    }
    const head = StructView.alloc(KVM_SIGNAL_MASK, 8).set('len', 8); // the kernel sigset is 64 bits on x86-64
    const mask = new BigUint64Array([~0n & 0xffff_ffff_ffff_ffffn]);
    for (const s of unblocked) mask[0] = (mask[0] ?? 0n) & ~(1n << BigInt(s - 1));
    head.buffer.set(new Uint8Array(mask.buffer), KVM_SIGNAL_MASK.size);
    kvmIoctl('KVM_SET_SIGNAL_MASK', this.fd, KVM_IOCTL.SET_SIGNAL_MASK, head.buffer);
  }

  /** Runs until the next exit that needs userspace. A signal (EINTR) or a retry request (EAGAIN) is reported as 'INTR'. */
  runOnce(): KvmExitName | `UNKNOWN_${number}` {
    try {
      sys.ioctl(this.fd, KVM_IOCTL.RUN, 0);
    } catch (e) {
      // EINTR: a signal (the kick). EAGAIN: a secondary vCPU just left wait-for-SIPI; KVM asks to be called again.
      if (e instanceof sys.SysError && (e.errnoName === 'EINTR' || e.errnoName === 'EAGAIN')) return 'INTR';
      throw new KvmError('IOCTL', `KVM_RUN: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    return this.run.exitName();
  }

  close(): void {
    sys.munmap(this.map);
    sys.close(this.fd);
  }
}

const EXIT_NAMES = new Map<number, KvmExitName>(Object.entries(KVM_EXIT).map(([k, v]) => [v, k as KvmExitName]));

/** Typed access to the mmap'ed kvm_run page; the union members are only meaningful for their exit. */
export class RunPage {
  private readonly v: StructView<typeof KVM_RUN>;

  constructor(private readonly page: Uint8Array) {
    this.v = new StructView(KVM_RUN, page);
  }

  get exitReason(): number { return this.v.get('exit_reason'); }
  exitName(): KvmExitName | `UNKNOWN_${number}` { return EXIT_NAMES.get(this.exitReason) ?? `UNKNOWN_${this.exitReason}`; }
  get requestInterruptWindow(): boolean { return this.v.get('request_interrupt_window') !== 0; }
  set requestInterruptWindow(on: boolean) { this.v.set('request_interrupt_window', on ? 1 : 0); }
  get immediateExit(): boolean { return this.v.get('immediate_exit') !== 0; }
  set immediateExit(on: boolean) { this.v.set('immediate_exit', on ? 1 : 0); }
  get readyForInterruptInjection(): boolean { return this.v.get('ready_for_interrupt_injection') !== 0; }
  get ifFlag(): boolean { return this.v.get('if_flag') !== 0; }
  get cr8(): bigint { return this.v.get('cr8'); }
  get apicBase(): bigint { return this.v.get('apic_base'); }

  /** KVM_EXIT_IO. `data` aliases the page: read it for 'out', fill it before the next KVM_RUN for 'in'. */
  io(): { direction: 'in' | 'out'; size: number; port: number; count: number; dataOffset: number; data: Uint8Array } {
    const io = this.v.struct('io').toObject();
    const dataOffset = Number(io.data_offset);
    // GUEST-INPUT: size and count come from the guest's IN/OUT/INS/OUTS instruction; never trust them to fit the page.
    if (![1, 2, 4].includes(io.size) || io.count < 1 || dataOffset < KVM_RUN.size || dataOffset + io.size * io.count > this.page.byteLength) {
      throw new KvmError('BAD_RUN_PAGE', `io exit size ${io.size} count ${io.count} at ${dataOffset} outside the ${this.page.byteLength}-byte run area`);
    }
    return {
      direction: io.direction === 0 ? 'in' : 'out', size: io.size, port: io.port, count: io.count, dataOffset,
      data: this.page.subarray(dataOffset, dataOffset + io.size * io.count),
    };
  }

  /** KVM_EXIT_MMIO. `data` aliases the first `len` bytes of the 8-byte buffer. */
  mmio(): { physAddr: bigint; len: number; isWrite: boolean; data: Uint8Array } {
    const m = this.v.struct('mmio');
    const len = m.get('len');
    // GUEST-INPUT: the access width comes from the guest instruction; the buffer holds 8 bytes.
    if (len < 1 || len > 8) throw new KvmError('BAD_RUN_PAGE', `mmio exit of ${len} bytes`);
    return { physAddr: m.get('phys_addr'), len, isWrite: m.get('is_write') !== 0, data: m.bytes('data').subarray(0, len) };
  }

  /** KVM_EXIT_IOAPIC_EOI: the vector the guest's LAPIC just EOI'd (split irqchip). */
  ioapicEoi(): { vector: number } { return { vector: this.v.struct('eoi').get('vector') }; }

  systemEvent(): { type: number; ndata: number; data: bigint[] } {
    const s = this.v.struct('system_event');
    return { type: s.get('type'), ndata: s.get('ndata'), data: u64s(s.bytes('data'), s.get('ndata')) };
  }

  failEntry(): { hardwareEntryFailureReason: bigint; cpu: number } {
    const f = this.v.struct('fail_entry');
    return { hardwareEntryFailureReason: f.get('hardware_entry_failure_reason'), cpu: f.get('cpu') };
  }

  internalError(): { suberror: number; ndata: number; data: bigint[] } {
    const s = this.v.struct('internal');
    return { suberror: s.get('suberror'), ndata: s.get('ndata'), data: u64s(s.bytes('data'), s.get('ndata')) };
  }
}

/** The first `n` u64s of a 16-entry array; `n` is clamped because the kernel's count may exceed what it stored. */
function u64s(raw: Uint8Array, n: number): bigint[] {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength); // __u64 data[16], native little-endian
  return Array.from({ length: Math.min(n, raw.byteLength / 8) }, (_, i) => dv.getBigUint64(8 * i, true));
}
