// Runs a jazzer.js fuzz target (a module exporting `fuzz(data: Buffer)`).
//   node fuzz-driver.js <target.js> <corpus-dir> <seconds>
// Engines, first that works:
// 1. jazzer.js (coverage-guided libFuzzer) as installed.
// 2. jazzer.js through a compatibility route: the prebuilt addon of
//    @jazzer.js/fuzzer 4.0.0 needs glibc 2.38 and GCC 13's libstdc++; Debian 12
//    has glibc 2.36 and GCC 12. We copy the addon into .cache/, mark its
//    references to those two newer version tags weak (an ELF flag in
//    .gnu.version_r), and LD_PRELOAD jazzer-compat.c, which supplies the only
//    three symbols it takes from them. node_modules is not touched.
// 3. A seeded, structure-aware mutation fuzzer, without coverage feedback.
// It prints which engine ran. A crashing input is saved and the exit code is 1.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Op, decodeFrames, encodeFrame, splitStrings, strings } from '../../xenstore-stubdom/wire.js';

const [targetArg, corpusArg, secondsArg] = process.argv.slice(2);
if (targetArg === undefined || corpusArg === undefined) {
  process.stderr.write('usage: fuzz-driver <target.js> <corpus-dir> [seconds]\n');
  process.exit(2);
}
const target = path.resolve(targetArg);
const corpus = path.resolve(corpusArg);
const seconds = Number(secondsArg ?? '10');
fs.mkdirSync(corpus, { recursive: true });

const require = createRequire(import.meta.url);
const JAZZER_CLI = require.resolve('@jazzer.js/core/dist/cli.js');

function jazzerLoads(): { ok: true } | { ok: false; reason: string } {
  try {
    require('@jazzer.js/fuzzer');
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: (e as Error).message.split('\n')[0] ?? '' };
  }
}

/** Version tags newer than Debian 12's libc and libstdc++ provide. */
const TOO_NEW = /^(GLIBC_2\.(3[7-9]|[4-9]\d)|GLIBCXX_3\.4\.(3[1-9]|[4-9]\d))$/;

/** Marks the addon's needs of TOO_NEW version tags weak (VER_FLG_WEAK, ELF gABI). Returns the tags changed. */
function weakenVersionNeeds(elf: Buffer): string[] {
  // Raw ELF64 reads (little-endian x86-64): this patches a third-party binary,
  // there is no IDL for it.
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const sec = (i: number) => {
    const at = shoff + i * shentsize;
    return { type: elf.readUInt32LE(at + 4), offset: Number(elf.readBigUInt64LE(at + 0x18)), link: elf.readUInt32LE(at + 0x28), info: elf.readUInt32LE(at + 0x2c) };
  };
  const changed: string[] = [];
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    if (s.type !== 0x6ffffffe) continue; // SHT_GNU_verneed
    const strtab = sec(s.link).offset;
    let vn = s.offset;
    for (let n = 0; n < s.info; n++) {
      const cnt = elf.readUInt16LE(vn + 2);
      let aux = vn + elf.readUInt32LE(vn + 8);
      for (let k = 0; k < cnt; k++) {
        const nameAt = strtab + elf.readUInt32LE(aux + 8);
        const name = elf.toString('latin1', nameAt, elf.indexOf(0, nameAt));
        if (TOO_NEW.test(name)) {
          elf.writeUInt16LE(elf.readUInt16LE(aux + 4) | 2, aux + 4); // VER_FLG_WEAK
          changed.push(name);
        }
        aux += elf.readUInt32LE(aux + 12);
      }
      vn += elf.readUInt32LE(vn + 12);
    }
  }
  return changed;
}

