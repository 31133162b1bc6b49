// The AssemblyScript side of the IDL, compiled with asc and run as wasm:
// its ring interoperates with the TypeScript ring over the same bytes, its
// validation rejects a hostile front, and its generated accessors put every
// field where the TypeScript accessors read it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { BlockInflightSlot } from '../generated/block.js';
import { FrameHeader } from '../generated/control.js';
import { EvtchnOp } from '../generated/evtchn.js';
import { BufferedIoreq, IoreqSlot } from '../generated/ioreq.js';
import { RingHeader, RingProtocol, RingTestRecord } from '../generated/ring.js';
import { VirtqDesc } from '../generated/virtio.js';
import { SharedBytes } from '../runtime/shared.js';
import { FrontRing, initRing, slotSizeFor } from './ring.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WASM = path.join(REPO, '.cache', 'idl-asc', 'harness.wasm');

// The project's lib settings (ES2023 + @types/node 20) do not declare the
// WebAssembly global, so the little of it used here is typed locally.
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface Harness {
  memory: { buffer: ArrayBuffer };
  arena(): number;
  arenaBytes(): number;
  backAttach(protocol: number): number;
  backServe(): number;
  writeIoreqSlot(p: number): void;
  writeBufferedIoreq(p: number): void;
  writeEvtchnOp(p: number): void;
  writeFrameHeader(p: number): void;
  writeVirtqDesc(p: number): void;
  writeBlockInflightSlot(p: number): void;
  sizes(): bigint;
}

let wasm: object;

beforeAll(() => {
  fs.mkdirSync(path.dirname(WASM), { recursive: true });
  execFileSync(
    path.join(REPO, 'node_modules', '.bin', 'asc'),
    ['idl/assembly/harness.ts', '--enable', 'threads', '--runtime', 'stub', '-O3', '-o', WASM],
    { cwd: REPO, stdio: 'inherit' },
  );
  wasm = new WA.Module(fs.readFileSync(WASM));
}, 60_000);

function instance(): Harness {
  return new WA.Instance(wasm, { env: { abort: () => { throw new Error('wasm abort'); } } }).exports as unknown as Harness;
}

const GEOMETRY = { order: 4, slotSize: slotSizeFor(RingTestRecord.SIZE, RingTestRecord.SIZE), protocol: RingProtocol.RING_PROTOCOL_TEST };

/** A ring in the harness arena with the wasm back attached, and a TS front over the same bytes. */
function attached(h: Harness): { mem: SharedBytes; front: FrontRing; base: number } {
  const base = h.arena();
  initRing(new SharedBytes(h.memory.buffer), base, GEOMETRY);
  expect(h.backAttach(RingProtocol.RING_PROTOCOL_TEST)).toBe(0);
  // Attaching may have grown (and so replaced) the wasm memory buffer.
  const mem = new SharedBytes(h.memory.buffer);
  return { mem, front: new FrontRing(mem, base, GEOMETRY), base };
}

