import { describe, expect, test } from 'vitest';
import type { Regs, Segment } from '../microhv/kvm/index.js';
import { BOOT_CS, BOOT_DS, BOOT_TR, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME } from './cpu.js';
import { BootError, type BootErrorCode } from './errors.js';
import { BOOT_GDT, CMDLINE, FOUR_GIB, GiB, MiB, ZERO_PAGE, memoryMap } from './layout.js';
import { planLinuxBoot, type BootPlan, type LinuxBootOptions } from './linux.js';
import { fakeBzImage, GOOD_HEADER, PlannedMemory, type FakeHeader } from './testing.js';

const plan = (o: Partial<LinuxBootOptions> = {}, hdr: Partial<FakeHeader> = {}): BootPlan =>
  planLinuxBoot({ kernel: fakeBzImage(hdr), cmdline: 'console=ttyS0', ramBytes: 512 * MiB, vcpus: 1, ...o });
const rejection = (f: () => unknown): BootErrorCode | string => {
  try { f(); return 'accepted'; } catch (e) { return e instanceof BootError ? e.code : `not a BootError: ${String(e)}`; }
};

describe('rejects', () => {
  test('an_image_without_the_boot_flag', () => {
    expect(rejection(() => plan({}, { bootFlag: 0 }))).toBe('NOT_BZIMAGE');
  });
  test('an_image_without_the_hdrs_magic', () => {
    expect(rejection(() => plan({}, { magic: 0x1234_5678 }))).toBe('NOT_BZIMAGE');
  });
  test('an_image_truncated_inside_the_setup_header', () => {
    expect(rejection(() => plan({}, { imageBytes: 0x240 }))).toBe('NOT_BZIMAGE');
  });
  test('protocol_2_11', () => {
    expect(rejection(() => plan({}, { version: 0x020b }))).toBe('PROTOCOL_TOO_OLD');
  });
  test('a_kernel_without_a_64bit_entry', () => {
    expect(rejection(() => plan({}, { xloadflags: 0x2 }))).toBe('NO_64BIT_ENTRY');
  });
  test('syssize_beyond_the_end_of_the_image', () => {
    expect(rejection(() => plan({}, { syssize: 0x10000 / 16 + 1 }))).toBe('BAD_HEADER');
  });
  test('a_header_that_claims_to_run_past_boot_params_hdr', () => {
    expect(rejection(() => plan({}, { jump: 0xa0 }))).toBe('BAD_HEADER');
  });
  test('pref_address_below_1mib', () => {
    expect(rejection(() => plan({}, { prefAddress: 0x8_0000n }))).toBe('BAD_HEADER');
  });
  test('a_relocatable_kernel_whose_pref_address_is_not_aligned', () => {
    expect(rejection(() => plan({}, { prefAddress: 0x110_0000n }))).toBe('BAD_HEADER');
  });
  test('a_kernel_whose_init_size_does_not_fit_in_ram', () => {
    expect(rejection(() => plan({ ramBytes: 64 * MiB }, { initSize: 0x400_0000 }))).toBe('KERNEL_DOES_NOT_FIT');
  });
  test('an_initrd_bigger_than_the_room_above_the_kernel', () => {
    expect(rejection(() => plan({ ramBytes: 64 * MiB, initrd: new Uint8Array(20 * MiB) }))).toBe('INITRD_DOES_NOT_FIT');
  });
  test('a_low_initrd_limit_when_the_kernel_cannot_take_one_above_4gib', () => {
    const o = { ramBytes: 4 * GiB, initrd: new Uint8Array(MiB) };
    expect(rejection(() => plan(o, { xloadflags: 0x1, initrdAddrMax: 0x2ff_ffff }))).toBe('INITRD_DOES_NOT_FIT');
  });
  test('a_cmdline_one_byte_over_cmdline_size', () => {
    expect(rejection(() => plan({ cmdline: 'x'.repeat(GOOD_HEADER.cmdlineSize + 1) }))).toBe('CMDLINE_TOO_LONG');
  });
  test('a_cmdline_with_a_nul_byte', () => {
    expect(rejection(() => plan({ cmdline: 'a\0b' }))).toBe('BAD_CMDLINE');
  });
  test('zero_vcpus', () => {
    expect(rejection(() => plan({ vcpus: 0 }))).toBe('BAD_VCPU_COUNT');
  });
  test('an_unaligned_ram_size', () => {
    expect(rejection(() => plan({ ramBytes: 512 * MiB + 4096 }))).toBe('BAD_MEMORY_SIZE');
  });
});

