// Both raw-file backends (Node's file handle, the domain's io_uring) on a real file in the
// temporary directory: vectored positioned I/O with many operations in flight, O_DIRECT with and
// without bouncing, punch-hole and zero-range with their fallbacks, and a guest driving a device
// on an image file. The ring itself is tested in uring.test.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Reactor } from '../../idl/control/reactor.js';
import { SysError } from '../../microhv/sys/errors.js';
import * as sys from '../../microhv/sys/index.js';
import { mmapAllocator } from './aligned.js';
import { FileBackend, UringBackend, type FileBackendOptions } from './backend.js';
import { SECTOR } from './config.js';
import { BlockError } from './errors.js';
import { EOPNOTSUPP } from './fallocate.js';
import { VIRTIO_BLK_S } from './request.js';
import { BlockGuest, firstDiff, pattern } from './testing.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'microhv-block-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A fresh image of `sectors` sectors filled with pattern generation 0. */
function image(sectors = 256): string {
  const p = path.join(dir, `disk-${n++}.img`);
  fs.writeFileSync(p, pattern(0, sectors, 0));
  return p;
}

function fileBytes(p: string, offset: number, length: number): Uint8Array {
  return fs.readFileSync(p).subarray(offset, offset + length);
}

const unsupportedFallocate = (): Promise<void> => Promise.reject(new SysError('fallocate', EOPNOTSUPP));

// The ring's completion eventfd is watched as the domain watches it.
const reactor = new Reactor();
afterAll(() => reactor.stop());
const watch = (fd: number, ready: () => void): (() => void) => {
  const key = reactor.add(fd, sys.consts.EPOLLIN, ready);
  return () => reactor.remove(key, fd);
};

const BACKENDS = [
  { name: 'FileBackend', open: (p: string, o: FileBackendOptions = {}) => FileBackend.open(p, o) },
  { name: 'UringBackend', open: (p: string, o: FileBackendOptions = {}) => UringBackend.open(p, { ...o, watch }) },
] as const;

describe.each(BACKENDS)('$name', ({ open }) => {
  it('writes_and_reads_back_through_several_buffers', async () => {
    const p = image();
    const b = await open(p);
    const data = pattern(10, 3, 1);
    await b.write(10 * SECTOR, [data.subarray(0, 100), data.subarray(100, 1000), data.subarray(1000)], false);
    const back = [new Uint8Array(700), new Uint8Array(836)];
    await b.read(10 * SECTOR, back, false);
    await b.close();

    expect(firstDiff(Buffer.concat(back), data)).toBe(-1);
    expect(firstDiff(fileBytes(p, 10 * SECTOR, 3 * SECTOR), data)).toBe(-1);
  });

  it('completes_many_operations_in_flight_at_once', async () => {
    const p = image();
    const b = await open(p);
    await Promise.all(Array.from({ length: 64 }, (_, i) => b.write(i * 4 * SECTOR, [pattern(i * 4, 4, 2)], false)));
    await b.flush();
    await b.close();

    for (let i = 0; i < 64; i++) expect(firstDiff(fileBytes(p, i * 4 * SECTOR, 4 * SECTOR), pattern(i * 4, 4, 2))).toBe(-1);
  });

  it('o_direct_bounces_unaligned_buffers_through_an_aligned_one', async () => {
    const p = image();
    const b = await open(p, { direct: true });
    const data = pattern(8, 8, 3);
    await b.write(8 * SECTOR, [data.subarray(0, 1000), data.subarray(1000)], false);
    const back = new Uint8Array(8 * SECTOR);
    await b.read(8 * SECTOR, [back], false);
    await b.close();

    expect(b.bounced).toBe(2);
    expect(firstDiff(back, data)).toBe(-1);
    expect(firstDiff(fileBytes(p, 8 * SECTOR, 8 * SECTOR), data)).toBe(-1);
  });

  it('o_direct_uses_aligned_buffers_in_place', async () => {
    const p = image();
    const b = await open(p, { direct: true });
    const buf = mmapAllocator(4096);
    buf.bytes.set(pattern(16, 8, 4));
    await b.write(16 * SECTOR, [buf.bytes], true);
    buf.bytes.fill(0);
    await b.read(16 * SECTOR, [buf.bytes], true);
    await b.close();

    expect(b.bounced).toBe(0);
    expect(firstDiff(buf.bytes, pattern(16, 8, 4))).toBe(-1);
    buf.free();
  });

  it('discard_punches_a_hole_that_reads_as_zeroes', async () => {
    const p = image(2048);
    const b = await open(p);
    const before = fs.statSync(p).blocks;
    const outcome = await b.discard(0, 512 * SECTOR);
    await b.close();

    expect(outcome).toBe('punched');
    expect(fs.statSync(p).blocks).toBeLessThan(before);
    expect(fileBytes(p, 0, 512 * SECTOR).every((x) => x === 0)).toBe(true);
    expect(fs.statSync(p).size).toBe(2048 * SECTOR);
  });

  it('write_zeroes_zeroes_the_range_without_deallocating_unless_allowed', async () => {
    const p = image();
    const b = await open(p);
    const kept = await b.writeZeroes(0, 8 * SECTOR, false);
    const unmapped = await b.writeZeroes(64 * SECTOR, 8 * SECTOR, true);
    await b.close();

    expect([kept, unmapped]).toEqual(['zero_range', 'punched']);
    expect(fileBytes(p, 0, 8 * SECTOR).every((x) => x === 0)).toBe(true);
    expect(fileBytes(p, 64 * SECTOR, 8 * SECTOR).every((x) => x === 0)).toBe(true);
    expect(firstDiff(fileBytes(p, 8 * SECTOR, SECTOR), pattern(0, 9, 0).subarray(8 * SECTOR))).toBe(-1);
  });

  it('write_zeroes_writes_zeroes_when_the_file_system_cannot_fallocate', async () => {
    const p = image();
    const b = await open(p, { fallocate: unsupportedFallocate });
    const outcome = await b.writeZeroes(4 * SECTOR, 4 * SECTOR, true);
    await b.close();

    expect(outcome).toBe('zeroes_written');
    expect(fileBytes(p, 4 * SECTOR, 4 * SECTOR).every((x) => x === 0)).toBe(true);
  });

  it('discard_is_ignored_when_the_file_system_cannot_punch_holes', async () => {
    const p = image();
    const b = await open(p, { fallocate: unsupportedFallocate });
    const outcome = await b.discard(0, 4 * SECTOR);
    await b.close();

    expect(outcome).toBe('ignored');
    expect(firstDiff(fileBytes(p, 0, 4 * SECTOR), pattern(0, 4, 0))).toBe(-1);
  });

  it('a_read_past_the_end_of_the_image_fails', async () => {
    const b = await open(image(4));

    await expect(b.read(3 * SECTOR, [new Uint8Array(2 * SECTOR)], false)).rejects.toThrow(BlockError);
    await b.close();
  });

  it('open_refuses_a_missing_image', async () => {
    await expect(open(path.join(dir, 'missing.img'))).rejects.toMatchObject({ code: 'BAD_IMAGE' });
  });
});

