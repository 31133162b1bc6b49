// Fuzz targets for the block domain's guest-input path.
//
//   chain   the descriptor-chain decoder and the request parser, on a descriptor table, an
//           indirect table and request bytes taken from the input. A run fails on an exception,
//           a view outside guest RAM or of the wrong length, or a parsed request whose data
//           does not match its length or lies past the disk.
//   device  a whole block domain (transport, queues, device, inflight protocol) whose guest
//           writes descriptors, available-ring entries and indices from the input, then kicks;
//           then a successor resumes from the same state region. A run fails on an exception
//           out of the domain (BAD_STATE from the successor included), a device that never goes
//           idle, or a used element for a head the guest never made available.
//
//   node dist/driver-domains/block/fuzz.js [--seconds N] [--seed S] [--replay TARGET:HEX]
//
// Inputs come from a seeded generator, half of them mutated from earlier ones, so a failing
// run is reproduced with its seed or with the hex input it prints.
import { pathToFileURL } from 'node:url';
import { walkChain, type Chain } from '../virtio/chain.js';
import { DriverQueue, FakeGuestMemory } from '../virtio/testing.js';
import { VirtioBlkReqHeader, VirtqUsedElem } from '../../idl/generated/virtio.js';
import type { Buffer } from '../virtio/testing.js';
import { blockLimits, SECTOR } from './config.js';
import { VIRTIO_BLK_T, parseRequest } from './request.js';
import { BlockGuest } from './testing.js';

const RAM = 64 * 1024;
const SIZE = 16;
const noBar = { read: (): bigint => 0n, write: (): void => undefined };

function u32(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) | ((b[at + 1] ?? 0) << 8) | ((b[at + 2] ?? 0) << 16) | ((b[at + 3] ?? 0) << 24)) >>> 0;
}

/** A descriptor from 16 input bytes: addresses and lengths folded so most land near RAM. */
function desc(b: Uint8Array, at: number, ram: number): { addr: bigint; len: number; flags: number; next: number } {
  const lo = u32(b, at), hi = u32(b, at + 4), len = u32(b, at + 8), fn = u32(b, at + 12);
  const addr = (hi & 0x8000_0000) !== 0 ? (BigInt(hi) << 32n) | BigInt(lo) : BigInt(lo % (2 * ram));
  return { addr, len: (len & 0x8000_0000) !== 0 ? len : len % 8192, flags: fn & 0xffff, next: (fn >>> 16) % (SIZE + 4) };
}

function checkChain(c: Chain, fake: FakeGuestMemory): void {
  let r = 0, w = 0;
  for (const s of c.segments) {
    if (s.writable) w += s.len;
    else r += s.len;
    if (s.fault !== undefined) {
      if (s.views.length !== 0) throw new Error('faulty segment with views');
      continue;
    }
    const total = s.views.reduce((a, v) => a + v.byteLength, 0);
    if (total !== s.len) throw new Error(`segment of ${s.len} bytes has ${total} bytes of views`);
    for (const v of s.views) if (v.buffer !== fake.bytes(0, 1).buffer) throw new Error('view outside guest RAM');
  }
  if (r !== c.readableBytes || w !== c.writableBytes) throw new Error('byte totals disagree with segments');
}

