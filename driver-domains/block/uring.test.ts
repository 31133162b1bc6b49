// The block domain's io_uring against real files in the temporary directory (this needs a kernel
// with io_uring, 5.10 or later, and no sandbox refusing it): vectored transfers from mapped
// memory, short transfers continued, errors with their errno, the restrictions refusing any other
// opcode and any SQE that names a file by number, and every register opcode once enabled, many
// operations beyond the slots, the SQ and the CQ, and a CQE whose user_data names nothing.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as koffi from 'koffi';
import { afterAll, describe, expect, it } from 'vitest';
import { Reactor } from '../../idl/control/reactor.js';
import * as sys from '../../microhv/sys/index.js';
import { SECTOR } from './config.js';
import { BlockError } from './errors.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from './fallocate.js';
import { firstDiff, pattern } from './testing.js';
import { IORING_OP, IOSQE_FIXED_FILE, IOV_MAX, Uring, addressable, type RingOptions } from './uring.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'microhv-uring-'));
const reactor = new Reactor();
const open: Array<{ ring: Uring; fd: number; unwatch: () => void }> = [];
afterAll(async () => {
  for (const o of open) {
    o.unwatch();
    o.ring.close();
    fs.closeSync(o.fd);
  }
  await reactor.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const EACCES = 13;
const RW_OPS = [IORING_OP.READV, IORING_OP.WRITEV, IORING_OP.FSYNC, IORING_OP.FALLOCATE];
let n = 0;

/** A file of `sectors` sectors of pattern generation 0, and a ring over it watched by the reactor. */
function ringOn(sectors: number, o: Partial<RingOptions> & { flags?: string } = {}): { ring: Uring; file: string; fd: number } {
  const file = path.join(dir, `f-${n++}.img`);
  fs.writeFileSync(file, pattern(0, sectors, 0));
  const fd = fs.openSync(file, o.flags ?? 'r+');
  const ring = Uring.create({ file: fd, ops: RW_OPS, ...o });
  const key = reactor.add(ring.eventfd, sys.consts.EPOLLIN, () => ring.onEventfd());
  open.push({ ring, fd, unwatch: () => reactor.remove(key, ring.eventfd) });
  return { ring, file, fd };
}

/** Page-aligned memory with a native address, as guest RAM is. */
function mapped(bytes: number): Uint8Array {
  return new Uint8Array(sys.mmap(bytes, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_PRIVATE | sys.consts.MAP_ANONYMOUS, -1, 0).buffer);
}

function fileBytes(file: string, offset: number, length: number): Uint8Array {
  return fs.readFileSync(file).subarray(offset, offset + length);
}

const until = async (what: string, cond: () => boolean): Promise<void> => {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
};

describe('io_uring', () => {
  it('writes_and_reads_back_through_several_buffers_in_mapped_memory', async () => {
    const { ring, file } = ringOn(64);
    const mem = mapped(16384);
    const data = pattern(8, 6, 1);
    mem.set(data.subarray(0, 1000), 0);
    mem.set(data.subarray(1000), 8192);
    await ring.writev([mem.subarray(0, 1000), mem.subarray(8192, 8192 + data.byteLength - 1000)], 8 * SECTOR);
    const back = mapped(8192);
    await ring.readv([back.subarray(4096, 4096 + 700), back.subarray(0, data.byteLength - 700)], 8 * SECTOR);

    expect(firstDiff(fileBytes(file, 8 * SECTOR, 6 * SECTOR), data)).toBe(-1);
    expect(firstDiff(Buffer.concat([back.subarray(4096, 4096 + 700), back.subarray(0, data.byteLength - 700)]), data)).toBe(-1);
    expect(ring.stats.submitted).toBe(2);
    expect(ring.busy).toBe(0);
  });

  it('sends_buffers_adjacent_in_memory_as_one_iovec', async () => {
    // Twice IOV_MAX buffers of one sector each, back to back: one iovec, one SQE.
    const { ring, file } = ringOn(4 * IOV_MAX);
    const mem = mapped(2 * IOV_MAX * SECTOR);
    mem.set(pattern(0, 2 * IOV_MAX, 2));
    const iov = Array.from({ length: 2 * IOV_MAX }, (_, i) => mem.subarray(i * SECTOR, (i + 1) * SECTOR));
    await ring.writev(iov, 0);

    expect(ring.stats.submitted).toBe(1);
    expect(ring.stats.resubmitted).toBe(0);
    expect(firstDiff(fileBytes(file, 0, 2 * IOV_MAX * SECTOR), pattern(0, 2 * IOV_MAX, 2))).toBe(-1);
  });

  it('continues_a_transfer_of_more_than_iov_max_separate_buffers', async () => {
    // Every other sector of the memory: no two buffers touch, so the first SQE carries IOV_MAX of them.
    const { ring, file } = ringOn(4 * IOV_MAX);
    const count = IOV_MAX + 10;
    const mem = mapped(2 * count * SECTOR);
    const data = pattern(0, count, 3);
    const iov = Array.from({ length: count }, (_, i) => mem.subarray(2 * i * SECTOR, (2 * i + 1) * SECTOR));
    iov.forEach((v, i) => v.set(data.subarray(i * SECTOR, (i + 1) * SECTOR)));
    await ring.writev(iov, 0);

    expect(ring.stats.resubmitted).toBe(1);
    expect(ring.stats.submitted).toBe(2);
    expect(firstDiff(fileBytes(file, 0, count * SECTOR), data)).toBe(-1);
  });

  it('a_read_across_the_end_of_the_file_reads_what_is_there_then_fails', async () => {
    const { ring } = ringOn(4);
    const mem = mapped(4096);

    const err = await ring.readv([mem.subarray(0, 2 * SECTOR)], 3 * SECTOR).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(BlockError);
    expect(err).toMatchObject({ code: 'IO', message: `IO: readv at ${4 * SECTOR}: end of image` });
    expect(ring.stats.resubmitted).toBe(1); // the short read of the last sector was continued once
    expect(firstDiff(mem.subarray(0, SECTOR), pattern(3, 1, 0))).toBe(-1);
  });

  it('a_failed_operation_is_a_block_error_naming_the_errno', async () => {
    // The file is open read-only: the kernel refuses the write with EBADF.
    const { ring } = ringOn(8, { flags: 'r' });
    const mem = mapped(4096);

    const err = await ring.writev([mem.subarray(0, SECTOR)], 0).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(BlockError);
    expect(err).toMatchObject({ code: 'IO', message: 'IO: writev at 0: EBADF (9)', cause: { errno: 9 } });
    // The ring goes on: a read still works.
    await ring.readv([mem.subarray(0, SECTOR)], 0);
    expect(firstDiff(mem.subarray(0, SECTOR), pattern(0, 1, 0))).toBe(-1);
  });

  it('fsync_and_fallocate_complete_on_the_image', async () => {
    const { ring, file } = ringOn(2048);
    const before = fs.statSync(file).blocks;
    await ring.fsync(true);
    await ring.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1024 * SECTOR);

    expect(fs.statSync(file).blocks).toBeLessThan(before);
    expect(fileBytes(file, 0, 1024 * SECTOR).every((x) => x === 0)).toBe(true);
    expect(fs.statSync(file).size).toBe(2048 * SECTOR);
  });

  it('completes_a_transfer_of_no_bytes_without_an_sqe', async () => {
    const { ring } = ringOn(8);
    const mem = mapped(4096);
    await ring.readv([mem.subarray(0, 0), mem.subarray(10, 10)], 0);

    expect(ring.stats.submitted).toBe(0);
    expect(ring.busy).toBe(0);
  });

  it('refuses_buffers_that_have_no_native_address', async () => {
    const { ring } = ringOn(8);

    expect(addressable([new Uint8Array(SECTOR)])).toBe(false);
    await expect(ring.readv([new Uint8Array(SECTOR)], 0)).rejects.toMatchObject({ code: 'IO' });
    expect(ring.stats.submitted).toBe(0);
  });

  it('completes_many_operations_beyond_its_slots_sq_and_cq', async () => {
    // 4 SQ entries, 8 CQ entries, 64 slots: 300 writes then 300 reads at once wait for slots and
    // SQ space, and the page-cache reads complete faster than the CQ holds them.
    const { ring, file } = ringOn(600, { entries: 4, slots: 64 });
    const mem = mapped(600 * SECTOR);
    const data = pattern(0, 600, 4);
    mem.set(data);
    await Promise.all(Array.from({ length: 300 }, (_, i) => ring.writev([mem.subarray(2 * i * SECTOR, (2 * i + 2) * SECTOR)], 2 * i * SECTOR)));
    const back = mapped(600 * SECTOR);
    await Promise.all(Array.from({ length: 300 }, (_, i) => ring.readv([back.subarray(2 * i * SECTOR, (2 * i + 2) * SECTOR)], 2 * i * SECTOR)));

    expect(firstDiff(fileBytes(file, 0, 600 * SECTOR), data)).toBe(-1);
    expect(firstDiff(back, data)).toBe(-1);
    expect(ring.stats.slotWaits).toBeGreaterThan(0);
    expect(ring.stats.sqWaits).toBeGreaterThan(0);
    expect(ring.stats.overflowFlushes).toBeGreaterThan(0);
    expect(ring.stats.reaped).toBe(600);
    expect(ring.stats.stray).toBe(0);
    expect(ring.busy).toBe(0);
  });

  it('submits_what_one_synchronous_burst_queues_with_one_io_uring_enter', async () => {
    const { ring } = ringOn(64);
    const mem = mapped(64 * SECTOR);
    await Promise.all(Array.from({ length: 32 }, (_, i) => ring.readv([mem.subarray(i * 2 * SECTOR, (i + 1) * 2 * SECTOR)], i * 2 * SECTOR)));

    expect(ring.stats.enters).toBe(1);
    expect(ring.stats.submitted).toBe(32);
  });

  it('counts_and_ignores_a_cqe_whose_user_data_names_no_operation_in_flight', async () => {
    const { ring } = ringOn(8);
    const mem = mapped(4096);
    // A real read whose CQE carries a user_data of the caller's choice: past the slots, then an
    // idle slot, then slot 0 with a generation it never had.
    const read = { opcode: IORING_OP.READV, flags: IOSQE_FIXED_FILE, fd: 0, len: 0 };
    await ring.submitRaw(read, 99_999);
    await ring.submitRaw(read, 5);
    await ring.submitRaw(read, 0x7777 * 2 ** 32);
    await until('three stray CQEs', () => ring.stats.stray === 3);

    // The ring still works.
    await ring.readv([mem.subarray(0, SECTOR)], 0);
    expect(firstDiff(mem.subarray(0, SECTOR), pattern(0, 1, 0))).toBe(-1);
    expect(ring.stats.stray).toBe(3);
  });
});

describe('io_uring watchdog', () => {
  it('logs_an_operation_with_no_completion_past_the_stall_time_with_the_rings_indices_then_lets_it_finish', async () => {
    // A FIFO as the ring's file: a read on it stays in flight until someone writes.
    const fifo = path.join(dir, `stall-${n++}.fifo`);
    execFileSync('mkfifo', [fifo]);
    const fd = fs.openSync(fifo, fs.constants.O_RDWR);
    const warnings: string[] = [];
    const ring = Uring.create({ file: fd, ops: RW_OPS, stallMs: 100, warn: (t) => warnings.push(t) });
    const key = reactor.add(ring.eventfd, sys.consts.EPOLLIN, () => ring.onEventfd());
    try {
      const buf = mapped(4096);
      let done = false;
      const read = ring.readv([buf.subarray(0, 8)], 0).then(() => { done = true; });
      await until('a stall to be logged', () => warnings.length > 0);
      expect(done).toBe(false);
      expect(warnings[0]).toMatch(/^io_uring stall #1: 1 operation\(s\) in flight and no completion for 0\.\d s \(sq head 1 tail 1, cq head 0 tail 0, sq flags 0x[0-9a-f]+, 0 SQE\(s\) waiting; 1 enters, 1 submitted, 0 reaped\); io_uring_enter\(GETEVENTS\) brought 0$/);
      expect(ring.stats.stalls).toBeGreaterThanOrEqual(1);
      fs.writeSync(fd, 'finished');
      await read;
      expect(new TextDecoder().decode(buf.subarray(0, 8))).toBe('finished');
      // Idle again: the watchdog stops and says nothing more.
      const said = warnings.length;
      await new Promise((r) => setTimeout(r, 300));
      expect(warnings.length).toBe(said);
    } finally {
      reactor.remove(key, ring.eventfd);
      ring.close();
      fs.closeSync(fd);
    }
  });
});

describe('io_uring I/O fence', () => {
  it('keeps_a_held_file_open_after_its_own_fd_is_closed_until_the_ring_is_gone', async () => {
    const [r, w] = sys.pipe2(sys.consts.O_CLOEXEC | sys.consts.O_NONBLOCK);
    const file = path.join(dir, `fence-${n++}.img`);
    fs.writeFileSync(file, pattern(0, 8, 0));
    const fd = fs.openSync(file, 'r+');
    const ring = Uring.create({ file: fd, ops: RW_OPS, holds: [w] });
    sys.close(w);
    // A writer is left (the ring's), so the empty pipe would block rather than end.
    const scratch = new Uint8Array(8);
    const ended = (): boolean => { try { return sys.read(r, scratch) === 0; } catch { return false; } };
    expect(ended()).toBe(false);
    ring.close();
    // The kernel frees a ring, and its files, after its own exit work: shortly, not at once.
    await until('the fence to fall', ended);
    sys.close(r);
    fs.closeSync(fd);
  });
});

describe('io_uring restrictions', () => {
  it('refuse_an_sqe_opcode_not_allowed_with_eacces', async () => {
    const { ring } = ringOn(8);
    // NOP and OPENAT are valid opcodes, but not this ring's.
    expect(await ring.submitRaw({ opcode: IORING_OP.NOP, flags: IOSQE_FIXED_FILE, fd: 0 })).toBe(-EACCES);
    expect(await ring.submitRaw({ opcode: IORING_OP.OPENAT, flags: IOSQE_FIXED_FILE, fd: 0 })).toBe(-EACCES);
  });

  it('refuse_an_sqe_that_names_a_file_by_number_even_the_image', async () => {
    const { ring, fd } = ringOn(8);
    const mem = mapped(4096);
    const iovec = new BigUint64Array(mem.buffer, 2048, 2);
    iovec[0] = BigInt(sys.addressOf(mem));
    iovec[1] = BigInt(SECTOR);
    const addr = sys.addressOf(new Uint8Array(mem.buffer, 2048));

    // Control: the same read through the fixed file works.
    expect(await ring.submitRaw({ opcode: IORING_OP.READV, flags: IOSQE_FIXED_FILE, fd: 0, addr, len: 1 })).toBe(SECTOR);
    expect(await ring.submitRaw({ opcode: IORING_OP.READV, flags: 0, fd, addr, len: 1 })).toBe(-EACCES);
    expect(await ring.submitRaw({ opcode: IORING_OP.READV, flags: 0, fd: 0, addr, len: 1 })).toBe(-EACCES);
  });

  it('refuse_every_register_opcode_once_the_ring_is_enabled', () => {
    const { ring } = ringOn(8);
    const libc = koffi.load('libc.so.6');
    const syscall = libc.func('syscall', 'long', ['long', 'long', 'long', 'long', 'long', 'long', 'long']);
    // IORING_UNREGISTER_FILES (3) and IORING_UNREGISTER_EVENTFD (5): no arguments needed.
    const answers = [3, 5].map((opcode) => [Number(syscall(427, ring.fd, opcode, 0, 0, 0, 0)), koffi.errno()]);

    expect(answers).toEqual([[-1, EACCES], [-1, EACCES]]);
  });
});

describe('io_uring setup', () => {
  it('falls_back_to_the_next_flags_when_the_kernel_refuses_a_flag', () => {
    // Bit 31 is no setup flag any kernel knows: EINVAL, then the plain disabled ring.
    const { ring } = ringOn(8, { setupChoices: [(1 << 31) >>> 0 | (1 << 6), 1 << 6] });

    expect(ring.setupFlags).toBe(1 << 6);
  });

  it('takes_the_newest_flags_on_this_kernel', () => {
    const { ring } = ringOn(8);
    // COOP_TASKRUN (5.19) and SINGLE_ISSUER (6.0) are in every kernel this project is tested on.
    expect(ring.setupFlags & (1 << 8)).toBe(1 << 8);
    expect(ring.setupFlags & (1 << 12)).toBe(1 << 12);
  });
});
