// Loader for the Linux x86 boot protocol with the 64-bit entry. References:
// Documentation/arch/x86/boot.rst ("The Real-Mode Kernel Header", "Details of Header Fields",
// "64-bit Boot Protocol") and arch/x86/include/uapi/asm/bootparam.h (struct boot_params).
// The output is a pure BootPlan: bytes to copy into guest RAM and register values.
import { buildAcpiTables } from './acpi/index.js';
import { Bytes, Reader } from './bytes.js';
import { bootGdt, entryRegs, entrySregs, identityPageTables, type BootRegs, type BootSregs, IDENTITY_MAPPED_BYTES } from './cpu.js';
import { BootError } from './errors.js';
import {
  ACPI_TABLES, BOOT_GDT, BOOT_TSS, CMDLINE, CMDLINE_MAX, FOUR_GIB, HIGH_MEMORY, PAGE_TABLES, ZERO_PAGE,
  memoryMap, usableRam, type MemoryMap,
} from './layout.js';

// Setup header offsets, in the image and in boot_params alike (boot.rst, "The Real-Mode Kernel Header").
const HDR = {
  setupSects: 0x1f1, syssize: 0x1f4, bootFlag: 0x1fe, jump: 0x200, header: 0x202, version: 0x206,
  typeOfLoader: 0x210, loadflags: 0x211, ramdiskImage: 0x218, ramdiskSize: 0x21c, cmdLinePtr: 0x228,
  initrdAddrMax: 0x22c, kernelAlignment: 0x230, relocatableKernel: 0x234, xloadflags: 0x236,
  cmdlineSize: 0x238, prefAddress: 0x258, initSize: 0x260,
} as const;
/** End of the fields protocol 2.12 guarantees (init_size is the last one we read). */
const HDR_MIN_END = 0x264;
// struct boot_params offsets (bootparam.h).
const BP = {
  size: 0x1000, acpiRsdpAddr: 0x070, extRamdiskImage: 0x0c0, extRamdiskSize: 0x0c4, extCmdLinePtr: 0x0c8,
  e820Entries: 0x1e8, hdrEnd: 0x290 /* edd_mbr_sig_buffer follows the header */, e820Table: 0x2d0, // 128 entries of 20 bytes; the layout makes fewer than 10
} as const;

const BOOT_FLAG = 0xaa55;
const HDRS_MAGIC = 0x5372_6448; // "HdrS"
export const MIN_PROTOCOL = 0x020c; // 2.12: xloadflags, and with it XLF_KERNEL_64
const XLF_KERNEL_64 = 1 << 0;
const XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1;
const LOADED_HIGH = 1 << 0;
const LOADER_UNDEFINED = 0xff; // type_of_loader: a boot loader with no assigned id
const PAGE = 0x1000;

export interface SetupHeader {
  readonly version: number;
  readonly setupBytes: number;     // (setup_sects + 1) * 512; the protected-mode kernel starts here
  readonly kernelBytes: number;    // syssize * 16
  readonly loadflags: number;
  readonly xloadflags: number;
  readonly initrdAddrMax: number;  // highest byte the initrd may occupy
  readonly kernelAlignment: number;
  readonly relocatable: boolean;
  readonly cmdlineSize: number;    // longest command line, without its NUL
  readonly prefAddress: number;
  readonly initSize: number;       // bytes the kernel needs from its load address before it reads e820
  readonly headerEnd: number;      // 0x202 + the jump's offset byte: the bytes to copy into boot_params
}

