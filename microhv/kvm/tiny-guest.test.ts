import { describe, expect, it } from 'vitest';
import type { Sregs } from './index.js';
import {
  GDT, PTE, TINY_GUEST, TINY_GUEST_BYTES, TINY_GUEST_PORT, checkTinyGuestExits, segmentFromDescriptor, tinyGuestCode,
  tinyGuestRegs, tinyGuestSregs, writeTinyGuest, type TinyGuestExit,
} from './tiny-guest.js';

/** 4-level walk (Intel SDM vol. 3, 4.5): the guest-physical address of `va`, or null if unmapped. */
function translate(mem: Uint8Array, cr3: number, va: number): number | null {
  const q = new DataView(mem.buffer);
  let table = cr3;
  for (const shift of [39, 30, 21]) {
    const e = q.getBigUint64(table + 8 * (Math.floor(va / 2 ** shift) % 512), true);
    if ((e & PTE.P) === 0n) return null;
    const frame = Number(e & 0x000f_ffff_ffff_f000n);
    if (shift === 21 && (e & PTE.PS) !== 0n) return frame + (va % 2 ** 21);
    table = frame;
  }
  return null; // the tiny guest uses no 4 KiB pages
}

/** Executes just the instructions the tiny guest may use; anything else fails the test. */
function interpret(mem: Uint8Array, rip: number, maxSteps = 100): { outs: Array<[number, number]>; end: 'hlt' | 'spin' } {
  const outs: Array<[number, number]> = [];
  let rax = 0n;
  let dx = 0;
  const at = (i: number): number => mem[rip + i] ?? -1;
  for (let step = 0; step < maxSteps; step++) {
    if (at(0) === 0x66 && at(1) === 0xba) { dx = at(2) | (at(3) << 8); rip += 4; }
    else if (at(0) === 0x48 && at(1) === 0xb8) { rax = new DataView(mem.buffer).getBigUint64(rip + 2, true); rip += 10; }
    else if (at(0) === 0xee) { outs.push([dx, Number(rax & 0xffn)]); rip += 1; }
    else if (at(0) === 0x48 && at(1) === 0xc1 && at(2) === 0xe8) { rax >>= BigInt(at(3)); rip += 4; }
    else if (at(0) === 0xf4) return { outs, end: 'hlt' };
    else if (at(0) === 0xeb && at(1) === 0xfe) return { outs, end: 'spin' };
    else throw new Error(`unexpected opcode 0x${at(0).toString(16)} at 0x${rip.toString(16)}`);
  }
  throw new Error('no hlt within the step budget');
}

function image(spin = false): Uint8Array {
  const mem = new Uint8Array(TINY_GUEST.memSize);
  writeTinyGuest(mem, spin);
  return mem;
}

describe('tiny guest image', () => {
  it('identity_maps_the_code_stack_and_gdt_through_its_page_tables', () => {
    // Arrange
    const mem = image();
    // Act
    const mapped = [TINY_GUEST.code, TINY_GUEST.stackTop - 8, TINY_GUEST.gdt, TINY_GUEST.memSize - 1].map((va) => translate(mem, TINY_GUEST.pml4, va));
    // Assert
    expect(mapped).toEqual([TINY_GUEST.code, TINY_GUEST.stackTop - 8, TINY_GUEST.gdt, TINY_GUEST.memSize - 1]);
  });

  it('maps_nothing_beyond_its_memory', () => {
    // Arrange
    const mem = image();
    // Act / Assert
    expect(translate(mem, TINY_GUEST.pml4, TINY_GUEST.memSize)).toBeNull();
    expect(translate(mem, TINY_GUEST.pml4, 2 ** 39)).toBeNull();
  });

  it('writes_the_expected_bytes_to_the_port_then_halts', () => {
    // Arrange
    const mem = image();
    // Act
    const run = interpret(mem, Number(tinyGuestRegs().rip));
    // Assert
    expect(run.outs).toEqual(TINY_GUEST_BYTES.map((b) => [TINY_GUEST_PORT, b]));
    expect(run.end).toBe('hlt');
  });

  it('spins_instead_of_halting_when_asked', () => {
    // Arrange
    const mem = image(true);
    // Act
    const run = interpret(mem, TINY_GUEST.code);
    // Assert
    expect(run.end).toBe('spin');
    expect(run.outs).toHaveLength(TINY_GUEST_BYTES.length);
  });

  it('takes_the_last_byte_from_the_upper_half_of_a_64_bit_immediate', () => {
    // Arrange
    const code = tinyGuestCode();
    // Act
    const imm = new DataView(code.buffer).getBigUint64(6, true);
    // Assert: only a long-mode decode of REX.W MOV loads bits 56..63
    expect([code[4], code[5]]).toEqual([0x48, 0xb8]);
    expect(Number(imm >> 56n)).toBe(TINY_GUEST_BYTES[3]);
  });

  it('keeps_page_tables_gdt_and_code_apart', () => {
    // Assert
    const regions = [
      [TINY_GUEST.gdt, TINY_GUEST.gdt + GDT.length * 8], [TINY_GUEST.pml4, TINY_GUEST.pml4 + 4096],
      [TINY_GUEST.pdpt, TINY_GUEST.pdpt + 4096], [TINY_GUEST.pd, TINY_GUEST.pd + 4096],
      [TINY_GUEST.code, TINY_GUEST.code + tinyGuestCode().length],
    ].sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0));
    regions.slice(1).forEach((r, i) => expect(r[0]).toBeGreaterThanOrEqual(regions[i]?.[1] ?? Infinity));
    expect(TINY_GUEST.stackTop).toBeGreaterThan(TINY_GUEST.code + tinyGuestCode().length);
  });
});