describe('placement', () => {
  test('loads_the_kernel_at_pref_address_and_enters_at_plus_0x200', () => {
    const p = plan();
    expect(p.kernel.loadAddress).toBe(0x100_0000);
    expect(p.regs.rip).toBe(0x100_0200n);
    const k = p.writes.find((w) => w.what === 'kernel');
    expect(k?.gpa).toBe(0x100_0000);
    expect(k?.bytes.byteLength).toBe(GOOD_HEADER.kernelBytes);
    expect(k?.bytes[0]).toBe((5 * 512) & 0xff); // the first byte after the setup sectors
  });

  test('accepts_a_cmdline_of_exactly_cmdline_size', () => {
    const p = plan({ cmdline: 'y'.repeat(GOOD_HEADER.cmdlineSize) });
    expect(p.cmdline.size).toBe(GOOD_HEADER.cmdlineSize + 1);
    expect(new PlannedMemory(p).u8(CMDLINE + GOOD_HEADER.cmdlineSize)).toBe(0);
  });

  test('places_initrd_below_initrd_addr_max', () => {
    const size = 5 * MiB + 123;
    const p = plan({ ramBytes: 4 * GiB, initrd: new Uint8Array(size) });
    const end = (p.initrd?.gpa ?? 0) + size;
    expect(end).toBeLessThanOrEqual(GOOD_HEADER.initrdAddrMax + 1);
    expect(end).toBeGreaterThan(GOOD_HEADER.initrdAddrMax + 1 - 4096); // as high as page alignment allows
    expect((p.initrd?.gpa ?? 1) % 4096).toBe(0);
  });

  test('places_initrd_at_the_top_of_small_ram', () => {
    const p = plan({ ramBytes: 128 * MiB, initrd: new Uint8Array(3 * MiB) });
    expect(p.initrd).toEqual({ gpa: 125 * MiB, size: 3 * MiB });
  });

  test('never_overlaps_the_kernel_init_size', () => {
    // 16 MiB + 32 MiB init_size ends at 48 MiB; 64 MiB of RAM leaves exactly 16 MiB.
    const p = plan({ ramBytes: 64 * MiB, initrd: new Uint8Array(16 * MiB) });
    expect(p.initrd?.gpa).toBe(48 * MiB);
  });

  test('places_initrd_above_4gib_when_it_does_not_fit_low_and_the_kernel_allows_it', () => {
    const p = plan({ ramBytes: 6 * GiB, initrd: new Uint8Array(MiB) }, { initrdAddrMax: 0x2ff_ffff });
    expect(p.initrd?.gpa).toBe(FOUR_GIB + 3 * GiB - MiB);
    const zp = new PlannedMemory(p);
    expect(zp.u32(ZERO_PAGE + 0x218) + zp.u32(ZERO_PAGE + 0x0c0) * FOUR_GIB).toBe(p.initrd?.gpa);
  });

  test('writes_lie_in_ram_and_never_overlap', () => {
    const p = plan({ ramBytes: 6 * GiB, initrd: new Uint8Array(7 * MiB) });
    const sorted = [...p.writes].sort((a, b) => a.gpa - b.gpa);
    sorted.forEach((w, i) => {
      const end = w.gpa + w.bytes.byteLength;
      expect(p.memory.ram.some((r) => w.gpa >= r.gpa && end <= r.gpa + r.size), w.what).toBe(true);
      expect(end).toBeLessThanOrEqual(sorted[i + 1]?.gpa ?? Infinity);
    });
  });
});

describe('zero page', () => {
  const p = plan({ ramBytes: 6 * GiB, initrd: new Uint8Array(2 * MiB), cmdline: 'console=ttyS0 panic=-1' });
  const m = new PlannedMemory(p);
  const zp = (off: number): number => ZERO_PAGE + off;

  test('copies_the_setup_header_and_marks_the_loader', () => {
    expect(m.u16(zp(0x1fe))).toBe(0xaa55);
    expect(m.u32(zp(0x202))).toBe(0x5372_6448);
    expect(m.u16(zp(0x206))).toBe(GOOD_HEADER.version);
    expect(m.u32(zp(0x260))).toBe(GOOD_HEADER.initSize);
    expect(m.u8(zp(0x210))).toBe(0xff);
    expect(m.u8(zp(0x211)) & 1).toBe(1);
    expect(m.u8(zp(0x1ef))).toBe(0); // sentinel stays zero, or the kernel wipes the fields
  });

  test('points_at_the_cmdline_initrd_and_rsdp', () => {
    expect(m.u32(zp(0x228))).toBe(CMDLINE);
    expect(Buffer.from(m.bytes(CMDLINE, 23)).toString('latin1')).toBe('console=ttyS0 panic=-1\0');
    expect(m.u32(zp(0x218))).toBe(p.initrd?.gpa);
    expect(m.u32(zp(0x21c))).toBe(2 * MiB);
    expect(m.u32(zp(0x0c0))).toBe(0);
    expect(Number(m.u64(zp(0x070)))).toBe(p.rsdp);
    expect(Buffer.from(m.bytes(p.rsdp, 8)).toString('latin1')).toBe('RSD PTR ');
  });

  test('carries_the_e820_map_of_the_layout', () => {
    const n = m.u8(zp(0x1e8));
    const e820 = Array.from({ length: n }, (_, i) => ({
      addr: Number(m.u64(zp(0x2d0 + 20 * i))), size: Number(m.u64(zp(0x2d0 + 20 * i + 8))), type: m.u32(zp(0x2d0 + 20 * i + 16)),
    }));
    expect(e820).toEqual(memoryMap(6 * GiB).e820);
  });
});

