// Helpers to fill a staging folder that becomes an initramfs (cpio) or an ext4
// image (mke2fs -d). Neither needs root nor a loop device.
import { execFileSync } from 'node:child_process';
import { readFileSync, cpSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync, chmodSync, statSync, rmSync, lstatSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createHash } from 'node:crypto';

export class ImageError extends Error {
  constructor(readonly code: 'MISSING_TOOL' | 'MISSING_FILE' | 'APT' | 'BUILD', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ImageError';
  }
}

/** Where each Debian package we rely on can be had from, for error messages. */
const TOOL_PACKAGE: Record<string, string> = {
  'mke2fs': 'e2fsprogs', 'cpio': 'cpio', 'busybox': 'busybox-static', 'fio': 'fio', 'iperf3': 'iperf3',
  'qemu-system-x86_64': 'qemu-system-x86', 'apt-get': 'apt', 'dpkg-deb': 'dpkg', 'setpriv': 'util-linux', 'unshare': 'util-linux',
};

export function which(tool: string): string {
  if (tool.startsWith('/')) return tool;
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = join(dir, tool);
    if (existsSync(p)) return p;
  }
  const pkg = TOOL_PACKAGE[tool];
  throw new ImageError('MISSING_TOOL', `${tool} not found${pkg ? `: install the Debian package ${pkg} (make setup does)` : ''}`);
}

export function run(tool: string, args: string[], opts: { cwd?: string; input?: Buffer } = {}): Buffer {
  try {
    return execFileSync(which(tool), args, { cwd: opts.cwd, input: opts.input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
  } catch (err) {
    const e = err as { stderr?: Buffer; status?: number };
    throw new ImageError('BUILD', `${tool} ${args.join(' ')} failed (exit ${e.status ?? '?'}): ${e.stderr?.toString().trim() ?? ''}`, { cause: err });
  }
}

export function freshDir(dir: string): string {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function writeExecutable(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, 0o755);
}

/** Copies a file to the same absolute path under `root`, keeping symlinks as symlinks. */
export function copyInto(root: string, path: string): void {
  const dest = join(root, path);
  if (existsSync(dest) || isSymlink(dest)) return;
  mkdirSync(dirname(dest), { recursive: true });
  cpSync(path, dest, { recursive: true, verbatimSymlinks: true, dereference: false });
}

const isSymlink = (p: string): boolean => { try { return lstatSync(p).isSymbolicLink(); } catch { return false; } };

/** The shared libraries a dynamically linked program loads, as ldd resolves them on this machine. */
export function sharedLibraries(binary: string): string[] {
  const out = run('ldd', [binary]).toString();
  const libs = new Set<string>();
  for (const line of out.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.add(m[1]);
  }
  return [...libs];
}

/** Copies a program and every library it loads (resolving symlinked library names). */
export function copyProgram(root: string, binary: string): void {
  copyInto(root, binary);
  for (const lib of sharedLibraries(binary)) {
    // Copy the real file under the name the loader asks for.
    const dest = join(root, lib);
    if (existsSync(dest)) continue;
    mkdirSync(dirname(dest), { recursive: true });
    cpSync(lib, dest, { dereference: true });
  }
  // Debian's loader path is /lib64/ld-linux-x86-64.so.2; /lib64 may be a symlink on usrmerged systems.
  if (!existsSync(join(root, 'lib64/ld-linux-x86-64.so.2'))) {
    mkdirSync(join(root, 'lib64'), { recursive: true });
    cpSync('/lib64/ld-linux-x86-64.so.2', join(root, 'lib64/ld-linux-x86-64.so.2'), { dereference: true });
  }
}

/**
 * Installs a program over the busybox applets of the same name, in every bin folder, so that no
 * PATH order finds the applet first.
 */
export function replaceApplet(root: string, binary: string): void {
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin']) {
    const p = join(root, d, basename(binary));
    if (isSymlink(p)) rmSync(p);
  }
  copyProgram(root, binary);
}

/** busybox (static) plus a symlink for every applet it has. */
export function installBusybox(root: string): void {
  const bb = which('busybox');
  mkdirSync(join(root, 'bin'), { recursive: true });
  cpSync(bb, join(root, 'bin/busybox'), { dereference: true });
  const applets = run(bb, ['--list-full']).toString().split('\n').filter(Boolean);
  for (const a of applets) {
    const dest = join(root, a);
    if (existsSync(dest) || isSymlink(dest)) continue;
    mkdirSync(dirname(dest), { recursive: true });
    symlinkSync('/bin/busybox', dest);
  }
}

/** newc cpio archive of a folder, entries sorted, owned by root. */
export function makeCpio(stage: string, out: string): void {
  const names = run('find', ['.', '-mindepth', '1'], { cwd: stage }).toString().split('\n').filter(Boolean).sort();
  const archive = run('cpio', ['--quiet', '-o', '-H', 'newc', '-R', '0:0'], { cwd: stage, input: Buffer.from(names.join('\n') + '\n') });
  writeFileSync(out, archive);
}

/** ext4 image of a folder, made by mke2fs -d: no root and no loop device. */
export function makeExt4(stage: string, out: string, label: string, slackMiB = 64): void {
  const usedKiB = Number(run('du', ['-sk', '--apparent-size', stage]).toString().split(/\s/)[0]);
  const sizeMiB = Math.ceil((usedKiB * 1.15) / 1024) + slackMiB;
  rmSync(out, { force: true });
  run('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', label, '-E', 'root_owner=0:0', '-d', stage, out, `${sizeMiB}M`]);
}

/** A content hash over files and strings: the cache key of a build. */
export function digest(parts: ReadonlyArray<string | { file: string }>): string {
  const h = createHash('sha256');
  for (const p of parts) {
    if (typeof p === 'string') h.update(`s:${p}\0`);
    else {
      // Small files (scripts, configs) by content; large binaries by size and mtime.
      const st = statSync(p.file);
      h.update(`f:${p.file}:${st.size}\0`);
      if (st.size < 4 << 20) h.update(readFileSync(p.file));
      else h.update(`${st.mtimeMs}\0`);
    }
  }
  return h.digest('hex').slice(0, 16);
}

export const listDir = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);
