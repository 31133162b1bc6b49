// The sandbox every domain process starts in (DESIGN.md 5). Node is multithreaded before its
// first line of JavaScript runs, and unshare(CLONE_NEWUSER) refuses a multithreaded caller, so
// the namespaces are made at spawn time: util-linux `unshare` (new user namespace mapping the
// caller to root, new mount, network, IPC and PID namespaces, a fresh /proc), then util-linux
// `setpriv` (no_new_privs, no capabilities left, not even in the new user namespace), then node.
// Each step execs the next, except that a PID namespace needs one fork: `unshare --fork
// --kill-child` stays as the domain's parent, reaps the domain before it exits itself and kills
// the domain if it dies first, so a pidfd on the spawned pid sees the domain's death either way
// (and killSandboxed lets the supervisor wait until a domain it killed is gone).
// What the kernel refuses is probed once per process (the whole sandbox first, in one trial), then
// dropped one namespace at a time and reported in one line; a missing namespace never fails a
// domain. Seccomp is installed by the domain itself (driver-domains/runtime/seccomp.ts).
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as sys from '../sys/index.js';

export type Namespace = 'user' | 'mount' | 'net' | 'ipc' | 'pid';
export const NAMESPACES: readonly Namespace[] = ['user', 'mount', 'net', 'ipc', 'pid'];

export interface SandboxPlan {
  readonly unshare?: string;
  readonly setpriv?: string;
  readonly namespaces: readonly Namespace[];
  /** setpriv also empties the capability bounding set (it needs CAP_SETPCAP where it runs). */
  readonly dropCaps: boolean;
  /** What is in force and what is not, with the reasons: one line for microhv's log. */
  readonly summary: string;
}

import { SANDBOX_ENV } from './sandbox-env.js';
export { SANDBOX_ENV };

const FLAGS: Record<Namespace, (ns: readonly Namespace[]) => string[]> = {
  user: () => ['--user', '--map-root-user'],
  mount: () => ['--mount'],
  net: () => ['--net'],
  ipc: () => ['--ipc'],
  // A fresh /proc shows only the domain's own PID namespace; it needs the mount namespace.
  pid: (ns) => ['--pid', '--fork', '--kill-child', ...(ns.includes('mount') ? ['--mount-proc'] : [])],
};

/** The command line that runs `command` under `plan`. */
export function wrapCommand(plan: SandboxPlan, command: readonly string[]): string[] {
  const out: string[] = [];
  if (plan.unshare !== undefined && plan.namespaces.length > 0) out.push(plan.unshare, ...NAMESPACES.filter((n) => plan.namespaces.includes(n)).flatMap((n) => FLAGS[n](plan.namespaces)), '--');
  if (plan.setpriv !== undefined) out.push(plan.setpriv, '--no-new-privs', ...(plan.dropCaps ? ['--bounding-set=-all', '--inh-caps=-all'] : []), '--');
  return [...out, ...command];
}

// microhv's environment is not passed on: a domain needs none of it, and it may hold secrets.
const env = (namespaces: readonly Namespace[]): NodeJS.ProcessEnv => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', [SANDBOX_ENV]: namespaces.join(',') || 'none' });

