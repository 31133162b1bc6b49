// The CPU state for the Linux 64-bit boot protocol (Documentation/arch/x86/boot.rst,
// "64-bit Boot Protocol"): long mode with paging, an identity map covering the kernel's
// init_size, the zero page and the command line; a GDT whose __BOOT_CS (0x10) is a flat
// execute/read code segment and __BOOT_DS (0x18) a flat read/write data segment; CS = __BOOT_CS,
// DS/ES/SS = __BOOT_DS; interrupts off; RSI = the zero page.
import { Bytes } from './bytes.js';
import { BOOT_GDT, BOOT_STACK_TOP, BOOT_TSS, FOUR_GIB, GiB, MiB, PAGE_TABLES, ZERO_PAGE } from './layout.js';

/** kvm_regs (asm/kvm.h), all fields, so the core can pass it to KVM_SET_REGS as is. */
export interface BootRegs {
  rax: bigint; rbx: bigint; rcx: bigint; rdx: bigint; rsi: bigint; rdi: bigint; rsp: bigint; rbp: bigint;
  r8: bigint; r9: bigint; r10: bigint; r11: bigint; r12: bigint; r13: bigint; r14: bigint; r15: bigint;
  rip: bigint; rflags: bigint;
}
/** kvm_segment (asm/kvm.h): a segment register's selector plus the hidden part the CPU caches. */
export interface BootSegment {
  base: bigint; limit: number; selector: number; type: number; present: number; dpl: number;
  db: number; s: number; l: number; g: number; avl: number; unusable: number;
}
/**
 * The kvm_sregs fields the boot path owns. The rest (ldt, apic_base, cr2, cr8, interrupt_bitmap)
 * stay as KVM_GET_SREGS returned them: the core spreads this over the vCPU's reset state.
 */
export interface BootSregs {
  cs: BootSegment; ds: BootSegment; es: BootSegment; fs: BootSegment; gs: BootSegment; ss: BootSegment; tr: BootSegment;
  gdt: { base: bigint; limit: number }; idt: { base: bigint; limit: number };
  cr0: bigint; cr3: bigint; cr4: bigint; efer: bigint;
}

// Intel SDM vol. 3, 2.5 (CR0, CR4) and 2.2.1 (EFER).
export const CR0_PE = 1n;
export const CR0_ET = 1n << 4n;
export const CR0_PG = 1n << 31n;
export const CR4_PAE = 1n << 5n;
export const EFER_LME = 1n << 8n;
export const EFER_LMA = 1n << 10n;
export const RFLAGS_RESERVED_1 = 1n << 1n;

// Page-table entry bits (Intel SDM vol. 3, 4.5 4-Level Paging, Tables 4-15..4-18).
export const PTE_P = 1n;
export const PTE_RW = 2n;
export const PTE_PS = 0x80n;

/** The identity map: PML4, one PDPT, then one page directory of 2 MiB pages per GiB. */
export const IDENTITY_MAPPED_BYTES = FOUR_GIB;
const PD_COUNT = IDENTITY_MAPPED_BYTES / GiB;
export const PML4 = PAGE_TABLES;
const PDPT = PAGE_TABLES + 0x1000;
const PD = PAGE_TABLES + 0x2000;
/**
 * 2 MiB pages rather than 1 GiB ones: a nested or older CPU (qemu64, for one) may lack
 * PDPE1GB, and six pages of tables cost nothing.
 */
export function identityPageTables(): Bytes {
  const t = new Bytes((2 + PD_COUNT) * 0x1000);
  t.u64(0, BigInt(PDPT) | PTE_P | PTE_RW);
  for (let g = 0; g < PD_COUNT; g++) {
    t.u64(0x1000 + g * 8, BigInt(PD + g * 0x1000) | PTE_P | PTE_RW);
    for (let i = 0; i < 512; i++) {
      const phys = BigInt(g) * BigInt(GiB) + BigInt(i) * BigInt(2 * MiB);
      t.u64(0x2000 + g * 0x1000 + i * 8, phys | PTE_P | PTE_RW | PTE_PS);
    }
  }
  return t;
}

