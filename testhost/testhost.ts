// The test host: a QEMU virtual machine with an emulated SVM CPU (TCG) in which
// microhv uses real KVM. It boots Debian's cloud kernel, loads kvm_amd, mounts
// the project image read-only, runs one command and powers off. This module
// runs it: output streamed, exit status returned, hard timeouts, and QEMU
// killed on every exit path (timeouts, errors, our own exit, and, through
// PR_SET_PDEATHSIG set by setpriv, even our own SIGKILL).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { buildTestHost, type TestHostImage } from '../images/build.js';
import { which, ImageError } from '../images/stage.js';
import { ConsoleParser } from './markers.js';
import { probeKvm } from '../microhv/kvm/probe.js';
import { describeThreads, readThreads } from './threads.js';

export type TestHostErrorCode = 'MISSING_TOOL' | 'SCRATCH_FAILED' | 'TIMEOUT' | 'BOOT_TIMEOUT' | 'NO_EXIT_STATUS' | 'QEMU_FAILED' | 'LOCKUP' | 'FROZEN';
export class TestHostError extends Error {
  /** QEMU's pid, where it was started (it is dead by the time this is thrown). */
  qemuPid: number | undefined;
  /** The command's output up to the failure. */
  output = '';
  /** QEMU's exit status, when it exited by itself. */
  qemuExit: number | null = null;
  /** The tail of QEMU's CPU-reset log (-d cpu_reset). */
  resetLog = '';
  /** The test host's last heartbeat lines (uptime, load, running and blocked tasks); see FROZEN_MS. */
  heartbeatTail = '';
  /** QEMU's threads over the second before it was killed for a timeout, a freeze or a lockup (threads.ts). */
  qemuThreads: string[] = [];
  constructor(readonly code: TestHostErrorCode, message: string, readonly kernelLogTail = '', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TestHostError';
  }
}

export type Accel = 'tcg' | 'kvm';
export interface RunOptions {
  readonly command: string;
  /**
   * The command's own time, from its start: the test host's boot has bootTimeoutMs of its own, so a
   * command that bounds itself within this (microhv's --timeout) always gets to report.
   */
  readonly timeoutMs?: number;
  /** Until the command starts. */
  readonly bootTimeoutMs?: number;
  /** The test host has frozen when its heartbeat stops for this long (default FROZEN_MS). */
  readonly frozenMs?: number;
  /** Runs again after a test-host fault (default TEST_HOST_RERUNS). */
  readonly reruns?: number;
  readonly memMiB?: number;
  readonly smp?: number;
  readonly accel?: Accel;
  readonly image?: TestHostImage;
  /**
   * A scratch disk of this size: an empty ext4 file system on a second virtio disk, mounted at
   * /scratch inside (tmpfs refuses O_DIRECT, so images opened with it live there). It is a sparse
   * file in the run's temporary folder and is removed with it.
   */
  readonly scratchMiB?: number;
  /** The command's output (stdout and stderr together), as it arrives. */
  readonly onOutput?: (text: string) => void;
}
export interface RunResult {
  readonly exitCode: number;
  readonly output: string;
  readonly bootMs: number;
  readonly totalMs: number;
  readonly accel: Accel;
  readonly kernelLog: string;
  readonly qemuPid: number;
  /** Heartbeat lines the test host wrote while the command ran. */
  readonly heartbeats: number;
}


/** Every QEMU we started and that still runs; killed if this process exits. */
const live = new Set<ChildProcess>();
process.on('exit', () => { for (const c of live) c.kill('SIGKILL'); });

let probed: Promise<Accel> | undefined;
/** The accelerator: KVM only where the usable-KVM probe says this machine can run a guest directly. */
export function defaultAccel(): Promise<Accel> {
  const forced = process.env.MICROHV_TESTHOST_ACCEL;
  if (forced === 'tcg' || forced === 'kvm') return Promise.resolve(forced);
  probed ??= probeKvm().then((r) => (r.usable ? 'kvm' : 'tcg'), () => 'tcg');
  return probed;
}

