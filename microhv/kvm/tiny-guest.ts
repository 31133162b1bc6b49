// A tiny 64-bit guest built in code: identity-mapped with 2 MiB pages, a flat GDT, started
// directly in long mode. It writes four known bytes to an I/O port and halts. It proves a
// /dev/kvm can enter a stock long-mode guest, which a paravirtual-only KVM cannot.
import * as sys from '../sys/index.js';
import { KvmError, Kvm, type Regs, type Segment, type Sregs } from './index.js';

export const TINY_GUEST_PORT = 0xe9;
/** "mhv\n". The last byte comes from bits 56..63 of a 64-bit immediate, so it only appears in long mode. */
export const TINY_GUEST_BYTES: readonly number[] = [0x6d, 0x68, 0x76, 0x0a];

/** Guest-physical layout; all of it lies in the single 2 MiB page that the page tables map. */
export const TINY_GUEST = {
  memSize: 0x20_0000, gdt: 0x500, pml4: 0x1000, pdpt: 0x2000, pd: 0x3000, code: 0x4000, stackTop: 0x8000,
} as const;

const [B0 = 0, B1 = 0, B2 = 0, B3 = 0] = TINY_GUEST_BYTES;
const IMM64 = BigInt(B0) | (BigInt(B1) << 8n) | (BigInt(B2) << 16n) | (BigInt(B3) << 56n);

/** The guest's code, x86-64 machine code assembled by hand (Intel SDM vol. 2 opcode tables). */
/** With `spin`, the guest loops forever instead of halting: it exercises the deadline and kick. */
export function tinyGuestCode(spin = false): Uint8Array {
  const imm = new Uint8Array(new BigUint64Array([IMM64]).buffer);
  return new Uint8Array([
    0x66, 0xba, TINY_GUEST_PORT & 0xff, TINY_GUEST_PORT >> 8, // mov dx, port
    0x48, 0xb8, ...imm, //                                     mov rax, imm64
    0xee, //                                                   out dx, al      (byte 0)
    0x48, 0xc1, 0xe8, 0x08, 0xee, //                           shr rax, 8; out (byte 1)
    0x48, 0xc1, 0xe8, 0x08, 0xee, //                           shr rax, 8; out (byte 2)
    0x48, 0xc1, 0xe8, 0x28, 0xee, //                           shr rax, 40; out (byte 3, from bits 56..63)
    ...(spin ? [0xeb, 0xfe] : [0xf4, 0xeb, 0xfd]), //       jmp $  |  hlt; jmp back to hlt
  ]);
}

// Page-table entry bits (Intel SDM vol. 3, 4.5 4-level paging).
export const PTE = { P: 1n, RW: 2n, PS: 0x80n } as const;

/** A GDT descriptor (Intel SDM vol. 3, 3.4.5): access byte P|DPL|S|type, flags G|D/B|L|AVL. */
export function gdtDescriptor(base: number, limit: number, access: number, flags: number): bigint {
  return BigInt(limit & 0xffff) | (BigInt(base & 0xff_ffff) << 16n) | (BigInt(access) << 40n) |
    (BigInt((limit >>> 16) & 0xf) << 48n) | (BigInt(flags & 0xf) << 52n) | (BigInt((base >>> 24) & 0xff) << 56n);
}

/** What the CPU loads into a segment register's hidden part from a descriptor, as KVM wants it. */
export function segmentFromDescriptor(selector: number, d: bigint): Segment {
  const access = Number((d >> 40n) & 0xffn);
  const flags = Number((d >> 52n) & 0xfn);
  const rawLimit = Number((d & 0xffffn) | (((d >> 48n) & 0xfn) << 16n));
  const g = (flags >> 3) & 1;
  const present = access >> 7;
  return {
    base: (d >> 16n) & 0xff_ffffn | (((d >> 56n) & 0xffn) << 24n),
    limit: g ? ((rawLimit << 12) | 0xfff) >>> 0 : rawLimit,
    selector, type: access & 0xf, present, dpl: (access >> 5) & 3, db: (flags >> 2) & 1, s: (access >> 4) & 1,
    l: (flags >> 1) & 1, g, avl: flags & 1, unusable: present ? 0 : 1,
  };
}

export const GDT = [
  0n,
  gdtDescriptor(0, 0xfffff, 0x9b, 0xa), // 0x08: 64-bit code, execute/read, accessed; G and L
  gdtDescriptor(0, 0xfffff, 0x93, 0xc), // 0x10: data, read/write, accessed; G and D/B
] as const;
const CODE_SELECTOR = 0x08;
const DATA_SELECTOR = 0x10;

/** Writes page tables, GDT and code into guest memory (offset 0 = guest-physical 0). */
export function writeTinyGuest(mem: Uint8Array, spin = false): void {
  if (mem.byteLength < TINY_GUEST.memSize) throw new KvmError('BAD_ARGUMENT', `tiny guest needs ${TINY_GUEST.memSize} bytes`);
  const q = new DataView(mem.buffer, mem.byteOffset, mem.byteLength); // guest memory is little-endian x86
  q.setBigUint64(TINY_GUEST.pml4, BigInt(TINY_GUEST.pdpt) | PTE.P | PTE.RW, true);
  q.setBigUint64(TINY_GUEST.pdpt, BigInt(TINY_GUEST.pd) | PTE.P | PTE.RW, true);
  q.setBigUint64(TINY_GUEST.pd, 0n | PTE.P | PTE.RW | PTE.PS, true); // 0..2 MiB -> 0..2 MiB
  GDT.forEach((d, i) => q.setBigUint64(TINY_GUEST.gdt + 8 * i, d, true));
  mem.set(tinyGuestCode(spin), TINY_GUEST.code);
}

