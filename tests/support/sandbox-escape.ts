// Runs tests/support/escape-attempts.ts as a domain: through microhv's sandboxed spawn path
// (microhv/domains/sandbox.ts), with a control socket as fd 3, while this process plays microhv
// and offers it things to steal: a memfd holding a secret (mapped, never given), a TCP listener
// on 127.0.0.1, an abstract Unix socket and a file of its own. Used by
// tests/domains/sandbox.test.ts here and, as a program, by tests/sandbox.host.test.ts inside the
// test host:
//   node dist/tests/support/sandbox-escape.js   prints one line: SANDBOX-ESCAPE <json>
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sys from '../../microhv/sys/index.js';
import { compiledWorker } from '../../microhv/worker-path.js';
import { probeSandbox, spawnSandboxed, type SandboxPlan } from '../../microhv/domains/sandbox.js';
import type { Attempt, SelfView } from './escape-attempts.js';

export interface EscapeRun {
  readonly plan: SandboxPlan;
  /** Namespaces (as /proc/self/ns names) the domain does not share with its parent. */
  readonly newNamespaces: string[];
  readonly self: SelfView | undefined;
  readonly attempts: Attempt[];
  /** Every attempt ran (the last line came). */
  readonly done: boolean;
  readonly seccompUnavailable: boolean;
  /** Seen from this side: connections that reached the listeners, and whether the file is as it was. */
  readonly tcpConnections: number;
  readonly abstractConnections: number;
  readonly hostFileIntact: boolean;
  readonly exitCode: number | null;
  readonly stderr: string;
}

const listen = (server: Server, at: { port: number; host: string } | { path: string }): Promise<void> =>
  new Promise((resolve, reject) => { server.once('error', reject); server.listen(at, () => resolve()); });

/** `sandboxed` false runs the same program with a plain spawn: the control that shows what the sandbox changes. */
export async function runEscapeAttempts(opts: { plan?: SandboxPlan; sandboxed?: boolean } = {}): Promise<EscapeRun> {
  const plan = opts.plan ?? probeSandbox();
  const secret = randomBytes(32);
  const memfd = sys.memfdCreate('escape-secret', sys.consts.MFD_CLOEXEC);
  sys.ftruncate(memfd, 4096);
  const mapping = sys.mmap(4096, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, memfd, 0);
  new Uint8Array(mapping.buffer).set(secret);
  const dir = mkdtempSync(join(tmpdir(), 'microhv-escape-'));
  const hostFile = join(dir, 'host-file');
  writeFileSync(hostFile, 'untouched', { mode: 0o644 });
  // Where the domain tries to mount; a mount that works (the unsandboxed control) lands here and is undone.
  const mountDir = join(dir, 'mnt');
  mkdirSync(mountDir);
  let tcpConnections = 0;
  let abstractConnections = 0;
  const tcp = createServer((s) => { tcpConnections++; s.destroy(); });
  const abstract = createServer((s) => { abstractConnections++; s.destroy(); });
  const abstractName = `microhv-escape-${process.pid}-${secret.subarray(0, 4).toString('hex')}`;
  const [mine, theirs] = sys.socketpair(sys.consts.AF_UNIX, sys.consts.SOCK_STREAM | sys.consts.SOCK_CLOEXEC, 0);
  try {
    await listen(tcp, { port: 0, host: '127.0.0.1' });
    await listen(abstract, { path: `\0${abstractName}` });
    const port = (tcp.address() as { port: number }).port;
    const script = compiledWorker(import.meta.url, 'escape-attempts.js');
    const args = [script, String(process.pid), `0x${mapping.addr.toString(16)}`, secret.toString('hex'), String(port), abstractName, hostFile, mountDir];
    const stdio: ['ignore', 'pipe', 'pipe', number] = ['ignore', 'pipe', 'pipe', theirs];
    const child = opts.sandboxed === false ? spawn(process.execPath, args, { stdio }) : spawnSandboxed(args, stdio, plan);
    sys.close(theirs);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exitCode = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.once('close', (code) => { clearTimeout(timer); resolve(code); });
    });
    const lines = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const self = lines.find((l) => 'self' in l)?.self as SelfView | undefined;
    const parentNs = Object.fromEntries(['user', 'mnt', 'net', 'ipc', 'pid'].map((n) => [n, readlinkSync(`/proc/self/ns/${n}`)]));
    return {
      plan, self,
      newNamespaces: self === undefined ? [] : Object.keys(parentNs).filter((n) => self.namespaces[n] !== parentNs[n]),
      attempts: lines.filter((l) => 'phase' in l) as unknown as Attempt[],
      done: lines.some((l) => l.done === true),
      seccompUnavailable: lines.some((l) => l.seccomp === 'unavailable'),
      tcpConnections, abstractConnections,
      hostFileIntact: readFileSync(hostFile, 'utf8') === 'untouched',
      exitCode, stderr,
    };
  } finally {
    if (readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mountDir} `)) spawnSync('umount', [mountDir]);
    sys.close(mine);
    tcp.close();
    abstract.close();
    sys.munmap(mapping);
    sys.close(memfd);
    rmSync(dir, { recursive: true, force: true });
  }
}

function findNode(pid: number, node: string): number | undefined {
  try {
    if (readlinkSync(`/proc/${pid}/exe`) === node) return pid;
  } catch {
    return undefined;
  }
  let children = '';
  try { children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8'); } catch { /* exited meanwhile */ }
  for (const child of children.trim().split(/\s+/).filter(Boolean).map(Number)) {
    const found = findNode(child, node);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * The host pid of the node process the sandbox runs under the spawned pid: that pid itself, or
 * with a PID namespace the child of `unshare --fork`, once it has exec'ed node.
 */
export async function nodePidUnder(spawned: number, timeoutMs = 5_000): Promise<number> {
  const node = realpathSync(process.execPath);
  for (const deadline = Date.now() + timeoutMs; ;) {
    const found = findNode(spawned, node);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`no ${node} process under pid ${spawned} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runEscapeAttempts().then((r) => {
    process.stdout.write(`SANDBOX-ESCAPE ${JSON.stringify(r)}\n`);
    process.exit(0);
  }, (e: unknown) => {
    process.stderr.write(`sandbox-escape: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