/** Parses and validates the setup header of a bzImage. */
export function parseSetupHeader(image: Uint8Array): SetupHeader {
  const r = new Reader(image);
  // GUEST-INPUT: the image belongs to the guest's owner; every field below is bounds-checked
  // before it sizes a copy or a placement.
  if (!r.has(0, HDR_MIN_END) || r.u16(HDR.bootFlag) !== BOOT_FLAG || r.u32(HDR.header) !== HDRS_MAGIC) {
    throw new BootError('NOT_BZIMAGE', `not a bzImage: no boot flag 0x${BOOT_FLAG.toString(16)} and "HdrS" header (${image.byteLength} bytes)`);
  }
  const version = r.u16(HDR.version);
  if (version < MIN_PROTOCOL) throw new BootError('PROTOCOL_TOO_OLD', `boot protocol ${fmtVersion(version)} is older than ${fmtVersion(MIN_PROTOCOL)}`);
  const xloadflags = r.u16(HDR.xloadflags);
  if (!(xloadflags & XLF_KERNEL_64)) throw new BootError('NO_64BIT_ENTRY', 'the kernel has no 64-bit entry point (XLF_KERNEL_64 is clear)');
  const setupSects = r.u8at(HDR.setupSects) || 4; // 0 means 4, for ancient compatibility (boot.rst)
  const setupBytes = (setupSects + 1) * 512;
  const kernelBytes = r.u32(HDR.syssize) * 16;
  const headerEnd = HDR.header + r.u8at(HDR.jump + 1);
  const prefAddress = r.u64(HDR.prefAddress);
  const h: SetupHeader = {
    version, setupBytes, kernelBytes, loadflags: r.u8at(HDR.loadflags), xloadflags,
    initrdAddrMax: r.u32(HDR.initrdAddrMax), kernelAlignment: r.u32(HDR.kernelAlignment),
    relocatable: r.u8at(HDR.relocatableKernel) !== 0, cmdlineSize: r.u32(HDR.cmdlineSize),
    prefAddress: prefAddress > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(prefAddress),
    initSize: r.u32(HDR.initSize), headerEnd,
  };
  const bad = (why: string): never => { throw new BootError('BAD_HEADER', `bad setup header: ${why}`); };
  if (headerEnd < HDR_MIN_END || headerEnd > BP.hdrEnd) bad(`header ends at 0x${headerEnd.toString(16)}`);
  if (kernelBytes === 0) bad('syssize is 0');
  if (setupBytes + kernelBytes > image.byteLength) bad(`setup (${setupBytes}) + kernel (${kernelBytes}) bytes exceed the ${image.byteLength}-byte image`);
  if (h.initSize === 0) bad('init_size is 0');
  if (h.prefAddress < HIGH_MEMORY) bad(`pref_address 0x${h.prefAddress.toString(16)} is below 1 MiB`);
  if (h.relocatable) {
    const a = h.kernelAlignment;
    if (a < PAGE || (a & (a - 1)) !== 0) bad(`kernel_alignment 0x${a.toString(16)} is not a power of two >= 4 KiB`);
    if (h.prefAddress % a !== 0) bad(`pref_address is not aligned to kernel_alignment 0x${a.toString(16)}`);
  }
  return h;
}

const fmtVersion = (v: number): string => `${v >> 8}.${v & 0xff}`;

export interface GuestWrite { readonly gpa: number; readonly bytes: Uint8Array; readonly what: string }

export interface BootPlan {
  readonly memory: MemoryMap;
  /** Copy each into guest RAM; they lie inside `memory.ram` and do not overlap. RAM starts zeroed. */
  readonly writes: readonly GuestWrite[];
  readonly regs: BootRegs;
  /** Spread over the vCPU's KVM_GET_SREGS result for the boot vCPU (see cpu.ts). */
  readonly sregs: BootSregs;
  readonly kernel: { readonly loadAddress: number; readonly initSize: number; readonly protocol: number };
  readonly initrd: { readonly gpa: number; readonly size: number } | undefined;
  readonly cmdline: { readonly gpa: number; readonly size: number };
  readonly rsdp: number;
}

export interface LinuxBootOptions {
  readonly kernel: Uint8Array;
  /** The initrd's bytes, or only its size when the caller loads it at plan.initrd itself (from a file, without a copy). */
  readonly initrd?: Uint8Array | { readonly byteLength: number };
  readonly cmdline: string;
  readonly ramBytes: number;
  readonly vcpus: number;
}

