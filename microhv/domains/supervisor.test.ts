import { closeSync, openSync } from 'node:fs';
import { afterEach, describe, expect, test } from 'vitest';
import { Reactor } from '../../idl/control/reactor.js';
import { DomainSupervisor } from './supervisor.js';
import { allowedRange } from './policy.js';
import { Role } from '../../idl/generated/control.js';
import { COM1, IOAPIC_BASE } from '../../boot/layout.js';

let reactor: Reactor | undefined;
afterEach(async () => { await reactor?.stop(); reactor = undefined; });

const policy = { initialBackoffMs: 5, maxBackoffMs: 40, maxRestarts: 3, windowMs: 60_000, hungAfterMs: 1000, heartbeatMs: 100, stableAfterMs: 60_000 };

describe('DomainSupervisor', () => {
  test('restarts_a_dying_domain_with_growing_backoff_then_marks_it_down', async () => {
    reactor = new Reactor();
    const sup = new DomainSupervisor(reactor, 'crasher', ['-e', 'process.exit(3)'], policy);
    const spawnedAt: number[] = [];
    sup.on('spawned', () => spawnedAt.push(Date.now()));
    const down = new Promise<string>((r) => sup.once('down', r));
    sup.start();
    const why = await down;
    expect(why).toMatch(/crasher: 4 restarts within 60 s/);
    expect(sup.health).toBe('down');
    expect(spawnedAt).toHaveLength(4);
    // Backoff doubles: 5, 10, 20 ms between the spawns (at least).
    const gaps = spawnedAt.slice(1).map((t, i) => t - spawnedAt[i]!);
    expect(gaps[2]!).toBeGreaterThanOrEqual(20);
  });

  test('kill_ends_the_instance_and_supervision_starts_a_new_one', async () => {
    reactor = new Reactor();
    const sup = new DomainSupervisor(reactor, 'sleeper', ['-e', 'setTimeout(() => {}, 60000)'], policy);
    const pids: number[] = [];
    const twoSpawns = new Promise<void>((r) => sup.on('spawned', (_g, fd, pid) => { pids.push(pid); if (pids.length === 2) r(); }));
    sup.start();
    await new Promise((r) => setTimeout(r, 100));
    sup.kill();
    await twoSpawns;
    expect(pids[0]).not.toBe(pids[1]);
    expect(sup.generation).toBe(2);
    sup.stop();
  });
});

test('an_instance_that_lived_past_stable_after_restarts_after_the_initial_backoff', async () => {
  reactor = new Reactor();
  const sup = new DomainSupervisor(reactor, 'worker', ['-e', 'setTimeout(() => {}, 60000)'], { ...policy, initialBackoffMs: 10, maxBackoffMs: 5000, maxRestarts: 20, stableAfterMs: 150 });
  const spawnedAt: number[] = [];
  const diedAt: number[] = [];
  sup.on('died', () => diedAt.push(Date.now()));
  const done = new Promise<void>((r) => sup.on('spawned', () => { spawnedAt.push(Date.now()); if (spawnedAt.length === 8) r(); }));
  sup.on('spawned', () => { setTimeout(() => sup.kill(), 300); }); // each instance works for 300 ms, then is killed
  sup.start();
  await done;
  sup.stop();
  // Every restart came after the initial 10 ms (plus spawning); a doubling backoff would reach 640 ms by the 8th.
  const delays = spawnedAt.slice(1).map((t, i) => t - diedAt[i]!);
  expect(Math.max(...delays)).toBeLessThan(300);
});

test('a_successor_waits_until_the_last_writer_of_the_i_o_fence_is_gone_not_just_the_process', async () => {
  reactor = new Reactor();
  const sup = new DomainSupervisor(reactor, 'fenced', ['-e', 'setTimeout(() => {}, 60000)'], policy);
  const spawnedAt: number[] = [];
  const why: string[] = [];
  let holder: number | undefined;
  sup.on('died', (_g, w) => why.push(w));
  const second = new Promise<void>((r) => sup.on('spawned', (_g, _fd, pid) => {
    spawnedAt.push(Date.now());
    // Stands in for an io_uring still completing the dead instance's reads: another writer of its fd 4.
    if (spawnedAt.length === 1) holder = openSync(`/proc/${pid}/fd/4`, 'w');
    else r();
  }));
  sup.start();
  await new Promise((r) => setTimeout(r, 100));
  sup.kill();
  await new Promise((r) => setTimeout(r, 600));
  expect(spawnedAt).toHaveLength(1);
  expect(why).toEqual([]);
  const releasedAt = Date.now();
  closeSync(holder!);
  await second;
  sup.stop();
  expect(spawnedAt[1]!).toBeGreaterThanOrEqual(releasedAt);
  expect(why[0]).toMatch(/^exited; its I\/O fence fell \d+\.\d s later$/);
});

test('an_instance_that_holds_nothing_past_its_exit_is_restarted_without_waiting_for_the_fence', async () => {
  reactor = new Reactor();
  const sup = new DomainSupervisor(reactor, 'plain', ['-e', 'process.exit(3)'], policy);
  const why = new Promise<string>((r) => sup.once('died', (_g, w) => r(w)));
  sup.start();
  expect(await why).toBe('exited');
  sup.stop();
});