/** The decoder and the parser on a table written from the input. */
export function runChain(input: Uint8Array): void {
  const fake = new FakeGuestMemory([{ gpa: 0, size: RAM }]);
  const dq = new DriverQueue(fake, 0, SIZE, { eventIdx: false, indirect: true }, noBar);
  const table = fake.alloc(16 * 16, 16);
  const data = fake.alloc(4096, 16);
  for (let i = 0; i < SIZE; i++) dq.writeDesc(i, desc(input, i * 16, RAM));
  for (let i = 0; i < 16; i++) fake.writeDesc(table, i, desc(input, 256 + i * 16, RAM));
  fake.write(data, input.subarray(512, 512 + 4096));
  const region = fake.memory.locate(dq.desc, 16 * SIZE);
  if (region === undefined) throw new Error('setup');
  const ring = { start: dq.used, end: dq.used + 4 + 8 * SIZE + 2 };
  const ctx = { memory: fake.memory, descRegion: region, descGpa: dq.desc, size: SIZE, indirect: (input[0] ?? 0) % 4 !== 0, maxIndirect: 16, forbidden: [ring] };
  const limits = blockLimits({ queueSize: SIZE }, RAM, 1);
  for (let head = 0; head < SIZE; head++) {
    const c = walkChain(ctx, head);
    if (typeof c === 'string') continue;
    checkChain(c, fake);
    const req = parseRequest(c, { limits, discard: true, writeZeroes: true, hostAligned: () => false });
    if (req === undefined || (req.kind !== 'read' && req.kind !== 'write')) continue;
    const total = req.iov.reduce((a, v) => a + v.byteLength, 0);
    if (total !== req.length || req.length % SECTOR !== 0) throw new Error(`request of ${req.length} bytes has ${total} bytes of iov`);
    if (req.offset + req.length > limits.capacity * SECTOR) throw new Error('request past the disk');
  }
}

const TYPES = [VIRTIO_BLK_T.IN, VIRTIO_BLK_T.OUT, VIRTIO_BLK_T.FLUSH, VIRTIO_BLK_T.GET_ID, VIRTIO_BLK_T.DISCARD, VIRTIO_BLK_T.WRITE_ZEROES];
const LENGTHS = [0, 1, 16, 20, 100, 512, 1024, 4096, 8192];

/** A request laid out by the driver, its parameters bent by the op's bytes. */
function request(g: BlockGuest, op: Uint8Array): number | undefined {
  const dq = g.queue(0);
  const type = TYPES[(op[1] ?? 0) % (TYPES.length + 1)] ?? u32(op, 4);
  const sector = (op[2] ?? 0) < 0xf0 ? BigInt(op[2] ?? 0) : BigInt(u32(op, 8)) << 20n;
  const len = LENGTHS[(op[3] ?? 0) % LENGTHS.length] ?? 0;
  const flip = ((op[12] ?? 0) & 1) !== 0;
  const hdr = g.fake.alloc(16, 16);
  const h = g.fake.at(hdr, 16);
  VirtioBlkReqHeader.write(h.mem, h.at, { type, ioprio: 0, sector });
  const buffers: Buffer[] = [{ gpa: hdr, len: ((op[12] ?? 0) & 2) !== 0 ? 8 : 16, writable: false }];
  if (len > 0) {
    const data = g.fake.alloc(len, 16);
    g.fake.write(data, op.subarray(4, 4 + Math.min(len, 12)));
    const toDevice = type === VIRTIO_BLK_T.OUT || type === VIRTIO_BLK_T.DISCARD || type === VIRTIO_BLK_T.WRITE_ZEROES;
    buffers.push({ gpa: data, len, writable: toDevice === flip });
  }
  const status = g.fake.alloc(1, 1);
  buffers.push({ gpa: status, len: 1, writable: ((op[12] ?? 0) & 4) === 0 });
  const indirect = ((op[12] ?? 0) & 8) !== 0;
  if (dq.freeCount < (indirect ? 1 : buffers.length)) return undefined;
  const head = dq.add(buffers, indirect);
  dq.pushHead(head);
  dq.kick();
  return head;
}

