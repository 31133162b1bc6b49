// Builds and caches the two images the project boots: the embedded default
// guest (kernel + busybox initramfs with the virtio modules, fio and iperf3)
// and the test host (kernel + initramfs that loads kvm_amd, + an ext4 image of
// the project, node, QEMU and their libraries). Each is rebuilt only when a
// digest of its inputs changes.
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cloudKernel, type Kernel } from './kernel.js';
import { indexModules, loadOrder } from './kmod.js';
import { ImageError, copyInto, copyProgram, digest, freshDir, installBusybox, makeCpio, makeExt4, replaceApplet, which, writeExecutable } from './stage.js';

/** The repository root: the nearest folder above this file with a package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new ImageError('MISSING_FILE', 'cannot find the repository root (package.json)');
    dir = up;
  }
  return dir;
}

export const cacheDir = (): string => process.env.MICROHV_CACHE ?? join(repoRoot(), '.cache');

export interface GuestImage { readonly kernel: string; readonly initramfs: string; readonly kernelVersion: string }
export interface TestHostImage { readonly kernel: string; readonly initramfs: string; readonly rootfs: string; readonly guest: GuestImage }

const GUEST_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_net'];
const TESTHOST_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_console', 'qemu_fw_cfg', 'kvm_amd', 'tun', 'vhost_net'];
/** Where the guest image lives inside the test host (the project is at /opt/microhv). */
export const GUEST_IN_TESTHOST = '/opt/microhv/.cache/guest';

interface Manifest { digest: string; [k: string]: unknown }
const readManifest = (dir: string): Manifest | undefined => {
  try { return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest; } catch { return undefined; }
};

/** Stages the modules plus /etc/modules.order (paths relative to /lib/modules). */
function stageModules(root: string, kernel: Kernel, wanted: string[]): void {
  const files = loadOrder(wanted, indexModules(kernel.modulesDir));
  const lines: string[] = [];
  for (const f of files) {
    const rel = relative(kernel.modulesDir, f);
    mkdirSync(dirname(join(root, 'lib/modules', rel)), { recursive: true });
    copyFileSync(f, join(root, 'lib/modules', rel));
    lines.push(rel);
  }
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc/modules.order'), lines.join('\n') + '\n');
}

function skeleton(root: string): void {
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'run', 'etc', 'root', 'var/tmp', 'var/log', 'mnt']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
}

/** Runs `build` into a temporary folder and swaps it in only when it succeeded. */
function cached<T>(dir: string, key: string, outputs: (d: string) => T, build: (tmp: string) => void): { value: T; rebuilt: boolean } {
  const m = readManifest(dir);
  if (m?.digest === key) return { value: outputs(dir), rebuilt: false };
  const tmp = freshDir(`${dir}.tmp`);
  build(tmp);
  writeFileSync(join(tmp, 'manifest.json'), JSON.stringify({ digest: key, built: new Date().toISOString() }, null, 2));
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return { value: outputs(dir), rebuilt: true };
}

export function buildGuest(log: (s: string) => void = () => {}): GuestImage {
  const root = repoRoot();
  const kernel = cloudKernel(cacheDir());
  const init = join(root, 'images/scripts/guest-init.sh');
  const tools = [which('busybox'), which('fio'), which('iperf3')];
  const key = digest(['guest-v1', kernel.package, ...GUEST_MODULES, { file: init }, ...tools.map((file) => ({ file }))]);
  const t0 = Date.now();
  const { value, rebuilt } = cached(join(cacheDir(), 'guest'), key,
    (d) => ({ kernel: join(d, 'vmlinuz'), initramfs: join(d, 'initramfs.cpio'), kernelVersion: kernel.version }),
    (tmp) => {
      const stage = join(tmp, 'stage');
      skeleton(stage);
      installBusybox(stage);
      stageModules(stage, kernel, GUEST_MODULES);
      for (const t of tools.slice(1)) copyProgram(stage, t);
      writeExecutable(join(stage, 'init'), readFileSync(init, 'utf8'));
      makeCpio(stage, join(tmp, 'initramfs.cpio'));
      copyFileSync(kernel.vmlinuz, join(tmp, 'vmlinuz'));
      rmSync(stage, { recursive: true });
    });
  log(`guest image: ${rebuilt ? `built in ${((Date.now() - t0) / 1000).toFixed(1)} s` : 'up to date'} (${(statSync(value.initramfs).size / 2 ** 20).toFixed(0)} MiB initramfs, kernel ${kernel.version})`);
  return value;
}

