// An io_uring of the block domain's own: the image's reads, writes, syncs and fallocates are
// submitted and reaped by the domain's thread, with no thread hand-off per request. Written from
// the kernel's ABI (linux/io_uring.h, io_uring_setup(2), io_uring_enter(2), io_uring_register(2)).
//
// Security: what a ring does, seccomp never sees (the kernel runs the SQE's operation itself).
// So the ring is made harmless before it can run anything: it is created disabled, its one
// registered file is the image, and its restrictions allow only the opcodes the backend needs and
// require IOSQE_FIXED_FILE on every SQE, so no SQE can name a file by number, let alone open one.
// Only then is it enabled; after that the restrictions refuse every io_uring_register opcode too.
// An SQE the restrictions refuse completes with -EACCES. The sealed seccomp filter then keeps only
// io_uring_enter on this ring's fd (../runtime/seccomp.ts, uringRules).
//
// Flow: an operation takes a slot (its user_data, and its iovec array in native memory, which
// lives until the CQE); SQEs queued during one synchronous burst go to the kernel with one
// io_uring_enter, from a microtask; completions are reaped from the CQ ring in memory when the
// registered eventfd fires (the domain's Reactor watches it) and after every submission. Short
// transfers are resubmitted for the rest. Operations beyond the slots wait in JavaScript, and
// SQEs beyond a full SQ wait for the next io_uring_enter to free space.
//
// Memory ordering: x86-64 is TSO, so plain typed-array loads and stores of SQEs and CQEs keep
// their program order against the index words. The index words themselves go through Atomics,
// which also keeps the JIT from moving an entry access across them.
import * as koffi from 'koffi';
import * as sys from '../../microhv/sys/index.js';
import { StructView, bytes, defineLayout, nested, u8, u16, u32, i32, u64 } from '../../microhv/sys/layout.js';
import { BlockError } from './errors.js';

// linux/io_uring.h: the structs this file reads or writes, declared once.
const SQRING_OFFSETS = defineLayout('io_sqring_offsets', 40, {
  head: u32(0), tail: u32(4), ringMask: u32(8), ringEntries: u32(12), flags: u32(16), dropped: u32(20), array: u32(24), resv1: u32(28), resv2: u64(32),
});
const CQRING_OFFSETS = defineLayout('io_cqring_offsets', 40, {
  head: u32(0), tail: u32(4), ringMask: u32(8), ringEntries: u32(12), overflow: u32(16), cqes: u32(20), flags: u32(24), resv1: u32(28), resv2: u64(32),
});
const PARAMS = defineLayout('io_uring_params', 120, {
  sqEntries: u32(0), cqEntries: u32(4), flags: u32(8), sqThreadCpu: u32(12), sqThreadIdle: u32(16), features: u32(20), wqFd: u32(24),
  resv: bytes(28, 12), sqOff: nested(40, SQRING_OFFSETS), cqOff: nested(80, CQRING_OFFSETS),
});
export const SQE = defineLayout('io_uring_sqe', 64, {
  opcode: u8(0), flags: u8(1), ioprio: u16(2), fd: i32(4), off: u64(8), addr: u64(16), len: u32(24), opFlags: u32(28),
  userData: u64(32), bufIndex: u16(40), personality: u16(42), fileIndex: u32(44), addr3: u64(48), pad: u64(56),
});
const CQE = defineLayout('io_uring_cqe', 16, { userData: u64(0), res: i32(8), flags: u32(12) });
const RESTRICTION = defineLayout('io_uring_restriction', 16, { opcode: u16(0), arg: u8(2), resv: u8(3), resv2: bytes(4, 12) });
const IOVEC = defineLayout('iovec', 16, { base: u64(0), len: u64(8) });

/** SQE opcodes (enum io_uring_op). */
export const IORING_OP = { NOP: 0, READV: 1, WRITEV: 2, FSYNC: 3, FALLOCATE: 17, OPENAT: 18 } as const;
export const IOSQE_FIXED_FILE = 1 << 0;
export const IORING_FSYNC_DATASYNC = 1 << 0;
const SETUP = { R_DISABLED: 1 << 6, SUBMIT_ALL: 1 << 7, COOP_TASKRUN: 1 << 8, SINGLE_ISSUER: 1 << 12 } as const;
const FEAT = { SINGLE_MMAP: 1 << 0, NODROP: 1 << 1 } as const;
const IORING_SQ_CQ_OVERFLOW = 1 << 1;
const IORING_ENTER_GETEVENTS = 1 << 0;
const REGISTER = { FILES: 2, EVENTFD: 4, RESTRICTIONS: 11, ENABLE_RINGS: 12 } as const;
const RESTRICTION_KIND = { SQE_OP: 1, SQE_FLAGS_REQUIRED: 3 } as const;
const OFF_SQ_RING = 0;
const OFF_CQ_RING = 0x800_0000;
const OFF_SQES = 0x1000_0000;
const SYS_IO_URING = { setup: 425, enter: 426, register: 427 } as const;
/** UIO_MAXIOV: the most iovecs one readv or writev takes. */
export const IOV_MAX = 1024;

