// Block benchmark front end: one test-host run with a scratch disk, in which the guest's `fiobench`
// scenario runs on the same raw image under QEMU/KVM (the peer) and under microhv (inside.ts), then a
// table of the medians and the ratios microhv/QEMU, and the blackouts of the block domain's restarts.
//   node dist/bench/block/run.js     (BLOCK_BENCH_N, BLOCK_BENCH_SECONDS, BLOCK_BENCH_BLACKOUT_S,
//                                     BLOCK_BENCH_THREADS=1: each job's busiest threads in round 1)
import { loadavg } from 'node:os';
import { buildTestHost } from '../../images/build.js';
import { runInTestHost } from '../../testhost/testhost.js';
import { RESULT_PREFIX, formatTable, summarize, type BenchSample, type BlackoutSample } from './measure.js';

const env = (name: string, fallback: number, min: number): number => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}`);
  return v;
};
const rounds = env('BLOCK_BENCH_N', 2, 1);
const seconds = env('BLOCK_BENCH_SECONDS', 8, 2);
const blackoutS = env('BLOCK_BENCH_BLACKOUT_S', 20, 0);
const qemuTimeoutS = env('BLOCK_BENCH_QEMU_TIMEOUT_S', 180, 30);
const microhvTimeoutS = env('BLOCK_BENCH_MICROHV_TIMEOUT_S', 400, 30);
const threads = env('BLOCK_BENCH_THREADS', 0, 0) > 0 ? 1 : 0;

const image = buildTestHost((s) => console.error(s));
const load0 = loadavg()[0]!;
console.log(`block-bench: fiobench (${seconds} s per job) ${rounds} times each under QEMU/KVM and microhv inside one test host (load average ${load0.toFixed(2)})`);
let partial = '';
const r = await runInTestHost({
  image,
  scratchMiB: 1024,
  command: `node dist/bench/block/inside.js ${rounds} ${seconds} ${blackoutS} ${qemuTimeoutS} ${microhvTimeoutS} ${threads}`,
  timeoutMs: (rounds * (qemuTimeoutS + microhvTimeoutS) + (blackoutS > 0 ? microhvTimeoutS : 0) + 240) * 1000,
  onOutput: (t) => {
    // Output arrives in arbitrary chunks; only whole lines are looked at.
    const lines = (partial + t).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.startsWith('block-bench:')) console.log(line.trimEnd());
  },
});
const line = r.output.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
if (r.exitCode !== 0 || line === undefined) {
  console.error(r.output.slice(-3000));
  throw new Error(`the benchmark did not complete inside the test host (exit ${r.exitCode})`);
}
const result = JSON.parse(line.slice(RESULT_PREFIX.length)) as { samples: BenchSample[]; blackout?: BlackoutSample; aio: string };
const { rows, failures } = summarize(result.samples);
console.log(`block-bench: medians, 512 MiB raw image on ext4, O_DIRECT (QEMU: cache=none, aio=${result.aio}; microhv: --disk IMG,direct)`);
for (const l of formatTable(rows)) console.log(`block-bench: ${l}`);
for (const f of failures) console.log(`block-bench: failure: ${f}`);
const b = result.blackout;
if (b === undefined) console.log('block-bench: blackout: not measured (BLOCK_BENCH_BLACKOUT_S=0)');
else if ('failed' in b) console.log(`block-bench: blackout: FAILED: ${b.failed}`);
else {
  const worst = b.stalls.reduce((m, s) => Math.max(m, s.ms), 0);
  console.log(`block-bench: blackout under kill:block:2000 from 15 s on (fioverify ${blackoutS} s, QD 16): ${b.kills} kills, ${b.stalls.length} stalls over 100 ms, `
    + `worst ${b.stalls.length ? `${worst} ms` : 'none'} (${b.stalls.map((s) => s.ms).join(', ')}); verify ${b.verify}, fio errors ${b.errors}, kernel I/O errors ${b.klogIoErrors}`);
}
console.log(`block-bench: test host booted in ${(r.bootMs / 1000).toFixed(1)} s, ran ${(r.totalMs / 1000).toFixed(0)} s; load average ${load0.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after`);
