// Reads the .proto files with protobufjs's parser and turns them into the
// small model the emitters need, enforcing the IDL conventions on the way
// (see idl/README.md). Every convention violation is a GenError naming the
// file and field, so a bad spec fails generation rather than producing code.

import path from 'node:path';
import { createRequire } from 'node:module';
import protobuf from 'protobufjs';

export class GenError extends Error {
  override readonly name = 'GenError';
  readonly code = 'GEN' as const;
}

export type ScalarType =
  | 'double' | 'float' | 'int32' | 'uint32' | 'sint32' | 'fixed32' | 'sfixed32'
  | 'int64' | 'uint64' | 'sint64' | 'fixed64' | 'sfixed64' | 'bool' | 'string' | 'bytes';

const SCALARS: ReadonlySet<string> = new Set<ScalarType>([
  'double', 'float', 'int32', 'uint32', 'sint32', 'fixed32', 'sfixed32',
  'int64', 'uint64', 'sint64', 'fixed64', 'sfixed64', 'bool', 'string', 'bytes',
]);

export interface EnumValueModel {
  readonly name: string;
  readonly value: number;
  readonly comment: string | null;
}

export interface EnumModel {
  readonly kind: 'enum';
  readonly name: string;
  readonly file: string;
  readonly comment: string | null;
  readonly values: readonly EnumValueModel[];
}

export type FieldType =
  | { readonly kind: 'scalar'; readonly scalar: ScalarType }
  | { readonly kind: 'enum'; readonly name: string }
  | { readonly kind: 'message'; readonly name: string };

export interface FieldModel {
  readonly name: string; // as in the .proto (snake_case)
  readonly id: number;
  readonly type: FieldType;
  readonly repeated: boolean;
  readonly oneof: string | null;
  readonly comment: string | null;
  readonly options: Readonly<Record<string, unknown>>;
}

export interface OneofModel {
  readonly name: string;
  readonly fields: readonly string[];
}

/** A fixed-layout field with its computed place in the record. */
export interface LayoutField {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  readonly repr: 'u8' | 'u16' | 'u32' | 'u64' | 'i8' | 'i16' | 'i32' | 'i64' | 'bool' | 'bytes';
  readonly enumName: string | null;
  readonly atomic: boolean;
  readonly comment: string | null;
}

export interface MessageModel {
  readonly kind: 'message';
  readonly name: string;
  readonly file: string;
  readonly comment: string | null;
  readonly fields: readonly FieldModel[];
  readonly oneofs: readonly OneofModel[];
  /** Present for fixed-layout records. */
  readonly layout: { readonly size: number; readonly align: number; readonly fields: readonly LayoutField[] } | null;
}

export type Decl = EnumModel | MessageModel;

export interface FileModel {
  readonly name: string; // base name without .proto, e.g. "control"
  readonly source: string; // path relative to the proto root
  readonly decls: readonly Decl[];
}

export interface Model {
  readonly files: readonly FileModel[];
  readonly byName: ReadonlyMap<string, Decl>;
}

const OPT = (name: string): string => `(microhv.idl.${name})`;

function fail(where: string, msg: string): never {
  throw new GenError(`${where}: ${msg}`);
}

/** Loads `files` (relative to `protoRoot`) and builds the model. */
export function loadModel(protoRoot: string, files: readonly string[]): Model {
  const require = createRequire(import.meta.url);
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string =>
    target.startsWith('google/protobuf/')
      ? require.resolve(`protobufjs/${target}`)
      : path.resolve(protoRoot, target);
  root.loadSync([...files], { keepCase: true, alternateCommentMode: true });
  root.resolveAll();

  const wanted = new Set(files.map((f) => path.resolve(protoRoot, f)));
  const perFile = new Map<string, Decl[]>();
  const byName = new Map<string, Decl>();

  const visit = (ns: protobuf.NamespaceBase): void => {
    for (const obj of ns.nestedArray) {
      const filename = obj.filename === null ? null : path.resolve(obj.filename);
      if (obj instanceof protobuf.Type) {
        if (filename !== null && wanted.has(filename)) {
          if (obj.nestedArray.length > 0) fail(obj.fullName, 'nested declarations are not supported; declare them at file level');
          add(filename, convertMessage(obj, relName(protoRoot, filename)));
        }
      } else if (obj instanceof protobuf.Enum) {
        if (filename !== null && wanted.has(filename)) add(filename, convertEnum(obj, relName(protoRoot, filename)));
      } else if (obj instanceof protobuf.Namespace) {
        visit(obj);
      }
    }
  };
  const add = (filename: string, d: Decl): void => {
    if (byName.has(d.name)) fail(d.name, 'declared twice; names must be unique across all .proto files');
    byName.set(d.name, d);
    const list = perFile.get(filename) ?? [];
    list.push(d);
    perFile.set(filename, list);
  };
  visit(root);

  const model: Model = {
    byName,
    files: files.map((f) => {
      const abs = path.resolve(protoRoot, f);
      return { name: path.basename(f, '.proto'), source: f, decls: perFile.get(abs) ?? [] };
    }),
  };
  validate(model);
  return model;
}