// asm-generic/errno-base.h
const EINTR = 4;
const EAGAIN = 11;
const EBUSY = 16;
const EINVAL = 22;

const libc = koffi.load('libc.so.6');
// syscall(2) with all six arguments in place: io_uring_enter reads argp and argsz even without
// IORING_ENTER_EXT_ARG (a sigmask pointer), so they must be 0, never what a register held.
const syscall6 = libc.func('syscall', 'long', ['long', 'long', 'long', 'long', 'long', 'long', 'long']);

function call(name: keyof typeof SYS_IO_URING, a1: number, a2: number, a3: number, a4: number, a5 = 0, a6 = 0): number {
  const r = Number(syscall6(SYS_IO_URING[name], a1, a2, a3, a4, a5, a6));
  if (r === -1) throw new sys.SysError(`io_uring_${name}`, koffi.errno());
  return r;
}

/** Setup flags tried in this order, each a fallback for a kernel that answers EINVAL to the one before. */
const SETUP_CHOICES: readonly number[] = [
  SETUP.R_DISABLED | SETUP.SUBMIT_ALL | SETUP.COOP_TASKRUN | SETUP.SINGLE_ISSUER, // 6.0: one submitting thread, no completion IPIs
  SETUP.R_DISABLED | SETUP.SUBMIT_ALL | SETUP.COOP_TASKRUN, // 5.19
  SETUP.R_DISABLED | SETUP.SUBMIT_ALL, // 5.18
  SETUP.R_DISABLED, // 5.10: restrictions need a disabled ring, so nothing older will do
];

export interface RingOptions {
  /** The one file the ring may touch, registered as fixed file 0. */
  readonly file: number;
  /**
   * Files registered after it and never named by an SQE: the kernel keeps them open until the ring
   * and every request on it are gone, even after this process (the I/O fence, FENCE_FD).
   */
  readonly holds?: readonly number[];
  /** SQE opcodes the restrictions allow. */
  readonly ops: readonly number[];
  /** SQ entries, a power of 2 (the kernel makes the CQ twice as large). */
  readonly entries?: number;
  /** Operations in flight at once (each has its iovec array); more wait in JavaScript. Default: the CQ's size. */
  readonly slots?: number;
  /** Setup flags to try, first to last (tests); default SETUP_CHOICES. */
  readonly setupChoices?: readonly number[];
  /** Told of the first stray CQE (the rest are counted in stats) and of each stall the watchdog finds. */
  readonly warn?: (text: string) => void;
  /** Operations in flight with no completion for this long make a stall (default STALL_MS). */
  readonly stallMs?: number;
}

/**
 * The watchdog's threshold. A guest's fio job once stalled for good on the ring with no cause
 * found; a stall is logged with the ring's indices, and io_uring_enter(GETEVENTS) is tried (it
 * runs completion work the kernel deferred to this task), so the log says which side held it.
 */
export const STALL_MS = 5000;

/** What the ring did, for the domain's log and for tests. */
export interface RingStats {
  /** io_uring_enter calls that submitted, and the SQEs they took. */
  enters: number;
  submitted: number;
  reaped: number;
  /** Short transfers continued with another SQE. */
  resubmitted: number;
  /** CQEs whose user_data names no operation in flight: counted and ignored. */
  stray: number;
  /** io_uring_enter(GETEVENTS) calls that brought overflowed CQEs back into the ring. */
  overflowFlushes: number;
  /** Operations that waited for a slot, and SQEs that waited for SQ space. */
  slotWaits: number;
  sqWaits: number;
  /** Stalls the watchdog found, and the completions its GETEVENTS brought. */
  stalls: number;
  stallReaped: number;
}

