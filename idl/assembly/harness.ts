// Test entry point for the AssemblyScript side of the IDL (idl/ring/assembly.test.ts):
// a back ring in wasm serving a front ring driven from TypeScript over the
// same linear memory, plus writers of generated records so the test can
// check that both languages agree on every offset.

import { BackRing, checkHeader } from './ring';
import { RingTestRecord } from './generated/ring';
import { IoreqSlot, BufferedIoreq } from './generated/ioreq';
import { EvtchnOp } from './generated/evtchn';
import { FrameHeader } from './generated/control';
import { VirtqDesc } from './generated/virtio';
import { BlockInflightSlot } from './generated/block';

const ARENA_BYTES: u32 = 64 * 1024;
const ARENA = memory.data(ARENA_BYTES, 128);

let back: BackRing | null = null;

/** Where the test may place a ring, and how many bytes it has. */
export function arena(): usize {
  return ARENA;
}
export function arenaBytes(): u32 {
  return ARENA_BYTES;
}

/** Attaches the back to the ring at the arena; 0 or a RING_ERR_*. */
export function backAttach(protocol: u32): i32 {
  const err = checkHeader(ARENA, protocol, ARENA_BYTES);
  if (err != 0) return err;
  back = new BackRing(ARENA, 0, 0);
  return 0;
}

/**
 * Answers every pending request: response.seq = request.seq,
 * response.payload = request.payload + 1. Returns how many, or a RING_ERR_*.
 * Bit 30 of the result is set when the front must be notified.
 */
export function backServe(): i32 {
  const b = back!;
  const n = b.unconsumedRequests();
  if (n < 0) return n;
  for (let i = 0; i < n; i++) {
    const req = b.requestSlot();
    const seq = RingTestRecord.getSeq(req);
    const payload = RingTestRecord.getPayload(req);
    b.consumeRequest();
    const rsp = b.responseSlot();
    RingTestRecord.setSeq(rsp, seq);
    RingTestRecord.setPayload(rsp, payload + 1);
    RingTestRecord.setLength(rsp, 0);
    RingTestRecord.setReserved0(rsp, 0);
    b.commitResponse();
  }
  return b.pushResponses() ? n | (1 << 30) : n;
}

export function writeIoreqSlot(p: usize): void {
  IoreqSlot.setSeq(p, 0x1122334455667788);
  IoreqSlot.setAddr(p, 0xfee00000);
  IoreqSlot.setData(p, 0xdeadbeefcafef00d);
  IoreqSlot.storeState(p, 2);
  IoreqSlot.setCount(p, 1);
  IoreqSlot.setType(p, 2);
  IoreqSlot.setDir(p, 2);
  IoreqSlot.setSize(p, 4);
  IoreqSlot.setReserved0(p, 0);
  IoreqSlot.setVcpu(p, 3);
}

export function writeBufferedIoreq(p: usize): void {
  BufferedIoreq.setAddr(p, 0x3f8);
  BufferedIoreq.setData(p, 0x41);
  BufferedIoreq.setType(p, 1);
  BufferedIoreq.setSize(p, 1);
  BufferedIoreq.setReserved0(p, 0);
  BufferedIoreq.setVcpu(p, 1);
}

export function writeEvtchnOp(p: usize): void {
  EvtchnOp.setOp(p, 4);
  EvtchnOp.setPort(p, 17);
  EvtchnOp.setValue(p, 0x31);
}

export function writeFrameHeader(p: usize): void {
  FrameHeader.setLength(p, 1234);
  FrameHeader.setFdCount(p, 2);
  FrameHeader.setVersion(p, 1);
  FrameHeader.setReserved0(p, 0);
}

export function writeVirtqDesc(p: usize): void {
  VirtqDesc.setAddr(p, 0x12345000);
  VirtqDesc.setLen(p, 4096);
  VirtqDesc.setFlags(p, 3);
  VirtqDesc.setNext(p, 7);
}

export function writeBlockInflightSlot(p: usize): void {
  BlockInflightSlot.storeState(p, 2);
  BlockInflightSlot.setSeq(p, 0xfffffffe);
  BlockInflightSlot.setUsedPos(p, 65537);
  BlockInflightSlot.setUsedLen(p, 513);
}

/** Record sizes as AssemblyScript sees them, in a fixed order. */
export function sizes(): u64 {
  return (<u64>IoreqSlot.SIZE) | (<u64>BufferedIoreq.SIZE << 16) | (<u64>EvtchnOp.SIZE << 32) | (<u64>FrameHeader.SIZE << 48);
}