function relName(protoRoot: string, abs: string): string {
  return path.relative(protoRoot, abs);
}

function clean(comment: string | null | undefined): string | null {
  if (comment === null || comment === undefined) return null;
  const c = comment.trim();
  return c.length === 0 ? null : c;
}

function convertEnum(e: protobuf.Enum, file: string): EnumModel {
  const values = Object.entries(e.values).map(([name, value]) => ({
    name,
    value,
    comment: clean(e.comments[name]),
  }));
  const zero = values.find((v) => v.value === 0);
  if (zero === undefined || !zero.name.endsWith('_INVALID')) {
    fail(e.fullName, 'value 0 must exist and be named *_INVALID (the reserved invalid value)');
  }
  for (const v of values) {
    if (v.value < 0) fail(`${e.fullName}.${v.name}`, 'negative enum values are not allowed');
  }
  return { kind: 'enum', name: e.name, file, comment: clean(e.comment), values };
}

function convertMessage(t: protobuf.Type, file: string): MessageModel {
  const fields: FieldModel[] = t.fieldsArray.map((f) => {
    if (f.map) fail(`${t.fullName}.${f.name}`, 'map fields are not supported');
    let type: FieldType;
    if (SCALARS.has(f.type)) type = { kind: 'scalar', scalar: f.type as ScalarType };
    else if (f.resolvedType instanceof protobuf.Enum) type = { kind: 'enum', name: f.resolvedType.name };
    else if (f.resolvedType instanceof protobuf.Type) type = { kind: 'message', name: f.resolvedType.name };
    else fail(`${t.fullName}.${f.name}`, `unresolved type ${f.type}`);
    return {
      name: f.name,
      id: f.id,
      type,
      repeated: f.repeated,
      oneof: f.partOf === null ? null : f.partOf.name,
      comment: clean(f.comment),
      options: f.options ?? {},
    };
  });
  const oneofs = t.oneofsArray.map((o) => ({ name: o.name, fields: [...o.oneof] }));
  const opts = t.options ?? {};
  const fixed = opts[OPT('fixed_layout')] === true;
  const layout = fixed ? computeLayout(t.fullName, fields, opts[OPT('size')]) : null;
  if (!fixed) {
    for (const f of fields) {
      for (const k of ['width', 'atomic', 'length']) {
        if (f.options[OPT(k)] !== undefined) fail(`${t.fullName}.${f.name}`, `(${k}) only applies to fixed-layout records`);
      }
    }
  }
  return { kind: 'message', name: t.name, file, comment: clean(t.comment), fields, oneofs, layout };
}