describe('AssemblyScript ring', () => {
  it('serves_a_typescript_front_over_shared_bytes', () => {
    const h = instance();
    const { mem, front } = attached(h);
    const answers: bigint[] = [];

    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 16; i++) {
        const off = front.requestOffset();
        RingTestRecord.write(mem, off, { seq: BigInt(round * 16 + i), payload: BigInt(1000 + round * 16 + i), length: 0 });
        front.commitRequest();
      }
      front.pushRequests();
      expect(h.backServe() & 0xffff).toBe(16);
      while (front.unconsumedResponses() > 0) {
        answers.push(RingTestRecord.read(mem, front.responseOffset()).payload);
        front.consumeResponse();
      }
    }

    expect(answers).toEqual(Array.from({ length: 160 }, (_, i) => BigInt(1001 + i)));
  });

  it('asks_for_notification_only_when_the_front_requested_one', () => {
    const h = instance();
    const { mem, front } = attached(h);
    RingTestRecord.write(mem, front.requestOffset(), { seq: 0n, payload: 0n, length: 0 });
    front.commitRequest();
    front.pushRequests();

    expect(h.backServe() & (1 << 30)).not.toBe(0); // rsp_event starts at 1
    RingTestRecord.write(mem, front.requestOffset(), { seq: 1n, payload: 0n, length: 0 });
    front.commitRequest();
    front.pushRequests();
    expect(h.backServe() & (1 << 30)).toBe(0);
  });

  it('returns_an_error_code_when_the_front_jumps_past_the_ring', () => {
    const h = instance();
    const { mem, base } = attached(h);
    RingHeader.storeReqProd(mem, base, 17);

    expect(h.backServe()).toBe(-2);
    expect(h.backServe()).toBe(-2);
  });

  it('returns_an_error_code_when_the_front_moves_backwards', () => {
    const h = instance();
    const { mem, base } = attached(h);
    RingHeader.storeReqProd(mem, base, 3);
    h.backServe();
    RingHeader.storeReqProd(mem, base, 1);

    expect(h.backServe()).toBe(-1);
  });

  it('refuses_a_header_of_another_protocol', () => {
    const h = instance();
    initRing(new SharedBytes(h.memory.buffer), h.arena(), GEOMETRY);

    expect(h.backAttach(RingProtocol.RING_PROTOCOL_BUFFERED_IOREQ)).toBe(-3);
  });
});

describe('AssemblyScript record accessors', () => {
  it('agree_with_typescript_on_record_sizes', () => {
    const s = instance().sizes();

    expect(Number(s & 0xffffn)).toBe(IoreqSlot.SIZE);
    expect(Number((s >> 16n) & 0xffffn)).toBe(BufferedIoreq.SIZE);
    expect(Number((s >> 32n) & 0xffffn)).toBe(EvtchnOp.SIZE);
    expect(Number((s >> 48n) & 0xffffn)).toBe(FrameHeader.SIZE);
  });

  it('write_an_ioreq_slot_that_typescript_reads_field_for_field', () => {
    const h = instance();
    const p = h.arena();
    h.writeIoreqSlot(p);

    expect(IoreqSlot.read(new SharedBytes(h.memory.buffer), p)).toEqual({
      seq: 0x1122334455667788n, addr: 0xfee00000n, data: 0xdeadbeefcafef00dn, state: 2, count: 1, type: 2, dir: 2, size: 4, vcpu: 3,
    });
  });

  it('write_a_buffered_ioreq_that_typescript_reads_field_for_field', () => {
    const h = instance();
    const p = h.arena();
    h.writeBufferedIoreq(p);

    expect(BufferedIoreq.read(new SharedBytes(h.memory.buffer), p)).toEqual({ addr: 0x3f8n, data: 0x41n, type: 1, size: 1, vcpu: 1 });
  });

  it('write_an_evtchn_op_and_frame_header_that_typescript_reads_back', () => {
    const h = instance();
    const p = h.arena();
    h.writeEvtchnOp(p);
    h.writeFrameHeader(p + 64);
    const mem = new SharedBytes(h.memory.buffer);

    expect(EvtchnOp.read(mem, p)).toEqual({ op: 4, port: 17, value: 0x31n });
    expect(FrameHeader.read(mem, p + 64)).toEqual({ length: 1234, fdCount: 2, version: 1 });
  });

  it('write_a_virtq_desc_and_block_inflight_slot_that_typescript_reads_back', () => {
    const h = instance();
    const p = h.arena();
    h.writeVirtqDesc(p);
    h.writeBlockInflightSlot(p + 64);
    const mem = new SharedBytes(h.memory.buffer);

    expect(VirtqDesc.read(mem, p)).toEqual({ addr: 0x12345000n, len: 4096, flags: 3, next: 7 });
    expect(BlockInflightSlot.read(mem, p + 64)).toEqual({ state: 2, seq: 0xfffffffe, usedPos: 65537, usedLen: 513 });
  });
});