const toolDirs = (): string[] => [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/bin', '/bin', '/usr/sbin', '/sbin'];

/** A util-linux tool by name (busybox's applets of the same names lack the options used here). */
function utilLinux(tool: string): string | undefined {
  for (const p of toolDirs().map((d) => join(d, tool))) {
    if (!existsSync(p)) continue;
    const r = spawnSync(p, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (r.status === 0 && r.stdout.includes('util-linux')) return p;
  }
  return undefined;
}

/** The first `tool` on the PATH that is not a busybox or toybox applet (a link to the multi-call binary), asking it nothing. */
function firstTool(tool: string): string | undefined {
  return toolDirs().map((d) => join(d, tool)).find((p) => existsSync(p) && !/^(busybox|toybox)/.test(basename(realpathSync(p))));
}

/** Tries the plan on `true`; undefined when it works, else why not. */
function attempt(plan: Omit<SandboxPlan, 'summary'>): string | undefined {
  const [cmd, ...args] = wrapCommand({ ...plan, summary: '' }, ['true']);
  const r = spawnSync(cmd!, args, { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], env: env(plan.namespaces), timeout: 10_000 });
  if (r.status === 0) return undefined;
  return (r.stderr.trim().split('\n').at(-1) ?? '') || (r.error?.message ?? `exit ${r.status ?? r.signal}`);
}

/** The plan's one line for microhv's log. */
function summarize(namespaces: readonly Namespace[], dropCaps: boolean, missing: readonly string[]): string {
  const inForce = `new ${namespaces.length > 0 ? namespaces.join(', ') : 'no'} namespaces${dropCaps ? ', no capabilities' : ''}`;
  return missing.length === 0 ? `sandbox: domains run in ${inForce}` : `sandbox: domains run in ${inForce}; NOT available: ${missing.join('; ')}`;
}

/**
 * Finds what this kernel and these privileges allow. The whole sandbox is tried first, in one
 * process: on the emulated test host each process costs about 0.1 s of a start-up that the
 * domains wait for. Only when that fails is each piece probed on its own, a few processes more,
 * to say what is missing and why.
 */
export function probeSandbox(): SandboxPlan {
  const [u, s] = [firstTool('unshare'), firstTool('setpriv')];
  if (u !== undefined && s !== undefined && attempt({ unshare: u, setpriv: s, namespaces: NAMESPACES, dropCaps: true }) === undefined) {
    return { unshare: u, setpriv: s, namespaces: NAMESPACES, dropCaps: true, summary: summarize(NAMESPACES, true, []) };
  }
  const unshare = utilLinux('unshare');
  const setpriv = utilLinux('setpriv');
  const missing: string[] = [];
  let namespaces: Namespace[] = [];
  if (unshare === undefined) missing.push('every namespace (util-linux unshare not found)');
  else if (attempt({ unshare, namespaces: NAMESPACES, dropCaps: false }) === undefined) namespaces = [...NAMESPACES];
  else {
    for (const ns of NAMESPACES) {
      // Without a user namespace only root may make the others; pid is tried with the mount namespace its /proc needs.
      const trial = [...namespaces.filter((n) => n === 'user' || (ns === 'pid' && n === 'mount')), ns];
      const why = attempt({ unshare, namespaces: trial, dropCaps: false });
      if (why === undefined) namespaces.push(ns);
      else missing.push(`${ns} namespace (${why})`);
    }
    const why = namespaces.length > 0 ? attempt({ unshare, namespaces, dropCaps: false }) : undefined;
    if (why !== undefined) {
      missing.push(`the namespaces together (${why})`);
      namespaces = [];
    }
  }
  let dropCaps = false;
  let withSetpriv: string | undefined;
  if (setpriv === undefined) missing.push('no_new_privs and capability drop at exec (util-linux setpriv not found)');
  else {
    const whyNotDrop = attempt({ unshare, setpriv, namespaces, dropCaps: true });
    const whyNot = whyNotDrop === undefined ? undefined : attempt({ unshare, setpriv, namespaces, dropCaps: false });
    if (whyNot !== undefined) missing.push(`setpriv (${whyNot})`);
    else {
      withSetpriv = setpriv;
      dropCaps = whyNotDrop === undefined;
      if (!dropCaps) missing.push(`capability drop (${whyNotDrop ?? ''})`);
    }
  }
  return { unshare, setpriv: withSetpriv, namespaces, dropCaps, summary: summarize(namespaces, dropCaps, missing) };
}

let cached: SandboxPlan | undefined;

/** The plan for this process, probed and reported on first use. */
export function sandboxPlan(report: (line: string) => void = (l) => process.stderr.write(`microhv: ${l}\n`)): SandboxPlan {
  if (cached === undefined) {
    cached = probeSandbox();
    report(cached.summary);
  }
  return cached;
}

/**
 * Spawns `node nodeArgs` as a sandboxed domain with exactly `stdio` as its fds. microhv makes its
 * own fds close-on-exec, but it may itself have inherited some without the flag; every fd above
 * stderr is marked close-on-exec first, so only what `stdio` maps reaches the domain.
 */
export function spawnSandboxed(nodeArgs: readonly string[], stdio: StdioOptions, plan: SandboxPlan = sandboxPlan(), extraEnv: Readonly<Record<string, string>> = {}): ChildProcess {
  sys.closeRange(3, 0xffff_ffff, sys.consts.CLOSE_RANGE_CLOEXEC);
  const [cmd, ...args] = wrapCommand(plan, [process.execPath, ...nodeArgs]);
  // `extraEnv` is what the role's own runtime needs at start (the block domain's I/O thread count).
  return spawn(cmd!, args, { stdio, env: { ...extraEnv, ...env(plan.namespaces) } });
}

/**
 * The children of `pid`: from /proc/PID/task/PID/children where the kernel has it
 * (CONFIG_PROC_CHILDREN; Debian's cloud kernel does not), else by each process's parent.
 */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return scanChildren(pid);
  }
}

/** Every process whose parent is `pid`, by reading each one's /proc/N/stat. */
export function scanChildren(pid: number): number[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number).filter((p) => parentOf(p) === pid);
}

/** /proc/PID/stat's parent pid (field 4, after the parenthesised command name). */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/**
 * Kills a domain spawned by spawnSandboxed: SIGKILL to the spawned pid. With a PID namespace that
 * is `unshare --fork`, and its death kills the domain (--kill-child) a moment later; the pidfd
 * returned is on the domain process itself and becomes readable once the domain is gone, so the
 * caller can wait for that before starting a successor (undefined: the spawned pid is the domain,
 * or nothing is left to wait for). Killing the domain rather than unshare would also work, but
 * unshare then reports the SIGKILL it cannot re-raise on the shared stderr.
 */
export function killSandboxed(pidfd: number, pid: number): number | undefined {
  let domain: number | undefined;
  const child = childrenOf(pid)[0];
  if (child !== undefined) {
    try {
      const fd = sys.pidfdOpen(child);
      // Checked after the pidfd pins the process: the pid was not reused by another since it was read.
      if (parentOf(child) === pid) domain = fd;
      else sys.close(fd);
    } catch {
      // Gone already.
    }
  }
  try {
    sys.pidfdSendSignal(pidfd, sys.consts.SIGKILL);
  } catch {
    // Exited already; its death is on the way to the caller.
  }
  return domain;
}
