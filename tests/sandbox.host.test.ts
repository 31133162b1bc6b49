// The domain sandbox inside the test host, where microhv runs as root on Debian's stock cloud
// kernel: the same hostile domain as tests/domains/sandbox.test.ts (tests/support/escape-attempts.ts
// through microhv's sandboxed spawn path), judged by the same checks. A check whose namespace the
// test host refuses is not asserted and is named in the output; one the test host allows must hold.
// The test host is expected to allow all of them; a separate test says so.
import { beforeAll, describe, expect, test } from 'vitest';
import { buildTestHost, type TestHostImage } from '../images/build.js';
import { runInTestHost } from '../testhost/testhost.js';
import { judge, type EscapeRun } from './support/sandbox-escape.js';

let run: EscapeRun;
beforeAll(async () => {
  const image: TestHostImage = buildTestHost();
  const r = await runInTestHost({ image, command: 'node dist/tests/support/sandbox-escape.js', timeoutMs: 240_000 });
  const line = r.output.split('\n').find((l) => l.startsWith('SANDBOX-ESCAPE '));
  if (line === undefined) throw new Error(`no SANDBOX-ESCAPE line from the test host (exit ${r.exitCode}):\n${r.output}`);
  run = JSON.parse(line.slice('SANDBOX-ESCAPE '.length)) as EscapeRun;
});

describe('sandbox in the test host', () => {
  test('a_hostile_domain_escapes_nothing_the_test_host_lets_the_sandbox_stop', () => {
    const { violations, unchecked } = judge(run);
    console.log(`test host: ${run.plan.summary}${unchecked.length > 0 ? `\nnot checked here: ${unchecked.join('; ')}` : ''}`);
    expect(violations).toEqual([]);
  });

  // Root on a stock kernel: nothing should be missing, so nothing above went unchecked.
  test('the_test_host_allows_every_namespace_and_the_capability_drop', () => {
    expect(run.plan.summary).not.toMatch(/NOT available/);
    expect(run.plan.namespaces).toEqual(['user', 'mount', 'net', 'ipc', 'pid']);
    expect(run.plan.dropCaps).toBe(true);
    expect(judge(run).unchecked).toEqual([]);
  });
});
