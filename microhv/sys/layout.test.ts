import { describe, expect, it } from 'vitest';
import { StructView, bytes, defineLayout, i32, nested, u16, u32, u64, u8 } from './layout.js';

const INNER = defineLayout('inner', 8, { a: u32(0), b: u16(4) });
const OUTER = defineLayout('outer', 40, {
  tag: u8(0), code: i32(4), big: u64(8), raw: bytes(16, 8), inner: nested(24, INNER), tail: u64(32),
});

describe('layout', () => {
  it('rejects_a_field_that_ends_past_the_struct', () => {
    // Act / Assert
    expect(() => defineLayout('bad', 8, { x: u64(4) })).toThrow(RangeError);
  });

  it('rejects_a_misaligned_scalar', () => {
    // Act / Assert
    expect(() => defineLayout('packed', 12, { x: u64(4) })).toThrow(/offset 4/);
  });

  it('writes_little_endian_at_the_declared_offsets', () => {
    // Arrange
    const v = StructView.alloc(OUTER);
    // Act
    v.set('tag', 0xab).set('code', -2).set('big', 0x0102030405060708n);
    v.struct('inner').set('a', 0x11223344).set('b', 0x5566);
    v.bytes('raw').set([9, 9]);
    // Assert
    expect([...v.buffer.subarray(0, 16)]).toEqual([0xab, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 8, 7, 6, 5, 4, 3, 2, 1]);
    expect([...v.buffer.subarray(16, 30)]).toEqual([9, 9, 0, 0, 0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11, 0x66, 0x55]);
    expect(v.get('code')).toBe(-2);
    expect(v.get('big')).toBe(0x0102030405060708n);
  });

  it('stores_negative_u64_as_twos_complement', () => {
    // Arrange
    const v = StructView.alloc(OUTER);
    // Act
    v.set('tail', -1n);
    // Assert
    expect(v.get('tail')).toBe(0xffff_ffff_ffff_ffffn);
  });

  it('indexes_array_elements_after_a_header', () => {
    // Arrange
    const v = StructView.alloc(INNER, 3 * INNER.size);
    // Act
    v.element(INNER, INNER.size, 2).set('a', 77);
    // Assert
    expect(new DataView(v.buffer.buffer).getUint32(8 + 16, true)).toBe(77);
  });

  it('refuses_a_view_that_would_overrun_its_buffer', () => {
    // Act / Assert
    expect(() => new StructView(INNER, new Uint8Array(12), 8)).toThrow(RangeError);
  });
});