/** A whole domain: the guest writes requests, descriptors and ring entries from the input, then a successor resumes. */
export async function runDevice(input: Uint8Array): Promise<void> {
  const g = new BlockGuest({ ramBytes: 1 << 20, sectors: 64, options: { queueSize: SIZE } }).init();
  const dq = g.queue(0);
  const bufs = g.fake.alloc(16 * 1024, 16);
  g.fake.write(bufs, input.subarray(0, 1024));
  const ops = input.subarray(Math.min(input.length, 1024));
  const made = new Set<number>();
  for (let at = 0; at + 16 <= ops.length; at += 16) {
    const op = ops.subarray(at, at + 16);
    const kind = op[0] ?? 0;
    if (kind < 0x60) {
      const head = request(g, op);
      if (head !== undefined) made.add(head);
    } else if (kind < 0xb0) {
      const d = desc(op, 0, 256 * 1024);
      dq.writeDesc((op[1] ?? 0) % SIZE, { ...d, addr: d.addr < 256n * 1024n ? BigInt(bufs) + (d.addr % 16384n) : d.addr });
    } else if (kind < 0xf0) {
      // Any head, even one in flight or past the queue.
      const head = (op[1] ?? 0) % (SIZE + 2);
      made.add(head);
      dq.pushHead(head);
      dq.forceKick();
    } else {
      // The entries a jump exposes were never pushed: whatever heads the ring holds (zero where
      // nothing was written) are the driver's to have made available.
      for (const head of dq.availEntries()) made.add(head);
      dq.jumpAvail(u32(op, 1));
      dq.forceKick();
    }
  }
  const idle = (): Promise<void> => Promise.race([g.domain.device.idle(), new Promise<void>((_, no) => setTimeout(() => no(new Error('device never went idle')), 2000))]);
  await idle();
  g.boot();
  await idle();
  const used = dq.usedIdx();
  for (let i = 0; i < Math.min(used, SIZE); i++) {
    const e = g.fake.at(dq.used + 4 + 8 * i, 8);
    const id = VirtqUsedElem.getId(e.mem, e.at);
    if (!made.has(id)) throw new Error(`used element for head ${id}, never made available`);
  }
  if (g.domain.device.inFlight !== 0) throw new Error(`${g.domain.device.inFlight} requests still in flight when idle`);
}

function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x;
  };
}

function generate(next: () => number, corpus: Uint8Array[], bytes: number): Uint8Array {
  const parent = corpus.length > 0 && next() % 2 === 0 ? corpus[next() % corpus.length] : undefined;
  if (parent !== undefined) {
    const child = parent.slice();
    for (let flips = 1 + (next() % 16); flips > 0; flips--) child[next() % child.length] = next() & 0xff;
    return child;
  }
  const out = new Uint8Array(bytes);
  for (let i = 0; i < out.length; i++) out[i] = next() & 0xff;
  // Small values reach deeper code: zero a random share of the bytes.
  for (let i = next() % out.length; i > 0; i--) out[next() % out.length] = 0;
  return out;
}

const TARGETS = {
  chain: { run: async (b: Uint8Array) => runChain(b), bytes: 512 + 4096 },
  device: { run: runDevice, bytes: 1024 + 16 * 40 },
} as const;
type TargetName = keyof typeof TARGETS;

async function main(argv: readonly string[]): Promise<number> {
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const replay = arg('--replay');
  if (replay !== undefined) {
    const [name, hex] = replay.split(':');
    await TARGETS[name === 'device' ? 'device' : 'chain'].run(Uint8Array.from(Buffer.from(hex ?? '', 'hex')));
    process.stdout.write('replay passed\n');
    return 0;
  }
  const seconds = Number(arg('--seconds') ?? '10');
  const seed = Number(arg('--seed') ?? String(Date.now() % 0x7fffffff));
  const next = prng(seed);
  const corpora: Record<TargetName, Uint8Array[]> = { chain: [], device: [] };
  const deadline = Date.now() + seconds * 1000;
  const runs: Record<TargetName, number> = { chain: 0, device: 0 };
  while (Date.now() < deadline) {
    for (const name of Object.keys(TARGETS) as TargetName[]) {
      const t = TARGETS[name];
      const input = generate(next, corpora[name], t.bytes);
      try {
        await t.run(input);
      } catch (err) {
        process.stderr.write(`block fuzz ${name}: seed ${seed}, run ${runs[name]}: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
        process.stderr.write(`replay: --replay ${name}:${Buffer.from(input).toString('hex')}\n`);
        return 1;
      }
      const corpus = corpora[name];
      if (corpus.length < 64) corpus.push(input);
      else corpus[next() % corpus.length] = input;
      runs[name]++;
    }
  }
  process.stdout.write(`block fuzz: ${runs.chain} chain and ${runs.device} device inputs in ${seconds} s (seed ${seed}), no failures\n`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`block fuzz: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  });
}
