import { describe, expect, it } from 'vitest';
import { SharedBytes } from '../../idl/runtime/shared.js';
import { blockLimits } from './config.js';
import { BlockError } from './errors.js';
import { BlockState, stateBytes } from './persist.js';

const limits = blockLimits({ numQueues: 2, queueSize: 64 }, 1 << 20, 1);

function region(extra = 0): SharedBytes {
  return new SharedBytes(new ArrayBuffer(stateBytes(2, 64) + extra));
}

describe('BlockState', () => {
  it('needs_the_size_stateBytes_gives', () => {
    expect(stateBytes(1, 256)).toBe(4288);
    expect(() => new BlockState(new SharedBytes(new ArrayBuffer(stateBytes(2, 64) - 8)), 0, 2, 64)).toThrow(BlockError);
    expect(() => new BlockState(region(64), 64, 2, 64)).not.toThrow();
  });

  it('stays_blank_until_sealed', () => {
    const s = new BlockState(region(), 0, 2, 64);
    s.initHeader(limits);

    expect(s.blank()).toBe(true);
    s.seal();
    expect(s.blank()).toBe(false);
  });

  it('accepts_the_device_it_was_made_for', () => {
    const m = region();
    const s = new BlockState(m, 0, 2, 64);
    s.initHeader(limits);
    s.seal();

    expect(() => new BlockState(m, 0, 2, 64).check(limits)).not.toThrow();
  });

  it('refuses_a_device_with_other_features_or_queues', () => {
    const m = region();
    const s = new BlockState(m, 0, 2, 64);
    s.initHeader(limits);
    s.seal();
    const readOnly = blockLimits({ numQueues: 2, queueSize: 64, readOnly: true }, 1 << 20, 1);

    expect(() => s.check(readOnly)).toThrow(/features/);
    expect(() => new BlockState(m, 0, 1, 64).check(blockLimits({ numQueues: 1, queueSize: 64 }, 1 << 20, 1))).toThrow(/queues/);
  });
});
