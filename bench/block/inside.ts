// Runs inside the test host (with its scratch disk at /scratch): makes one fully allocated raw image,
// then runs the guest's `fiobench` scenario on it under QEMU/KVM and under microhv, alternately, N
// rounds; optionally, a `fioverify` run under microhv with the block domain killed every 2 s from 15 s
// on (about when fio starts; it keeps the kills within the restart budget of 20 in 60 s), for the
// blackouts the guest sees. Prints one RESULT_PREFIX line; the front end (run.ts) prints the table.
// With THREADS 1, it also prints where the test host's CPU went during each fio job of the first
// round (threads.ts).
//   node dist/bench/block/inside.js N SECONDS BLACKOUT_S QEMU_TIMEOUT_S MICROHV_TIMEOUT_S [THREADS]
import { spawn } from 'node:child_process';
import { closeSync, fsyncSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { GUEST_IN_TESTHOST } from '../../images/build.js';
import { guestCmdline, microhvDiskArg, qemuGuestCommand, type GuestBoot, type GuestDisk } from '../../testhost/peer.js';
import { RESULT_PREFIX, parseFigures, parseStalls, parseVerify, type BenchSample, type BlackoutSample, type Contender } from './measure.js';
import { busiest, snapshot } from './threads.js';

const [n = '2', seconds = '8', blackoutS = '20', qemuTimeoutS = '180', microhvTimeoutS = '400', threads = '0'] = process.argv.slice(2);
const rounds = Number(n);
if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`N must be a positive integer, not ${n}`);

const IMAGE = '/scratch/bench-block.img';
const IMAGE_MIB = 512;
const CONSOLE_LOG = `/tmp/bench-block-console-${process.pid}.log`;

