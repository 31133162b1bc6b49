// Boot benchmark front end: one test-host run in which the embedded guest boots
// under QEMU/KVM (the peer) and under microhv, N times each (inside.ts), then
// the medians of start-to-/init and their ratio, microhv over QEMU.
//   node dist/bench/boot/run.js            (BOOT_BENCH_N, default 2)
import { loadavg } from 'node:os';
import { buildTestHost } from '../../images/build.js';
import { runInTestHost } from '../../testhost/testhost.js';
import { RESULT_PREFIX, median, summarize, type BootSample } from './measure.js';

const rounds = Number(process.env.BOOT_BENCH_N ?? '2');
const qemuTimeoutS = Number(process.env.BOOT_BENCH_QEMU_TIMEOUT_S ?? '120');
const microhvTimeoutS = Number(process.env.BOOT_BENCH_MICROHV_TIMEOUT_S ?? '400');
if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError('BOOT_BENCH_N must be a positive integer');

const image = buildTestHost((s) => console.error(s));
const load0 = loadavg()[0]!;
console.log(`boot-bench: ${rounds} boots each of QEMU/KVM and microhv inside one test host (load average ${load0.toFixed(2)})`);
const r = await runInTestHost({
  image,
  command: `node dist/bench/boot/inside.js ${rounds} ${qemuTimeoutS} ${microhvTimeoutS}`,
  timeoutMs: (rounds * (qemuTimeoutS + microhvTimeoutS) + 180) * 1000,
  onOutput: (t) => { for (const line of t.split('\n')) if (line.startsWith('boot-bench:')) console.log(line); },
});
const line = r.output.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
if (r.exitCode !== 0 || line === undefined) {
  console.error(r.output.slice(-3000));
  throw new Error(`the benchmark did not complete inside the test host (exit ${r.exitCode})`);
}
const s = summarize(JSON.parse(line.slice(RESULT_PREFIX.length)) as BootSample[]);
const fmt = (xs: readonly number[]): string => (xs.length ? `median ${(median(xs) / 1000).toFixed(2)} s (${xs.map((x) => (x / 1000).toFixed(2)).join(', ')})` : 'no successful boot');
console.log(`boot-bench: start to "init started", QEMU/KVM: ${fmt(s.qemuMs)}`);
console.log(`boot-bench: start to "init started", microhv:  ${fmt(s.microhvMs)}`);
for (const f of s.failures) console.log(`boot-bench: failure: ${f}`);
console.log(`boot-bench: ratio microhv/QEMU ${s.ratio === undefined ? 'n/a' : s.ratio.toFixed(2)} (target <= 1.0); test host booted in ${(r.bootMs / 1000).toFixed(1)} s; load average ${load0.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after`);
