import { describe, expect, test } from 'vitest';
import { loadOrder, moduleName, readModinfo, ModuleError } from './kmod.js';

/** A minimal ELF64 LE file with a section-name table and one `.modinfo` section. */
function elfWithModinfo(modinfo: string): Uint8Array {
  const shstr = Buffer.from('\0.shstrtab\0.modinfo\0', 'latin1');
  const info = Buffer.from(modinfo, 'latin1');
  const shoff = 64 + shstr.length + info.length;
  const out = Buffer.alloc(shoff + 3 * 64);
  out.writeUInt32BE(0x7f454c46, 0);
  out[4] = 2; // ELFCLASS64
  out[5] = 1; // little-endian
  out.writeBigUInt64LE(BigInt(shoff), 0x28);
  out.writeUInt16LE(64, 0x3a); // e_shentsize
  out.writeUInt16LE(3, 0x3c); // e_shnum: null, .shstrtab, .modinfo
  out.writeUInt16LE(1, 0x3e); // e_shstrndx
  shstr.copy(out, 64);
  info.copy(out, 64 + shstr.length);
  const sh = (i: number, name: number, off: number, size: number): void => {
    const o = shoff + i * 64;
    out.writeUInt32LE(name, o);
    out.writeBigUInt64LE(BigInt(off), o + 0x18);
    out.writeBigUInt64LE(BigInt(size), o + 0x20);
  };
  sh(1, 1, 64, shstr.length);
  sh(2, 11, 64 + shstr.length, info.length);
  return out;
}

describe('readModinfo', () => {
  test('reads_depends_and_repeated_keys', () => {
    const ko = elfWithModinfo('license=GPL\0depends=kvm,ccp\0alias=a1\0alias=a2\0');
    const info = readModinfo(ko);
    expect(info.get('depends')).toEqual(['kvm,ccp']);
    expect(info.get('alias')).toEqual(['a1', 'a2']);
  });

  test('rejects_a_file_that_is_not_elf', () => {
    expect(() => readModinfo(Buffer.alloc(128))).toThrow(ModuleError);
  });

  test('rejects_a_section_table_beyond_the_file', () => {
    const ko = elfWithModinfo('depends=\0');
    const cut = ko.subarray(0, ko.length - 10);
    expect(() => readModinfo(cut)).toThrow(/out of range/);
  });
});

describe('loadOrder', () => {
  const index = new Map([
    ['kvm_amd', 'kvm-amd.ko'], ['kvm', 'kvm.ko'], ['irqbypass', 'irqbypass.ko'], ['ccp', 'ccp.ko'], ['virtio_blk', 'virtio_blk.ko'], ['virtio', 'virtio.ko'],
  ]);
  const deps: Record<string, string[]> = { 'kvm-amd.ko': ['kvm', 'ccp'], 'kvm.ko': ['irqbypass'], 'virtio_blk.ko': ['virtio'] };
  const depends = (f: string): string[] => deps[f] ?? [];

  test('puts_dependencies_before_their_users', () => {
    expect(loadOrder(['kvm_amd'], index, depends)).toEqual(['irqbypass.ko', 'kvm.ko', 'ccp.ko', 'kvm-amd.ko']);
  });

  test('loads_a_shared_dependency_once', () => {
    const order = loadOrder(['kvm_amd', 'kvm', 'virtio_blk'], index, depends);
    expect(order.filter((f) => f === 'kvm.ko')).toHaveLength(1);
    expect(order.indexOf('virtio.ko')).toBeLessThan(order.indexOf('virtio_blk.ko'));
  });

  test('names_the_module_that_needed_a_missing_one', () => {
    expect(() => loadOrder(['kvm_amd'], new Map([['kvm_amd', 'kvm-amd.ko']]), depends)).toThrow(/module kvm not found \(needed by kvm_amd\)/);
  });

  test('reports_a_dependency_cycle_instead_of_recursing_forever', () => {
    const cyc = (f: string): string[] => (f === 'kvm.ko' ? ['kvm_amd'] : ['kvm']);
    expect(() => loadOrder(['kvm_amd'], index, cyc)).toThrow(/cycle: kvm_amd -> kvm -> kvm_amd/);
  });

  test('folds_dashes_in_file_names_to_underscores', () => {
    expect(moduleName('/x/kvm-amd.ko')).toBe('kvm_amd');
  });
});
