// Runs a jazzer.js-style fuzz target (a module exporting `fuzz(data: Buffer)`).
// It uses jazzer.js when its native libFuzzer addon loads. The addon that
// @jazzer.js/fuzzer 4.0.0 ships needs glibc 2.38; where it does not load (Debian
// 12 has 2.36), this driver runs the same target with a seeded mutation fuzzer:
// no coverage feedback, but structure-aware seeds and the classic mutations.
// It says which engine ran. A crashing input is saved and the exit code is 1.
//   node fuzz-driver.js <target.js> <corpus-dir> <seconds>
import { spawnSync } from 'node:child_process';
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

function jazzerLoads(): boolean {
  try {
    createRequire(import.meta.url)('@jazzer.js/fuzzer');
    return true;
  } catch (e) {
    process.stderr.write(`fuzz: jazzer.js native fuzzer unavailable (${(e as Error).message.split('\n')[0]}); using the built-in mutation fuzzer\n`);
    return false;
  }
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

if (jazzerLoads()) {
  const r = spawnSync('npx', ['jazzer', target, corpus, '--', `-max_total_time=${seconds}`], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
} else {
  await builtin();
}
