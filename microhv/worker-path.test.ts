// Which script microhv starts for an entry point: its bundle when the build made a current one.
import { mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { WorkerPathError, entryPoint } from './worker-path.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'dist', 'worker-path-test');
const js = join(dir, 'entry.js');
const bundle = join(dir, 'entry.bundle.mjs');
beforeAll(() => mkdirSync(dir, { recursive: true }));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('the_bundle_when_current_the_module_when_the_bundle_is_missing_or_stale_and_an_error_when_neither_is_built', () => {
  expect(() => entryPoint('worker-path-test/entry')).toThrow(WorkerPathError);
  writeFileSync(js, '');
  expect(entryPoint('worker-path-test/entry')).toBe(js);
  writeFileSync(bundle, '');
  utimesSync(js, 1000, 1000);
  utimesSync(bundle, 2000, 2000);
  expect(entryPoint('worker-path-test/entry')).toBe(bundle);
  // tsc ran again without the bundle step: the bundle holds older code.
  utimesSync(js, 3000, 3000);
  expect(entryPoint('worker-path-test/entry')).toBe(js);
});
