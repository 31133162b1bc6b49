// Guest RAM's post-mortem dump (microhv run --dump-on-reset): the file offset is the guest-physical
// address, zero pages and the space between RAM regions are holes, every nonzero byte is there.
import { fstatSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { GuestMemory } from './memory.js';

const dir = mkdtempSync(join(tmpdir(), 'microhv-memory-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('GuestMemory.dump', () => {
  test('nonzero_pages_land_at_their_guest_physical_address_and_the_rest_reads_as_zero', async () => {
    const MIB = 2 ** 20;
    const mem = GuestMemory.create({ ramBytes: 6 * MIB, ram: [{ gpa: 0, size: 4 * MIB }, { gpa: 8 * MIB, size: 2 * MIB }], e820: [] });
    try {
      mem.write(0x1000, Uint8Array.of(0xaa));
      mem.write(0x2fff, Uint8Array.of(0xbb, 0xcc)); // the last byte of one page and the first of the next
      mem.write(4 * MIB - 1, Uint8Array.of(0xdd));
      mem.write(8 * MIB + 0x5008, Uint8Array.of(1, 2, 3));
      const file = join(dir, 'ram.dump');
      // Four nonzero pages in the first region (0x1000, 0x2000, 0x3000, the last) and one in the second.
      expect(await mem.dump(file)).toBe(5 * 4096);
      expect(statSync(file).size).toBe(10 * MIB);
      // Sparse: the holes take no blocks (tmpfs and ext4 both allocate per page or block).
      expect(statSync(file).blocks * 512).toBeLessThan(64 * 4096);
      const d = readFileSync(file);
      const nonzero: [number, number][] = [];
      for (let i = 0; i < d.length; i++) if (d[i] !== 0) nonzero.push([i, d[i]!]);
      expect(nonzero).toEqual([[0x1000, 0xaa], [0x2fff, 0xbb], [0x3000, 0xcc], [4 * MIB - 1, 0xdd], [8 * MIB + 0x5008, 1], [8 * MIB + 0x5009, 2], [8 * MIB + 0x500a, 3]]);
    } finally {
      mem.close();
    }
  });

  test('an_all_zero_guest_gives_a_file_of_the_ram_extent_with_nothing_written_and_allocates_no_ram', async () => {
    // 40 MiB: more than one of the dump's chunks.
    const size = 40 * 2 ** 20;
    const mem = GuestMemory.create({ ramBytes: size, ram: [{ gpa: 0, size }], e820: [] });
    try {
      const file = join(dir, 'zero.dump');
      expect(await mem.dump(file)).toBe(0);
      expect(statSync(file).size).toBe(size);
      // Read from the memfd, not through the mapping: the guest's untouched RAM stays unallocated.
      expect(fstatSync(mem.regions[0]!.fd).blocks * 512).toBeLessThan(2 ** 20);
    } finally {
      mem.close();
    }
  });
});