/** node_modules entries that the running product needs (not dev-only), from package-lock.json. */
function productionModules(root: string): string[] {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  return Object.entries(lock.packages).filter(([p, v]) => p.startsWith('node_modules/') && !v.dev).map(([p]) => p);
}

/** Every file below a folder (for digests), sorted. */
function filesBelow(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, n.name);
      if (n.isDirectory()) walk(p); else if (n.isFile()) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

export function buildTestHost(log: (s: string) => void = () => {}): TestHostImage {
  const root = repoRoot();
  const guest = buildGuest(log);
  const kernel = cloudKernel(cacheDir());
  const scripts = ['testhost-stage1.sh', 'testhost-stage2.sh'].map((s) => join(root, 'images/scripts', s));
  const programs = [which('node'), which('qemu-system-x86_64')];
  // microhv starts domains through util-linux unshare and setpriv (microhv/domains/sandbox.ts);
  // busybox's applets of those names lack the options it uses.
  const sandboxTools = [which('unshare'), which('setpriv')];
  const dir = join(cacheDir(), 'testhost');
  const t0 = Date.now();

  // The boot part (kernel + stage-1 initramfs) changes rarely; the root file
  // system changes with every build of the project.
  const bootKey = digest(['testhost-boot-v1', kernel.package, ...TESTHOST_MODULES, { file: scripts[0]! }, { file: which('busybox') }]);
  const boot = cached(join(dir, 'boot'), bootKey, (d) => ({ kernel: join(d, 'vmlinuz'), initramfs: join(d, 'initramfs.cpio') }), (tmp) => {
    const stage = join(tmp, 'stage');
    skeleton(stage);
    installBusybox(stage);
    stageModules(stage, kernel, TESTHOST_MODULES);
    writeExecutable(join(stage, 'init'), readFileSync(scripts[0]!, 'utf8'));
    makeCpio(stage, join(tmp, 'initramfs.cpio'));
    copyFileSync(kernel.vmlinuz, join(tmp, 'vmlinuz'));
    rmSync(stage, { recursive: true });
  });

  const projectDirs = ['dist', 'build'].map((d) => join(root, d));
  const modules = productionModules(root);
  const rootKey = digest(['testhost-root-v2', { file: scripts[1]! }, { file: join(root, 'package-lock.json') }, { file: guest.initramfs }, { file: guest.kernel },
    ...[...programs, ...sandboxTools].map((file) => ({ file })), ...projectDirs.flatMap(filesBelow).map((file) => ({ file }))]);
  const rootfs = cached(join(dir, 'rootfs'), rootKey, (d) => join(d, 'rootfs.ext4'), (tmp) => {
    const stage = join(tmp, 'stage');
    skeleton(stage);
    installBusybox(stage);
    for (const p of programs) copyProgram(stage, p);
    for (const t of sandboxTools) replaceApplet(stage, t);
    // QEMU's firmware (SeaBIOS, option ROMs); Debian links some into /usr/share/seabios.
    for (const d of ['/usr/share/qemu', '/usr/share/seabios', '/usr/lib/ipxe/qemu']) if (existsSync(d)) copyInto(stage, d);
    writeExecutable(join(stage, 'sbin/testhost-init'), readFileSync(scripts[1]!, 'utf8'));
    // Mount point of the scratch disk (the root is read-only inside).
    mkdirSync(join(stage, 'scratch'));
    const proj = join(stage, 'opt/microhv');
    mkdirSync(proj, { recursive: true });
    copyFileSync(join(root, 'package.json'), join(proj, 'package.json'));
    for (const d of projectDirs) if (existsSync(d)) cpSync(d, join(proj, relative(root, d)), { recursive: true });
    // Optional platform packages of other systems are in the lock file but not on disk.
    for (const m of modules) if (existsSync(join(root, m))) cpSync(join(root, m), join(proj, m), { recursive: true, verbatimSymlinks: true });
    const g = join(stage, GUEST_IN_TESTHOST);
    mkdirSync(g, { recursive: true });
    copyFileSync(guest.kernel, join(g, 'vmlinuz'));
    copyFileSync(guest.initramfs, join(g, 'initramfs.cpio'));
    makeExt4(stage, join(tmp, 'rootfs.ext4'), 'microhv-testhost');
    rmSync(stage, { recursive: true });
  });
  log(`test host image: boot ${boot.rebuilt ? 'built' : 'up to date'}, rootfs ${rootfs.rebuilt ? 'built' : 'up to date'} in ${((Date.now() - t0) / 1000).toFixed(1)} s (${(statSync(rootfs.value).size / 2 ** 20).toFixed(0)} MiB)`);
  return { kernel: boot.value.kernel, initramfs: boot.value.initramfs, rootfs: rootfs.value, guest };
}
