// The project's own KVM bindings against real KVM: inside the test host (AMD
// SVM emulated by TCG, kvm_amd loaded) a VM with one vCPU runs a tiny 64-bit
// payload that writes known bytes to an I/O port and halts.
import { beforeAll, describe, expect, test } from 'vitest';
import { buildTestHost, type TestHostImage } from '../images/build.js';
import { runInTestHost } from '../testhost/testhost.js';
import { TINY_GUEST_BYTES, TINY_GUEST_PORT } from '../microhv/kvm/probe.js';

let image: TestHostImage;
beforeAll(() => { image = buildTestHost(); });

describe('KVM bindings in the test host', () => {
  test('tiny_guest_writes_its_bytes_to_the_port_then_halts_and_the_probe_says_usable', async () => {
    const r = await runInTestHost({
      image,
      // Each step has its own bound, so a hang shows up as that step's exit status (137) with the output so far.
      command: 'timeout -s KILL 120 node dist/tests/kvm/run-tiny-guest.js 20000; echo tiny-exit=$?; '
        + 'timeout -s KILL 60 node dist/microhv/kvm/probe-cli.js --deadline-ms 1000 >/tmp/p 2>&1; echo probe-exit=$?; cat /tmp/p',
      timeoutMs: 240_000,
    });
    expect(r.output).toContain('tiny-exit=0');
    const line = r.output.split('\n').find((l) => l.startsWith('tiny-guest-result '));
    expect(line, r.output).toBeDefined();
    const result = JSON.parse(line!.slice('tiny-guest-result '.length)) as { exits: Array<{ reason: string; port?: number; data?: number[] }>; timedOut: boolean };
    expect(result.timedOut).toBe(false);
    const io = result.exits.filter((e) => e.reason === 'IO');
    expect(io.every((e) => e.port === TINY_GUEST_PORT)).toBe(true);
    expect(io.flatMap((e) => e.data ?? [])).toEqual([...TINY_GUEST_BYTES]);
    expect(result.exits.at(-1)?.reason).toBe('HLT');
    expect(r.output).toContain('probe-exit=0');
    expect(r.output).toMatch(/^usable: svm/m);
  });
});