/** One SQE's worth of work, as the caller states it; addr and len come from `iov` when it is set. */
interface Op {
  readonly opcode: number;
  readonly flags: number;
  readonly fd: number;
  readonly opFlags: number;
  readonly addr: number;
  readonly len: number;
  readonly what: string;
  /**
   * A positioned transfer: the buffers, the first one not done and bytes of it done, the position;
   * bytes the SQE in flight carries, and whether they reach the end of the buffers.
   */
  readonly iov: readonly Uint8Array[] | undefined;
  at: number;
  skip: number;
  pos: number;
  sent: number;
  last: boolean;
  /** `raw`: the result goes to the caller as it is, even negative. */
  readonly raw: boolean;
  resolve(res: number): void;
  reject(err: unknown): void;
}

interface Slot {
  readonly index: number;
  /** Bumped at each use; the high half of user_data, so a late or forged CQE for a reused slot is not taken for its new operation. */
  gen: number;
  op: Op | undefined;
  /** Byte offset of its iovec array in the arena. */
  readonly iovAt: number;
}

/** Whether every buffer has a native address (is over a mapping), so the kernel can reach it in place. */
export function addressable(iov: readonly Uint8Array[]): boolean {
  let last: ArrayBufferLike | undefined;
  for (const v of iov) {
    if (v.buffer === last) continue;
    try {
      sys.addressOf(v);
    } catch {
      return false;
    }
    last = v.buffer;
  }
  return true;
}

const RW = sys.consts.PROT_READ | sys.consts.PROT_WRITE;

// Word indexes (u32) of the SQE and CQE fields the hot path touches; a u64 is two words, low first.
const W = (f: { offset: number }): number => f.offset >> 2;
const SQE_WORDS = SQE.size >> 2;
const CQE_WORDS = CQE.size >> 2;
const IOVEC_WORDS = IOVEC.size >> 2;
const TWO32 = 2 ** 32;

export class Uring {
  readonly stats: RingStats = { enters: 0, submitted: 0, reaped: 0, resubmitted: 0, stray: 0, overflowFlushes: 0, slotWaits: 0, sqWaits: 0, stalls: 0, stallReaped: 0 };
  private readonly slots: Slot[];
  private readonly free: number[];
  private readonly waiting: Op[] = [];
  private waitingAt = 0;
  private readonly sqWait: Slot[] = [];
  private sqWaitAt = 0;
  private sqTail: number;
  private cqHead: number;
  private flushQueued = false;
  private closed = false;
  /** When the ring last completed something, or last became busy; and the watchdog while it is. */
  private progressAt = 0;
  private watchdog: NodeJS.Timeout | undefined;

  private constructor(
    readonly fd: number,
    /** Signalled by the kernel for every CQE; the caller watches it and calls onEventfd. */
    readonly eventfd: number,
    /** The setup flags the kernel took. */
    readonly setupFlags: number,
    private readonly maps: readonly sys.Mapping[],
    private readonly sq: { readonly words: Uint32Array; readonly head: number; readonly tail: number; readonly flags: number; readonly mask: number; readonly entries: number },
    private readonly cq: { readonly words: Uint32Array; readonly ints: Int32Array; readonly head: number; readonly tail: number; readonly mask: number; readonly entries: number; readonly at: number },
    private readonly sqes: Uint32Array,
    private readonly arena: { readonly words: Uint32Array; readonly addr: number; readonly map: sys.Mapping },
    slots: number,
    private readonly warn: (text: string) => void,
    private readonly stallMs: number,
  ) {
    this.slots = Array.from({ length: slots }, (_, index) => ({ index, gen: 0, op: undefined, iovAt: index * IOV_MAX * IOVEC.size }));
    this.free = Array.from({ length: slots }, (_, i) => slots - 1 - i);
    this.sqTail = Atomics.load(sq.words, sq.tail);
    this.cqHead = Atomics.load(cq.words, cq.head);
  }

