// Debian's cloud kernel, fetched with apt-get download (the only way anything
// is downloaded) and unpacked with dpkg-deb into a cache keyed by its version.
import { existsSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageError, freshDir, run } from './stage.js';

export const KERNEL_META_PACKAGE = 'linux-image-cloud-amd64';

export interface Kernel {
  readonly version: string;    // e.g. 6.1.0-56-cloud-amd64 (the modules folder name)
  readonly vmlinuz: string;    // bzImage path
  readonly modulesDir: string; // lib/modules/<version>
  readonly package: string;    // the versioned image package it came from
}

/** The versioned kernel package the meta package depends on, from local apt lists. */
function resolveImagePackage(): { name: string; version: string } {
  const show = (pkg: string): string => {
    try {
      return run('apt-cache', ['show', '--no-all-versions', pkg]).toString();
    } catch {
      return '';
    }
  };
  let meta = show(KERNEL_META_PACKAGE);
  if (!meta) {
    // A fresh machine may have empty apt lists.
    run('apt-get', ['update', '-qq']);
    meta = show(KERNEL_META_PACKAGE);
  }
  const dep = /^Depends:\s*([^\s,(]+)/m.exec(meta)?.[1];
  if (!dep) throw new ImageError('APT', `apt knows no ${KERNEL_META_PACKAGE}: is this a Debian machine with its main archive configured?`);
  const version = /^Version:\s*(\S+)/m.exec(show(dep))?.[1];
  if (!version) throw new ImageError('APT', `apt knows no ${dep} (needed by ${KERNEL_META_PACKAGE})`);
  return { name: dep, version };
}

/** Fetches (once) and returns the cloud kernel. */
export function cloudKernel(cacheDir: string): Kernel {
  const pkg = resolveImagePackage();
  const dir = join(cacheDir, 'kernel', `${pkg.name}_${pkg.version}`);
  if (!existsSync(join(dir, 'ok'))) {
    const tmp = freshDir(`${dir}.tmp`);
    // The sandbox user _apt cannot write into our cache folder; we are root, so
    // tell apt not to drop privileges for this one download.
    run('apt-get', ['download', '-qq', '-o', 'APT::Sandbox::User=root', KERNEL_META_PACKAGE, pkg.name], { cwd: tmp });
    const deb = readdirSync(tmp).find((f) => f.startsWith(`${pkg.name}_`) && f.endsWith('.deb'));
    if (!deb) throw new ImageError('APT', `apt-get download ${pkg.name} produced no .deb`);
    run('dpkg-deb', ['-x', deb, 'root'], { cwd: tmp });
    writeFileSync(join(tmp, 'ok'), `${pkg.name} ${pkg.version}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  }
  const modRoot = join(dir, 'root/lib/modules');
  const version = readdirSync(modRoot)[0];
  if (!version) throw new ImageError('MISSING_FILE', `${pkg.name} has no lib/modules`);
  return { version, vmlinuz: join(dir, 'root/boot', `vmlinuz-${version}`), modulesDir: join(modRoot, version), package: `${pkg.name}_${pkg.version}` };
}
