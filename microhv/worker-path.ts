// Where the compiled scripts are: worker threads and domain processes start
// from compiled JavaScript (Node 20 cannot start a .ts file). The build also
// bundles each entry point into one file beside it (X.bundle.mjs, `make
// build`): under an emulated CPU a process spends most of its start-up loading
// modules one by one, and one file loads several times faster. A bundle older
// than its entry's compiled module is stale (a tsc run without the bundle
// step) and is not used.
import { existsSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export class WorkerPathError extends Error {
  readonly code = 'NOT_BUILT';
}

/** The repository (or installed tree) root: the nearest directory above this module with a package.json. */
function rootDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new WorkerPathError(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return dir;
}

/**
 * The script to start for the entry point `entry` (its path in the tree without extension, e.g.
 * `microhv/vm/vcpu-worker`): dist/<entry>.bundle.mjs when it is current, else dist/<entry>.js.
 */
export function entryPoint(entry: string): string {
  const dist = join(rootDir(), 'dist');
  const js = join(dist, `${entry}.js`);
  if (!existsSync(js)) throw new WorkerPathError(`${js} is missing: run make build`);
  const bundle = join(dist, `${entry}.bundle.mjs`);
  try {
    if (statSync(bundle).mtimeMs >= statSync(js).mtimeMs) return bundle;
  } catch { /* not bundled: the module itself */ }
  return js;
}

/** Path of the compiled worker `jsName` that lives beside the module at `metaUrl` (test workers, not bundled). */
export function compiledWorker(metaUrl: string, jsName: string): string {
  const here = dirname(fileURLToPath(metaUrl));
  let js = join(here, jsName);
  if (fileURLToPath(metaUrl).endsWith('.ts')) {
    // <repo>/microhv/x/y.ts -> <repo>/dist/microhv/x/<jsName>
    const repo = rootDir();
    js = join(repo, 'dist', relative(repo, here), jsName);
  }
  if (!existsSync(js)) throw new WorkerPathError(`${js} is missing: run npx tsc -p tsconfig.json`);
  return js;
}