function computeLayout(
  where: string,
  fields: readonly FieldModel[],
  declaredSize: unknown,
): { size: number; align: number; fields: LayoutField[] } {
  let offset = 0;
  let align = 1;
  const out: LayoutField[] = [];
  fields.forEach((f, i) => {
    const at = `${where}.${f.name}`;
    if (f.id !== i + 1) fail(at, `field numbers of a fixed-layout record must be 1, 2, 3... in order (got ${f.id})`);
    if (f.repeated || f.oneof !== null) fail(at, 'repeated and oneof fields cannot be fixed-layout');
    const width = f.options[OPT('width')];
    const atomic = f.options[OPT('atomic')] === true;
    let repr: LayoutField['repr'];
    let size: number;
    let enumName: string | null = null;
    const narrow = (signed: boolean): void => {
      const w = width === undefined ? 4 : width;
      if (w !== 1 && w !== 2 && w !== 4) fail(at, `(width) must be 1, 2 or 4, got ${String(w)}`);
      size = w;
      repr = `${signed ? 'i' : 'u'}${w * 8}` as LayoutField['repr'];
    };
    size = 0;
    repr = 'u8';
    if (f.type.kind === 'enum') {
      enumName = f.type.name;
      narrow(false);
    } else if (f.type.kind === 'message') {
      fail(at, 'message-typed fields cannot be fixed-layout; inline the fields');
    } else {
      switch (f.type.scalar) {
        case 'fixed32': narrow(false); break;
        case 'sfixed32': narrow(true); break;
        case 'fixed64': size = 8; repr = 'u64'; break;
        case 'sfixed64': size = 8; repr = 'i64'; break;
        case 'bool': size = 1; repr = 'bool'; break;
        case 'bytes': {
          const len = f.options[OPT('length')];
          if (typeof len !== 'number' || !Number.isInteger(len) || len <= 0) fail(at, 'a fixed-layout bytes field needs (length) > 0');
          size = len;
          repr = 'bytes';
          break;
        }
        default:
          fail(at, `type ${f.type.scalar} has no fixed width; use fixed32/fixed64/sfixed32/sfixed64/bool/enum/bytes`);
      }
      if (width !== undefined && f.type.scalar !== 'fixed32' && f.type.scalar !== 'sfixed32') fail(at, '(width) only applies to fixed32, sfixed32 and enum fields');
    }
    if (atomic && size !== 4) fail(at, '(atomic) fields must be 4 bytes wide');
    const fieldAlign = repr === 'bytes' ? 1 : size;
    if (offset % fieldAlign !== 0) {
      fail(at, `offset ${offset} is not ${fieldAlign}-byte aligned; add an explicit reserved field before it`);
    }
    align = Math.max(align, fieldAlign);
    out.push({ name: f.name, offset, size, repr, enumName, atomic, comment: f.comment });
    offset += size;
  });
  if (offset % align !== 0) fail(where, `size ${offset} is not a multiple of its alignment ${align}; add trailing padding`);
  if (declaredSize !== undefined && declaredSize !== offset) fail(where, `(size) says ${String(declaredSize)} but the fields add up to ${offset}`);
  return { size: offset, align, fields: out };
}

function validate(model: Model): void {
  const enumNames = new Set<string>();
  for (const d of model.byName.values()) if (d.kind === 'enum') for (const v of d.values) enumNames.add(v.name);
  for (const d of model.byName.values()) {
    if (d.kind !== 'message') continue;
    for (const f of d.fields) {
      const at = `${d.name}.${f.name}`;
      if (f.type.kind === 'message') {
        const target = model.byName.get(f.type.name);
        if (target === undefined || target.kind !== 'message') fail(at, `unknown message ${f.type.name}`);
        if (target.layout !== null && d.layout === null) fail(at, 'a fixed-layout record cannot be embedded in a protobuf message');
      }
      if (f.options[OPT('fd')] === true && (f.type.kind !== 'scalar' || f.type.scalar !== 'uint32' || f.repeated)) {
        fail(at, '(fd) fields must be singular uint32');
      }
      const req = f.options[OPT('requires')];
      if (req !== undefined && (typeof req !== 'string' || !enumNames.has(req))) fail(at, `(requires) names no enum value: ${String(req)}`);
      const sender = f.options[OPT('sender')];
      if (sender !== undefined && sender !== 'microhv' && sender !== 'domain' && sender !== 'either') {
        fail(at, `(sender) must be "microhv", "domain" or "either", got ${String(sender)}`);
      }
      if ((req !== undefined || sender !== undefined) && f.oneof === null) fail(at, '(requires) and (sender) apply to oneof members only');
    }
    // Recursive message types would let hostile input drive unbounded
    // recursion in the decoder; the control protocol has no need for them.
    checkAcyclic(model, d.name, []);
  }
}

function checkAcyclic(model: Model, name: string, stack: string[]): void {
  if (stack.includes(name)) fail(name, `recursive message type (${[...stack, name].join(' -> ')})`);
  const d = model.byName.get(name);
  if (d === undefined || d.kind !== 'message') return;
  for (const f of d.fields) if (f.type.kind === 'message') checkAcyclic(model, f.type.name, [...stack, name]);
}

export function camel(snake: string): string {
  return snake.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

export function pascal(snake: string): string {
  const c = camel(snake);
  return c.charAt(0).toUpperCase() + c.slice(1);
}

export function optionOf(f: FieldModel, name: string): unknown {
  return f.options[OPT(name)];
}
