// The KVM userspace ABI for x86-64, declared once. Source: linux/kvm.h and asm/kvm.h
// (Linux 6.1 uapi, Debian linux-libc-dev); abi.test.ts pins every size and offset.
import { bytes, defineLayout, i32, nested, u16, u32, u64, u8 } from '../sys/layout.js';

export const KVM_API_VERSION = 12;

// asm-generic/ioctl.h: dir(2 bits) | size(14) | type(8) | nr(8).
const KVMIO = 0xae;
const ioc = (dir: number, nr: number, size: number): number => ((dir << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0;
const io = (nr: number): number => ioc(0, nr, 0);
const iow = (nr: number, size: number): number => ioc(1, nr, size);
const ior = (nr: number, size: number): number => ioc(2, nr, size);
const iowr = (nr: number, size: number): number => ioc(3, nr, size);

// asm/kvm.h
export const KVM_REGS = defineLayout('kvm_regs', 144, {
  rax: u64(0), rbx: u64(8), rcx: u64(16), rdx: u64(24), rsi: u64(32), rdi: u64(40), rsp: u64(48), rbp: u64(56),
  r8: u64(64), r9: u64(72), r10: u64(80), r11: u64(88), r12: u64(96), r13: u64(104), r14: u64(112), r15: u64(120),
  rip: u64(128), rflags: u64(136),
});
export const KVM_SEGMENT = defineLayout('kvm_segment', 24, {
  base: u64(0), limit: u32(8), selector: u16(12), type: u8(14), present: u8(15), dpl: u8(16), db: u8(17),
  s: u8(18), l: u8(19), g: u8(20), avl: u8(21), unusable: u8(22),
});
export const KVM_DTABLE = defineLayout('kvm_dtable', 16, { base: u64(0), limit: u16(8) });
export const KVM_SREGS = defineLayout('kvm_sregs', 312, {
  cs: nested(0, KVM_SEGMENT), ds: nested(24, KVM_SEGMENT), es: nested(48, KVM_SEGMENT), fs: nested(72, KVM_SEGMENT),
  gs: nested(96, KVM_SEGMENT), ss: nested(120, KVM_SEGMENT), tr: nested(144, KVM_SEGMENT), ldt: nested(168, KVM_SEGMENT),
  gdt: nested(192, KVM_DTABLE), idt: nested(208, KVM_DTABLE),
  cr0: u64(224), cr2: u64(232), cr3: u64(240), cr4: u64(248), cr8: u64(256), efer: u64(264), apic_base: u64(272),
  interrupt_bitmap: bytes(280, 32),
});
export const KVM_MSRS = defineLayout('kvm_msrs', 8, { nmsrs: u32(0) });
export const KVM_MSR_ENTRY = defineLayout('kvm_msr_entry', 16, { index: u32(0), data: u64(8) });
export const KVM_CPUID2 = defineLayout('kvm_cpuid2', 8, { nent: u32(0) });
export const KVM_CPUID_ENTRY2 = defineLayout('kvm_cpuid_entry2', 40, {
  function: u32(0), index: u32(4), flags: u32(8), eax: u32(12), ebx: u32(16), ecx: u32(20), edx: u32(24),
});
export const KVM_LAPIC_STATE = defineLayout('kvm_lapic_state', 1024, { regs: bytes(0, 1024) });
export const KVM_MP_STATE = defineLayout('kvm_mp_state', 4, { mp_state: u32(0) });
/** Pending exception, interrupt and NMI state; all zero with flags 0 means "nothing pending". */
export const KVM_VCPU_EVENTS = defineLayout('kvm_vcpu_events', 64, { exception_injected: u8(0), interrupt_injected: u8(8), nmi_injected: u8(12), sipi_vector: u32(16), flags: u32(20) });
/** asm/kvm.h KVM_MP_STATE_*: a secondary CPU waits in UNINITIALIZED for INIT/SIPI. */
export const KVM_MP = { RUNNABLE: 0, UNINITIALIZED: 1, INIT_RECEIVED: 2, HALTED: 3, SIPI_RECEIVED: 4 } as const;

// linux/kvm.h
export const KVM_USERSPACE_MEMORY_REGION = defineLayout('kvm_userspace_memory_region', 32, {
  slot: u32(0), flags: u32(4), guest_phys_addr: u64(8), memory_size: u64(16), userspace_addr: u64(24),
});
export const KVM_ENABLE_CAP = defineLayout('kvm_enable_cap', 104, {
  cap: u32(0), flags: u32(4), arg0: u64(8), arg1: u64(16), arg2: u64(24), arg3: u64(32),
});
export const KVM_IRQFD = defineLayout('kvm_irqfd', 32, { fd: u32(0), gsi: u32(4), flags: u32(8), resamplefd: u32(12) });
export const KVM_IOEVENTFD = defineLayout('kvm_ioeventfd', 64, {
  datamatch: u64(0), addr: u64(8), len: u32(16), fd: i32(20), flags: u32(24),
});
export const KVM_MSI = defineLayout('kvm_msi', 32, { address_lo: u32(0), address_hi: u32(4), data: u32(8), flags: u32(12), devid: u32(16) });
export const KVM_IRQ_ROUTING = defineLayout('kvm_irq_routing', 8, { nr: u32(0), flags: u32(4) });
const ROUTING_IRQCHIP = defineLayout('kvm_irq_routing_irqchip', 8, { irqchip: u32(0), pin: u32(4) });
const ROUTING_MSI = defineLayout('kvm_irq_routing_msi', 16, { address_lo: u32(0), address_hi: u32(4), data: u32(8), devid: u32(12) });
export const KVM_IRQ_ROUTING_ENTRY = defineLayout('kvm_irq_routing_entry', 48, {
  gsi: u32(0), type: u32(4), flags: u32(8), irqchip: nested(16, ROUTING_IRQCHIP), msi: nested(16, ROUTING_MSI),
});
export const KVM_SIGNAL_MASK = defineLayout('kvm_signal_mask', 4, { len: u32(0) });

// struct kvm_run: the fixed header, then a 256-byte union at 32 whose member is chosen by exit_reason.
const RUN_IO = defineLayout('kvm_run.io', 16, { direction: u8(0), size: u8(1), port: u16(2), count: u32(4), data_offset: u64(8) });
const RUN_MMIO = defineLayout('kvm_run.mmio', 24, { phys_addr: u64(0), data: bytes(8, 8), len: u32(16), is_write: u8(20) });
const RUN_FAIL_ENTRY = defineLayout('kvm_run.fail_entry', 16, { hardware_entry_failure_reason: u64(0), cpu: u32(8) });
const RUN_INTERNAL = defineLayout('kvm_run.internal', 136, { suberror: u32(0), ndata: u32(4), data: bytes(8, 128) });
const RUN_EOI = defineLayout('kvm_run.eoi', 1, { vector: u8(0) });
const RUN_SYSTEM_EVENT = defineLayout('kvm_run.system_event', 136, { type: u32(0), ndata: u32(4), data: bytes(8, 128) });
const RUN_HW = defineLayout('kvm_run.hw', 8, { hardware_exit_reason: u64(0) });
export const KVM_RUN_UNION_OFFSET = 32;
export const KVM_RUN = defineLayout('kvm_run', 2352, {
  request_interrupt_window: u8(0), immediate_exit: u8(1), exit_reason: u32(8), ready_for_interrupt_injection: u8(12),
  if_flag: u8(13), flags: u16(14), cr8: u64(16), apic_base: u64(24),
  io: nested(32, RUN_IO), mmio: nested(32, RUN_MMIO), fail_entry: nested(32, RUN_FAIL_ENTRY),
  internal: nested(32, RUN_INTERNAL), eoi: nested(32, RUN_EOI), system_event: nested(32, RUN_SYSTEM_EVENT), hw: nested(32, RUN_HW),
  kvm_valid_regs: u64(288), kvm_dirty_regs: u64(296),
});

export const KVM_IOCTL = {
  GET_API_VERSION: io(0x00),
  CREATE_VM: io(0x01),
  CHECK_EXTENSION: io(0x03),
  GET_VCPU_MMAP_SIZE: io(0x04),
  GET_SUPPORTED_CPUID: iowr(0x05, KVM_CPUID2.size),
  CREATE_VCPU: io(0x41),
  SET_USER_MEMORY_REGION: iow(0x46, KVM_USERSPACE_MEMORY_REGION.size),
  SET_TSS_ADDR: io(0x47),
  SET_IDENTITY_MAP_ADDR: iow(0x48, 8),
  SET_GSI_ROUTING: iow(0x6a, KVM_IRQ_ROUTING.size),
  IRQFD: iow(0x76, KVM_IRQFD.size),
  IOEVENTFD: iow(0x79, KVM_IOEVENTFD.size),
  RUN: io(0x80),
  GET_REGS: ior(0x81, KVM_REGS.size),
  SET_REGS: iow(0x82, KVM_REGS.size),
  GET_SREGS: ior(0x83, KVM_SREGS.size),
  SET_SREGS: iow(0x84, KVM_SREGS.size),
  GET_MSRS: iowr(0x88, KVM_MSRS.size),
  SET_MSRS: iow(0x89, KVM_MSRS.size),
  SET_SIGNAL_MASK: iow(0x8b, KVM_SIGNAL_MASK.size),
  GET_LAPIC: ior(0x8e, KVM_LAPIC_STATE.size),
  SET_LAPIC: iow(0x8f, KVM_LAPIC_STATE.size),
  SET_CPUID2: iow(0x90, KVM_CPUID2.size),
  GET_MP_STATE: ior(0x98, KVM_MP_STATE.size),
  SET_MP_STATE: iow(0x99, KVM_MP_STATE.size),
  SET_VCPU_EVENTS: iow(0xa0, KVM_VCPU_EVENTS.size),
  ENABLE_CAP: iow(0xa3, KVM_ENABLE_CAP.size),
  SIGNAL_MSI: iow(0xa5, KVM_MSI.size),
} as const;

export const KVM_CAP = {
  IRQCHIP: 0, USER_MEMORY: 3, SET_TSS_ADDR: 4, EXT_CPUID: 7, NR_VCPUS: 9, IRQ_ROUTING: 25, IRQFD: 32, IOEVENTFD: 36,
  SET_IDENTITY_MAP_ADDR: 37, MAX_VCPUS: 66, SIGNAL_MSI: 77, IRQFD_RESAMPLE: 82, SPLIT_IRQCHIP: 121,
  X2APIC_API: 129, MSI_DEVID: 131, IMMEDIATE_EXIT: 136,
} as const;

export const KVM_EXIT = {
  UNKNOWN: 0, EXCEPTION: 1, IO: 2, HYPERCALL: 3, DEBUG: 4, HLT: 5, MMIO: 6, IRQ_WINDOW_OPEN: 7, SHUTDOWN: 8,
  FAIL_ENTRY: 9, INTR: 10, SET_TPR: 11, TPR_ACCESS: 12, NMI: 16, INTERNAL_ERROR: 17, SYSTEM_EVENT: 24,
  IOAPIC_EOI: 26, HYPERV: 27, X86_RDMSR: 29, X86_WRMSR: 30, DIRTY_RING_FULL: 31, NOTIFY: 37,
} as const;
export type KvmExitName = keyof typeof KVM_EXIT;

export const KVM_SYSTEM_EVENT = { SHUTDOWN: 1, RESET: 2, CRASH: 3 } as const;
export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;
export const KVM_MEM_LOG_DIRTY_PAGES = 1;
export const KVM_MEM_READONLY = 2;
export const KVM_IRQFD_FLAG_DEASSIGN = 1;
export const KVM_IRQFD_FLAG_RESAMPLE = 2;
export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1;
export const KVM_IOEVENTFD_FLAG_PIO = 2;
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 4;
export const KVM_IRQ_ROUTING_IRQCHIP = 1;
export const KVM_IRQ_ROUTING_MSI = 2;
export const KVM_MSI_VALID_DEVID = 1;