  /**
   * Sets the ring up, registers the file and a completion eventfd, restricts it and enables it.
   * Throws SysError naming the call that failed (io_uring_setup ENOSYS or EPERM: no io_uring here).
   */
  static create(o: RingOptions): Uring {
    const entries = o.entries ?? 128;
    if (!Number.isInteger(entries) || entries < 1 || entries > 4096 || (entries & (entries - 1)) !== 0) throw new RangeError(`ring entries ${entries}: a power of 2 up to 4096`);
    const undo: Array<() => void> = [];
    // Native scratch for the structs the calls take by pointer.
    const scratch = sys.mmap(4096, RW, sys.consts.MAP_PRIVATE | sys.consts.MAP_ANONYMOUS, -1, 0);
    const mem = new Uint8Array(scratch.buffer);
    const at = Number(scratch.addr);
    try {
      let fd = -1;
      let setupFlags = 0;
      const params = new StructView(PARAMS, mem);
      for (const flags of o.setupChoices ?? SETUP_CHOICES) {
        mem.fill(0, 0, PARAMS.size);
        params.set('flags', flags);
        try {
          fd = call('setup', entries, at, 0, 0);
          setupFlags = flags;
          break;
        } catch (e) {
          // EINVAL: a flag this kernel does not know; the next choice drops it.
          if (!(e instanceof sys.SysError && e.errno === EINVAL)) throw e;
        }
      }
      if (fd < 0) throw new sys.SysError('io_uring_setup', EINVAL);
      undo.push(() => sys.close(fd));
      const features = params.get('features');
      // Without NODROP a full CQ loses completions; every kernel with restrictions (5.10) has it.
      if ((features & FEAT.NODROP) === 0) throw new sys.SysError('io_uring_setup', EINVAL, { cause: new Error('no IORING_FEAT_NODROP') });
      const sqOff = params.struct('sqOff');
      const cqOff = params.struct('cqOff');
      const sqEntries = params.get('sqEntries');
      const cqEntries = params.get('cqEntries');
      const sqBytes = sqOff.get('array') + sqEntries * 4;
      const cqBytes = cqOff.get('cqes') + cqEntries * CQE.size;
      const single = (features & FEAT.SINGLE_MMAP) !== 0;
      const mapRing = (length: number, offset: number): sys.Mapping => {
        const m = sys.mmap(length, RW, sys.consts.MAP_SHARED | sys.consts.MAP_POPULATE, fd, offset);
        undo.push(() => sys.munmap(m));
        return m;
      };
      const sqMap = mapRing(single ? Math.max(sqBytes, cqBytes) : sqBytes, OFF_SQ_RING);
      const cqMap = single ? sqMap : mapRing(cqBytes, OFF_CQ_RING);
      const sqeMap = mapRing(sqEntries * SQE.size, OFF_SQES);
      const sqWords = new Uint32Array(sqMap.buffer);
      const cqWords = new Uint32Array(cqMap.buffer);
      // The offsets are the kernel's, but a wrong one would have us write outside the ring: check each.
      const word = (off: number, len: number, what: string): number => {
        if (off % 4 !== 0 || off + 4 > len) throw new sys.SysError('io_uring_setup', EINVAL, { cause: new Error(`${what} offset ${off} outside ${len} bytes`) });
        return off >> 2;
      };
      const sq = {
        words: sqWords, head: word(sqOff.get('head'), sqMap.length, 'sq head'), tail: word(sqOff.get('tail'), sqMap.length, 'sq tail'),
        flags: word(sqOff.get('flags'), sqMap.length, 'sq flags'), mask: sqEntries - 1, entries: sqEntries,
      };
      const cqAt = cqOff.get('cqes');
      if (cqAt % 8 !== 0 || cqBytes > cqMap.length) throw new sys.SysError('io_uring_setup', EINVAL, { cause: new Error(`cqes at ${cqAt}`) });
      const cq = {
        words: cqWords, ints: new Int32Array(cqMap.buffer), head: word(cqOff.get('head'), cqMap.length, 'cq head'),
        tail: word(cqOff.get('tail'), cqMap.length, 'cq tail'), mask: cqEntries - 1, entries: cqEntries, at: cqAt >> 2,
      };
      const masks = sqWords[word(sqOff.get('ringMask'), sqMap.length, 'sq mask')] === sq.mask && cqWords[word(cqOff.get('ringMask'), cqMap.length, 'cq mask')] === cq.mask;
      if (!masks || (sqEntries & sq.mask) !== 0 || (cqEntries & cq.mask) !== 0) throw new sys.SysError('io_uring_setup', EINVAL, { cause: new Error(`ring sizes ${sqEntries}/${cqEntries}`) });
      // SQ array slot i always names SQE i: the SQE array is used in ring order.
      const array = word(sqOff.get('array'), sqMap.length, 'sq array');
      for (let i = 0; i < sqEntries; i++) sqWords[array + i] = i;

      const slots = o.slots ?? cqEntries;
      const arena = sys.mmap(slots * IOV_MAX * IOVEC.size, RW, sys.consts.MAP_PRIVATE | sys.consts.MAP_ANONYMOUS, -1, 0);
      undo.push(() => sys.munmap(arena));
      const eventfd = sys.eventfd(0, sys.consts.EFD_NONBLOCK | sys.consts.EFD_CLOEXEC);
      undo.push(() => sys.close(eventfd));

      const i32s = new Int32Array(scratch.buffer);
      const files = [o.file, ...(o.holds ?? [])];
      files.forEach((f, i) => { i32s[i] = f; });
      call('register', fd, REGISTER.FILES, at, files.length);
      i32s[0] = eventfd;
      call('register', fd, REGISTER.EVENTFD, at, 1);
      const rules = [...o.ops.map((op) => [RESTRICTION_KIND.SQE_OP, op] as const), [RESTRICTION_KIND.SQE_FLAGS_REQUIRED, IOSQE_FIXED_FILE] as const];
      mem.fill(0, 0, rules.length * RESTRICTION.size);
      rules.forEach(([kind, arg], i) => new StructView(RESTRICTION, mem, i * RESTRICTION.size).set('opcode', kind).set('arg', arg));
      call('register', fd, REGISTER.RESTRICTIONS, at, rules.length);
      call('register', fd, REGISTER.ENABLE_RINGS, 0, 0);

      const ring = new Uring(fd, eventfd, setupFlags, single ? [sqMap, sqeMap] : [sqMap, cqMap, sqeMap], sq, cq, new Uint32Array(sqeMap.buffer),
        { words: new Uint32Array(arena.buffer), addr: Number(arena.addr), map: arena }, slots, o.warn ?? (() => undefined), o.stallMs ?? STALL_MS);
      undo.length = 0;
      return ring;
    } finally {
      for (const u of undo.reverse()) u();
      sys.munmap(scratch);
    }
  }

