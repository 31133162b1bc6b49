import { describe, expect, test } from 'vitest';
import { checkKernelMapping, emulatedCpuFault, parseRegs, walkFromCr3 } from './pt-check.js';

const RIP = 0xffffffff92da95ccn; // PML4[511] PDPT[510] PD[150]
const put = (ram: Buffer, table: number, index: number, v: bigint): void => { ram.writeBigUInt64LE(v, table + index * 8); };

/** Two top-level tables sharing a kernel half, its PDPT and PD mapping the RIP with a 2 MiB page. */
function guest(): Buffer {
  const ram = Buffer.alloc(1 << 22);
  for (const pgd of [0x1000, 0x8000]) {
    put(ram, pgd, 0, BigInt(pgd + 0x10000) | 0x67n); // a user half of its own
    put(ram, pgd, 273, 0x5000n | 0x63n); // direct map
    put(ram, pgd, 300, 0x6000n | 0x63n); // vmalloc
    put(ram, pgd, 511, 0x2000n | 0x67n); // kernel text (Linux's upper levels carry the user bit)
  }
  put(ram, 0x2000, 510, 0x3000n | 0x63n);
  put(ram, 0x3000, 150, 0x200000n | 0xe3n);
  return ram;
}

describe('page-table post-mortem', () => {
  test('an_intact_mapping_is_walked_to_its_2_mib_page_and_said_to_be_intact', () => {
    const r = checkKernelMapping(guest(), RIP);
    expect(r.intact).toBe(true);
    expect(r.lines[0]).toBe('kernel half shared by 2 top-level table(s) (first at 0x1000); 0 other kernel half(s) seen');
    expect(r.lines.at(-1)).toBe('0xffffffff92da95cc: PD[150] at 0x34b0 = 0x2000e3: present (2 MiB page): the mapping is intact in RAM');
  });

  test('a_zeroed_page_directory_entry_is_found_with_its_table_and_address', () => {
    const ram = guest();
    put(ram, 0x3000, 150, 0n);
    const r = checkKernelMapping(ram, RIP);
    expect(r.intact).toBe(false);
    expect(r.lines.at(-1)).toBe('0xffffffff92da95cc: PD[150] at 0x34b0 = 0x0: not present (the table has 0 nonzero entries of 512)');
  });

  test('a_copy_of_the_kernel_half_with_one_entry_rewritten_is_named', () => {
    const ram = guest();
    for (const pgd of [0xa000, 0xb000]) for (const [i, v] of [[273, 0x5063n], [300, 0x6063n], [511, 0x2067n]] as const) put(ram, pgd, i, v);
    put(ram, 0xb000, 511, 0n);
    const r = checkKernelMapping(ram, RIP);
    expect(r.lines[0]).toMatch(/^kernel half shared by 3 top-level table\(s\)/);
    expect(r.lines).toContain('table at 0xb000 differs from the shared kernel half: entry 511 is 0x0, shared 0x2067');
    // That copy is walked too (it may be the table the vCPU was on): the RIP is not mapped through it.
    expect(r.lines).toContain('0xffffffff92da95cc: PML4[511] at 0xbff8 = 0x0: not present (the table has 2 nonzero entries of 512)');
    expect(r.intact).toBe(false);
  });

  test('a_copy_that_differs_elsewhere_leaves_the_verdict_to_the_shared_walk', () => {
    const ram = guest();
    for (const pgd of [0xa000, 0xb000]) for (const [i, v] of [[273, 0x5063n], [300, 0x6063n], [511, 0x2067n]] as const) put(ram, pgd, i, v);
    put(ram, 0xb000, 300, 0x7063n);
    const r = checkKernelMapping(ram, RIP);
    expect(r.lines).toContain('table at 0xb000 differs from the shared kernel half: entry 300 is 0x7063, shared 0x6063');
    expect(r.intact).toBe(true);
  });

  test('a_present_page_marked_no_execute_on_the_way_is_not_a_mapping_for_a_fetch', () => {
    const ram = guest();
    put(ram, 0x2000, 510, 0x3000n | 0x63n | (1n << 63n));
    const r = checkKernelMapping(ram, RIP);
    expect(r.intact).toBe(false);
    expect(r.lines.at(-1)).toBe('0xffffffff92da95cc: PD[150] at 0x34b0 = 0x2000e3: present (2 MiB page) but not executable (NX in the PDPT entry)');
  });

  test('a_walk_from_the_vcpus_cr3_follows_that_table_not_the_shared_half', () => {
    const ram = guest();
    // A third top-level table whose kernel entry 511 was zeroed.
    put(ram, 0xc000, 273, 0x5063n);
    put(ram, 0xc000, 300, 0x6063n);
    const r = walkFromCr3(ram, 0xc000n | 0x5n, RIP, true); // PCID bits in CR3 are ignored
    expect(r.intact).toBe(false);
    expect(r.lines).toEqual(['0xffffffff92da95cc: PML4[511] at 0xcff8 = 0x0: not present (the table has 2 nonzero entries of 512)']);
    expect(walkFromCr3(ram, 0x1000n, RIP, true).intact).toBe(true);
  });

  test('a_data_walk_ignores_no_execute_and_a_cr3_outside_ram_is_said', () => {
    const ram = guest();
    put(ram, 0x2000, 510, 0x3000n | 0x63n | (1n << 63n));
    expect(walkFromCr3(ram, 0x1000n, RIP, true).intact).toBe(false);
    const data = walkFromCr3(ram, 0x1000n, RIP, false);
    expect(data.intact).toBe(true);
    expect(data.lines.at(-1)).toBe('0xffffffff92da95cc: PD[150] at 0x34b0 = 0x2000e3: present (2 MiB page): the mapping is intact in RAM');
    expect(walkFromCr3(ram, 0x4000000n, RIP, false)).toEqual({ lines: ['CR3 0x4000000 points outside RAM'], intact: false });
  });

  test('no_kernel_half_says_so', () => {
    expect(checkKernelMapping(Buffer.alloc(1 << 16), RIP)).toEqual({ lines: ['no top-level page table with a kernel half found'], intact: undefined });
  });
});

