// Compiles idl/, tests/idl/ and bench/ring/ (and what they import) into
// .cache/idl-dist, so tests can spawn peer processes from JavaScript that
// Node 20 can run. A private output folder keeps these builds independent of
// whoever else is writing dist/.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const IDL_DIST = path.join(REPO, '.cache', 'idl-dist');

export function buildIdl(): void {
  execFileSync(path.join(REPO, 'node_modules', '.bin', 'tsc'), ['-p', path.join(REPO, 'idl', 'tsconfig.build.json')], {
    cwd: REPO,
    stdio: 'inherit',
  });
}
