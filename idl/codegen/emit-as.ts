// Emits the AssemblyScript side of a .proto file: its enums and the
// fixed-layout record accessors (load/store on linear memory, which is
// little-endian by the WebAssembly spec). Protobuf control messages are not
// emitted: wasm stub domains see only rings and slots.

import type { EnumModel, FileModel, LayoutField, MessageModel } from './model.js';
import { GenError, pascal } from './model.js';

const AS_TYPE: Record<Exclude<LayoutField['repr'], 'bytes'>, string> = {
  u8: 'u8', i8: 'i8', u16: 'u16', i16: 'i16', u32: 'u32', i32: 'i32', u64: 'u64', i64: 'i64', bool: 'u8',
};

/** The value type a getter returns: small integers widen to 32 bits. */
const AS_VALUE: Record<Exclude<LayoutField['repr'], 'bytes'>, string> = {
  u8: 'u32', i8: 'i32', u16: 'u32', i16: 'i32', u32: 'u32', i32: 'i32', u64: 'u64', i64: 'i64', bool: 'bool',
};

function upper(name: string): string {
  return name.toUpperCase();
}

export function emitAs(file: FileModel, headerLine: string): string | null {
  const parts: string[] = [];
  let any = false;
  for (const d of file.decls) {
    if (d.kind === 'enum') parts.push(emitEnum(d));
    else if (d.layout !== null) {
      any = true;
      parts.push(emitRecord(d));
    }
  }
  if (!any && parts.length === 0) return null;
  return `${headerLine}// AssemblyScript accessors; compile with asc --enable threads (atomic fields).\n\n${parts.join('\n')}`;
}

function emitEnum(e: EnumModel): string {
  let s = `export enum ${e.name} {\n`;
  for (const v of e.values) s += `  ${v.name} = ${v.value},\n`;
  s += `}\n\n`;
  s += `/** True for a value this side knows, the reserved invalid 0 excluded. */\n`;
  s += `export function isValid${e.name}(v: u32): bool {\n`;
  const valid = e.values.filter((v) => v.value !== 0);
  s += valid.length === 0 ? `  return false;\n` : `  return ${valid.map((v) => `v == ${v.value}`).join(' || ')};\n`;
  s += `}\n`;
  return s;
}

function emitRecord(m: MessageModel): string {
  const layout = m.layout;
  if (layout === null) throw new GenError(`${m.name}: not fixed-layout`);
  let s = `/** ${m.name}: ${layout.size} bytes, ${layout.align}-byte aligned. */\n`;
  s += `export namespace ${m.name} {\n`;
  s += `  export const SIZE: u32 = ${layout.size};\n  export const ALIGN: u32 = ${layout.align};\n`;
  for (const f of layout.fields) {
    s += `  export const OFFSET_${upper(f.name)}: u32 = ${f.offset};\n`;
    if (f.repr === 'bytes') s += `  export const LENGTH_${upper(f.name)}: u32 = ${f.size};\n`;
  }
  for (const f of layout.fields) {
    if (f.repr === 'bytes') continue;
    const P = pascal(f.name);
    const t = AS_TYPE[f.repr];
    const vt = AS_VALUE[f.repr];
    if (f.atomic) {
      s += `  // @ts-ignore: decorator\n  @inline export function load${P}(base: usize): u32 {\n    return atomic.load<u32>(base, ${f.offset});\n  }\n`;
      s += `  // @ts-ignore: decorator\n  @inline export function store${P}(base: usize, v: u32): void {\n    atomic.store<u32>(base, v, ${f.offset});\n  }\n`;
      continue;
    }
    if (f.repr === 'bool') {
      s += `  // @ts-ignore: decorator\n  @inline export function get${P}(base: usize): bool {\n    return load<u8>(base, ${f.offset}) != 0;\n  }\n`;
      s += `  // @ts-ignore: decorator\n  @inline export function set${P}(base: usize, v: bool): void {\n    store<u8>(base, v ? 1 : 0, ${f.offset});\n  }\n`;
      continue;
    }
    s += `  // @ts-ignore: decorator\n  @inline export function get${P}(base: usize): ${vt} {\n    return <${vt}>load<${t}>(base, ${f.offset});\n  }\n`;
    s += `  // @ts-ignore: decorator\n  @inline export function set${P}(base: usize, v: ${vt}): void {\n    store<${t}>(base, <${t}>v, ${f.offset});\n  }\n`;
  }
  s += `}\n`;
  return s;
}
