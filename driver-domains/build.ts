// Builds the stub-domain modules: AssemblyScript -> wasm (asc compiler API), optimized
// with binaryen at -O3, then checked against the ABI rules that make restart exact
// (runtime/ABI.md, "State"): no mutable global, no start function, one fixed page of
// memory, no memory.grow, no `unreachable` (a guest must never be able to trap a module),
// and only the imports its kind may use. Output: build/driver-domains/<kind>.wasm.
//
// Run as a script (`node dist/driver-domains/build.js`, the `driver-domains-wasm` make
// target) or through ensureBuilt(), which the test harness calls so that a stale or
// missing module is rebuilt before use, never skipped.
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import binaryen from 'binaryen';
import { IMPORT_MODULE, MEMORY_MAP, STUB_FUNCTIONS, STUB_IMPORTS, STUB_KINDS, type StubKind } from './runtime/abi.js';
import { StubDomainError } from './runtime/errors.js';

export interface BuiltModule {
  readonly kind: StubKind;
  readonly path: string;
  readonly bytes: Uint8Array;
  /** Size straight out of asc, before binaryen, for the build report. */
  readonly unoptimizedSize: number;
}

/** The repository root: the nearest ancestor of this file that holds package.json (works from dist/ too). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new StubDomainError('BUILD_FAILED', 'no package.json above driver-domains/build');
    dir = parent;
  }
}

export function entryPoint(root: string, kind: StubKind): string {
  return join(root, 'driver-domains', kind, 'assembly', 'index.ts');
}

export function outputPath(root: string, kind: StubKind): string {
  return join(root, 'build', 'driver-domains', `${kind}.wasm`);
}

/** Every file whose change must trigger a rebuild of `kind`. */
export function buildInputs(root: string, kind: StubKind): string[] {
  const dirs = [join(root, 'driver-domains', kind, 'assembly'), join(root, 'driver-domains', 'common', 'assembly')];
  const files = dirs.flatMap((d) => readdirSync(d).filter((f) => f.endsWith('.ts')).map((f) => join(d, f)));
  const builder = ['build.ts', 'build.js'].map((f) => join(root, 'driver-domains', f)).filter((f) => existsSync(f));
  return [...files, ...builder, join(root, 'node_modules', 'assemblyscript', 'package.json'), join(root, 'node_modules', 'binaryen', 'package.json')];
}

export function isStale(root: string, kind: StubKind): boolean {
  const out = outputPath(root, kind);
  if (!existsSync(out)) return true;
  const built = statSync(out).mtimeMs;
  return buildInputs(root, kind).some((f) => statSync(f).mtimeMs > built);
}

/** asc options: the stub runtime (no GC, nothing allocates), one fixed page, no abort import. */
function ascArgs(entry: string): string[] {
  return [
    entry,
    '--outFile', 'module.wasm',
    '--runtime', 'stub',
    '--noAssert',
    '--initialMemory', String(MEMORY_MAP.pages),
    '--maximumMemory', String(MEMORY_MAP.pages),
    '--memoryBase', String(MEMORY_MAP.staticDataBase),
    // Without abort the compiler emits no `env.abort` import; the check below then proves
    // that no path can reach a trap either.
    '--use', 'abort=',
    '--noColors',
  ];
}

/**
 * The slice of the asc compiler API used here, declared locally: importing asc's own typings would add
 * AssemblyScript's global `console` namespace to every file of the project and hide Node's console.
 */
interface AscApi {
  main(argv: string[], options: {
    readFile(name: string, baseDir: string): string | null;
    writeFile(name: string, contents: Uint8Array | string, baseDir: string): void;
    listFiles(dirname: string, baseDir: string): string[];
    stdout: { write(chunk: Uint8Array | string): void };
    stderr: { write(chunk: Uint8Array | string): void };
  }): Promise<{ error: Error | null }>;
}
const ASC_MODULE: string = 'assemblyscript/asc';
const loadAsc = async (): Promise<AscApi> => ((await import(ASC_MODULE)) as { default: AscApi }).default;

async function compile(root: string, kind: StubKind): Promise<Uint8Array> {
  let binary: Uint8Array | undefined;
  const diagnostics: string[] = [];
  const asc = await loadAsc();
  const result = await asc.main(ascArgs(relative(root, entryPoint(root, kind))), {
    readFile: (name, baseDir) => {
      const path = join(baseDir, name);
      return existsSync(path) ? readFileUtf8(path) : null;
    },
    writeFile: (name, contents) => {
      if (name.endsWith('.wasm') && typeof contents !== 'string') binary = contents;
    },
    listFiles: () => [],
    stdout: { write: () => undefined },
    stderr: { write: (chunk) => void diagnostics.push(typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk)) },
  });
  if (result.error !== null || binary === undefined) {
    throw new StubDomainError('BUILD_FAILED', `${kind}: asc failed\n${diagnostics.join('')}`, { cause: result.error ?? undefined });
  }
  return binary;
}

function readFileUtf8(path: string): string {
  return readFileSync(path, 'utf8');
}

