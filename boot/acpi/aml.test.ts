import { describe, expect, test } from 'vitest';
import { eisaId, integer, nameString, pkgLength, resourceTemplate, ioPort } from './aml.js';

describe('pkgLength', () => {
  test('uses_one_byte_up_to_63_including_itself', () => {
    expect(pkgLength(62)).toEqual([63]);
  });

  test('switches_to_two_bytes_with_the_low_nibble_in_the_lead_byte', () => {
    // 64 content bytes + 2 length bytes = 66 = 0x42: lead 0x40 | 0x2, then 0x42 >> 4.
    expect(pkgLength(64)).toEqual([0x42, 0x04]);
  });

  test('uses_three_bytes_past_4095', () => {
    const enc = pkgLength(5000);
    expect(enc).toHaveLength(3);
    const total = ((enc[0] ?? 0) & 0xf) | ((enc[1] ?? 0) << 4) | ((enc[2] ?? 0) << 12);
    expect(total).toBe(5003);
  });
});

describe('terms', () => {
  test('integers_take_the_shortest_encoding', () => {
    expect(integer(0)).toEqual([0x00]);
    expect(integer(1)).toEqual([0x01]);
    expect(integer(0x20)).toEqual([0x0a, 0x20]);
    expect(integer(0x3f8)).toEqual([0x0b, 0xf8, 0x03]);
    expect(integer(0xc000_0000)).toEqual([0x0c, 0x00, 0x00, 0x00, 0xc0]);
    expect(integer(2n ** 40n)).toHaveLength(9);
  });

  test('eisa_id_pnp0a03_is_the_well_known_dword_030ad041', () => {
    const enc = eisaId('PNP0A03');
    expect(Buffer.from(enc.slice(1)).readUInt32LE(0)).toBe(0x030a_d041);
  });

  test('rooted_two_segment_path_is_a_dual_name_path', () => {
    expect(nameString('\\_SB.PCI0')).toEqual([0x5c, 0x2e, ...Buffer.from('_SB_PCI0')]);
  });

  test('rejects_an_invalid_name_segment', () => {
    expect(() => nameString('pci0')).toThrow(RangeError);
    expect(() => nameString('TOOLONG')).toThrow(RangeError);
  });

  test('resource_template_is_a_buffer_ending_in_an_end_tag', () => {
    const t = resourceTemplate([ioPort(0x3f8, 8)]);
    expect(t[0]).toBe(0x11);                  // BufferOp
    expect(t.slice(-2)).toEqual([0x79, 0x00]); // End Tag
    expect(t).toContain(0x47);                // I/O port descriptor
  });
});