export function qemuArgs(image: TestHostImage, cmdFile: string, logFile: string, o: { memMiB: number; smp: number; accel: Accel; scratch?: string; beatFile?: string }): string[] {
  const cpu = o.accel === 'kvm'
    ? ['-accel', 'kvm', '-cpu', 'host']
    // An emulated CPU with SVM and nested paging, so kvm_amd loads inside.
    : ['-accel', 'tcg,thread=multi', '-cpu', 'qemu64,+svm,+npt'];
  return [
    ...cpu, '-smp', String(o.smp), '-m', String(o.memMiB),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    // Named threads ("CPU 0/TCG"), for what the runner reads of a hung test host (threads.ts).
    '-name', 'testhost,debug-threads=on',
    '-kernel', image.kernel, '-initrd', image.initramfs,
    '-append', 'console=ttyS0 panic=-1 quiet',
    '-serial', `file:${logFile}`,
    // The second port (ttyS1) carries stage 2's heartbeat.
    ...(o.beatFile ? ['-serial', `file:${o.beatFile}`] : []),
    '-device', 'virtio-serial-pci', '-chardev', 'stdio,id=out,signal=off', '-device', 'virtconsole,chardev=out',
    // The root image comes first on the PCI bus, so it is /dev/vda; the scratch disk is /dev/vdb.
    '-drive', `file=${image.rootfs},format=raw,if=none,id=root,readonly=on`, '-device', 'virtio-blk-pci,drive=root',
    // cache=unsafe: the scratch file dies with the run, so flushes need not reach this machine's disk.
    ...(o.scratch ? ['-drive', `file=${o.scratch},format=raw,if=none,id=scratch,cache=unsafe`, '-device', 'virtio-blk-pci,drive=scratch'] : []),
    '-fw_cfg', `name=opt/microhv/cmd,file=${cmdFile}`,
  ];
}

/**
 * An empty ext4 file system in a new sparse file (mke2fs creates it: no root, no loop device). The
 * inode tables and the journal are initialized here, on a sparse file where that is nearly free, so
 * that no ext4lazyinit thread writes behind the measurements inside the test host.
 */
