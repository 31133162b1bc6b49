import { describe, expect, test } from 'vitest';
import { StubDomainError } from './errors.js';
import { COPY_OFFSETS, REGION_BYTES, StateRegion, type Image } from './persist.js';

function image(fill: number, overrides: Partial<Image> = {}): Image {
  return {
    kind: 'console',
    window: new Uint8Array(4352).fill(fill),
    logOffset: 1000n + BigInt(fill),
    outbox: undefined,
    endpoints: [
      { consumed: 7 + fill, applied: [{ seq: BigInt(fill), data: 0x41n }] },
      { consumed: undefined, applied: [{ seq: 3n, data: 0n }, { seq: 9n, data: 0xffn }] },
    ],
    ...overrides,
  };
}

const region = (): Uint8Array => new Uint8Array(REGION_BYTES);

describe('StateRegion', () => {
  test('a_blank_region_loads_as_empty', () => {
    expect(new StateRegion(region()).load('console')).toBe('empty');
  });

  test('restores_exactly_what_was_committed', () => {
    const mem = region();
    const outbox = { offset: 4096n, bytes: new TextEncoder().encode('line 0001\n') };
    new StateRegion(mem).commit(image(5, { outbox }));
    const got = new StateRegion(mem).load('console');
    expect(got).toEqual(image(5, { outbox }));
  });

  test('the_newest_of_several_commits_wins', () => {
    const mem = region();
    const r = new StateRegion(mem);
    for (let i = 1; i <= 5; i++) r.commit(image(i));
    const successor = new StateRegion(mem);
    expect(successor.load('console')).toEqual(image(5));
    expect(successor.committed).toBe(5n);
  });

  test('a_half_written_inactive_copy_is_not_chosen', () => {
    const mem = region();
    const r = new StateRegion(mem);
    r.commit(image(1)); // copy 0, generation 1
    r.commit(image(2)); // copy 1, generation 2
    // Generation 3 goes to copy 0; the process dies halfway through its body.
    r.writeCopy(image(3), 0, 2000);
    expect(new StateRegion(mem).load('console')).toEqual(image(2));
  });

  test('a_copy_with_the_new_generation_but_a_torn_body_is_not_chosen', () => {
    const mem = region();
    const r = new StateRegion(mem);
    r.commit(image(1));
    r.commit(image(2));
    r.commit(image(3)); // copy 0 again
    // One body byte of the newest copy differs from what its checksum covers.
    mem[COPY_OFFSETS[0] + 16 + 100]! ^= 0x01;
    expect(new StateRegion(mem).load('console')).toEqual(image(2));
  });

  test('a_successor_commits_over_the_older_copy_and_keeps_the_newest', () => {
    const mem = region();
    const r = new StateRegion(mem);
    r.commit(image(1));
    r.commit(image(2));
    const s = new StateRegion(mem);
    s.load('console');
    s.commit(image(3));
    // Copy 0 (generation 1) was overwritten; copy 1 (generation 2) still holds the previous commit.
    mem[COPY_OFFSETS[0] + 16 + 100]! ^= 0x01;
    expect(new StateRegion(mem).load('console')).toEqual(image(2));
  });

  test('refuses_a_region_whose_every_copy_is_torn', () => {
    const mem = region();
    const r = new StateRegion(mem);
    r.commit(image(1));
    r.commit(image(2));
    for (const base of COPY_OFFSETS) mem[base + 16 + 8]! ^= 0x80;
    expect(() => new StateRegion(mem).load('console')).toThrow(StubDomainError);
  });

  test('refuses_an_image_of_another_kind', () => {
    const mem = region();
    new StateRegion(mem).commit(image(1));
    expect(() => new StateRegion(mem).load('ioapic')).toThrow(/kind/);
  });

  test('refuses_a_region_smaller_than_the_layout', () => {
    expect(() => new StateRegion(new Uint8Array(REGION_BYTES - 8))).toThrow(/need/);
  });

  test('garbage_in_the_region_is_refused_as_bad_state_never_a_crash', () => {
    // The region outlives the process and a buggy predecessor could leave anything there.
    let seed = 12345;
    const rand = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    for (let round = 0; round < 200; round++) {
      const mem = region();
      new StateRegion(mem).commit(image(round & 0xff));
      // Aimed at the region header and the start of both copies, where the words that steer decoding are.
      for (let i = 0; i < 1 + (round % 16); i++) {
        const copy = COPY_OFFSETS[rand() % 2]!;
        mem[rand() % 3 === 0 ? rand() % 16 : copy + (rand() % 256)] = rand() & 0xff;
      }
      try {
        const got = new StateRegion(mem).load('console');
        if (got !== 'empty') expect(got.kind).toBe('console');
      } catch (e) {
        expect(e).toBeInstanceOf(StubDomainError);
      }
    }
  });
});
