// The test host itself: exit statuses come back, a hung command is killed at
// its timeout with no QEMU left behind, its scratch disk takes O_DIRECT, and
// QEMU/KVM inside it boots the embedded default guest (the performance peer
// of later benchmarks).
import { beforeAll, describe, expect, test } from 'vitest';
import { buildTestHost, type TestHostImage } from '../images/build.js';
import { runInTestHost, TestHostError } from '../testhost/testhost.js';
import { qemuGuestCommand } from '../testhost/peer.js';

let image: TestHostImage;
beforeAll(() => { image = buildTestHost(); });

const alive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true; } catch { return false; }
};

describe('test host', () => {
  test('runs_a_command_with_real_kvm_and_returns_its_nonzero_status', async () => {
    const r = await runInTestHost({ image, command: 'test -c /dev/kvm && grep -qw svm /proc/cpuinfo && echo kvm-ok; echo to-stderr >&2; exit 7', timeoutMs: 180_000 });
    expect(r.exitCode).toBe(7);
    expect(r.output).toContain('kvm-ok');
    expect(r.output).toContain('to-stderr');
    expect(alive(r.qemuPid)).toBe(false);
  });

  test('a_scratch_disk_is_ext4_at_scratch_and_takes_o_direct_writes', async () => {
    const r = await runInTestHost({
      image, scratchMiB: 64, timeoutMs: 180_000,
      command: 'grep " /scratch ext4 " /proc/mounts && grep -q " / ext4 ro" /proc/mounts && echo root-ro '
        + '&& dd if=/dev/zero of=/scratch/f bs=4096 count=256 oflag=direct && echo direct-ok',
    });
    expect(r.output).toContain('/dev/vdb /scratch ext4');
    expect(r.output).toContain('root-ro');
    expect(r.output).toContain('direct-ok');
    expect(r.exitCode).toBe(0);
  });

  test('kills_a_hung_command_at_its_timeout_and_leaves_no_qemu_its_heartbeat_naming_what_ran', async () => {
    const started = performance.now();
    // A shell spinning in a live machine: the heartbeat goes on and names it.
    const err = await runInTestHost({ image, command: 'echo started; while :; do :; done', timeoutMs: 20_000 }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(TestHostError);
    const e = err as TestHostError;
    expect(e.code).toBe('TIMEOUT');
    expect(e.message).toMatch(/did not finish within 20 s.*QEMU was killed/);
    expect(performance.now() - started).toBeLessThan(35_000);
    expect(e.qemuPid).toBeGreaterThan(0);
    expect(alive(e.qemuPid!)).toBe(false);
    expect(e.heartbeatTail.split('\n').length).toBeGreaterThanOrEqual(2);
    expect(e.heartbeatTail.split('\n').at(-1)).toMatch(/^beat [\d.]+ load [\d.]+ \d+\/\d+ .*R \d+\(sh\)/);
    // QEMU was looked at before it died: the emulated CPU that ran the loop was busy.
    expect(e.qemuThreads.some((l) => /^CPU \d+\/(TCG|KVM) R ([2-9]\d|1\d\d)%/.test(l)), e.qemuThreads.join('; ')).toBe(true);
  });

  test('a_machine_whose_heartbeat_stops_is_frozen_and_killed_with_no_qemu_left', async () => {
    const started = performance.now();
    // The beat stopped from inside, as a frozen machine stops it; the command itself sleeps on.
    const err = await runInTestHost({ image, command: 'kill -STOP $(cat /run/heartbeat.pid) && echo stopped; sleep 100000', timeoutMs: 120_000, frozenMs: 15_000, reruns: 0 })
      .then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(TestHostError);
    const e = err as TestHostError;
    expect(e.code).toBe('FROZEN');
    expect(e.output).toContain('stopped');
    expect(e.message).toMatch(/no heartbeat for 1\d s.*QEMU was killed/);
    expect(e.qemuThreads.filter((l) => /^CPU \d+\/(TCG|KVM) /.test(l))).toHaveLength(2);
    expect(performance.now() - started).toBeLessThan(60_000);
    expect(alive(e.qemuPid!)).toBe(false);
  });

  test('a_command_that_runs_12_s_gets_a_heartbeat_every_5_s', async () => {
    const r = await runInTestHost({ image, command: 'sleep 12; echo slept', timeoutMs: 60_000 });
    expect(r.output).toContain('slept');
    expect(r.heartbeats).toBeGreaterThanOrEqual(2);
  });

  test('a_boot_that_misses_its_deadline_runs_again_twice_then_fails_with_no_qemu_left', async () => {
    // A deadline no boot can meet: every run is the boot hang a faulty test host shows.
    const said: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => { said.push(String(chunk)); return true; }) as typeof process.stderr.write;
    let err: unknown;
    try {
      err = await runInTestHost({ image, command: 'echo never', timeoutMs: 60_000, bootTimeoutMs: 300 }).then(() => undefined, (e: unknown) => e);
    } finally {
      process.stderr.write = write;
    }
    expect(err).toBeInstanceOf(TestHostError);
    const e = err as TestHostError;
    expect(e.code).toBe('BOOT_TIMEOUT');
    expect(alive(e.qemuPid!)).toBe(false);
    const reruns = said.join('').match(/hung while booting .*running the command again in a new one \((\d) of 2\)/g) ?? [];
    expect(reruns).toHaveLength(2);
    expect(reruns[1]).toContain('(2 of 2)');
  });

  test('qemu_kvm_boots_the_embedded_guest_to_its_init_with_its_tools', async () => {
    const r = await runInTestHost({ image, command: qemuGuestCommand({ scenario: 'tools', timeoutS: 200 }), timeoutMs: 300_000 });
    expect(r.output).toContain('microhv-guest: init started');
    expect(r.output).toMatch(/microhv-guest: fio fio-\d/);
    expect(r.output).toMatch(/microhv-guest: iperf 3\./);
    expect(r.output).toContain('microhv-guest: scenario tools done rc=0');
    expect(r.exitCode).toBe(0);
  });

  test('qemu_kvm_guest_brings_both_cpus_online', async () => {
    const r = await runInTestHost({ image, command: qemuGuestCommand({ scenario: 'hello', smp: 2, timeoutS: 200 }), timeoutMs: 300_000 });
    expect(r.output).toContain('microhv-guest: cpus online 0-1 count 2');
    expect(r.exitCode).toBe(0);
  });
});