function makeScratch(file: string, sizeMiB: number): void {
  if (!Number.isInteger(sizeMiB) || sizeMiB < 16) throw new RangeError(`scratchMiB must be an integer >= 16, not ${sizeMiB}`);
  try {
    execFileSync(which('mke2fs'), ['-t', 'ext4', '-F', '-q', '-m', '0', '-E', 'lazy_itable_init=0,lazy_journal_init=0', '-L', 'microhv-scratch', file, `${sizeMiB}M`],
      { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    if (err instanceof ImageError) throw new TestHostError('MISSING_TOOL', err.message, '', { cause: err });
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? '';
    throw new TestHostError('SCRATCH_FAILED', `cannot make the scratch disk (mke2fs): ${stderr || (err as Error).message}`, '', { cause: err });
  }
}

const tail = (text: string, lines = 30): string => text.split('\n').slice(-lines).join('\n');

/**
 * Why a failed run is the emulated machine's own fault and not the command's, or undefined when
 * it is the command's (or a real fault of the test host's kernel) and must be reported as it is:
 * - it reset itself mid-command: QEMU exited 0 (a reset under -no-reboot) with no exit status,
 *   and its kernel logged no panic or oops, so nothing inside chose to stop;
 * - it reset itself while booting (QEMU exited 0 before the command started);
 * - it hung while booting: the command had not started at the boot deadline (a boot takes about
 *   4 s on a 2-core machine; the deadline is 60 s);
 * - a CPU locked up (LOCKUP_S), or the whole machine froze (no heartbeat for FROZEN_MS).
 * Before the command started nothing of the project's ran, so the two boot faults rerun whatever the
 * kernel logged (a broken image fails every rerun alike); the command never ran in them.
 * The emulated machine (TCG running nested SVM) does each of these now and then, also under the
 * QEMU/KVM peer.
 */
export function testHostFault(e: unknown): string | undefined {
  if (!(e instanceof TestHostError)) return undefined;
  // Before the command started nothing of ours ran: whatever the kernel logged is the machine's.
  if (e.code === 'QEMU_FAILED' && e.qemuExit === 0) return 'the test host reset itself while booting';
  if (e.code === 'BOOT_TIMEOUT') return 'the test host hung while booting';
  // A CPU of the test host's kernel that has not scheduled for minutes: seen inside KVM_RUN while the
  // emulator ran a nested guest (an interrupt that never ends the guest's run), under microhv and
  // under the QEMU/KVM peer alike. No process can cause that, and nothing it runs can end it.
  if (e.code === 'LOCKUP') return 'a CPU of the test host locked up';
  // Every CPU at once: stage 2's heartbeat, a shell loop, stops. A CI run's command once went silent
  // for 11 minutes with nothing in the kernel log, where one stuck CPU would have drawn a soft lockup
  // or an RCU stall report from another; a command that hangs in a live machine keeps the beat.
  if (e.code === 'FROZEN') return 'the test host froze';
  if (e.code === 'NO_EXIT_STATUS' && e.qemuExit === 0 && !/Kernel panic|Oops|BUG:|general protection/.test(e.kernelLogTail)) {
    return 'the test host reset itself mid-command';
  }
  return undefined;
}

/** A soft lockup this long (the kernel reports one every 26 s or so) ends the run as the machine's fault. */
export const LOCKUP_S = 78;

/** The longest soft lockup the test host's kernel reported, in seconds (0: none). */
export function longestLockup(kernelLog: string): number {
  let worst = 0;
  for (const m of kernelLog.matchAll(/watchdog: BUG: soft lockup - CPU#\d+ stuck for (\d+)s!/g)) worst = Math.max(worst, Number(m[1]));
  return worst;
}

/** No heartbeat from the test host for this long while the command runs: it has frozen (a heartbeat comes every 5 s). */
export const FROZEN_MS = 60_000;

/** The heartbeat lines in the second serial port's output. */
export const heartbeatLines = (text: string): string[] => text.split(/\r?\n/).filter((l) => l.startsWith('beat '));

/**
 * The lines of QEMU's reset log kept with an error: when the machine resets it logs each CPU's state,
 * about 40 lines apiece, so the last 40 held one CPU's only.
 */
const RESET_LOG_LINES = 120;

/** How long QEMU's threads are watched before a hung test host is killed. */
const THREAD_LOOK_MS = 1000;

/** Runs after a test-host fault (testHostFault) before the fault is the result. */
export const TEST_HOST_RERUNS = 2;

/** The test host's default time to start the command. */
export const BOOT_TIMEOUT_MS = 60_000;

/** The most time runInTestHost can take with the default boot limit and this command limit, its reruns included. */
export const worstRunMs = (timeoutMs: number): number => (TEST_HOST_RERUNS + 1) * (BOOT_TIMEOUT_MS + timeoutMs + THREAD_LOOK_MS);

/**
 * Boots the test host, runs `command` in /opt/microhv inside it and returns its exit status. A
 * run that the test host itself spoiled (testHostFault) is reported on stderr with the kernel's
 * last lines and QEMU's reset log, and the command runs again in a fresh one, at most
 * TEST_HOST_RERUNS times; a command's own failure, a timeout or a kernel panic never reruns.
 */
export async function runInTestHost(opts: RunOptions): Promise<RunResult> {
  const reruns = opts.reruns ?? TEST_HOST_RERUNS;
  for (let rerun = 0; ; rerun++) {
    try {
      return await runOnce(opts);
    } catch (e) {
      const why = testHostFault(e);
      if (why === undefined || rerun >= reruns) throw e;
      const t = e as TestHostError;
      process.stderr.write(`testhost: ${why} (QEMU pid ${t.qemuPid ?? '?'}: ${t.message}); running the command again in a new one (${rerun + 1} of ${reruns}).\n`
        + `  kernel log tail:\n${indent(t.kernelLogTail)}\n  last heartbeats:\n${indent(t.heartbeatTail)}\n  QEMU's threads:\n${indent(t.qemuThreads.join('\n'))}\n  QEMU's reset log:\n${indent(t.resetLog)}\n`);
    }
  }
}

const indent = (text: string): string => (text.trim() ? text.split('\n').map((l) => `    ${l}`).join('\n') : '    (empty)');

async function runOnce(opts: RunOptions): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const bootTimeoutMs = opts.bootTimeoutMs ?? BOOT_TIMEOUT_MS;
  const frozenMs = opts.frozenMs ?? FROZEN_MS;
  const accel = opts.accel ?? (await defaultAccel());
  let qemu: string;
  let setpriv: string;
  try {
    qemu = which('qemu-system-x86_64');
    setpriv = which('setpriv');
  } catch (err) {
    throw new TestHostError('MISSING_TOOL', (err as ImageError).message, '', { cause: err });
  }
  const image = opts.image ?? buildTestHost();
  const dir = mkdtempSync(join(tmpdir(), 'microhv-testhost-'));
  const cmdFile = join(dir, 'cmd');
  const logFile = join(dir, 'kernel.log');
  writeFileSync(cmdFile, opts.command + '\n');
  writeFileSync(logFile, '');
  const beatFile = join(dir, 'heartbeat.log');
  writeFileSync(beatFile, '');
  let scratch: string | undefined;
  if (opts.scratchMiB !== undefined) {
    scratch = join(dir, 'scratch.ext4');
    try {
      makeScratch(scratch, opts.scratchMiB);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }
  const args = qemuArgs(image, cmdFile, logFile, { memMiB: opts.memMiB ?? 2048, smp: opts.smp ?? 2, accel, scratch, beatFile });
  const kernelLog = (): string => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } };
  const beats = (): string[] => { try { return heartbeatLines(readFileSync(beatFile, 'utf8')); } catch { return []; } };
  // QEMU logs every CPU reset with the CPU's state: the evidence when the test host resets itself.
  const qemuLog = join(dir, 'qemu.log');
  args.push('-d', 'cpu_reset,guest_errors', '-D', qemuLog);

  const t0 = performance.now();
  const child = spawn(setpriv, ['--pdeathsig', 'KILL', '--', qemu, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(child);
  try {
    return await new Promise<RunResult>((resolve, reject) => {
      const decoder = new StringDecoder('utf8');
      const parser = new ConsoleParser();
      let output = '';
      let stderr = '';
      let bootMs = -1;
      let failure: TestHostError | undefined;
      let lookTimer: NodeJS.Timeout | undefined;
      // A machine that hung is looked at for a second before it dies: what QEMU's threads do then.
      const fail = (e: TestHostError, look = false): void => {
        if (failure) return;
        failure = e;
        const pid = child.pid;
        if (!look || pid === undefined) { child.kill('SIGKILL'); return; }
        const first = readThreads(pid);
        const from = performance.now();
        lookTimer = setTimeout(() => {
          e.qemuThreads = describeThreads(first, readThreads(pid), performance.now() - from);
          child.kill('SIGKILL');
        }, THREAD_LOOK_MS);
      };
      const emit = (text: string): void => { if (text) { output += text; opts.onOutput?.(text); } };

      const bootTimer = setTimeout(() => {
        if (bootMs < 0) fail(new TestHostError('BOOT_TIMEOUT', `test host did not start the command within ${bootTimeoutMs / 1000} s; QEMU was killed`, tail(kernelLog())));
      }, bootTimeoutMs);
      let timer: NodeJS.Timeout | undefined;
      let lastBeats = 0;
      let lastBeatAt = 0;
      const commandStarted = (): void => {
        lastBeatAt = performance.now();
        timer = setTimeout(() => {
          fail(new TestHostError('TIMEOUT', `command did not finish within ${timeoutMs / 1000} s in the test host; QEMU was killed`, tail(kernelLog())), true);
        }, timeoutMs);
      };
      const watch = setInterval(() => {
        const log = kernelLog();
        const stuck = longestLockup(log);
        if (stuck >= LOCKUP_S) fail(new TestHostError('LOCKUP', `a CPU of the test host was stuck for ${stuck} s (soft lockup); QEMU was killed`, tail(log)), true);
        // The heartbeat starts with the command.
        if (bootMs < 0) return;
        const n = beats().length;
        const now = performance.now();
        if (n !== lastBeats) { lastBeats = n; lastBeatAt = now; }
        if (now - lastBeatAt >= frozenMs) {
          fail(new TestHostError('FROZEN', `the test host gave no heartbeat for ${Math.round((now - lastBeatAt) / 1000)} s (${n === 0 ? 'none since the command started' : `${n} before`}); QEMU was killed`, tail(log)), true);
        }
      }, Math.min(5000, frozenMs / 4));

      child.stdout!.on('data', (chunk: Buffer) => {
        emit(parser.feed(decoder.write(chunk)));
        if (parser.ready && bootMs < 0) { bootMs = performance.now() - t0; commandStarted(); }
      });
      child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
      child.on('error', (err) => fail(new TestHostError('QEMU_FAILED', `cannot start QEMU: ${err.message}`, '', { cause: err })));
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        clearTimeout(bootTimer);
        clearInterval(watch);
        clearTimeout(lookTimer);
        live.delete(child);
        const resetLog = (): string => { try { return tail(readFileSync(qemuLog, 'utf8'), RESET_LOG_LINES); } catch { return ''; } };
        const beatTail = beats().slice(-3).join('\n');
        if (failure) { failure.qemuPid = child.pid; failure.output = output; failure.resetLog = resetLog(); failure.heartbeatTail = beatTail; return reject(failure); }
        const exitCode = parser.exitCode;
        if (exitCode === undefined) {
          const e = new TestHostError(bootMs < 0 ? 'QEMU_FAILED' : 'NO_EXIT_STATUS',
            `test host ended (QEMU ${signal ? `signal ${signal}` : `exit ${code}`}) without reporting the command's exit status${stderr.trim() ? `: ${stderr.trim()}` : ''}`,
            tail(kernelLog()));
          e.qemuPid = child.pid;
          e.output = output;
          e.qemuExit = code;
          e.resetLog = resetLog();
          e.heartbeatTail = beatTail;
          return reject(e);
        }
        resolve({ exitCode, output, bootMs, totalMs: performance.now() - t0, accel, kernelLog: kernelLog(), qemuPid: child.pid ?? -1, heartbeats: beats().length });
      });
    });
  } finally {
    if (live.has(child)) { child.kill('SIGKILL'); live.delete(child); }
    rmSync(dir, { recursive: true, force: true });
  }
}
