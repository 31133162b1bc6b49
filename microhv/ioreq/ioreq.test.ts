// The ioreq channel end to end, without KVM: the core's endpoint and client
// (a worker thread playing the vCPU) against the server side that domains use.
import { Worker } from 'node:worker_threads';
import { describe, expect, test } from 'vitest';
import { IoreqServer, MemoryAppliedLog, type IoreqHandler, type IoSpace } from '../../idl/ioreq/server.js';
import { IoreqSlot, IoreqState, IoreqType, IoreqDir } from '../../idl/generated/ioreq.js';
import { SharedBytes } from '../../idl/runtime/shared.js';
import * as sys from '../sys/index.js';
import { compiledWorker } from '../worker-path.js';
import { EndpointTable, createEndpoint, slotPageBytes } from './endpoints.js';
import type { ScriptStep } from './testing-vcpu-worker.js';

/** A device with 8 byte-wide registers at ports 0x100..0x107; it logs every write in order. */
class Registers implements IoreqHandler {
  readonly regs = new Uint8Array(8);
  readonly writes: Array<[number, number]> = [];
  applied = 0;
  read(_s: IoSpace, addr: number): bigint { this.applied++; return BigInt(this.regs[addr - 0x100] ?? 0xff); }
  write(_s: IoSpace, addr: number, _size: number, data: bigint): void {
    this.applied++;
    this.regs[addr - 0x100] = Number(data & 0xffn);
    this.writes.push([addr, Number(data)]);
  }
}

function runVcpu(endpoints: SharedArrayBuffer, steps: ScriptStep[]): Promise<number[]> {
  const w = new Worker(compiledWorker(import.meta.url, 'testing-vcpu-worker.js'), { workerData: { endpoints, endpoint: 0, vcpu: 0, steps } });
  return new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
}

describe('ioreq channel', () => {
  test('posted_and_synchronous_accesses_reach_the_server_in_guest_order', async () => {
    const { fds } = createEndpoint('t', 1);
    const table = new EndpointTable();
    table.set(0, fds);
    const dev = new Registers();
    const server = new IoreqServer(fds, dev, new MemoryAppliedLog());
    const steps: ScriptStep[] = [];
    for (let i = 0; i < 200; i++) steps.push({ op: 'post', addr: 0x100, size: 1, value: i & 0xff });
    steps.push({ op: 'write', addr: 0x101, size: 1, value: 0x5a }, { op: 'read', addr: 0x101, size: 1 }, { op: 'read', addr: 0x100, size: 1 });
    const serving = setInterval(() => server.serve(), 1);
    try {
      const reads = await runVcpu(table.buffer, steps);
      // The read of 0x100 comes after 200 posted writes: it must see the last one (199).
      expect(reads).toEqual([0x5a, 199]);
      expect(dev.writes.filter(([a]) => a === 0x100).map(([, v]) => v)).toEqual(Array.from({ length: 200 }, (_, i) => i & 0xff));
      expect(server.counters).toMatchObject({ posted: 200, sync: 3, replayed: 0, malformed: 0 });
    } finally {
      clearInterval(serving);
    }
  });

  test('a_successor_answers_an_applied_ioreq_without_applying_it_again', () => {
    const { fds } = createEndpoint('t', 1);
    const m = sys.mmap(slotPageBytes(1), sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, fds.slots, 0);
    const slot = new SharedBytes(m.buffer);
    // The core publishes a read of port 0x102 (seq 1), as a vCPU thread would.
    IoreqSlot.setSeq(slot, 0, 1n);
    IoreqSlot.setAddr(slot, 0, 0x102n);
    IoreqSlot.setSize(slot, 0, 1);
    IoreqSlot.setCount(slot, 0, 1);
    IoreqSlot.setType(slot, 0, IoreqType.IOREQ_TYPE_PIO);
    IoreqSlot.setDir(slot, 0, IoreqDir.IOREQ_DIR_READ);
    IoreqSlot.storeState(slot, 0, IoreqState.IOREQ_STATE_READY);
    const dev = new Registers();
    dev.regs[2] = 0x42;
    const log = new MemoryAppliedLog();
    // The first server applies the read, records it, and dies before it answers.
    const dying = { last: (v: number) => log.last(v), record: (v: number, s: bigint, d: bigint) => { log.record(v, s, d); throw new Error('killed'); } };
    expect(() => new IoreqServer(fds, dev, dying).serve()).toThrow('killed');
    expect(IoreqSlot.loadState(slot, 0)).toBe(IoreqState.IOREQ_STATE_IN_PROCESS);
    // Its successor finds the slot still waiting and answers it from the record.
    const successor = new IoreqServer(fds, dev, log);
    successor.serve();
    expect(IoreqSlot.loadState(slot, 0)).toBe(IoreqState.IOREQ_STATE_RESP_READY);
    expect(IoreqSlot.getData(slot, 0)).toBe(0x42n);
    expect(dev.applied).toBe(1);
    expect(successor.counters.replayed).toBe(1);
    sys.munmap(m);
  });

  test('a_server_that_died_before_applying_has_its_successor_apply_once', () => {
    const { fds } = createEndpoint('t', 1);
    const m = sys.mmap(slotPageBytes(1), sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, fds.slots, 0);
    const slot = new SharedBytes(m.buffer);
    IoreqSlot.setSeq(slot, 0, 7n);
    IoreqSlot.setAddr(slot, 0, 0x103n);
    IoreqSlot.setData(slot, 0, 0x99n);
    IoreqSlot.setSize(slot, 0, 1);
    IoreqSlot.setCount(slot, 0, 1);
    IoreqSlot.setType(slot, 0, IoreqType.IOREQ_TYPE_PIO);
    IoreqSlot.setDir(slot, 0, IoreqDir.IOREQ_DIR_WRITE);
    IoreqSlot.storeState(slot, 0, IoreqState.IOREQ_STATE_IN_PROCESS); // claimed, then the server died
    const dev = new Registers();
    const log = new MemoryAppliedLog();
    log.record(0, 6n, 0n); // the previous ioreq was applied; this one was not
    new IoreqServer(fds, dev, log).serve();
    expect(dev.writes).toEqual([[0x103, 0x99]]);
    expect(IoreqSlot.loadState(slot, 0)).toBe(IoreqState.IOREQ_STATE_RESP_READY);
    sys.munmap(m);
  });
});