  /** Reads `iov` from the file at `pos`, every byte (a short read continues; end of file fails). */
  readv(iov: readonly Uint8Array[], pos: number): Promise<void> {
    return this.transfer(IORING_OP.READV, 'readv', iov, pos);
  }

  writev(iov: readonly Uint8Array[], pos: number): Promise<void> {
    return this.transfer(IORING_OP.WRITEV, 'writev', iov, pos);
  }

  /** fdatasync (or fsync) of the whole file, issued once the call is made: it covers every write completed before. */
  async fsync(datasync = true): Promise<void> {
    await this.start(IORING_OP.FSYNC, datasync ? IORING_FSYNC_DATASYNC : 0, 0, 0, 0, datasync ? 'fdatasync' : 'fsync');
  }

  /** fallocate(mode, offset, length); a failure's cause is a SysError with the errno. */
  async fallocate(mode: number, offset: number, length: number): Promise<void> {
    // IORING_OP_FALLOCATE takes the length in addr and the mode in len.
    await this.start(IORING_OP.FALLOCATE, 0, offset, length, mode, 'fallocate');
  }

  /**
   * One SQE as given, with no fixed-file flag added: probes and tests of what the restrictions
   * refuse. Resolves with the CQE's res, negative errno included. With `userData` the SQE carries
   * that instead of a slot's, and nothing waits for its CQE.
   */
  submitRaw(sqe: { opcode: number; flags: number; fd: number; off?: number; addr?: number; len?: number }, userData?: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const op: Op = {
        opcode: sqe.opcode, flags: sqe.flags, fd: sqe.fd, opFlags: 0, addr: sqe.addr ?? 0, len: sqe.len ?? 0, what: `opcode ${sqe.opcode}`,
        iov: undefined, at: 0, skip: 0, pos: sqe.off ?? 0, sent: 0, last: true, raw: true, resolve, reject,
      };
      if (userData === undefined) return this.begin(op);
      if (this.closed || this.sqSpace() === 0) return reject(new BlockError('IO', 'no SQ space for a raw SQE'));
      // No slot: the record below only carries the user_data into the SQE.
      this.writeSqe({ index: userData % TWO32, gen: Math.floor(userData / TWO32), op, iovAt: 0 }, op);
      this.scheduleFlush();
      resolve(0);
    });
  }

  /** The eventfd fired: reset it first, so a CQE posted after the reap below signals again. */
  onEventfd(): void {
    sys.eventfdTryRead(this.eventfd);
    this.reap();
  }

  /** Operations taken and not yet completed (in flight or waiting for a slot). */
  get busy(): number {
    return this.slots.length - this.free.length + (this.waiting.length - this.waitingAt);
  }

  /** Unmaps the rings and closes the ring and its eventfd; operations not yet completed fail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.watchdog);
    const gone = new BlockError('IO', 'the io_uring was closed');
    for (const s of this.slots) s.op?.reject(gone);
    for (const op of this.waiting.splice(0)) op.reject(gone);
    sys.close(this.fd);
    sys.close(this.eventfd);
    for (const m of this.maps) sys.munmap(m);
    sys.munmap(this.arena.map);
  }

  /** The buffers must be over mappings (addressable): one that is not fails the transfer when its SQE is written. */
  private transfer(opcode: number, what: string, iov: readonly Uint8Array[], pos: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.begin({ opcode, flags: IOSQE_FIXED_FILE, fd: 0, opFlags: 0, addr: 0, len: 0, what, iov, at: 0, skip: 0, pos, sent: 0, last: true, raw: false, resolve: () => resolve(), reject });
    });
  }

  private start(opcode: number, opFlags: number, pos: number, addr: number, len: number, what: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.begin({ opcode, flags: IOSQE_FIXED_FILE, fd: 0, opFlags, addr, len, what, iov: undefined, at: 0, skip: 0, pos, sent: 0, last: true, raw: false, resolve, reject });
    });
  }

  private begin(op: Op): void {
    if (this.closed) return op.reject(new BlockError('IO', 'the io_uring was closed'));
    if (this.watchdog === undefined) {
      this.progressAt = Date.now();
      this.watchdog = setInterval(() => this.watch(), Math.min(1000, this.stallMs)).unref();
    }
    const index = this.free.pop();
    if (index === undefined) {
      this.stats.slotWaits++;
      this.waiting.push(op);
      return;
    }
    const slot = this.slots[index]!;
    slot.gen = (slot.gen + 1) >>> 0;
    slot.op = op;
    this.queue(slot);
  }

  private queue(slot: Slot): void {
    if (this.sqSpace() > 0 && this.sqWaitAt === this.sqWait.length) this.writeSqe(slot, slot.op!);
    else {
      this.stats.sqWaits++;
      this.sqWait.push(slot);
    }
    this.scheduleFlush();
  }

  /** Writes the slot's SQE, or settles its operation at once when there is nothing to send or a buffer has no address. */
  private writeSqe(slot: Slot, op: Op): void {
    if (op.iov === undefined) return this.writeEntry(slot, op, op.addr, op.len);
    let n: number;
    try {
      n = this.fillIovecs(slot, op);
    } catch (e) {
      return this.finish(slot, new BlockError('IO', `${op.what}: a buffer is not over a mapping`, { cause: e }));
    }
    if (n === 0) return this.finish(slot, undefined);
    this.writeEntry(slot, op, this.arena.addr + slot.iovAt, n);
  }

  private sqSpace(): number {
    return this.sq.entries - ((this.sqTail - Atomics.load(this.sq.words, this.sq.head)) >>> 0);
  }

  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    // Everything queued in this synchronous burst goes to the kernel in one io_uring_enter.
    queueMicrotask(() => this.flush());
  }

  /** Writes the SQE for `op` at the SQ's tail (published by the next flush). */
  private writeEntry(slot: Slot, op: Op, addr: number, len: number): void {
    const q = this.sqes;
    const w = (this.sqTail & this.sq.mask) * SQE_WORDS;
    q.fill(0, w, w + SQE_WORDS);
    // opcode, flags and ioprio (0) share the first word, little-endian.
    q[w] = op.opcode | (op.flags << 8);
    q[w + W(SQE.fields.fd)] = op.fd >>> 0;
    setU64(q, w + W(SQE.fields.off), op.pos);
    setU64(q, w + W(SQE.fields.addr), addr);
    q[w + W(SQE.fields.len)] = len;
    q[w + W(SQE.fields.opFlags)] = op.opFlags;
    q[w + W(SQE.fields.userData)] = slot.index;
    q[w + W(SQE.fields.userData) + 1] = slot.gen;
    this.sqTail = (this.sqTail + 1) >>> 0;
  }

  /**
   * The slot's iovec array for what is left of `op`: buffers that follow each other in memory
   * become one iovec (guest pages that are adjacent in guest RAM are adjacent in the mapping).
   * At most IOV_MAX; what does not fit is a short transfer, continued after the CQE. Sets the
   * bytes the SQE carries (`sent`) and whether they are the last (`last`).
   */
  private fillIovecs(slot: Slot, op: Op): number {
    const iov = op.iov!;
    const a = this.arena.words;
    let w = slot.iovAt >> 2;
    let n = 0;
    let lastBuffer: ArrayBufferLike | undefined;
    let base = 0;
    let end = -1;
    let runLen = 0;
    let sent = 0;
    let i = op.at;
    for (; i < iov.length; i++) {
      const v = iov[i]!;
      const skip = i === op.at ? op.skip : 0;
      const len = v.byteLength - skip;
      if (len <= 0) continue;
      if (v.buffer !== lastBuffer) {
        base = sys.addressOf(v) - v.byteOffset;
        lastBuffer = v.buffer;
      }
      const addr = base + v.byteOffset + skip;
      // One iovec stays well below the kernel's per-call cap (MAX_RW_COUNT, about 2 GiB).
      if (addr === end && runLen + len <= 0x4000_0000) {
        runLen += len;
        a[w - IOVEC_WORDS + W(IOVEC.fields.len)] = runLen;
      } else {
        if (n === IOV_MAX) break;
        setU64(a, w + W(IOVEC.fields.base), addr);
        a[w + W(IOVEC.fields.len)] = len;
        a[w + W(IOVEC.fields.len) + 1] = 0;
        w += IOVEC_WORDS;
        n++;
        runLen = len;
      }
      end = addr + len;
      sent += len;
    }
    op.sent = sent;
    op.last = i === iov.length;
    return n;
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.closed) return;
    for (;;) {
      while (this.sqWaitAt < this.sqWait.length && this.sqSpace() > 0) {
        const slot = this.sqWait[this.sqWaitAt++]!;
        this.writeSqe(slot, slot.op!);
      }
      if (this.sqWaitAt === this.sqWait.length) {
        this.sqWait.length = 0;
        this.sqWaitAt = 0;
      }
      const pending = (this.sqTail - Atomics.load(this.sq.words, this.sq.head)) >>> 0;
      // The kernel's head can never pass our tail; a ring that says otherwise is broken, and so is this process.
      if (pending > this.sq.entries) throw new BlockError('IO', `io_uring SQ head ${Atomics.load(this.sq.words, this.sq.head)} is past tail ${this.sqTail}`);
      if (pending === 0) break;
      // Release: the SQEs written above before the tail that hands them to the kernel.
      Atomics.store(this.sq.words, this.sq.tail, this.sqTail);
      let n: number;
      try {
        n = call('enter', this.fd, pending, 0, 0);
      } catch (e) {
        const errno = e instanceof sys.SysError ? e.errno : -1;
        if (errno === EINTR) continue;
        if (errno === EAGAIN || errno === EBUSY) {
          // The kernel is short of resources or has completions to hand back first: take them, try again soon.
          this.reap();
          setImmediate(() => this.scheduleFlush());
          return;
        }
        // The ring cannot take work (a sandbox or ring defect): the process should stop, and a
        // successor resubmit what was in flight, rather than fail the guest's requests.
        throw new BlockError('IO', 'io_uring_enter', { cause: e });
      }
      this.stats.enters++;
      this.stats.submitted += n;
      if (n < pending && this.sqWaitAt === this.sqWait.length) {
        // Not every SQE was taken (SUBMIT_ALL not known here and one failed early): the rest go on the next round.
        setImmediate(() => this.scheduleFlush());
        break;
      }
      if (this.sqWaitAt === this.sqWait.length) break;
    }
    // Completions the kernel finished during the call (page-cache hits) need no eventfd round trip.
    this.reap();
  }

  /** Takes every CQE from the CQ ring, then brings back overflowed ones. */
  reap(): void {
    if (this.closed) return;
    const cq = this.cq;
    for (;;) {
      // Acquire: the CQEs up to the tail were written before the kernel stored it.
      const tail = Atomics.load(cq.words, cq.tail);
      let head = this.cqHead;
      const ready = (tail - head) >>> 0;
      if (ready > cq.entries) throw new BlockError('IO', `io_uring CQ tail ${tail} is ${ready} entries past head ${head}`);
      if (ready > 0) {
        while (head !== tail) {
          const w = cq.at + (head & cq.mask) * CQE_WORDS;
          const lo = cq.words[w + W(CQE.fields.userData)]!;
          const hi = cq.words[w + W(CQE.fields.userData) + 1]!;
          const res = cq.ints[w + W(CQE.fields.res)]!;
          head = (head + 1) >>> 0;
          this.complete(lo, hi, res);
        }
        this.stats.reaped += ready;
        this.progressAt = Date.now();
        this.cqHead = head;
        // Release: the CQEs above were read before the kernel may write over them.
        Atomics.store(cq.words, cq.head, head);
        continue;
      }
      if ((Atomics.load(this.sq.words, this.sq.flags) & IORING_SQ_CQ_OVERFLOW) === 0) return;
      // NODROP kept the completions that did not fit; GETEVENTS moves them into the ring we just emptied.
      this.stats.overflowFlushes++;
      try {
        call('enter', this.fd, 0, 0, IORING_ENTER_GETEVENTS);
      } catch (e) {
        if (!(e instanceof sys.SysError && e.errno === EINTR)) throw new BlockError('IO', 'io_uring_enter (GETEVENTS)', { cause: e });
      }
    }
  }

  /** The watchdog: idle, it stops; busy with no completion for stallMs, it logs the ring and tries GETEVENTS. */
  private watch(): void {
    if (this.busy === 0) {
      clearInterval(this.watchdog);
      this.watchdog = undefined;
      return;
    }
    const quiet = Date.now() - this.progressAt;
    if (quiet < this.stallMs) return;
    const s = this.stats;
    const sqFlags = Atomics.load(this.sq.words, this.sq.flags);
    const where = `sq head ${Atomics.load(this.sq.words, this.sq.head)} tail ${this.sqTail}, cq head ${this.cqHead} tail ${Atomics.load(this.cq.words, this.cq.tail)}, `
      + `sq flags 0x${sqFlags.toString(16)}, ${this.sqWait.length - this.sqWaitAt} SQE(s) waiting; ${s.enters} enters, ${s.submitted} submitted, ${s.reaped} reaped`;
    s.stalls++;
    const inFlight = this.busy;
    const before = s.reaped;
    try {
      call('enter', this.fd, 0, 0, IORING_ENTER_GETEVENTS);
    } catch (e) {
      if (!(e instanceof sys.SysError && e.errno === EINTR)) throw new BlockError('IO', 'io_uring_enter (GETEVENTS)', { cause: e });
    }
    this.reap();
    const got = s.reaped - before;
    s.stallReaped += got;
    if (s.stalls <= 10 || s.stalls % 100 === 0) {
      this.warn(`io_uring stall #${s.stalls}: ${inFlight} operation(s) in flight and no completion for ${(quiet / 1000).toFixed(1)} s (${where}); io_uring_enter(GETEVENTS) brought ${got}`);
    }
    // At most one look per stallMs: the next is due only if this one changed nothing.
    this.progressAt = Date.now();
  }

  private complete(lo: number, hi: number, res: number): void {
    // The kernel hands back what we gave it; still, a user_data that names no operation in flight
    // (out of range, idle slot, older use of the slot) is counted and ignored, never trusted.
    const slot = this.slots[lo];
    const op = slot?.op;
    if (slot === undefined || op === undefined || slot.gen !== hi) {
      if (this.stats.stray++ === 0) this.warn(`io_uring CQE for slot ${lo} generation ${hi} (res ${res}) names no operation in flight; further ones are counted`);
      return;
    }
    if (op.raw) return this.finish(slot, undefined, res);
    if (res < 0) {
      const cause = new sys.SysError(op.what, -res);
      return this.finish(slot, new BlockError('IO', `${op.what}${op.iov !== undefined ? ` at ${op.pos}` : ''}: ${cause.errnoName} (${-res})`, { cause }));
    }
    if (op.iov === undefined || (res === op.sent && op.last)) return this.finish(slot, undefined, res);
    // A transfer that moved less than all of its buffers: continue with the rest.
    if (res > op.sent) return this.finish(slot, new BlockError('IO', `${op.what} at ${op.pos}: the kernel moved ${res} bytes of ${op.sent}`));
    if (res === 0) return this.finish(slot, new BlockError('IO', `${op.what} at ${op.pos}: end of image`));
    this.advance(op, res);
    this.stats.resubmitted++;
    this.queue(slot);
  }

  /** `n` more bytes moved: skip them in the buffers. */
  private advance(op: Op, n: number): void {
    const iov = op.iov!;
    op.pos += n;
    let rest = n;
    while (rest > 0 && op.at < iov.length) {
      const here = iov[op.at]!.byteLength - op.skip;
      if (rest >= here) {
        rest -= here;
        op.at++;
        op.skip = 0;
      } else {
        op.skip += rest;
        rest = 0;
      }
    }
  }

  /** Frees the slot (giving it to the next waiting operation) and settles its operation. */
  private finish(slot: Slot, err: BlockError | undefined, res = 0): void {
    const op = slot.op!;
    slot.op = undefined;
    const next = this.waitingAt < this.waiting.length ? this.waiting[this.waitingAt++] : undefined;
    if (this.waitingAt === this.waiting.length) {
      this.waiting.length = 0;
      this.waitingAt = 0;
    }
    if (next !== undefined) {
      slot.gen = (slot.gen + 1) >>> 0;
      slot.op = next;
      this.queue(slot);
    } else {
      this.free.push(slot.index);
    }
    if (err !== undefined) op.reject(err);
    else op.resolve(res);
  }
}

/** A u64 as two little-endian words (values up to 2^53, which positions and addresses are). */
function setU64(words: Uint32Array, w: number, v: number): void {
  words[w] = v % TWO32;
  words[w + 1] = Math.floor(v / TWO32);
}
