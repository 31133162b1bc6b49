// The test host: a QEMU virtual machine with an emulated SVM CPU (TCG) in which
// microhv uses real KVM. It boots Debian's cloud kernel, loads kvm_amd, mounts
// the project image read-only, runs one command and powers off. This module
// runs it: output streamed, exit status returned, hard timeouts, and QEMU
// killed on every exit path (timeouts, errors, our own exit, and, through
// PR_SET_PDEATHSIG set by setpriv, even our own SIGKILL).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { buildTestHost, type TestHostImage } from '../images/build.js';
import { which, ImageError } from '../images/stage.js';
import { ConsoleParser } from './markers.js';
import { probeKvm } from '../microhv/kvm/probe.js';

export type TestHostErrorCode = 'MISSING_TOOL' | 'TIMEOUT' | 'BOOT_TIMEOUT' | 'NO_EXIT_STATUS' | 'QEMU_FAILED';
export class TestHostError extends Error {
  /** QEMU's pid, where it was started (it is dead by the time this is thrown). */
  qemuPid: number | undefined;
  /** The command's output up to the failure. */
  output = '';
  constructor(readonly code: TestHostErrorCode, message: string, readonly kernelLogTail = '', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TestHostError';
  }
}

export type Accel = 'tcg' | 'kvm';
export interface RunOptions {
  readonly command: string;
  /** Whole run, boot included. */
  readonly timeoutMs?: number;
  /** Until the command starts. */
  readonly bootTimeoutMs?: number;
  readonly memMiB?: number;
  readonly smp?: number;
  readonly accel?: Accel;
  readonly image?: TestHostImage;
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

export function qemuArgs(image: TestHostImage, cmdFile: string, logFile: string, o: { memMiB: number; smp: number; accel: Accel }): string[] {
  const cpu = o.accel === 'kvm'
    ? ['-accel', 'kvm', '-cpu', 'host']
    // An emulated CPU with SVM and nested paging, so kvm_amd loads inside.
    : ['-accel', 'tcg,thread=multi', '-cpu', 'qemu64,+svm,+npt'];
  return [
    ...cpu, '-smp', String(o.smp), '-m', String(o.memMiB),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-kernel', image.kernel, '-initrd', image.initramfs,
    '-append', 'console=ttyS0 panic=-1 quiet',
    '-serial', `file:${logFile}`,
    '-device', 'virtio-serial-pci', '-chardev', 'stdio,id=out,signal=off', '-device', 'virtconsole,chardev=out',
    '-drive', `file=${image.rootfs},format=raw,if=none,id=root,readonly=on`, '-device', 'virtio-blk-pci,drive=root',
    '-fw_cfg', `name=opt/microhv/cmd,file=${cmdFile}`,
  ];
}

const tail = (text: string, lines = 30): string => text.split('\n').slice(-lines).join('\n');

/** Boots the test host, runs `command` in /opt/microhv inside it and returns its exit status. */
export async function runInTestHost(opts: RunOptions): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const bootTimeoutMs = Math.min(opts.bootTimeoutMs ?? 120_000, timeoutMs);
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
  const args = qemuArgs(image, cmdFile, logFile, { memMiB: opts.memMiB ?? 2048, smp: opts.smp ?? 2, accel });
  const kernelLog = (): string => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } };

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
      const fail = (e: TestHostError): void => { failure ??= e; child.kill('SIGKILL'); };
      const emit = (text: string): void => { if (text) { output += text; opts.onOutput?.(text); } };

      const bootTimer = setTimeout(() => {
        if (bootMs < 0) fail(new TestHostError('BOOT_TIMEOUT', `test host did not start the command within ${bootTimeoutMs / 1000} s; QEMU was killed`, tail(kernelLog())));
      }, bootTimeoutMs);
      const timer = setTimeout(() => {
        fail(new TestHostError('TIMEOUT', `command did not finish within ${timeoutMs / 1000} s in the test host; QEMU was killed`, tail(kernelLog())));
      }, timeoutMs);

      child.stdout!.on('data', (chunk: Buffer) => {
        emit(parser.feed(decoder.write(chunk)));
        if (parser.ready && bootMs < 0) bootMs = performance.now() - t0;
      });
      child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
      child.on('error', (err) => fail(new TestHostError('QEMU_FAILED', `cannot start QEMU: ${err.message}`, '', { cause: err })));
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        clearTimeout(bootTimer);
        live.delete(child);
        if (failure) { failure.qemuPid = child.pid; failure.output = output; return reject(failure); }
        const exitCode = parser.exitCode;
        if (exitCode === undefined) {
          const e = new TestHostError(bootMs < 0 ? 'QEMU_FAILED' : 'NO_EXIT_STATUS',
            `test host ended (QEMU ${signal ? `signal ${signal}` : `exit ${code}`}) without reporting the command's exit status${stderr.trim() ? `: ${stderr.trim()}` : ''}`,
            tail(kernelLog()));
          e.qemuPid = child.pid;
          e.output = output;
          return reject(e);
        }
        resolve({ exitCode, output, bootMs, totalMs: performance.now() - t0, accel, kernelLog: kernelLog(), qemuPid: child.pid ?? -1 });
      });
    });
  } finally {
    if (live.has(child)) { child.kill('SIGKILL'); live.delete(child); }
    rmSync(dir, { recursive: true, force: true });
  }
}
