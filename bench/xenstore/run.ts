// xenstore benchmark: read, write and watch-fire throughput and p99 latency,
// 1 and 16 clients, against our daemon and, in the same run, against a C echo
// server with the same framing and message sizes (the physical limit of a
// Unix-socket round trip on this machine). Prints the ratios.
// The C sources are compiled with gcc into .cache/xenstore-bench/.
//   node dist/bench/xenstore/run.js [seconds-per-round] [read,write,watch]
// Each case runs XENSTORE_BENCH_ROUNDS (default 3) interleaved rounds per server;
// the median round is reported.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { XenstoreClient } from '../../xenstore-stubdom/client.js';

const ROOT = process.cwd();
const SRC = path.join(ROOT, 'bench', 'xenstore');
const OUT = path.join(ROOT, '.cache', 'xenstore-bench');
const SECONDS = Number(process.argv[2] ?? '3');
/** Optional: only these operations, e.g. "read". */
const ONLY = process.argv[3]?.split(',');
const ROUNDS = Number(process.env['XENSTORE_BENCH_ROUNDS'] ?? '3');

interface Result {
  ops: number;
  ops_per_s: number;
  p50_us: number;
  p99_us: number;
}

function compile(): { echo: string; load: string } {
  fs.mkdirSync(OUT, { recursive: true });
  const echo = path.join(OUT, 'echo');
  const load = path.join(OUT, 'load');
  execFileSync('gcc', ['-O2', '-Wall', '-o', echo, path.join(SRC, 'echo.c')], { stdio: 'inherit' });
  execFileSync('gcc', ['-O2', '-Wall', '-pthread', '-o', load, path.join(SRC, 'load.c')], { stdio: 'inherit' });
  return { echo, load };
}

function startAndWait(cmd: string, args: string[], ready: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(ready)) resolve(p);
    });
    p.on('exit', (code) => reject(new Error(`${cmd} exited ${code}`)));
  });
}

function load(bin: string, socket: string, mode: string, clients: number): Result {
  const out = execFileSync(bin, [socket, mode, String(clients), String(SECONDS)], { encoding: 'utf8' });
  return JSON.parse(out.trim()) as Result;
}

async function prepare(socket: string): Promise<void> {
  const c = new XenstoreClient({ path: socket });
  // READ replies carry a 16-byte value, as the echo server returns the 16-byte path.
  await Promise.all(Array.from({ length: 100 }, (_, i) => c.write(`/bench/key/${String(i).padStart(5, '0')}`, '0123456789abcdef')));
  await c.mkdir('/bench/w');
  c.close();
}

async function main(): Promise<void> {
  const bins = compile();
  const dir = fs.mkdtempSync(path.join(OUT, 'run-'));
  const echoSock = path.join(dir, 'echo.sock');
  const xsSock = path.join(dir, 'xs.sock');
  const echo = await startAndWait(bins.echo, [echoSock], 'echo ready');
  const daemon = await startAndWait(process.execPath, [path.join(ROOT, 'dist', 'xenstore-stubdom', 'index.js'), '--socket', xsSock, '--state-dir', path.join(dir, 'state')], 'xenstored ready');
  try {
    await prepare(xsSock);
    const rows: Array<{ op: string; clients: number; xs: Result; echo: Result; xsBest: Result; echoBest: Result; xsRounds: Result[]; echoRounds: Result[] }> = [];
    for (const op of ['read', 'write', 'watch'].filter((o) => ONLY === undefined || ONLY.includes(o))) {
      for (const clients of [1, 16]) {
        // Interleaved rounds, median of each: the machine is shared, and one
        // descheduled round must not decide the ratio.
        const es: Result[] = [];
        const xs: Result[] = [];
        for (let i = 0; i < ROUNDS; i++) {
          es.push(load(bins.load, echoSock, op, clients));
          xs.push(load(bins.load, xsSock, op, clients));
        }
        const e = median(es);
        const x = median(xs);
        const eb = best(es);
        const xb = best(xs);
        rows.push({ op, clients, xs: x, echo: e, xsBest: xb, echoBest: eb, xsRounds: xs, echoRounds: es });
        process.stdout.write(
          `${op.padEnd(6)} ${String(clients).padStart(2)} clients: xenstored ${fmt(x)} | C echo ${fmt(e)} | ratio ${pct(x, e)} ops/s, p99 x${(x.p99_us / e.p99_us).toFixed(2)}` +
            ` | best rounds: ${xb.ops_per_s} vs ${eb.ops_per_s} ops/s = ${pct(xb, eb)}\n`,
        );
      }
    }
    const read1 = rows.find((r) => r.op === 'read' && r.clients === 1);
    if (read1 !== undefined) {
      const ratio = read1.xs.ops_per_s / read1.echo.ops_per_s;
      const bestRatio = read1.xsBest.ops_per_s / read1.echoBest.ops_per_s;
      process.stdout.write(`target: single-client read >= 50% of C echo: median ${(ratio * 100).toFixed(1)}% ${ratio >= 0.5 ? 'MET' : 'NOT MET'}, best round ${(bestRatio * 100).toFixed(1)}%\n`);
    }
    fs.writeFileSync(path.join(OUT, 'results.json'), `${JSON.stringify({ when: new Date().toISOString(), seconds: SECONDS, rounds: ROUNDS, rows }, null, 1)}\n`);
  } finally {
    daemon.kill('SIGTERM');
    echo.kill('SIGTERM');
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

function pct(x: Result, e: Result): string {
  return `${((x.ops_per_s / e.ops_per_s) * 100).toFixed(1)}%`;
}

/** The round with the highest throughput: the least disturbed by other load. */
function best(rs: Result[]): Result {
  return [...rs].sort((a, b) => b.ops_per_s - a.ops_per_s)[0] as Result;
}

/** The round with the median throughput. */
function median(rs: Result[]): Result {
  const sorted = [...rs].sort((a, b) => a.ops_per_s - b.ops_per_s);
  return sorted[Math.floor(sorted.length / 2)] as Result;
}

function fmt(r: Result): string {
  return `${String(r.ops_per_s).padStart(7)} ops/s p50 ${r.p50_us.toFixed(0).padStart(5)}us p99 ${r.p99_us.toFixed(0).padStart(6)}us`;
}

await main();