export function planLinuxBoot(o: LinuxBootOptions): BootPlan {
  const memory = memoryMap(o.ramBytes);
  const hdr = parseSetupHeader(o.kernel);
  const usable = usableRam(memory);

  // The kernel goes at pref_address: a relocatable kernel loaded lower moves itself there anyway
  // (LOAD_PHYSICAL_ADDR), and a non-relocatable one can run nowhere else. It needs init_size bytes.
  const load = hdr.prefAddress;
  const kernelEnd = load + Math.max(hdr.initSize, hdr.kernelBytes);
  const lowRam = usable.find((e) => e.addr <= load && load < e.addr + e.size);
  if (!lowRam || kernelEnd > lowRam.addr + lowRam.size || kernelEnd > IDENTITY_MAPPED_BYTES) {
    throw new BootError('KERNEL_DOES_NOT_FIT', `the kernel needs 0x${load.toString(16)}..0x${kernelEnd.toString(16)} in RAM below the PCI hole; ${o.ramBytes} bytes of RAM do not cover it`);
  }

  const cmd = new TextEncoder().encode(o.cmdline); // GUEST-INPUT: length checked against cmdline_size
  if (cmd.includes(0)) throw new BootError('BAD_CMDLINE', 'the command line contains a NUL byte');
  if (cmd.length > hdr.cmdlineSize || cmd.length + 1 > CMDLINE_MAX) {
    throw new BootError('CMDLINE_TOO_LONG', `command line of ${cmd.length} bytes exceeds the kernel's cmdline_size ${hdr.cmdlineSize}`);
  }
  const cmdline = new Uint8Array(cmd.length + 1);
  cmdline.set(cmd);

  const initrd = o.initrd && o.initrd.byteLength > 0 ? placeInitrd(hdr, memory, kernelEnd, o.initrd.byteLength) : undefined;
  const acpi = buildAcpiTables({ vcpus: o.vcpus, base: ACPI_TABLES });

  const zp = new Bytes(BP.size);
  zp.set(HDR.setupSects, o.kernel.subarray(HDR.setupSects, hdr.headerEnd));
  zp.u8at(HDR.typeOfLoader, LOADER_UNDEFINED);
  zp.u8at(HDR.loadflags, hdr.loadflags | LOADED_HIGH);
  zp.u32(HDR.cmdLinePtr, CMDLINE).u32(BP.extCmdLinePtr, 0);
  if (initrd) {
    zp.u32(HDR.ramdiskImage, initrd.gpa % FOUR_GIB).u32(BP.extRamdiskImage, Math.floor(initrd.gpa / FOUR_GIB));
    zp.u32(HDR.ramdiskSize, initrd.size % FOUR_GIB).u32(BP.extRamdiskSize, Math.floor(initrd.size / FOUR_GIB));
  }
  zp.u64(BP.acpiRsdpAddr, acpi.rsdp);
  zp.u8at(BP.e820Entries, memory.e820.length);
  memory.e820.forEach((e, i) => zp.u64(BP.e820Table + 20 * i, e.addr).u64(BP.e820Table + 20 * i + 8, e.size).u32(BP.e820Table + 20 * i + 16, e.type));

  const writes: GuestWrite[] = [
    { gpa: BOOT_GDT, bytes: bootGdt().u8, what: 'GDT' },
    { gpa: BOOT_TSS, bytes: new Uint8Array(0x68), what: 'TSS' },
    { gpa: ZERO_PAGE, bytes: zp.u8, what: 'boot_params' },
    { gpa: PAGE_TABLES, bytes: identityPageTables().u8, what: 'page tables' },
    { gpa: CMDLINE, bytes: cmdline, what: 'command line' },
    ...acpi.tables.map((t) => ({ gpa: t.gpa, bytes: t.bytes, what: `ACPI ${t.signature}` })),
    { gpa: load, bytes: o.kernel.subarray(hdr.setupBytes, hdr.setupBytes + hdr.kernelBytes), what: 'kernel' },
  ];
  if (initrd && o.initrd instanceof Uint8Array) writes.push({ gpa: initrd.gpa, bytes: o.initrd, what: 'initrd' });
  checkWrites(memory, writes);

  return {
    memory, writes, regs: entryRegs(load), sregs: entrySregs(),
    kernel: { loadAddress: load, initSize: hdr.initSize, protocol: hdr.version },
    initrd, cmdline: { gpa: CMDLINE, size: cmdline.length }, rsdp: acpi.rsdp,
  };
}

/**
 * As high as the kernel allows (below initrd_addr_max and the top of low RAM), page-aligned and
 * above the kernel's init_size; above 4 GiB only if it does not fit low and the kernel says it
 * can take it there (XLF_CAN_BE_LOADED_ABOVE_4G).
 */
function placeInitrd(hdr: SetupHeader, memory: MemoryMap, kernelEnd: number, size: number): { gpa: number; size: number } {
  const usable = usableRam(memory);
  const high = hdr.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G ? usable.filter((e) => e.addr >= FOUR_GIB) : [];
  for (const e of [...usable.filter((r) => r.addr < FOUR_GIB).reverse(), ...high.reverse()]) {
    const above4g = e.addr >= FOUR_GIB;
    const limit = above4g ? e.addr + e.size : Math.min(e.addr + e.size, hdr.initrdAddrMax + 1);
    const gpa = Math.floor((limit - size) / PAGE) * PAGE;
    if (gpa >= Math.max(e.addr, kernelEnd)) return { gpa, size };
  }
  throw new BootError('INITRD_DOES_NOT_FIT', `no room for a ${size}-byte initrd above the kernel (ends 0x${kernelEnd.toString(16)}) below initrd_addr_max 0x${hdr.initrdAddrMax.toString(16)}`);
}

/** Every write lies in guest RAM and none overlaps another: the plan never scribbles on itself. */
function checkWrites(memory: MemoryMap, writes: readonly GuestWrite[]): void {
  const sorted = [...writes].sort((a, b) => a.gpa - b.gpa);
  sorted.forEach((w, i) => {
    const end = w.gpa + w.bytes.byteLength;
    if (!memory.ram.some((r) => w.gpa >= r.gpa && end <= r.gpa + r.size)) throw new Error(`boot plan bug: ${w.what} lies outside RAM`);
    const next = sorted[i + 1];
    if (next && next.gpa < end) throw new Error(`boot plan bug: ${w.what} overlaps ${next.what}`);
  });
}