describe.each(BACKENDS)('a guest on an image file through $name', ({ open }) => {
  it('reads_writes_and_flushes_through_the_device_with_o_direct', async () => {
    const p = image(1024);
    const backend = await open(p, { direct: true });
    const g = new BlockGuest({ backend, ramBytes: 4 << 20 }).init();
    const w = g.write(40, pattern(40, 16, 5));
    await g.settle();
    const f = g.flush();
    const r = g.read(40, 16);
    await g.settle();
    await backend.close();

    expect([g.status(w), g.status(f), g.status(r)]).toEqual([VIRTIO_BLK_S.OK, VIRTIO_BLK_S.OK, VIRTIO_BLK_S.OK]);
    expect(backend.bounced).toBe(2); // guest RAM of unknown host alignment: both data transfers bounced
    expect(firstDiff(g.data(r), pattern(40, 16, 5))).toBe(-1);
    expect(firstDiff(fileBytes(p, 40 * SECTOR, 16 * SECTOR), pattern(40, 16, 5))).toBe(-1);
  });

  it('o_direct_uses_page_aligned_guest_buffers_in_place', async () => {
    const p = image(1024);
    const backend = await open(p, { direct: true });
    const ram = mmapAllocator(4 << 20);
    const g = new BlockGuest({ backend, ramBytes: 4 << 20, ramBacking: () => ({ buffer: ram.bytes.buffer as ArrayBuffer, hostAlign: 4096 }) }).init();
    g.write(64, pattern(64, 16, 6));
    await g.settle();
    const r = g.read(64, 16);
    await g.settle();
    await backend.close();

    expect(backend.bounced).toBe(0);
    expect(firstDiff(g.data(r), pattern(64, 16, 6))).toBe(-1);
    expect(firstDiff(fileBytes(p, 64 * SECTOR, 16 * SECTOR), pattern(64, 16, 6))).toBe(-1);
    ram.free();
  });

  it('fails_requests_not_aligned_to_the_o_direct_block_size', async () => {
    const backend = await open(image(1024), { direct: true });
    const g = new BlockGuest({ backend, ramBytes: 4 << 20 }).init();
    const r = g.read(1, 1);
    await g.settle();
    await backend.close();

    expect(g.status(r)).toBe(VIRTIO_BLK_S.IOERR);
    expect(g.domain.counters.get('unaligned')).toBe(1);
  });
});