describe('role policy', () => {
  test('a_console_domain_may_serve_com1_but_not_the_ioapic', () => {
    expect(allowedRange(Role.ROLE_CONSOLE, 'pio', COM1.port, COM1.size)?.buffered).toBe(true);
    expect(allowedRange(Role.ROLE_CONSOLE, 'mmio', IOAPIC_BASE, 0x1000)).toBeUndefined();
    expect(allowedRange(Role.ROLE_IOAPIC, 'mmio', IOAPIC_BASE, 0x1000)).toBeDefined();
    expect(allowedRange(Role.ROLE_IOAPIC, 'pio', COM1.port, COM1.size)).toBeUndefined();
  });

  test('a_range_must_match_exactly_not_just_overlap', () => {
    expect(allowedRange(Role.ROLE_CONSOLE, 'pio', COM1.port, COM1.size + 1)).toBeUndefined();
  });
});

test('injected_kills_of_young_instances_neither_grow_the_backoff_nor_spend_the_budget', async () => {
  reactor = new Reactor();
  // Budget 3 and instances that never live long enough to count as stable: six failures would mark it down.
  const sup = new DomainSupervisor(reactor, 'target', ['-e', 'setTimeout(() => {}, 60000)'], { ...policy, initialBackoffMs: 10, maxBackoffMs: 5000, maxRestarts: 3 });
  const spawnedAt: number[] = [];
  const diedAt: number[] = [];
  let down = false;
  sup.on('down', () => { down = true; });
  sup.on('died', (_g, why) => { diedAt.push(Date.now()); expect(why).toMatch(/injected fault/); });
  const done = new Promise<void>((r) => sup.on('spawned', () => { spawnedAt.push(Date.now()); if (spawnedAt.length === 7) r(); }));
  sup.on('spawned', () => { setTimeout(() => sup.kill({ injected: true }), 50); });
  sup.start();
  await done;
  sup.stop();
  expect(down).toBe(false);
  expect(sup.restarts).toEqual([]);
  expect(sup.injectedKills).toBe(6);
  // A doubling backoff would have reached 320 ms by the 6th restart.
  const delays = spawnedAt.slice(1).map((t, i) => t - diedAt[i]!);
  expect(Math.max(...delays)).toBeLessThan(250);
});

describe('the standby instance', () => {
  const sleeper = ['-e', 'setTimeout(() => {}, 60000)'];
  const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true; } catch { return false; } };
  const until = async (what: () => boolean, ms = 5000): Promise<void> => {
    for (const end = Date.now() + ms; !what(); await new Promise((r) => setTimeout(r, 10))) if (Date.now() > end) throw new Error('timed out');
  };

  /** A supervisor of a sleeping process with this standby delay, started and told its instance is up; the pids it hands over. */
  function upWithStandby(standbyAfterMs: number): { sup: DomainSupervisor; pids: number[] } {
    reactor = new Reactor();
    const sup = new DomainSupervisor(reactor, 'warm', sleeper, { ...policy, standbyAfterMs });
    const pids: number[] = [];
    sup.on('spawned', (_g, _fd, pid) => pids.push(pid));
    sup.start();
    sup.up();
    return { sup, pids };
  }

  test('starts_standby_after_ms_after_the_first_instance_is_up_and_a_restart_hands_it_over', async () => {
    const { sup, pids } = upWithStandby(150);
    await new Promise((r) => setTimeout(r, 60));
    expect(sup.standbyPid, 'not before standbyAfterMs').toBeUndefined();
    await until(() => sup.standbyPid !== undefined);
    const standby = sup.standbyPid!;
    expect(standby).not.toBe(pids[0]);
    sup.kill();
    await until(() => pids.length === 2);
    // The successor is the process that was waiting, not a new one.
    expect(pids[1]).toBe(standby);
    expect(sup.generation).toBe(2);
    expect(sup.standbyPid).toBeUndefined();
    // After a restart the next standby starts as soon as the instance is up.
    sup.up();
    await until(() => sup.standbyPid !== undefined, 1000);
    expect([pids[0], pids[1]]).not.toContain(sup.standbyPid);
    const last = sup.standbyPid!;
    sup.stop();
    await until(() => !alive(last));
  });

  test('a_standby_that_dies_waiting_is_dropped_and_the_next_up_starts_another', async () => {
    const { sup, pids: spawned } = upWithStandby(0);
    await until(() => sup.standbyPid !== undefined);
    const first = sup.standbyPid!;
    process.kill(first, 'SIGKILL');
    await until(() => sup.standbyPid === undefined);
    expect(sup.health).toBe('up');
    expect(spawned).toHaveLength(1);
    sup.up();
    await until(() => sup.standbyPid !== undefined);
    expect(sup.standbyPid).not.toBe(first);
    sup.stop();
  });

  test('no_standby_without_standby_after_ms', async () => {
    reactor = new Reactor();
    const sup = new DomainSupervisor(reactor, 'cold', sleeper, policy);
    sup.start();
    sup.up();
    await new Promise((r) => setTimeout(r, 100));
    expect(sup.standbyPid).toBeUndefined();
    sup.stop();
  });
});
