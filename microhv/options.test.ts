// `microhv run`'s options: disks in order with their own options and domains, and one clear line for
// each bad value.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MAX_DISKS, diskDomain, diskPci, parse } from './options.js';

let dir: string;
let a: string;
let b: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'microhv-options-'));
  a = join(dir, 'a.img');
  b = join(dir, 'b.img');
  writeFileSync(a, new Uint8Array(4096));
  writeFileSync(b, new Uint8Array(8192));
  writeFileSync(join(dir, 'odd.img'), new Uint8Array(1000));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = (...rest: string[]): ReturnType<typeof parse> => parse(['run', '--kernel', 'k', ...rest]);

describe('post-mortem', () => {
  test('dump_on_reset_takes_a_file_and_is_off_by_default', () => {
    expect(run().dumpOnReset).toBeUndefined();
    expect(run('--dump-on-reset', '/tmp/g.dump', '--no-reboot')).toMatchObject({ dumpOnReset: '/tmp/g.dump', noReboot: true });
    expect(() => run('--dump-on-reset')).toThrow(/argument missing|dump-on-reset/);
  });
});

describe('disks', () => {
  test('no_disk_by_default_and_the_defaults_of_a_run', () => {
    expect(run()).toMatchObject({ disks: [], memMiB: 512, vcpus: 1, noReboot: false, faults: [], cmdline: 'console=ttyS0 panic=-1' });
  });

  test('disks_keep_their_order_and_options_and_take_slots_and_domains_in_that_order', () => {
    const o = run('--disk', `${a},direct,queues=4`, '--disk', `${b},readonly,uring`);
    expect(o.disks).toEqual([
      { path: a, readOnly: false, direct: true, uring: false, queues: 4 },
      { path: b, readOnly: true, direct: false, uring: true, queues: 1 },
    ]);
    expect(o.disks.map((d, i) => [diskDomain(i), diskPci(i, d)])).toEqual([
      ['block', { slot: 1, bar: 4, barSize: 0x4000, vectors: 5 }],
      ['block1', { slot: 2, bar: 4, barSize: 0x4000, vectors: 2 }],
    ]);
  });

  test('bad_disk_options_are_refused_with_what_is_allowed', () => {
    expect(() => run('--disk', `${a},fast`)).toThrow(`--disk ${a},fast: unknown option 'fast' (readonly, direct, uring, queues=N)`);
    expect(() => run('--disk', `${a},queues=0`)).toThrow(/queues must be 1\.\.15/);
    expect(() => run('--disk', `${a},queues=16`)).toThrow(/queues must be 1\.\.15/);
    expect(() => run('--disk', `${a},queues=x`)).toThrow(/unknown option 'queues=x'/);
    expect(() => run('--disk', ',direct')).toThrow(/needs an image path/);
    expect(() => run('--disk', join(dir, 'none.img'))).toThrow(/ENOENT/);
    expect(() => run('--disk', join(dir, 'odd.img'))).toThrow(/nonzero multiple of 512 bytes/);
    expect(() => run('--disk', dir)).toThrow(/regular file/);
    expect(() => run(...Array.from({ length: MAX_DISKS + 1 }, () => ['--disk', a]).flat())).toThrow(`--disk: at most ${MAX_DISKS} disks`);
  });
});

describe('faults', () => {
  test('a_fault_names_a_domain_of_this_run_each_disk_by_its_own', () => {
    const o = run('--disk', a, '--disk', b, '--fault', 'kill:block1:2000:15000', '--fault', 'hang:console:500');
    expect(o.faults).toEqual([
      { action: 'kill', domain: 'block1', everyMs: 2000, firstMs: 15000 },
      { action: 'hang', domain: 'console', everyMs: 500, firstMs: 500 },
    ]);
    expect(() => run('--fault', 'kill:block:2000')).toThrow("--fault kill:block:2000: no domain 'block' in this run (domains: console, ioapic, pci)");
    expect(() => run('--disk', a, '--fault', 'kill:block1:2000')).toThrow(/no domain 'block1'/);
    expect(() => run('--fault', 'kill:pci:50')).toThrow(/at least 100/);
    expect(() => run('--fault', 'stop:pci:500')).toThrow(/expected kill\|hang:DOMAIN:EVERY_MS/);
  });
});

describe('the rest', () => {
  test('numbers_outside_their_range_and_a_missing_command_or_kernel_are_refused', () => {
    expect(() => run('--vcpus', '0')).toThrow('--vcpus must be an integer in 1..64');
    expect(() => run('--mem', '32')).toThrow(/--mem must be an integer/);
    expect(() => run('--until-count', '2')).toThrow('--until-count needs --until');
    expect(() => parse(['go', '--kernel', 'k'])).toThrow("unknown command 'go'");
    expect(() => parse(['run'])).toThrow('--kernel is required');
  });
});