/** Checks an optimized module against the ABI's restart rules; returns what it found wrong. */
export function abiViolations(kind: StubKind, mod: binaryen.Module): string[] {
  const problems: string[] = [];
  for (let i = 0; i < mod.getNumGlobals(); i++) {
    const g = binaryen.getGlobalInfo(mod.getGlobalByIndex(i));
    if (g.mutable) problems.push(`mutable global ${g.name}: state outside linear memory`);
    if (g.module !== null && g.module !== '') problems.push(`imported global ${g.module}.${g.base ?? ''}`);
  }
  const allowed: readonly string[] = STUB_IMPORTS[kind];
  for (let i = 0; i < mod.getNumFunctions(); i++) {
    const f = binaryen.getFunctionInfo(mod.getFunctionByIndex(i));
    if (f.module !== null && f.module !== '' && (f.module !== IMPORT_MODULE || !allowed.includes(f.base ?? ''))) {
      problems.push(`import ${f.module}.${f.base ?? ''} is not allowed for ${kind}`);
    }
  }
  if (!mod.hasMemory()) problems.push('no memory');
  else {
    const mem = mod.getMemoryInfo();
    if (mem.module !== null && mem.module !== '') problems.push('imported memory');
    if (mem.initial !== MEMORY_MAP.pages || mem.max !== MEMORY_MAP.pages) {
      problems.push(`memory is ${mem.initial}..${String(mem.max)} pages, not exactly ${MEMORY_MAP.pages}`);
    }
  }
  if (mod.getStart() !== 0) problems.push('start function: it could set state a restore would not see');
  const text = mod.emitText();
  if (/\bunreachable\b/.test(text)) problems.push('contains unreachable: some input could trap the module');
  if (/\bmemory\.grow\b/.test(text)) problems.push('contains memory.grow');
  const exported = new Set<string>();
  for (let i = 0; i < mod.getNumExports(); i++) exported.add(binaryen.getExportInfo(mod.getExportByIndex(i)).name);
  for (const name of [...STUB_FUNCTIONS[kind], 'memory']) if (!exported.has(name)) problems.push(`missing export ${name}`);
  return problems;
}

/**
 * What the modules may use: AssemblyScript's defaults that Node 20 runs (memory.fill and
 * memory.copy come from bulk memory). Passes may not introduce anything beyond these.
 */
const WASM_FEATURES = binaryen.Features.MutableGlobals | binaryen.Features.NontrappingFPToInt
  | binaryen.Features.SignExt | binaryen.Features.BulkMemory | binaryen.Features.BulkMemoryOpt;

/** Optimizes with binaryen (-O3) and validates; throws ABI_VIOLATION with every problem found. */
export function optimize(kind: StubKind, unoptimized: Uint8Array): Uint8Array {
  // readBinaryWithFeatures is declared but missing from binaryen.js 132, hence setFeatures.
  const mod = binaryen.readBinary(unoptimized);
  mod.setFeatures(WASM_FEATURES);
  try {
    binaryen.setOptimizeLevel(3);
    binaryen.setShrinkLevel(0);
    mod.optimize();
    if (!mod.validate()) throw new StubDomainError('BUILD_FAILED', `${kind}: binaryen validation failed`);
    const problems = abiViolations(kind, mod);
    if (problems.length > 0) {
      throw new StubDomainError('ABI_VIOLATION', `${kind}: ${problems.join('; ')}`);
    }
    return mod.emitBinary();
  } finally {
    mod.dispose();
  }
}

export async function buildModule(root: string, kind: StubKind): Promise<BuiltModule> {
  const unoptimized = await compile(root, kind);
  const bytes = optimize(kind, unoptimized);
  const path = outputPath(root, kind);
  mkdirSync(dirname(path), { recursive: true });
  // Write then rename: parallel test workers may build the same module at once.
  const tmp = `${path}.${process.pid}.${Math.random().toString(16).slice(2)}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
  return { kind, path, bytes, unoptimizedSize: unoptimized.length };
}

/** A lock older than this belongs to a builder that died; it is broken. */
const LOCK_STALE_MS = 120_000;

/**
 * Runs `fn` while holding a cross-process lock (an exclusive mkdir), so that parallel test
 * workers build a stale module once instead of all at the same time on a small machine.
 */
async function withBuildLock<T>(root: string, kind: StubKind, fn: () => Promise<T>): Promise<T> {
  const lock = `${outputPath(root, kind)}.lock`;
  mkdirSync(dirname(lock), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        if (Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS) rmSync(lock, { recursive: true, force: true });
      } catch {
        // Released between the two calls: just retry.
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** The path of an up-to-date build of `kind`, building it first if it is missing or stale. */
export async function ensureBuilt(root: string, kind: StubKind): Promise<string> {
  if (isStale(root, kind)) {
    await withBuildLock(root, kind, async () => {
      // Another process may have built it while this one waited for the lock.
      if (isStale(root, kind)) await buildModule(root, kind);
    });
  }
  return outputPath(root, kind);
}

async function main(): Promise<void> {
  const root = repoRoot();
  for (const kind of STUB_KINDS) {
    const built = await buildModule(root, kind);
    process.stdout.write(`${relative(root, built.path)}: ${built.bytes.length} bytes (asc ${built.unoptimizedSize}, binaryen -O3)\n`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`driver-domains build: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