export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;
export const BOOT_TR = 0x20;
const TSS_LIMIT = 0x67; // 104-byte 64-bit TSS (Intel SDM vol. 3, 8.7)

/** Segment descriptor (Intel SDM vol. 3, 3.4.5): access byte = P|DPL|S|type, flags = G|D/B|L|AVL. */
function descriptor(base: number, limit: number, access: number, flags: number): bigint {
  return BigInt(limit & 0xffff) | (BigInt(base & 0xff_ffff) << 16n) | (BigInt(access) << 40n) |
    (BigInt((limit >>> 16) & 0xf) << 48n) | (BigInt(flags & 0xf) << 52n) | (BigInt((base >>> 24) & 0xff) << 56n);
}
const CODE64 = { access: 0x9b, flags: 0xa }; // present, S, execute/read/accessed; G, L
const DATA = { access: 0x93, flags: 0xc };   // present, S, read/write/accessed; G, D/B
const TSS64_BUSY = { access: 0x8b, flags: 0x0 }; // present, system, type 11 = busy 64-bit TSS

/** GDT: null, unused, __BOOT_CS, __BOOT_DS, then the 16-byte TSS descriptor (SDM vol. 3, 8.2.3). */
export function bootGdt(): Bytes {
  const g = new Bytes(BOOT_TR + 16);
  g.u64(BOOT_CS, descriptor(0, 0xfffff, CODE64.access, CODE64.flags));
  g.u64(BOOT_DS, descriptor(0, 0xfffff, DATA.access, DATA.flags));
  g.u64(BOOT_TR, descriptor(BOOT_TSS, TSS_LIMIT, TSS64_BUSY.access, TSS64_BUSY.flags)); // base bits 63..32 are 0
  return g;
}

/** The hidden part the CPU would load from each descriptor above, in kvm_segment form. */
function segment(selector: number, access: number, flags: number, base: number, limit: number): BootSegment {
  const g = (flags >> 3) & 1;
  return {
    base: BigInt(base), limit: g ? 0xffff_ffff : limit, selector, type: access & 0xf, present: access >> 7,
    dpl: (access >> 5) & 3, db: (flags >> 2) & 1, s: (access >> 4) & 1, l: (flags >> 1) & 1, g, avl: 0, unusable: 0,
  };
}

export function entrySregs(): BootSregs {
  const data = segment(BOOT_DS, DATA.access, DATA.flags, 0, 0xfffff);
  return {
    cs: segment(BOOT_CS, CODE64.access, CODE64.flags, 0, 0xfffff), ds: data, es: data, fs: data, gs: data, ss: data,
    tr: segment(BOOT_TR, TSS64_BUSY.access, TSS64_BUSY.flags, BOOT_TSS, TSS_LIMIT),
    gdt: { base: BigInt(BOOT_GDT), limit: BOOT_TR + 16 - 1 }, idt: { base: 0n, limit: 0 },
    cr0: CR0_PE | CR0_ET | CR0_PG, cr3: BigInt(PML4), cr4: CR4_PAE, efer: EFER_LME | EFER_LMA,
  };
}

/** RIP at the 64-bit entry (load address + 0x200), RSI at the zero page, interrupts off. */
export function entryRegs(loadAddress: number): BootRegs {
  const z = 0n;
  return {
    rax: z, rbx: z, rcx: z, rdx: z, rsi: BigInt(ZERO_PAGE), rdi: z, rsp: BigInt(BOOT_STACK_TOP), rbp: BigInt(BOOT_STACK_TOP),
    r8: z, r9: z, r10: z, r11: z, r12: z, r13: z, r14: z, r15: z,
    rip: BigInt(loadAddress) + 0x200n, rflags: RFLAGS_RESERVED_1,
  };
}
