// Pause, unpause and destroy of a running guest on real KVM in the test host
// (tests/support/pause-check.ts): while paused, the guest's numbered kernel
// log lines and its vCPU exits stand still; after unpause they go on; then
// the guest is stopped and destroyed and the program exits on its own.
import { beforeAll, describe, expect, test } from 'vitest';
import { buildTestHost, type TestHostImage } from '../images/build.js';
import { runInTestHost } from '../testhost/testhost.js';

let image: TestHostImage;
beforeAll(() => { image = buildTestHost(); });

describe('guest lifecycle', () => {
  test('a_paused_guest_makes_no_progress_and_resumes_after_unpause_then_is_destroyed', async () => {
    const r = await runInTestHost({
      image,
      command: 'timeout -s KILL 250 node dist/tests/support/pause-check.js /opt/microhv/.cache/guest; echo check-exit=$?',
      timeoutMs: 300_000,
    });
    expect(r.output).toContain('check-exit=0');
    const paused = /pause-check: paused paused, line (\d+) -> (\d+), exits (\d+) -> (\d+)/.exec(r.output);
    expect(paused, r.output.slice(-2000)).not.toBeNull();
    const [, lineBefore, lineAfter, exitsBefore, exitsAfter] = paused!.map(Number);
    expect(lineAfter).toBe(lineBefore);
    expect(exitsAfter).toBe(exitsBefore);
    const resumed = /pause-check: unpaused running, line (\d+)/.exec(r.output);
    expect(Number(resumed?.[1])).toBeGreaterThan(lineBefore!);
    expect(r.output).toContain('pause-check: destroyed');
    expect(r.output).not.toContain('pause-check: failed');
  });
});
