// Kernel-module dependency resolution without kmod: the build machine need not
// have modinfo or depmod, so we read each module's `.modinfo` ELF section
// ("depends=a,b" among NUL-separated key=value strings) ourselves.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, basename } from 'node:path';

export class ModuleError extends Error {
  constructor(readonly code: 'NOT_FOUND' | 'BAD_ELF' | 'CYCLE', message: string) {
    super(message);
    this.name = 'ModuleError';
  }
}

/** Reads the `.modinfo` section of an ELF64 little-endian relocatable (a .ko file). */
export function readModinfo(ko: Uint8Array): Map<string, string[]> {
  // Byte offsets below are the ELF64 header and section-header layout (System V
  // gABI, "ELF Header" and "Sections"); the file is untrusted, so every offset
  // is bounds-checked before use.
  const dv = new DataView(ko.buffer, ko.byteOffset, ko.byteLength);
  const bad = (why: string): never => { throw new ModuleError('BAD_ELF', why); };
  if (ko.byteLength < 64 || dv.getUint32(0, false) !== 0x7f454c46) bad('not an ELF file');
  if (ko[4] !== 2 || ko[5] !== 1) bad('not ELF64 little-endian');
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true);
  const shnum = dv.getUint16(0x3c, true);
  const shstrndx = dv.getUint16(0x3e, true);
  if (shentsize < 64 || shoff + shnum * shentsize > ko.byteLength || shstrndx >= shnum) bad('section table out of range');
  const section = (i: number) => {
    const o = shoff + i * shentsize;
    const off = Number(dv.getBigUint64(o + 0x18, true));
    const size = Number(dv.getBigUint64(o + 0x20, true));
    if (off + size > ko.byteLength) bad(`section ${i} out of range`);
    return { name: dv.getUint32(o, true), off, size };
  };
  const strtab = section(shstrndx);
  const cstr = (base: number, limit: number, at: number): string => {
    let end = base + at;
    while (end < limit && ko[end] !== 0) end++;
    return Buffer.from(ko.subarray(base + at, end)).toString('latin1');
  };
  const info = new Map<string, string[]>();
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (cstr(strtab.off, strtab.off + strtab.size, s.name) !== '.modinfo') continue;
    const text = Buffer.from(ko.subarray(s.off, s.off + s.size)).toString('latin1');
    for (const entry of text.split('\0')) {
      const eq = entry.indexOf('=');
      if (eq <= 0) continue;
      const key = entry.slice(0, eq);
      info.set(key, [...(info.get(key) ?? []), entry.slice(eq + 1)]);
    }
  }
  return info;
}

/** Module name as the kernel knows it: file stem with '-' folded to '_'. */
export const moduleName = (file: string): string => basename(file).replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');

/** Indexes every .ko below a modules tree (lib/modules/<version>). */
export function indexModules(root: string): Map<string, string> {
  const index = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ko')) index.set(moduleName(name), p);
    }
  };
  walk(root);
  return index;
}

/**
 * Returns the files to load, dependencies first, for the wanted modules.
 * `depends` is injectable so the ordering logic is testable without .ko files.
 */
export function loadOrder(
  wanted: readonly string[],
  index: ReadonlyMap<string, string>,
  depends: (file: string) => string[] = (f) => (readModinfo(readFileSync(f)).get('depends')?.[0] ?? '').split(',').filter(Boolean),
): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, chain: string[]): void => {
    const key = name.replace(/-/g, '_');
    const st = state.get(key);
    if (st === 'done') return;
    if (st === 'visiting') throw new ModuleError('CYCLE', `module dependency cycle: ${[...chain, key].join(' -> ')}`);
    const file = index.get(key);
    if (file === undefined) throw new ModuleError('NOT_FOUND', `module ${key} not found${chain.length ? ` (needed by ${chain.at(-1)})` : ''}`);
    state.set(key, 'visiting');
    for (const dep of depends(file)) visit(dep, [...chain, key]);
    state.set(key, 'done');
    order.push(file);
  };
  for (const w of wanted) visit(w, []);
  return order;
}
