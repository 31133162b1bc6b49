// Fuzz driver for the IDL decoders (targets.ts).
//
//   node .cache/idl-dist/idl/fuzz/run.js --seconds 10 [--engine auto|jazzer|builtin] [target...]
//
// Engine "jazzer" runs each target under @jazzer.js (coverage-guided
// libFuzzer). Its native addon is prebuilt against glibc 2.38; on an older
// glibc (Debian 12 has 2.36) it cannot load, and "auto" then falls back to
// "builtin": a mutation fuzzer (bit flips, AFL-style arithmetic, interesting
// integers, splices, insertions and cuts) guided by V8's own block coverage
// (inspector Profiler.takePreciseCoverage): an input that reaches a new
// block, or a block a new order-of-magnitude number of times, joins the
// corpus. It calls the same fuzz() functions. Either way a finding is written
// to .cache/fuzz/crashes/ and the exit status is 1.

import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import inspector from 'node:inspector';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TARGETS } from './targets.js';
import type { FuzzTarget } from './targets.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
// .cache/idl-dist/idl/fuzz -> repository root
const REPO = path.resolve(HERE, '../../../..');
const OUT = path.join(REPO, '.cache', 'fuzz');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

function jazzerLoads(): boolean {
  try {
    createRequire(import.meta.url)('@jazzer.js/fuzzer');
    return true;
  } catch {
    return false;
  }
}

function corpusDir(t: FuzzTarget): string {
  const dir = path.join(OUT, 'corpus', t.name);
  fs.mkdirSync(dir, { recursive: true });
  for (const s of t.seeds()) fs.writeFileSync(path.join(dir, `seed-${crypto.createHash('sha1').update(s).digest('hex')}`), s);
  return dir;
}