describe('entry state', () => {
  const p = plan();
  const m = new PlannedMemory(p);

  test('is_long_mode_with_paging_and_interrupts_off', () => {
    expect(p.sregs.cr0 & CR0_PG).toBe(CR0_PG);
    expect(p.sregs.cr0 & 1n).toBe(1n);
    expect(p.sregs.cr4 & CR4_PAE).toBe(CR4_PAE);
    expect(p.sregs.efer).toBe(EFER_LME | EFER_LMA);
    expect(p.regs.rflags).toBe(2n); // IF clear, reserved bit 1 set
    expect(p.regs.rsi).toBe(BigInt(ZERO_PAGE));
  });

  test('identity_maps_the_first_4gib_including_the_kernel_and_boot_data', () => {
    for (const a of [0, ZERO_PAGE, CMDLINE, p.kernel.loadAddress, p.kernel.loadAddress + p.kernel.initSize - 1, 0xfee0_0000, FOUR_GIB - 1]) {
      expect(m.translate(a), `0x${a.toString(16)}`).toBe(a);
    }
    expect(m.translate(FOUR_GIB)).toBeUndefined();
  });

  test('segments_match_the_gdt_descriptors_the_protocol_names', () => {
    const desc = (sel: number): bigint => m.u64(BOOT_GDT + sel);
    const access = (d: bigint): number => Number((d >> 40n) & 0xffn);
    const flags = (d: bigint): number => Number((d >> 52n) & 0xfn);
    expect(p.sregs.cs.selector).toBe(0x10);
    expect([p.sregs.ds, p.sregs.es, p.sregs.ss].map((s) => s.selector)).toEqual([0x18, 0x18, 0x18]);
    const cs = desc(BOOT_CS);
    expect(access(cs) & 0x9a).toBe(0x9a); // present, code, readable
    expect({ l: p.sregs.cs.l, db: p.sregs.cs.db, g: p.sregs.cs.g }).toEqual({ l: (flags(cs) >> 1) & 1, db: (flags(cs) >> 2) & 1, g: flags(cs) >> 3 });
    expect(p.sregs.cs).toMatchObject({ l: 1, db: 0, present: 1, s: 1, type: access(cs) & 0xf, base: 0n, limit: 0xffff_ffff });
    const ds = desc(BOOT_DS);
    expect(p.sregs.ds).toMatchObject({ type: access(ds) & 0xf, db: 1, l: 0, s: 1, present: 1, limit: 0xffff_ffff });
    expect(p.sregs.tr).toMatchObject({ selector: BOOT_TR, type: 11, s: 0, present: 1 });
    expect(p.sregs.gdt.limit).toBe(BOOT_TR + 15);
  });

  test('registers_have_the_shape_kvm_set_regs_takes', () => {
    // Compile-time: the plan's registers are assignable to the core's KVM types.
    const regs: Regs = p.regs;
    const cs: Segment = p.sregs.cs;
    expect(Object.keys(regs)).toHaveLength(18);
    expect(Object.keys(cs)).toHaveLength(12);
  });
});

describe('hostile headers', () => {
  test('random_setup_header_bytes_yield_a_plan_or_a_boot_error_never_a_crash', async () => {
    const { fuzz } = await import('./linux.fuzz.js');
    // Deterministic xorshift32, so a failure reproduces.
    let s = 0x1234_5678;
    const rnd = (): number => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
    const good = Buffer.from(fakeBzImage().subarray(0x1f1, 0x270));
    for (let i = 0; i < 1500; i++) {
      const input = Buffer.concat([good, Buffer.from([rnd() & 0xff, rnd() & 0xff, rnd() & 0xff, (rnd() & 3) + 1])]);
      for (let k = 0; k < 1 + (rnd() % 4); k++) input[rnd() % good.length] = rnd() & 0xff;
      expect(() => fuzz(input), input.toString('hex')).not.toThrow();
    }
  });
});
