import { describe, expect, test } from 'vitest';
import { memberOffset, shutdownProbe } from './shutdown-probe.js';

/** A BTF blob: 24-byte header, then the type section, then the string section. */
function btf(types: Buffer, strings: string): Buffer {
  const str = Buffer.from(strings, 'latin1');
  const h = Buffer.alloc(24);
  h.writeUInt16LE(0xeb9f, 0);
  h.writeUInt8(1, 2); // version
  h.writeUInt32LE(24, 4); // hdr_len
  h.writeUInt32LE(0, 8); // type_off
  h.writeUInt32LE(types.length, 12);
  h.writeUInt32LE(types.length, 16); // str_off
  h.writeUInt32LE(str.length, 20);
  return Buffer.concat([h, types, str]);
}

const u32s = (...v: number[]): Buffer => { const b = Buffer.alloc(4 * v.length); v.forEach((x, i) => b.writeUInt32LE(x >>> 0, 4 * i)); return b; };
const info = (kind: number, vlen: number, kflag = 0): number => ((kflag << 31) | (kind << 24) | vlen) >>> 0;

// The base (vmlinux) holds a few strings; the module's string offsets continue after them.
const BASE_STRINGS = '\0int\0kvm_vcpu\0';
const base = btf(u32s(1, info(1, 0), 4, 0x20), BASE_STRINGS); // int: a 4-byte INT with its extra word
const S = BASE_STRINGS.length;
const MOD_STRINGS = '\0vcpu_svm\0vcpu\0vmcb\0e\0bits\0';
const at = (s: string): number => S + MOD_STRINGS.indexOf(`\0${s}\0`) + 1;

function module(withVmcb: boolean): Buffer {
  return btf(Buffer.concat([
    // An ENUM64 with two values (12 bytes each) and an array come first: the walk must step over them.
    u32s(at('e'), info(19, 2), 8), u32s(0, 1, 0, 0, 2, 0),
    u32s(0, info(3, 0), 0), u32s(1, 1, 4),
    // A struct with kind_flag set: member offsets carry a bitfield size in their top 8 bits.
    u32s(at('bits'), info(4, 1, 1), 8), u32s(at('vmcb'), 1, (3 << 24) | 32),
    u32s(at('vcpu_svm'), info(4, 2), 7248),
    u32s(at('vcpu'), 2, 0),
    u32s(withVmcb ? at('vmcb') : at('e'), 1, 0x1998 * 8),
  ]), MOD_STRINGS);
}

describe('shutdown probe', () => {
  test('the_member_offset_is_read_from_the_modules_split_btf_past_other_kinds', () => {
    expect(memberOffset(base, module(true), 'vcpu_svm', 'vmcb')).toBe(0x1998);
    expect(memberOffset(base, module(true), 'vcpu_svm', 'vcpu')).toBe(0);
    // A kind_flag struct's offset is the low 24 bits.
    expect(memberOffset(base, module(true), 'bits', 'vmcb')).toBe(4);
  });

  test('a_missing_member_or_struct_is_undefined_and_a_blob_that_is_not_btf_throws', () => {
    expect(memberOffset(base, module(false), 'vcpu_svm', 'vmcb')).toBeUndefined();
    expect(memberOffset(base, module(true), 'vcpu_vmx', 'vmcs')).toBeUndefined();
    expect(() => memberOffset(Buffer.alloc(24), module(true), 'vcpu_svm', 'vmcb')).toThrow(/bad magic/);
  });

  test('the_probe_reads_the_save_area_through_the_vmcb_pointer', () => {
    const line = shutdownProbe(0x1998);
    expect(line.startsWith('p:kvm_amd/tfregs shutdown_interception ')).toBe(true);
    expect(line).toContain(' rip=+0x578(+0x1998(%di)):x64');
    expect(line).toContain(' cr3=+0x550(+0x1998(%di)):x64');
    expect(line).toContain(' idtb=+0x488(+0x1998(%di)):x64');
    expect(line).toContain(' exitintinfo=+0x88(+0x1998(%di)):x64');
  });
});
