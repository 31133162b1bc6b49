// Process-test harness: builds the daemon into dist/ and runs it, Debian's
// xenstore-utils and raw sockets against it.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import ts from 'typescript';
import { afterAll } from 'vitest';

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const SRC = path.join(ROOT, 'xenstore-stubdom');
const OUT = path.join(ROOT, 'dist', 'xenstore-stubdom');
export const DAEMON = path.join(OUT, 'index.js');

/**
 * Emits dist/xenstore-stubdom/*.js as `tsc -p tsconfig.json` would (the tree is
 * isolatedModules, so per-file transpilation is exact), but only for this
 * domain: fast, and independent of other components' state. Writes are atomic,
 * so test files building concurrently never see a half-written module.
 */
export function buildDaemon(): void {
  fs.mkdirSync(OUT, { recursive: true });
  for (const f of fs.readdirSync(SRC)) {
    if (!f.endsWith('.ts') || f.endsWith('.test.ts') || f.endsWith('.d.ts')) continue;
    const src = fs.readFileSync(path.join(SRC, f), 'utf8');
    const out = ts.transpileModule(src, {
      fileName: f,
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022, verbatimModuleSyntax: true, sourceMap: false },
    }).outputText;
    const dest = path.join(OUT, f.replace(/\.ts$/, '.js'));
    if (fs.existsSync(dest) && fs.readFileSync(dest, 'utf8') === out) continue;
    const tmp = `${dest}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, out);
    fs.renameSync(tmp, dest);
  }
}

const made: string[] = [];
// Registered when a test file imports this, so it runs after that file's own hooks (stopping its daemons).
afterAll(() => { for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true }); });

/** A new directory under the system's temporary one, removed after the test file. */
export function tempDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `xs-${prefix}-`));
  made.push(d);
  return d;
}

export interface Daemon {
  proc: ChildProcess;
  socket: string;
  stateDir: string;
  domainDir: string;
  stderr: () => string;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the daemon on `dir`. With `viaEnv`, the socket and state directory are
 * given only through XENSTORED_PATH and XENSTORED_STATE_DIR.
 */
export async function startDaemon(dir: string, extra: string[] = [], viaEnv = false): Promise<Daemon> {
  const socket = path.join(dir, 'socket');
  const stateDir = path.join(dir, 'state');
  const domainDir = path.join(dir, 'domains');
  const args = viaEnv ? [DAEMON, '--domain-sockets', domainDir, ...extra] : [DAEMON, '--socket', socket, '--state-dir', stateDir, '--domain-sockets', domainDir, ...extra];
  const env = viaEnv ? { ...process.env, XENSTORED_PATH: socket, XENSTORED_STATE_DIR: stateDir } : process.env;
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`daemon did not start: ${err}`)), 15_000);
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('xenstored ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited ${code}: ${err}`));
    });
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    proc,
    socket,
    stateDir,
    domainDir,
    stderr: () => err,
    async kill9() {
      proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command with XENSTORED_PATH pointing at `socket`. */
export function run(cmd: string, args: string[], socket: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: { ...process.env, XENSTORED_PATH: socket }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A raw protocol connection for hostile-client tests. */
export class RawConn {
  readonly sock: net.Socket;
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiters.splice(0).forEach((w) => w());
    });
    sock.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    sock.on('error', () => undefined);
  }

  static open(socket: string): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(socket, () => resolve(new RawConn(s)));
      s.once('error', reject);
    });
  }

  send(bytes: Buffer): void {
    this.sock.write(bytes);
  }

  /** Next whole frame: [type, reqId, txId, payload]. */
  async frame(timeoutMs = 5000): Promise<{ type: number; reqId: number; txId: number; payload: Buffer }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buf.length >= 16) {
        const len = this.buf.readUInt32LE(12);
        if (this.buf.length >= 16 + len) {
          const f = { type: this.buf.readUInt32LE(0), reqId: this.buf.readUInt32LE(4), txId: this.buf.readUInt32LE(8), payload: this.buf.subarray(16, 16 + len) };
          this.buf = this.buf.subarray(16 + len);
          return f;
        }
      }
      if (this.closed) throw new Error('connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timeout waiting for frame');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
    return this.closed;
  }

  close(): void {
    this.sock.destroy();
  }
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
