// Is this machine's /dev/kvm usable for a stock guest? Checked in order: the device node,
// opening it, the API version, hardware virtualization flags, and finally a real tiny
// long-mode guest that must write known bytes and halt within a deadline.
import { existsSync, readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import * as sys from '../sys/index.js';
import { Kvm, KvmError } from './index.js';
import { entryPoint } from '../worker-path.js';
import { checkTinyGuestExits, type TinyGuestExit } from './tiny-guest.js';

export { TINY_GUEST_BYTES, TINY_GUEST_PORT } from './tiny-guest.js';

export interface TinyGuestResult { exits: TinyGuestExit[]; elapsedMs: number; timedOut: boolean }
export interface TinyGuestOptions {
  devKvm?: string;
  /** From the worker being ready to the guest's HLT; a slow (nested, emulated) host needs more. */
  deadlineMs?: number;
  graceMs?: number;
  startupMs?: number;
  /** Loop instead of halting, to exercise the deadline. */
  spin?: boolean;
}

/**
 * Runs the tiny guest in a worker thread. At `deadlineMs` after the worker is ready, the run
 * is stopped with a kick signal aimed at that thread alone; the result then has timedOut set.
 * A worker that answers neither (startup or kick) within its bound is terminated and the
 * promise rejects with TIMEOUT, so this never hangs.
 */
export function runTinyGuest(opts: TinyGuestOptions = {}): Promise<TinyGuestResult> {
  const deadlineMs = opts.deadlineMs ?? 1000;
  const stop = new SharedArrayBuffer(4);
  const kickSignal = sys.consts.SIGUSR2;
  const worker = new Worker(entryPoint('microhv/kvm/tiny-guest-worker'), { workerData: { devKvm: opts.devKvm ?? '/dev/kvm', stop, kickSignal, spin: opts.spin ?? false } });
  return new Promise<TinyGuestResult>((resolve, reject) => {
    let started = 0;
    let timedOut = false;
    let timer = setTimeout(() => finish(new KvmError('TIMEOUT', 'tiny guest worker did not start')), opts.startupMs ?? 15_000);
    const finish = (r: TinyGuestResult | Error): void => {
      clearTimeout(timer); // from here on no kick can be sent, so the worker's tid may be reused
      void worker.terminate();
      if (r instanceof Error) reject(r); else resolve(r);
    };
    worker.on('error', (e) => finish(new KvmError('IOCTL', `tiny guest worker failed: ${e.message}`, { cause: e })));
    worker.on('message', (m: { type: 'ready'; tid: number } | { type: 'done'; exits: TinyGuestExit[] } | { type: 'error'; message: string }) => {
      switch (m.type) {
        case 'ready':
          started = performance.now();
          clearTimeout(timer);
          timer = setTimeout(() => {
            timedOut = true;
            Atomics.store(new Int32Array(stop), 0, 1);
            sys.tgkill(process.pid, m.tid, kickSignal);
            timer = setTimeout(() => finish(new KvmError('TIMEOUT', 'vCPU did not leave KVM_RUN after a kick')), opts.graceMs ?? 2000);
          }, deadlineMs);
          break;
        case 'done':
          finish({ exits: m.exits, elapsedMs: performance.now() - started, timedOut });
          break;
        case 'error':
          finish(new KvmError('IOCTL', m.message));
          break;
        default: { const never: never = m; finish(new KvmError('IOCTL', `unexpected worker message ${JSON.stringify(never)}`)); }
      }
    });
  });
}

export interface ProbeDeps {
  exists(path: string): boolean;
  /** Opens the device and returns its API version; throws KvmError. */
  apiVersion(path: string): number;
  cpuinfo(): string;
  runGuest(opts: TinyGuestOptions): Promise<TinyGuestResult>;
}

export const realProbeDeps: ProbeDeps = {
  exists: existsSync,
  apiVersion: (path) => { const kvm = Kvm.open(path); try { return kvm.apiVersion(); } finally { kvm.close(); } },
  cpuinfo: () => readFileSync('/proc/cpuinfo', 'utf8'),
  runGuest: runTinyGuest,
};

/** 'vmx' (Intel VT-x) or 'svm' (AMD-V) if any CPU's flags line lists it. */
export function hardwareVirtFlag(cpuinfo: string): 'vmx' | 'svm' | null {
  for (const line of cpuinfo.split('\n')) {
    const [key, value] = line.split(':', 2);
    if (key?.trim() !== 'flags' || value === undefined) continue;
    const flags = value.trim().split(/\s+/);
    if (flags.includes('vmx')) return 'vmx';
    if (flags.includes('svm')) return 'svm';
  }
  return null;
}

export interface ProbeResult { usable: boolean; reason: string }

export async function probeKvm(opts: { devKvm?: string; deadlineMs?: number; deps?: ProbeDeps } = {}): Promise<ProbeResult> {
  const deps = opts.deps ?? realProbeDeps;
  const path = opts.devKvm ?? '/dev/kvm';
  const deadlineMs = opts.deadlineMs ?? 1000;
  const no = (reason: string): ProbeResult => ({ usable: false, reason });
  if (!deps.exists(path)) return no(`${path} does not exist (KVM module not loaded, or no hardware virtualization)`);
  try {
    deps.apiVersion(path);
  } catch (e) {
    return no(e instanceof Error ? e.message : String(e));
  }
  const flag = hardwareVirtFlag(deps.cpuinfo());
  if (flag === null) {
    return no(`${path} opens, but /proc/cpuinfo lists neither vmx nor svm: this KVM cannot run a stock guest (paravirtual-only or nested virtualization off)`);
  }
  let run: TinyGuestResult;
  try {
    run = await deps.runGuest({ devKvm: path, deadlineMs });
  } catch (e) {
    return no(`tiny guest failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  const check = checkTinyGuestExits(run.exits);
  if (run.timedOut) return no(`tiny guest did not halt within ${deadlineMs} ms (${check.reason})`);
  if (!check.ok) return no(`tiny guest misbehaved: ${check.reason}`);
  if (run.elapsedMs > deadlineMs) return no(`tiny guest took ${Math.round(run.elapsedMs)} ms, over the ${deadlineMs} ms deadline`);
  return { usable: true, reason: `${flag}: tiny 64-bit guest ${check.reason} in ${Math.round(run.elapsedMs)} ms` };
}