/** Zeros written through the file system, so every block of the image is allocated and really read back. */
function makeImage(): void {
  const t0 = performance.now();
  const fd = openSync(IMAGE, 'w');
  const chunk = Buffer.alloc(1 << 20);
  try {
    for (let i = 0; i < IMAGE_MIB; i++) writeSync(fd, chunk);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  console.log(`block-bench: ${IMAGE_MIB} MiB image written on /scratch in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/** A finished run: the process's own output (stdout and stderr), the guest's console, how it ended. */
interface Ran { readonly output: string; readonly console: string; readonly status: string }

/** The guest's lines that end one fio job and start the next, in fiobench's order. */
const JOB_MARKS = ['scenario fiobench', 'bench randread4k', 'bench seqread1m', 'bench seqwrite1m'] as const;
const JOBS = ['randread4k', 'seqread1m', 'seqwrite1m'] as const;

/** Takes a snapshot of every thread's CPU time at each job mark in `output` as it grows; prints each job's busiest threads. */
function threadWatch(label: string): (output: string) => void {
  const at: Array<{ t: number; times: ReturnType<typeof snapshot> }> = [];
  return (output) => {
    while (at.length < JOB_MARKS.length && output.includes(`microhv-guest: ${JOB_MARKS[at.length]}`)) {
      at.push({ t: performance.now(), times: snapshot() });
      const i = at.length - 2;
      const a = at[i];
      const b = at[i + 1];
      if (a === undefined || b === undefined) continue;
      const s = (b.t - a.t) / 1000;
      console.log(`block-bench: threads, ${label} ${JOBS[i]} (${s.toFixed(1)} s): ${busiest(a.times, b.times, s).join(' | ')}`);
    }
  };
}

/** One guest run to its end (power-off), its stdout and stderr together; its process group is killed at the timeout. */
function runGuest(file: string, args: readonly string[], timeoutS: number, watch?: (output: string) => void): Promise<Ran> {
  // QEMU's serial port is its stdout, so its output is the console too.
  return new Promise((resolve) => {
    // Its own process group, so that QEMU under sh and timeout, or microhv's domains, die together.
    const p = spawn(file, args, { cwd: '/opt/microhv', detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let status = '';
    const timer = setTimeout(() => {
      status = `no power-off within ${timeoutS} s`;
      try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* already gone */ }
    }, timeoutS * 1000);
    p.stdout.setEncoding('utf8').on('data', (c: string) => {
      output += c;
      watch?.(output);
    });
    p.stderr.setEncoding('utf8').on('data', (c: string) => { output += c; });
    p.on('error', (e) => { status ||= `cannot start: ${e.message}`; });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ output, console: output, status: status || `exit ${signal ?? code}` });
    });
  });
}

const guest = (scenario: string, args: string[]): GuestBoot => ({ scenario, args, smp: 1, memMiB: 512 });
let aio: GuestDisk['aio'] = 'io_uring';

function qemu(b: GuestBoot, watch?: (output: string) => void): Promise<Ran> {
  return runGuest('sh', ['-c', qemuGuestCommand({ ...b, disk: { path: IMAGE, direct: true, aio }, timeoutS: Number(qemuTimeoutS) })], Number(qemuTimeoutS) + 10, watch);
}

/** `microhv run` with the same kernel, initramfs, command line, memory, vCPU and disk as QEMU's. */
async function microhv(b: GuestBoot, extra: readonly string[] = [], watch?: (output: string) => void): Promise<Ran> {
  rmSync(CONSOLE_LOG, { force: true });
  const args = ['dist/microhv/main.js', 'run', '--kernel', `${GUEST_IN_TESTHOST}/vmlinuz`, '--initrd', `${GUEST_IN_TESTHOST}/initramfs.cpio`,
    '--cmdline', guestCmdline(b), '--vcpus', String(b.smp ?? 1), '--mem', String(b.memMiB ?? 512), ...microhvDiskArg({ path: IMAGE, direct: true }).split(' '),
    '--no-reboot', '--console-log', CONSOLE_LOG, '--timeout', microhvTimeoutS, ...extra];
  const r = await runGuest(process.execPath, args, Number(microhvTimeoutS) + 20, watch);
  // microhv echoes the console log on its stdout as it polls it; the log itself is complete.
  let log = '';
  try { log = readFileSync(CONSOLE_LOG, 'utf8'); } catch { /* never started */ }
  return { ...r, console: log || r.output };
}

/**
 * What went wrong: the run's last messages of its own (microhv's start with "microhv:", and a refused
 * option is followed by the usage text, which is left out), without the guest's lines.
 */
const why = (r: Ran): string => {
  const lines = r.output.split('\n').map((l) => l.trim()).filter((l) => l && !l.includes('microhv-guest:') && !l.includes('fault: killing'));
  const own = lines.filter((l) => l.startsWith('microhv:'));
  const last = (own.length ? own : lines).slice(-3).join(' | ');
  return `${r.status}${last ? `: ${last.slice(-400)}` : ''}`;
};

async function fiobench(c: Contender, round: number): Promise<BenchSample> {
  const b = guest('fiobench', [seconds]);
  const watch = threads === '1' && round === 0 ? threadWatch(c) : undefined;
  let r = c === 'qemu' ? await qemu(b, watch) : await microhv(b, [], watch);
  if (c === 'qemu' && aio === 'io_uring' && !r.console.includes('microhv-guest: init started') && /io_uring|aio/i.test(r.output)) {
    console.log('block-bench: QEMU refused aio=io_uring; using aio=native');
    aio = 'native';
    r = await qemu(b);
  }
  const figures = parseFigures(r.console);
  if (figures) return { contender: c, figures };
  // A guest that reset: its kernel's last words are the only trace (AMD loses the vCPU's state).
  const last = /guest reset/.test(r.output) ? `; the guest's last console lines: ${r.console.trim().split('\n').slice(-8).join(' | ')}` : '';
  return { contender: c, failed: `no figures (${why(r)})${last}` };
}

makeImage();
const samples: BenchSample[] = [];
for (let i = 0; i < rounds; i++) {
  // Alternating keeps a slow drift in the shared machine's load from landing on one contender only.
  for (const c of ['qemu', 'microhv'] as const) {
    const s = await fiobench(c, i);
    console.log(`block-bench: round ${i + 1} ${c}: ${'figures' in s ? Object.entries(s.figures).map(([k, v]) => `${k}=${v}`).join(' ') : `FAILED: ${s.failed}`}`);
    samples.push(s);
  }
}

let blackout: BlackoutSample | undefined;
if (Number(blackoutS) > 0) {
  const r = await microhv(guest('fioverify', [blackoutS, '16']), ['--fault', 'kill:block:2000:15000']);
  const v = parseVerify(r.console);
  blackout = v
    ? { ...v, kills: r.output.match(/fault: killing block/g)?.length ?? 0, stalls: parseStalls(r.console) }
    : { failed: `no fioverify summary (${why(r)})` };
  console.log(`block-bench: blackout run: ${'failed' in blackout ? `FAILED: ${blackout.failed}` : `${blackout.kills} kills, ${blackout.stalls.length} stalls, verify ${blackout.verify}`}`);
}
rmSync(IMAGE, { force: true });
console.log(RESULT_PREFIX + JSON.stringify({ samples, blackout, aio }));
