// Declarative C struct layouts. Each kernel ABI struct is declared once (field name ->
// offset, width) and every accessor goes through that declaration, so a byte offset is
// never written twice. All access is little-endian: these are x86-64 native structs.

export type ScalarKind = 'u8' | 'u16' | 'u32' | 'i32' | 'u64';
export interface Scalar<K extends ScalarKind = ScalarKind> { readonly kind: K; readonly offset: number; readonly size: number }
export interface Bytes { readonly kind: 'bytes'; readonly offset: number; readonly size: number }
export interface Nested<L extends Layout = Layout> { readonly kind: 'struct'; readonly offset: number; readonly size: number; readonly layout: L }
export type Field = Scalar | Bytes | Nested;
export interface Layout<F extends Record<string, Field> = Record<string, Field>> {
  readonly name: string;
  readonly size: number;
  readonly fields: F;
}

const WIDTH = { u8: 1, u16: 2, u32: 4, i32: 4, u64: 8 } as const satisfies Record<ScalarKind, number>;
const scalar = <K extends ScalarKind>(kind: K) => (offset: number): Scalar<K> => ({ kind, offset, size: WIDTH[kind] });
export const u8 = scalar('u8');
export const u16 = scalar('u16');
export const u32 = scalar('u32');
export const i32 = scalar('i32');
export const u64 = scalar('u64');
export const bytes = (offset: number, size: number): Bytes => ({ kind: 'bytes', offset, size });
export const nested = <L extends Layout>(offset: number, layout: L): Nested<L> => ({ kind: 'struct', offset, size: layout.size, layout });

/** Declares a struct; a field outside the struct or misaligned is a programming error and throws at load time. */
export function defineLayout<F extends Record<string, Field>>(name: string, size: number, fields: F): Layout<F> {
  for (const [key, f] of Object.entries(fields)) {
    const align = f.kind === 'bytes' || f.kind === 'struct' ? 1 : f.size;
    if (f.offset < 0 || f.offset + f.size > size || f.offset % align !== 0) {
      throw new RangeError(`layout ${name}.${key}: offset ${f.offset} size ${f.size} does not fit in ${size}`);
    }
  }
  return { name, size, fields };
}

type Fields<L extends Layout> = L['fields'];
type KeysOf<L extends Layout, T> = { [K in keyof Fields<L>]: Fields<L>[K] extends T ? K : never }[keyof Fields<L>] & string;
type NestedOf<F> = F extends Nested<infer N> ? N : never;
type ValueOf<F> = F extends Scalar<'u64'> ? bigint : number;

/** The scalar fields of a struct as a plain object (u64 as bigint). */
export type ScalarValues<L extends Layout> = { [K in KeysOf<L, Scalar>]: ValueOf<Fields<L>[K]> };

const isScalar = (f: Field): f is Scalar => f.kind !== 'bytes' && f.kind !== 'struct';

/** A typed window onto one struct instance inside a buffer; no copy. */
export class StructView<L extends Layout> {
  private readonly dv: DataView;

  constructor(readonly layout: L, readonly buffer: Uint8Array, readonly base = 0) {
    if (base < 0 || base + layout.size > buffer.byteLength) {
      throw new RangeError(`${layout.name} at ${base} exceeds buffer of ${buffer.byteLength} bytes`);
    }
    this.dv = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }

  /** A zeroed, freshly allocated instance. */
  static alloc<L extends Layout>(layout: L, extra = 0): StructView<L> {
    return new StructView(layout, new Uint8Array(layout.size + extra));
  }

  get<K extends KeysOf<L, Scalar>>(key: K): ValueOf<Fields<L>[K]> {
    const f = this.layout.fields[key] as Scalar;
    const at = this.base + f.offset;
    let v: number | bigint;
    switch (f.kind) {
      case 'u8': v = this.dv.getUint8(at); break;
      case 'u16': v = this.dv.getUint16(at, true); break;
      case 'u32': v = this.dv.getUint32(at, true); break;
      case 'i32': v = this.dv.getInt32(at, true); break;
      case 'u64': v = this.dv.getBigUint64(at, true); break;
      default: { const never: never = f.kind; throw new Error(`unknown kind ${String(never)}`); }
    }
    return v as ValueOf<Fields<L>[K]>;
  }

  set<K extends KeysOf<L, Scalar>>(key: K, value: ValueOf<Fields<L>[K]>): this {
    const f = this.layout.fields[key] as Scalar;
    const at = this.base + f.offset;
    switch (f.kind) {
      case 'u8': this.dv.setUint8(at, Number(value)); break;
      case 'u16': this.dv.setUint16(at, Number(value), true); break;
      case 'u32': this.dv.setUint32(at, Number(value), true); break;
      case 'i32': this.dv.setInt32(at, Number(value), true); break;
      // BigInt.asUintN lets callers pass negative sentinels (e.g. -1n) as two's complement.
      case 'u64': this.dv.setBigUint64(at, BigInt.asUintN(64, BigInt(value)), true); break;
      default: { const never: never = f.kind; throw new Error(`unknown kind ${String(never)}`); }
    }
    return this;
  }

  toObject(): ScalarValues<L> {
    const out: Record<string, number | bigint> = {};
    for (const [key, f] of Object.entries(this.layout.fields)) if (isScalar(f)) out[key] = this.get(key as KeysOf<L, Scalar>);
    return out as ScalarValues<L>;
  }

  /** Writes every scalar present in `values`; other fields keep their bytes. */
  assign(values: Partial<ScalarValues<L>>): this {
    for (const [key, v] of Object.entries(values)) {
      const f = this.layout.fields[key];
      if (f === undefined || !isScalar(f)) throw new RangeError(`${this.layout.name} has no scalar field ${key}`);
      if (v !== undefined) this.set(key as KeysOf<L, Scalar>, v as ValueOf<Fields<L>[KeysOf<L, Scalar>]>);
    }
    return this;
  }

  /** The bytes of a byte-array field, aliasing the underlying buffer. */
  bytes(key: KeysOf<L, Bytes>): Uint8Array {
    const f = this.layout.fields[key] as Bytes;
    return this.buffer.subarray(this.base + f.offset, this.base + f.offset + f.size);
  }

  /** A view of a nested struct field. */
  struct<K extends KeysOf<L, Nested>>(key: K): StructView<NestedOf<Fields<L>[K]>> {
    const f = this.layout.fields[key] as Nested<NestedOf<Fields<L>[K]>>;
    return new StructView(f.layout, this.buffer, this.base + f.offset);
  }

  /** The index-th element of an array of `layout` that starts at `offset` from this struct. */
  element<E extends Layout>(layout: E, offset: number, index: number): StructView<E> {
    return new StructView(layout, this.buffer, this.base + offset + index * layout.size);
  }
}
