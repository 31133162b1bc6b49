// Plans the boot of the real embedded guest: Debian's cloud kernel and the project's initramfs.
// It builds (or finds cached) the guest image first, so it never depends on test order and is
// never skipped: a missing image is built, and a failed build fails the test.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, test } from 'vitest';
import { E820Type, GiB, ZERO_PAGE, memoryMap } from '../../boot/layout.js';
import { MIN_PROTOCOL, parseSetupHeader, planLinuxBoot, type BootPlan, type SetupHeader } from '../../boot/linux.js';
import { PlannedMemory } from '../../boot/testing.js';
import { buildGuest } from '../../images/build.js';

const RAM = 1 * GiB;
let kernel: Uint8Array;
let initrd: Uint8Array;
let hdr: SetupHeader;
let plan: BootPlan;
beforeAll(() => {
  const image = buildGuest();
  kernel = readFileSync(image.kernel);
  initrd = readFileSync(image.initramfs);
  hdr = parseSetupHeader(kernel);
  plan = planLinuxBoot({ kernel, initrd, cmdline: 'console=ttyS0 microhv.scenario=hello', ramBytes: RAM, vcpus: 2 });
}, 300_000);

describe('Debian cloud kernel', () => {
  test('speaks_a_boot_protocol_with_the_64bit_entry', () => {
    expect(hdr.version).toBeGreaterThanOrEqual(MIN_PROTOCOL);
    expect(hdr.xloadflags & 1).toBe(1);
    expect(hdr.relocatable).toBe(true);
  });

  test('is_loaded_whole_at_pref_address_and_entered_at_plus_0x200', () => {
    const k = plan.writes.find((w) => w.what === 'kernel');
    expect(k?.gpa).toBe(hdr.prefAddress);
    expect(Buffer.from(k?.bytes ?? []).equals(Buffer.from(kernel.subarray(hdr.setupBytes, hdr.setupBytes + hdr.kernelBytes)))).toBe(true);
    expect(plan.regs.rip).toBe(BigInt(hdr.prefAddress + 0x200));
    expect(plan.kernel.protocol).toBe(hdr.version);
  });

  test('puts_the_initrd_page_aligned_below_initrd_addr_max_and_above_init_size', () => {
    const r = plan.initrd;
    expect(r?.size).toBe(initrd.byteLength);
    const gpa = r?.gpa ?? 0;
    expect(gpa % 4096).toBe(0);
    expect(gpa).toBeGreaterThanOrEqual(hdr.prefAddress + hdr.initSize);
    expect(gpa + initrd.byteLength).toBeLessThanOrEqual(Math.min(hdr.initrdAddrMax + 1, RAM));
    expect(RAM - (gpa + initrd.byteLength)).toBeLessThan(4096); // as high as it can go
  });

  test('every_write_lies_in_one_e820_range_of_the_right_type', () => {
    const m = memoryMap(RAM);
    for (const w of plan.writes) {
      const e = m.e820.find((x) => w.gpa >= x.addr && w.gpa + w.bytes.byteLength <= x.addr + x.size);
      expect(e?.type, w.what).toBe(w.what.startsWith('ACPI') ? E820Type.Acpi : E820Type.Ram);
    }
  });

  test('zero_page_e820_matches_the_layout', () => {
    const mem = new PlannedMemory(plan);
    const n = mem.u8(ZERO_PAGE + 0x1e8);
    const e820 = Array.from({ length: n }, (_, i) => {
      const at = ZERO_PAGE + 0x2d0 + 20 * i;
      return { addr: Number(mem.u64(at)), size: Number(mem.u64(at + 8)), type: mem.u32(at + 16) };
    });
    expect(e820).toEqual(memoryMap(RAM).e820);
  });

  test('page_tables_identity_map_the_kernel_init_size_zero_page_and_cmdline', () => {
    const mem = new PlannedMemory(plan);
    const end = hdr.prefAddress + hdr.initSize;
    for (let a = hdr.prefAddress; a < end; a += 2 ** 21) expect(mem.translate(a)).toBe(a);
    expect(mem.translate(end - 1)).toBe(end - 1);
    expect(mem.translate(ZERO_PAGE)).toBe(ZERO_PAGE);
    expect(mem.translate(plan.cmdline.gpa)).toBe(plan.cmdline.gpa);
  });
});