const CR0_PE = 1n;
const CR0_PG = 1n << 31n;
const CR4_PAE = 1n << 5n;
const EFER_LME = 1n << 8n;
const EFER_LMA = 1n << 10n;

/** Long-mode system registers, on top of the vCPU's reset state. */
export function tinyGuestSregs(reset: Sregs): Sregs {
  const data = segmentFromDescriptor(DATA_SELECTOR, GDT[2]);
  // No TSS is ever used, but VMX refuses to enter without a usable busy TSS in TR.
  const tr: Segment = { ...data, selector: 0, type: 11, s: 0, db: 0, g: 0, limit: 0x67 };
  return {
    ...reset,
    cs: segmentFromDescriptor(CODE_SELECTOR, GDT[1]), ds: data, es: data, fs: data, gs: data, ss: data, tr,
    gdt: { base: BigInt(TINY_GUEST.gdt), limit: GDT.length * 8 - 1 }, idt: { base: 0n, limit: 0 },
    cr0: CR0_PE | CR0_PG, cr3: BigInt(TINY_GUEST.pml4), cr4: CR4_PAE, efer: EFER_LME | EFER_LMA,
  };
}

export function tinyGuestRegs(): Regs {
  const zero = 0n;
  return {
    rax: zero, rbx: zero, rcx: zero, rdx: zero, rsi: zero, rdi: zero, rsp: BigInt(TINY_GUEST.stackTop), rbp: zero,
    r8: zero, r9: zero, r10: zero, r11: zero, r12: zero, r13: zero, r14: zero, r15: zero,
    rip: BigInt(TINY_GUEST.code), rflags: 2n, // bit 1 is reserved and must be set; IF clear
  };
}

export interface TinyGuestExit { reason: string; port?: number; size?: number; data?: number[]; detail?: string }

const MAX_EXITS = 64;

/**
 * Runs the tiny guest on the calling thread. `stop` (an Int32Array over shared memory) is
 * checked before each entry; a kick signal interrupts a running entry (see Vcpu.setSignalMask).
 */
export function runTinyGuestHere(o: { devKvm: string; stop: Int32Array; kickSignal: number; spin?: boolean }): TinyGuestExit[] {
  const kvm = Kvm.open(o.devKvm);
  const undo: Array<() => void> = [() => kvm.close()];
  try {
    const vm = kvm.createVm();
    undo.push(() => vm.close());
    const { PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_NORESERVE } = sys.consts;
    const ram = sys.mmap(TINY_GUEST.memSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    undo.push(() => sys.munmap(ram));
    writeTinyGuest(new Uint8Array(ram.buffer), o.spin);
    vm.setTssAddr(0xfffb_d000); // just below the 4 GiB BIOS area, as is customary
    vm.setIdentityMapAddr(0xfffb_c000n);
    vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0n, memorySize: BigInt(TINY_GUEST.memSize), userspaceAddr: ram.addr });
    const vcpu = vm.createVcpu(0);
    undo.push(() => vcpu.close());
    vcpu.setCpuid2(kvm.supportedCpuid()); // KVM checks long-mode EFER bits against the guest CPUID
    vcpu.setSregs(tinyGuestSregs(vcpu.getSregs()));
    vcpu.setRegs(tinyGuestRegs());
    vcpu.setSignalMask([o.kickSignal]);
    const exits: TinyGuestExit[] = [];
    while (exits.length < MAX_EXITS && Atomics.load(o.stop, 0) === 0) {
      const reason = vcpu.runOnce();
      if (reason === 'IO') {
        const io = vcpu.run.io();
        if (io.direction === 'in') io.data.fill(0xff); // nothing is attached: reads float high
        exits.push({ reason, port: io.port, size: io.size, data: io.direction === 'out' ? [...io.data] : [] });
        continue;
      }
      if (reason === 'INTR' && Atomics.load(o.stop, 0) === 0) continue; // a stray signal, not our kick
      exits.push({ reason, detail: detailOf(reason, vcpu.run) });
      break;
    }
    return exits;
  } finally {
    for (const f of undo.reverse()) f();
  }
}

function detailOf(reason: string, run: import('./index.js').RunPage): string | undefined {
  if (reason === 'FAIL_ENTRY') return `hardware entry failure reason 0x${run.failEntry().hardwareEntryFailureReason.toString(16)}`;
  if (reason === 'INTERNAL_ERROR') return `suberror ${run.internalError().suberror}`;
  if (reason === 'MMIO') return `address 0x${run.mmio().physAddr.toString(16)}`;
  return undefined;
}

/** Whether the exits are exactly: one 1-byte OUT per expected byte on the port, then HLT. */
export function checkTinyGuestExits(exits: readonly TinyGuestExit[]): { ok: boolean; reason: string } {
  const want: TinyGuestExit[] = [
    ...TINY_GUEST_BYTES.map((b) => ({ reason: 'IO', port: TINY_GUEST_PORT, size: 1, data: [b] })), { reason: 'HLT' },
  ];
  const show = (e: TinyGuestExit | undefined): string => (e === undefined ? 'nothing' : e.reason === 'IO'
    ? `IO port 0x${(e.port ?? 0).toString(16)} size ${e.size} data [${e.data?.join(',')}]` : `${e.reason}${e.detail ? ` (${e.detail})` : ''}`);
  for (let i = 0; i < Math.max(want.length, exits.length); i++) {
    if (show(exits[i]) !== show(want[i])) return { ok: false, reason: `exit ${i}: expected ${show(want[i])}, got ${show(exits[i])}` };
  }
  return { ok: true, reason: `wrote [${TINY_GUEST_BYTES.join(',')}] to port 0x${TINY_GUEST_PORT.toString(16)} and halted` };
}