describe('whose triple fault: the verdict from the probe\'s registers and the RAM dump', () => {
  /** The guest above, with a CPU entry area (IDT, GDT and TSS in 4 KiB pages) and a stack in the direct map. */
  function machine(): Buffer {
    const ram = guest();
    put(ram, 0x1000, 508, 0x9000n | 0x67n);
    put(ram, 0x9000, 0, 0xa000n | 0x67n);
    put(ram, 0xa000, 0, 0xb000n | 0x67n);
    for (const i of [0, 1, 3]) put(ram, 0xb000, i, BigInt(0x100000 + i * 0x1000) | 0x161n | (1n << 63n));
    put(ram, 0x5000, 0, 0xc000n | 0x63n);
    put(ram, 0xc000, 0, 0xe3n | (1n << 63n)); // 2 MiB at 0, NX as the direct map is
    return ram;
  }
  const LINE = `rip=${'0x' + RIP.toString(16)} rsp=0xffff888000010f58 cr3=0x1000 cr0=0x80050033 cr4=0x6b0 efer=0x1d01 cr2=0xfffffe0000000080 `
    + 'idtb=0xfffffe0000000000 idtl=4095 gdtb=0xfffffe0000001000 trb=0xfffffe0000003000 cpl=0 rfl=0x7 cs=16 eii=0x1080000b0e';

  test('the_probe_line_parses_hex_and_decimal_fields_and_skips_the_function_name', () => {
    const regs = parseRegs(`(shutdown_interception+0x0/0x50 [kvm_amd]) ${LINE}`);
    expect(regs.get('cr3')).toBe(0x1000n);
    expect(regs.get('idtl')).toBe(4095n);
    expect(regs.get('cs')).toBe(16n);
    expect(regs.has('shutdown_interception+0x0/0x50')).toBe(false);
  });

  test('everything_delivery_touches_mapped_through_cr3_is_the_emulated_cpus_fault', () => {
    const v = emulatedCpuFault(machine(), parseRegs(LINE));
    expect(v.verdict).toBe('verdict: the emulated CPU\'s: through CR3 0x1000 the RIP, the IDT\'s #DF and #PF entries, the GDT, the TSS and the stacks delivery pushes onto are all mapped in RAM');
    expect(v.emulated).toBe(true);
    expect(v.lines).toContain('0xfffffe00000000e0: PT[0] at 0xb000 = 0x8000000000100161: present (4 KiB page): the mapping is intact in RAM');
  });

  test('an_empty_idt_as_reboot_t_loads_is_the_guests_own_reset', () => {
    const v = emulatedCpuFault(machine(), parseRegs(LINE.replace('idtl=4095', 'idtl=0')));
    expect(v.emulated).toBe(false);
    expect(v.verdict).toBe('verdict: the guest\'s: the IDT limit 0 does not cover the #PF and #DF entries');
    // The walks are made all the same: the post-mortem of a deliberate reset still shows them.
    expect(v.lines).toContain('through CR3 0x1000:');
    expect(v.lines).toHaveLength(1 + 3 + 4 + 4 + 4 + 4 + 3 + 3); // the RIP, 4 tables, the #PF and #DF stacks
    // One entry short of #PF's end is not enough either.
    expect(emulatedCpuFault(machine(), parseRegs(LINE.replace('idtl=4095', 'idtl=238'))).emulated).toBe(false);
    expect(emulatedCpuFault(machine(), parseRegs(LINE.replace('idtl=4095', 'idtl=239'))).emulated).toBe(true);
  });

  test('a_lost_idt_mapping_or_a_cr3_on_a_page_of_zeros_is_the_guests', () => {
    const ram = machine();
    put(ram, 0xb000, 0, 0n);
    expect(emulatedCpuFault(ram, parseRegs(LINE)).verdict)
      .toBe('verdict: the guest\'s: the IDT\'s #DF entry (0xfffffe0000000080) is not mapped through CR3 0x1000 (nor 1 more)');
    const zero = emulatedCpuFault(machine(), parseRegs(LINE.replace('cr3=0x1000', 'cr3=0x20000')));
    expect(zero.emulated).toBe(false);
    expect(zero.verdict).toBe(`verdict: the guest's: the RIP (0x${RIP.toString(16)}) is not mapped through CR3 0x20000 (nor 6 more)`);
  });

  test('the_stack_is_checked_below_rsp_where_delivery_pushes', () => {
    // RSP at the start of the direct map's first 2 MiB page: the first push lands in the unmapped page below.
    const v = emulatedCpuFault(machine(), parseRegs(LINE.replace('rsp=0xffff888000010f58', 'rsp=0xffff888000000000')));
    // Both deliveries push there: no IST stack in either IDT entry, and the fault came from the kernel.
    expect(v.verdict).toBe('verdict: the guest\'s: the #PF stack below RSP (0xffff887ffffffff8) is not mapped through CR3 0x1000 (nor 1 more)');
  });

  test('from_user_mode_the_fault_is_delivered_on_the_tss_rsp0_stack_not_the_user_one', () => {
    const ram = machine();
    const user = parseRegs(LINE.replace('cpl=0', 'cpl=3').replace('rsp=0xffff888000010f58', 'rsp=0x7fff00000000'));
    // RSP0 (the TSS at 0x103000, offset 4) still 0: the push below it wraps to an unmapped address.
    expect(emulatedCpuFault(ram, user).verdict).toBe('verdict: the guest\'s: the #PF stack below RSP0 (0xfffffffffffffff8) is not mapped through CR3 0x1000 (nor 1 more)');
    ram.writeBigUInt64LE(0xffff888000010000n, 0x103004);
    // The user stack, unmapped here, is not where delivery pushes.
    expect(emulatedCpuFault(ram, user).emulated).toBe(true);
  });

  test('a_double_fault_with_an_ist_stack_needs_that_stack_mapped', () => {
    const ram = machine();
    ram[0x100000 + 8 * 16 + 4] = 1; // the #DF gate names IST1 (the IDT at 0x100000)
    expect(emulatedCpuFault(ram, parseRegs(LINE)).verdict).toBe('verdict: the guest\'s: the #DF stack below IST1 (0xfffffffffffffff8) is not mapped through CR3 0x1000');
    ram.writeBigUInt64LE(0xffff888000020000n, 0x103000 + 0x24);
    const v = emulatedCpuFault(ram, parseRegs(LINE));
    expect(v.emulated).toBe(true);
    expect(v.lines).toContain('0xffff88800001fff8: PD[0] at 0xc000 = 0x80000000000000e3: present (2 MiB page): the mapping is intact in RAM');
  });

  test('missing_registers_or_no_64_bit_paging_give_no_emulated_verdict', () => {
    expect(emulatedCpuFault(machine(), parseRegs(LINE.replace(/ gdtb=\S+ trb=\S+/, ''))))
      .toMatchObject({ emulated: false, verdict: 'verdict: none: the registers lack gdtb, trb' });
    expect(emulatedCpuFault(machine(), parseRegs(LINE.replace('efer=0x1d01', 'efer=0x1001'))).verdict)
      .toBe('verdict: the guest\'s: not in 64-bit paging (cr0 0x80050033, efer 0x1001)');
  });
});