/** Prepares the compatibility route; returns the environment to run jazzer.js with, or undefined. */
function compatRoute(): NodeJS.ProcessEnv | undefined {
  const here = path.dirname(new URL(import.meta.url).pathname);
  const root = path.resolve(here, '../../..');
  const dir = path.join(root, '.cache', 'xenstore-fuzz-compat');
  try {
    fs.mkdirSync(dir, { recursive: true });
    const original = path.join(path.dirname(require.resolve('@jazzer.js/fuzzer/package.json')), 'prebuilds', `fuzzer-${process.platform}-${process.arch}.node`);
    const elf = fs.readFileSync(original);
    const changed = weakenVersionNeeds(elf);
    const addon = path.join(dir, path.basename(original));
    fs.writeFileSync(addon, elf);
    const shim = path.join(dir, 'libjazzer-compat.so');
    execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-o', shim, path.join(root, 'tests', 'xenstore', 'jazzer-compat.c'), '-lstdc++']);
    const env = { ...process.env, LD_PRELOAD: shim, XS_JAZZER_ADDON: addon };
    const preload = path.join(here, 'jazzer-preload.js');
    const probe = spawnSync(process.execPath, ['--import', preload, '-e', `require(${JSON.stringify(require.resolve('@jazzer.js/fuzzer'))})`], { env, encoding: 'utf8' });
    if (probe.status !== 0) {
      process.stderr.write(`fuzz: compatibility route failed: ${probe.stderr.split('\n').find((l) => l.includes('Error')) ?? probe.stderr}\n`);
      return undefined;
    }
    process.stderr.write(`fuzz: jazzer.js through the compatibility route (weakened ${changed.join(', ')})\n`);
    return { ...env, NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import ${preload}`.trim() };
  } catch (e) {
    process.stderr.write(`fuzz: compatibility route failed: ${(e as Error).message.split('\n')[0] ?? ''}\n`);
    return undefined;
  }
}

function runJazzer(env: NodeJS.ProcessEnv): number {
  // Seed the corpus with well-formed requests so the fuzzer starts past the framing.
  if (fs.readdirSync(corpus).length === 0) seeds().forEach((s, i) => fs.writeFileSync(path.join(corpus, `seed-${i}`), s));
  const r = spawnSync(process.execPath, [JAZZER_CLI, target, corpus, '--sync', '--', `-max_total_time=${seconds}`, `-artifact_prefix=${corpus}/`], { stdio: 'inherit', env });
  return r.status ?? 1;
}

function seeds(): Buffer[] {
  const ops: Array<[number, string[]]> = [
    [Op.READ, ['/tool']], [Op.WRITE, ['/a/b', 'v']], [Op.MKDIR, ['/m']], [Op.RM, ['/a']],
    [Op.DIRECTORY, ['/']], [Op.DIRECTORY_PART, ['/', '0']], [Op.GET_PERMS, ['/tool']],
    [Op.SET_PERMS, ['/a', 'n0', 'r3']], [Op.WATCH, ['/a', 't']], [Op.UNWATCH, ['/a', 't']],
    [Op.WATCH, ['@introduceDomain', 'i']], [Op.TRANSACTION_START, ['']], [Op.TRANSACTION_END, ['T']],
    [Op.INTRODUCE, ['4', '0', '1']], [Op.RELEASE, ['4']], [Op.GET_DOMAIN_PATH, ['4']],
    [Op.IS_DOMAIN_INTRODUCED, ['4']], [Op.RESUME, ['4']], [Op.SET_TARGET, ['4', '3']],
    [Op.RESET_WATCHES, ['']], [Op.CONTROL, ['quota']], [Op.CONTROL, ['check']],
  ];
  const frames = ops.map(([op, a], i) => encodeFrame(op, i + 1, op === Op.TRANSACTION_END ? 1 : 0, strings(...a)));
  const out = frames.map((f) => Buffer.concat([Buffer.from([7, 0]), f]));
  out.push(Buffer.concat([Buffer.from([3, 1]), ...frames]));
  out.push(Buffer.concat([Buffer.from([255, 0]), ...frames]));
  // Structured-mode seeds (see wire.fuzz.ts): records `type, tx_id, payload`, 0xff-separated.
  const record = ([op, a]: [number, string[]]): Buffer => Buffer.concat([Buffer.from([op, op === Op.TRANSACTION_END ? 1 : 0]), strings(...a)]);
  for (let i = 0; i < ops.length; i += 3) {
    const group = ops.slice(i, i + 3).map(record);
    const joined = group.flatMap((r, k) => (k === 0 ? [r] : [Buffer.from([0xff]), r]));
    out.push(Buffer.concat([Buffer.from([16, 2 | (i & 1)]), ...joined]));
  }
  return out;
}

const INTERESTING = [0, 1, 15, 16, 4095, 4096, 4097, 0x7fffffff, 0xffffffff];
const WORDS = ['/', '/a', '/a/b/c', 'rel', '@introduceDomain', '@releaseDomain', '@x', '', '0', '1', '3', '4', '12', '32752',
  '65535', '99999', '-1', 'T', 'F', 'n0', 'r3', 'b4', 'w99', 'quota', 'set', 'nodes', 'check', 'help', `/${'x'.repeat(3000)}`, '//', '/a/'];

/** Structure-aware: re-encodes frames with one argument replaced, so lengths and NULs stay valid. */
function mutateFrames(rng: () => number, input: Buffer): Buffer {
  const frames = decodeFrames(input.subarray(2));
  if (frames.length === 0) return input;
  const i = Math.floor(rng() * frames.length);
  const f = frames[i];
  if (f === undefined) return input;
  const args = splitStrings(f.payload) ?? [f.payload.toString('latin1')];
  const word = WORDS[Math.floor(rng() * WORDS.length)] ?? '';
  if (args.length === 0 || rng() < 0.2) args.push(word);
  else args[Math.floor(rng() * args.length)] = rng() < 0.5 ? word : `${args[0] ?? ''}${word}`;
  const type = rng() < 0.1 ? Math.floor(rng() * 24) : f.header.type;
  const tx = rng() < 0.1 ? Math.floor(rng() * 3) : f.header.txId;
  frames[i] = { header: { ...f.header, type, txId: tx }, payload: strings(...args) };
  const body = frames.map((x) => encodeFrame(x.header.type, x.header.reqId, x.header.txId, x.payload.length > 4096 ? x.payload.subarray(0, 4096) : x.payload));
  return Buffer.concat([input.subarray(0, 2), ...body]);
}

function mutate(rng: () => number, input: Buffer, pool: Buffer[]): Buffer {
  if (rng() < 0.5) return mutateFrames(rng, input);
  let b = Buffer.from(input);
  const n = 1 + Math.floor(rng() * 4);
  for (let i = 0; i < n; i++) {
    const at = b.length === 0 ? 0 : Math.floor(rng() * b.length);
    switch (Math.floor(rng() * 7)) {
      case 0: if (b.length > 0) b[at] = (b[at] ?? 0) ^ (1 << Math.floor(rng() * 8)); break;
      case 1: if (b.length > 0) b[at] = Math.floor(rng() * 256); break;
      case 2: b = Buffer.concat([b.subarray(0, at), Buffer.from([Math.floor(rng() * 256)]), b.subarray(at)]); break;
      case 3: b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + Math.floor(rng() * 8))]); break;
      case 4: if (b.length >= at + 4) b.writeUInt32LE(INTERESTING[Math.floor(rng() * INTERESTING.length)] ?? 0, at); break;
      case 5: { const other = pool[Math.floor(rng() * pool.length)] ?? Buffer.alloc(0); b = Buffer.concat([b.subarray(0, at), other.subarray(2)]); break; }
      default: b = Buffer.concat([b, Buffer.from([0])]); break;
    }
  }
  return b.length > 16384 ? b.subarray(0, 16384) : b;
}

async function builtin(): Promise<void> {
  const mod = (await import(pathToFileURL(target).href)) as { fuzz: (d: Buffer) => void };
  let state = Number(process.env['FUZZ_SEED'] ?? Date.now() % 0x7fffffff) || 1;
  process.stderr.write(`fuzz: built-in engine, seed ${state}, ${seconds}s\n`);
  const rng = (): number => {
    state = (state * 48271) % 0x7fffffff;
    return state / 0x7fffffff;
  };
  const pool = [...seeds(), ...fs.readdirSync(corpus).map((f) => fs.readFileSync(path.join(corpus, f)))];
  const end = Date.now() + seconds * 1000;
  let runs = 0;
  while (Date.now() < end) {
    const base = pool[Math.floor(rng() * pool.length)] ?? Buffer.alloc(0);
    const input = runs < pool.length ? (pool[runs] as Buffer) : mutate(rng, base, pool);
    try {
      mod.fuzz(input);
    } catch (e) {
      const name = path.join(corpus, `crash-${createHash('sha1').update(input).digest('hex')}`);
      fs.writeFileSync(name, input);
      process.stderr.write(`fuzz: FINDING after ${runs} runs: ${(e as Error).stack ?? String(e)}\nfuzz: input saved to ${name}\n`);
      process.exit(1);
    }
    runs++;
    // Keep a small, varied pool: occasionally promote a mutant.
    if (rng() < 0.01 && pool.length < 512) pool.push(input);
  }
  process.stderr.write(`fuzz: ${runs} runs, no finding\n`);
}

const direct = jazzerLoads();
if (direct.ok) {
  process.stderr.write('fuzz: jazzer.js\n');
  process.exit(runJazzer(process.env));
}
process.stderr.write(`fuzz: jazzer.js addon does not load as installed (${direct.reason})\n`);
const env = /GLIBC|GLIBCXX|CXXABI/.test(direct.reason) ? compatRoute() : undefined;
if (env !== undefined) process.exit(runJazzer(env));
process.stderr.write('fuzz: using the built-in mutation fuzzer (no coverage feedback)\n');
await builtin();
