// The server's resume point on the buffered ring after a restart: posted
// writes carry no sequence number, so the consumer cursor the AppliedLog
// recorded is what keeps them exactly-once.
import { describe, expect, test } from 'vitest';
import { RingHeader } from '../generated/ring.js';
import { IoreqClient } from '../../microhv/ioreq/client.js';
import { EndpointTable, createEndpoint } from '../../microhv/ioreq/endpoints.js';
import { IoreqServer, MemoryAppliedLog, type AppliedLog, type IoreqHandler } from './server.js';

/** Logs every write; throws (before applying) on the write numbered `dieAt`, as a killed process stops. */
class Recorder implements IoreqHandler {
  readonly writes: number[] = [];
  constructor(public dieAt = -1) {}
  read(): bigint { return 0n; }
  write(_s: unknown, _addr: number, _size: number, data: bigint): void {
    if (Number(data) === this.dieAt) throw new Error('killed');
    this.writes.push(Number(data));
  }
}

function postAll(values: number[]): { fds: ReturnType<typeof createEndpoint>['fds']; ringMem: ReturnType<typeof createEndpoint>['ring']['mem'] } {
  const { fds, ring } = createEndpoint('resume', 1);
  const table = new EndpointTable();
  table.set(0, fds);
  const vcpu = new IoreqClient(table, 0, () => false);
  for (const v of values) vcpu.post(0, 'pio', 0x3f8, Uint8Array.of(v));
  return { fds, ringMem: ring.mem };
}

describe('IoreqServer resume on the buffered ring', () => {
  test('a_successor_resumes_at_the_recorded_cursor_and_applies_each_posted_write_once', () => {
    const { fds, ringMem } = postAll([1, 2, 3, 4]);
    const log = new MemoryAppliedLog();
    const dev = new Recorder(3);
    // The first server applies 1 and 2, records each, and dies inside 3: nothing was pushed.
    expect(() => new IoreqServer(fds, dev, log).serve()).toThrow('killed');
    expect(RingHeader.loadRspProd(ringMem, 0)).toBe(0);
    dev.dieAt = -1;
    new IoreqServer(fds, dev, log).serve();
    expect(dev.writes).toEqual([1, 2, 3, 4]);
    // Every consumed request is published, so the vCPUs get their ring slots back.
    expect(RingHeader.loadRspProd(ringMem, 0)).toBe(4);
  });

  test('without_a_recorded_cursor_a_successor_resumes_at_rsp_prod', () => {
    const { fds } = postAll([1, 2, 3]);
    const dev = new Recorder(3);
    const noCursor: AppliedLog = { last: () => ({ seq: 0n, data: 0n }), record: () => undefined };
    expect(() => new IoreqServer(fds, dev, noCursor).serve()).toThrow('killed');
    dev.dieAt = -1;
    new IoreqServer(fds, dev, noCursor).serve();
    // The documented weakness of a log without a cursor: the unpublished batch is applied again.
    expect(dev.writes).toEqual([1, 2, 1, 2, 3]);
  });

  test('a_recorded_cursor_more_than_a_ring_ahead_is_refused', () => {
    const { fds } = postAll([1]);
    const log = new MemoryAppliedLog();
    log.recordPosted(100_000);
    expect(() => new IoreqServer(fds, new Recorder(), log)).toThrow(/more than a ring apart/);
  });
});