describe('tiny guest CPU state', () => {
  const reset = (): Sregs => {
    const seg = { base: 0n, limit: 0xffff, selector: 0, type: 3, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 0, avl: 0, unusable: 0 };
    const dt = { base: 0n, limit: 0xffff };
    return {
      cs: seg, ds: seg, es: seg, fs: seg, gs: seg, ss: seg, tr: seg, ldt: seg, gdt: dt, idt: dt,
      cr0: 0x60000010n, cr2: 0n, cr3: 0n, cr4: 0n, cr8: 0n, efer: 0n, apic_base: 0xfee00900n, interrupt_bitmap: new Uint8Array(32),
    };
  };

  it('decodes_the_gdt_code_descriptor_as_a_64_bit_code_segment', () => {
    // Act
    const cs = segmentFromDescriptor(0x08, GDT[1]);
    // Assert
    expect(cs).toEqual({ base: 0n, limit: 0xffffffff, selector: 0x08, type: 11, present: 1, dpl: 0, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0 });
  });

  it('enters_long_mode_with_paging_through_the_page_tables', () => {
    // Act
    const s = tinyGuestSregs(reset());
    // Assert
    expect(s.cr0 & 0x8000_0001n).toBe(0x8000_0001n); // PG | PE
    expect(s.cr4 & 0x20n).toBe(0x20n); // PAE
    expect(s.efer & 0x500n).toBe(0x500n); // LME | LMA
    expect(s.cr3).toBe(BigInt(TINY_GUEST.pml4));
    expect([s.cs.l, s.cs.db, s.ss.db]).toEqual([1, 0, 1]);
    expect(s.gdt).toEqual({ base: BigInt(TINY_GUEST.gdt), limit: 23 });
    expect(s.tr).toMatchObject({ type: 11, s: 0, present: 1 });
    expect(s.apic_base).toBe(0xfee00900n); // untouched reset state survives
  });

  it('starts_at_the_code_with_interrupts_off', () => {
    // Act
    const r = tinyGuestRegs();
    // Assert
    expect(r.rip).toBe(BigInt(TINY_GUEST.code));
    expect(r.rflags).toBe(2n);
  });
});

describe('checkTinyGuestExits', () => {
  const good = (): TinyGuestExit[] => [
    ...TINY_GUEST_BYTES.map((b) => ({ reason: 'IO', port: TINY_GUEST_PORT, size: 1, data: [b] })), { reason: 'HLT' },
  ];

  it('accepts_the_four_outs_then_hlt', () => {
    // Act / Assert
    expect(checkTinyGuestExits(good()).ok).toBe(true);
  });

  it('rejects_a_wrong_byte', () => {
    // Arrange
    const exits = good();
    exits[3] = { reason: 'IO', port: TINY_GUEST_PORT, size: 1, data: [0] };
    // Act
    const r = checkTinyGuestExits(exits);
    // Assert
    expect(r).toMatchObject({ ok: false });
    expect(r.reason).toContain('exit 3');
  });

  it('rejects_a_missing_hlt_and_extra_exits', () => {
    // Act / Assert
    expect(checkTinyGuestExits(good().slice(0, 4)).ok).toBe(false);
    expect(checkTinyGuestExits([...good(), { reason: 'HLT' }]).ok).toBe(false);
  });

  it('reports_a_failed_entry_with_its_detail', () => {
    // Act
    const r = checkTinyGuestExits([{ reason: 'FAIL_ENTRY', detail: 'hardware entry failure reason 0x21' }]);
    // Assert
    expect(r.reason).toContain('FAIL_ENTRY (hardware entry failure reason 0x21)');
  });
});