function saveCrash(t: FuzzTarget, input: Uint8Array, err: unknown): string {
  const dir = path.join(OUT, 'crashes');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${t.name}-${crypto.createHash('sha1').update(input).digest('hex')}`);
  fs.writeFileSync(file, input);
  console.error(`fuzz ${t.name}: finding saved to ${path.relative(REPO, file)}\n`, err);
  return file;
}

function runJazzer(t: FuzzTarget, seconds: number): boolean {
  const file = path.join(HERE, `${t.name}.fuzz.js`);
  const r = spawnSync(path.join(REPO, 'node_modules', '.bin', 'jazzer'), [file, corpusDir(t), '--sync', '--', `-max_total_time=${seconds}`], {
    cwd: REPO,
    stdio: 'inherit',
  });
  return r.status === 0;
}

// Deterministic per run (seeded from the clock, printed so a run can be repeated).
let rngState = 0;
function rand(n: number): number {
  rngState ^= rngState << 13;
  rngState ^= rngState >>> 17;
  rngState ^= rngState << 5;
  return (rngState >>> 0) % n;
}

const INTERESTING32 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x10001, 0x7fffffff, 0x80000000, 0xffffffff, 16, 17, 65535];

function mutate(input: Uint8Array, pool: readonly Uint8Array[]): Uint8Array {
  let b = Uint8Array.from(input);
  const rounds = 1 + rand(4);
  for (let r = 0; r < rounds; r++) {
    switch (rand(11)) {
      case 10: {
        // Replace one byte with a whole varint (protobuf integers and lengths).
        const at = rand(b.length + 1);
        let v = [rand(128), rand(1 << 14), rand(1 << 21), rand(0x7fffffff)][rand(4)] as number;
        const varint: number[] = [];
        while (v > 0x7f) {
          varint.push((v & 0x7f) | 0x80);
          v >>>= 7;
        }
        varint.push(v);
        b = Uint8Array.from([...b.subarray(0, at), ...varint, ...b.subarray(at + 1)]);
        break;
      }
      case 7:
        // Arithmetic on one byte, as AFL does: counts and small lengths.
        if (b.length > 0) {
          const at = rand(b.length);
          b[at] = ((b[at] as number) + (rand(2) === 0 ? 1 : -1) * (1 + rand(16))) & 0xff;
        }
        break;
      case 8:
        // Arithmetic on a little-endian u32: lengths and indices.
        if (b.length >= 4) {
          const at = rand(b.length - 3);
          const dv = new DataView(b.buffer, b.byteOffset); // fuzz input words, not a record layout
          dv.setUint32(at, (dv.getUint32(at, true) + (rand(2) === 0 ? 1 : -1) * (1 + rand(64))) >>> 0, true);
        }
        break;
      case 9:
        // A small integer into one byte (fd counts, enum values, field numbers).
        if (b.length > 0) b[rand(b.length)] = rand(17);
        break;
      case 0:
        if (b.length > 0) {
          const at = rand(b.length);
          b[at] = (b[at] as number) ^ (1 << rand(8));
        }
        break;
      case 1:
        if (b.length > 0) b[rand(b.length)] = [0, 0xff, 0x7f, 0x80, 1][rand(5)] as number;
        break;
      case 2:
        if (b.length >= 4) {
          const at = rand(b.length - 3);
          new DataView(b.buffer).setUint32(at, INTERESTING32[rand(INTERESTING32.length)] as number, rand(2) === 0); // fuzz input, either byte order on purpose
        }
        break;
      case 3: {
        const at = rand(b.length + 1);
        const extra = Uint8Array.from({ length: 1 + rand(8) }, () => rand(256));
        b = Uint8Array.from([...b.subarray(0, at), ...extra, ...b.subarray(at)]);
        break;
      }
      case 4:
        if (b.length > 1) {
          const at = rand(b.length);
          b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + 1 + rand(Math.min(16, b.length - at)))]);
        }
        break;
      case 5: {
        const other = pool[rand(pool.length)] as Uint8Array;
        const cut = rand(b.length + 1);
        b = Uint8Array.from([...b.subarray(0, cut), ...other.subarray(rand(other.length + 1))]);
        break;
      }
      default:
        if (b.length > 0) {
          const at = rand(b.length);
          const len = 1 + rand(Math.min(32, b.length - at));
          b = Uint8Array.from([...b.subarray(0, at + len), ...b.subarray(at, at + len), ...b.subarray(at + len)]);
        }
    }
  }
  return b.length > 8192 ? b.subarray(0, 8192) : b;
}

/** V8 block coverage of the IDL code, taken (and reset) after each input. */
class Coverage {
  private readonly session = new inspector.Session();
  private readonly seen = new Set<string>();

  constructor() {
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  // The in-thread inspector session answers synchronously.
  private post(method: string, params?: object): unknown {
    let result: unknown;
    let error: unknown = null;
    let answered = false;
    this.session.post(method, params, (err, res) => {
      answered = true;
      error = err;
      result = res;
    });
    if (!answered) throw new Error(`inspector ${method} did not answer synchronously`);
    if (error !== null) throw error;
    return result;
  }

  /** Number of new (block, hit-count bucket) pairs the last input reached. */
  novelty(): number {
    const r = this.post('Profiler.takePreciseCoverage') as {
      result: Array<{ url: string; functions: Array<{ ranges: Array<{ startOffset: number; endOffset: number; count: number }> }> }>;
    };
    let fresh = 0;
    for (const script of r.result) {
      if (!script.url.includes('/idl-dist/idl/') || script.url.includes('/fuzz/')) continue;
      for (const fn of script.functions) {
        for (const range of fn.ranges) {
          if (range.count === 0) continue;
          const key = `${script.url}:${range.startOffset}:${range.endOffset}:${Math.min(8, Math.floor(Math.log2(range.count)))}`;
          if (!this.seen.has(key)) {
            this.seen.add(key);
            fresh++;
          }
        }
      }
    }
    return fresh;
  }

  get size(): number {
    return this.seen.size;
  }

  close(): void {
    this.post('Profiler.stopPreciseCoverage');
    this.session.disconnect();
  }
}

function runBuiltin(t: FuzzTarget, seconds: number): boolean {
  const pool: Uint8Array[] = [...t.seeds(), new Uint8Array(0)];
  const dir = corpusDir(t);
  for (const f of fs.readdirSync(dir).slice(0, 1024)) pool.push(new Uint8Array(fs.readFileSync(path.join(dir, f))));
  const cov = new Coverage();
  const deadline = Date.now() + seconds * 1000;
  let execs = 0;
  let slowest = 0;
  let kept = 0;
  try {
    while (Date.now() < deadline) {
      for (let i = 0; i < 64; i++) {
        const input = mutate(pool[rand(pool.length)] as Uint8Array, pool);
        const t0 = performance.now();
        try {
          t.fuzz(input);
        } catch (e) {
          saveCrash(t, input, e);
          return false;
        }
        const took = performance.now() - t0;
        if (took > slowest) slowest = took;
        if (took > 5000) {
          saveCrash(t, input, new Error(`one input took ${took.toFixed(0)} ms`));
          return false;
        }
        execs++;
        if (cov.novelty() > 0 && pool.length < 4096) {
          pool.push(input);
          kept++;
          fs.writeFileSync(path.join(dir, crypto.createHash('sha1').update(input).digest('hex')), input);
        }
      }
    }
  } finally {
    cov.close();
  }
  console.log(`fuzz ${t.name}: builtin engine, ${execs} inputs in ${seconds} s, ${cov.size} coverage points, ${kept} inputs kept, no findings (slowest input ${slowest.toFixed(2)} ms)`);
  return true;
}

function replay(t: FuzzTarget, file: string): boolean {
  try {
    t.fuzz(new Uint8Array(fs.readFileSync(file)));
    console.log(`fuzz ${t.name}: ${file} passes`);
    return true;
  } catch (e) {
    console.error(`fuzz ${t.name}: ${file} fails\n`, e);
    return false;
  }
}

function main(): number {
  const seconds = Number(arg('--seconds', '10'));
  const wanted = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !(all[i - 1] ?? '').startsWith('--'));
  const targets = TARGETS.filter((t) => wanted.length === 0 || wanted.includes(t.name));
  if (targets.length === 0) {
    console.error(`no such target; have: ${TARGETS.map((t) => t.name).join(', ')}`);
    return 2;
  }
  const replayFile = arg('--replay', '');
  if (replayFile !== '') return targets.every((t) => replay(t, replayFile)) ? 0 : 1;
  let engine = arg('--engine', 'auto');
  if (engine === 'auto') {
    engine = jazzerLoads() ? 'jazzer' : 'builtin';
    if (engine === 'builtin') console.log('fuzz: the @jazzer.js native fuzzer does not load on this system (it needs glibc 2.38); using the builtin engine');
  }
  const seed = Number(arg('--seed', String(Date.now() & 0x7fffffff))) | 1;
  rngState = seed;
  console.log(`fuzz: engine ${engine}, ${seconds} s per target, seed ${seed}`);
  let ok = true;
  for (const t of targets) ok = (engine === 'jazzer' ? runJazzer(t, seconds) : runBuiltin(t, seconds)) && ok;
  return ok ? 0 : 1;
}

process.exitCode = main();
