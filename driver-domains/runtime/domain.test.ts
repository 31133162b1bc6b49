// The console outbox across a death between its commit and its write, and
// restore of the module from the state region. In process: the instances
// share one region buffer, as successive domain processes share the memfd.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureBuilt, repoRoot } from '../build.js';
import { ConsoleLog } from './console-io.js';
import { StubRuntime } from './domain.js';
import { REGION_BYTES } from './persist.js';

let wasm: string;
let dir: string;
beforeAll(async () => {
  wasm = await ensureBuilt(repoRoot(), 'console');
  dir = mkdtempSync(join(tmpdir(), 'microhv-runtime-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A log whose write never happens: the process was killed right after the outbox commit. */
class KilledBeforeWrite extends ConsoleLog {
  override writeAt(): void {
    throw new Error('killed');
  }
}

const THR = 0x3f8;
const SCR = 0x3ff;
function type(rt: StubRuntime<'console'>, text: string): void {
  for (const c of text) rt.device.write('pio', THR, 1, BigInt(c.charCodeAt(0)));
}

describe('StubRuntime', () => {
  test('a_successor_writes_the_committed_outbox_once_at_its_offset', () => {
    const path = join(dir, 'outbox.log');
    writeFileSync(path, 'earlier boot\n');
    const region = new Uint8Array(REGION_BYTES);
    const first = StubRuntime.open('console', wasm, region, true, {});
    first.attachLog(new KilledBeforeWrite(path));
    type(first, 'one\n');
    expect(() => first.serve()).toThrow('killed');

    const second = StubRuntime.open('console', wasm, region, false, {});
    second.attachLog(new ConsoleLog(path));
    // A third instance that replays the same outbox again changes nothing (the write is positional).
    const third = StubRuntime.open('console', wasm, region, false, {});
    third.attachLog(new ConsoleLog(path));
    type(third, 'two\n');
    third.serve();
    expect(readFileSync(path, 'utf8')).toBe('earlier boot\none\ntwo\n');
  });

  test('a_successor_continues_from_the_committed_device_state', () => {
    const region = new Uint8Array(REGION_BYTES);
    const first = StubRuntime.open('console', wasm, region, true, {});
    first.device.write('pio', SCR, 1, 0x5an);
    first.commit();
    const second = StubRuntime.open('console', wasm, region, false, {});
    expect(second.restored).toBe(true);
    expect(second.device.read('pio', SCR, 1)).toBe(0x5an);
  });

  test('an_uncommitted_change_is_not_seen_by_the_successor', () => {
    const region = new Uint8Array(REGION_BYTES);
    const first = StubRuntime.open('console', wasm, region, true, {});
    first.device.write('pio', SCR, 1, 0x11n);
    first.commit();
    first.device.write('pio', SCR, 1, 0x22n); // applied, then killed before its commit
    expect(StubRuntime.open('console', wasm, region, false, {}).device.read('pio', SCR, 1)).toBe(0x11n);
  });

  test('a_region_that_is_not_fresh_but_never_committed_powers_on', () => {
    const rt = StubRuntime.open('console', wasm, new Uint8Array(REGION_BYTES), false, {});
    expect(rt.restored).toBe(false);
    expect(rt.device.exports.state_valid()).toBe(1);
  });

  test('refuses_a_fresh_region_that_holds_a_commit', () => {
    const region = new Uint8Array(REGION_BYTES);
    StubRuntime.open('console', wasm, region, true, {});
    expect(() => StubRuntime.open('console', wasm, region, true, {})).toThrow(/fresh/);
  });
});
