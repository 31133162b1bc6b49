// Worker threads must start from compiled JavaScript (Node 20 cannot start a
// .ts worker). When the caller itself runs from source (the unit tests), the
// worker is taken from dist/ at the same relative place.
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export class WorkerPathError extends Error {
  readonly code = 'NOT_BUILT';
}

/** Path of the compiled worker `jsName` that lives beside the module at `metaUrl`. */
export function compiledWorker(metaUrl: string, jsName: string): string {
  const here = dirname(fileURLToPath(metaUrl));
  let js = join(here, jsName);
  if (fileURLToPath(metaUrl).endsWith('.ts')) {
    // <repo>/microhv/x/y.ts -> <repo>/dist/microhv/x/<jsName>
    const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
    js = join(repo, 'dist', relative(repo, here), jsName);
  }
  if (!existsSync(js)) throw new WorkerPathError(`${js} is missing: run npx tsc -p tsconfig.json`);
  return js;
}
