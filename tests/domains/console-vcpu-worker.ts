// Test helper for console-restart.test.ts: plays the guest's vCPU 0 through
// the real IoreqClient. Programs the 16550, leaves a value in its scratch
// register across a kill the test performs on request, then writes numbered
// lines to THR as posted writes, checking the scratch register now and then.
import { parentPort, workerData } from 'node:worker_threads';
import { COM1 } from '../../boot/layout.js';
import { IoreqClient } from '../../microhv/ioreq/client.js';
import { EndpointTable } from '../../microhv/ioreq/endpoints.js';

import { SCRATCH_VALUE, line, type ConsoleVcpuInput, type ConsoleVcpuResult } from './console-script.js';

const input = workerData as ConsoleVcpuInput;
const vcpu = new IoreqClient(new EndpointTable(input.endpoints), 0, () => false);
const reg = (offset: number): number => COM1.port + offset;
const write = (offset: number, v: number): void => { vcpu.roundTrip(input.com1, 'pio', reg(offset), 'write', Uint8Array.of(v)); };
const read = (offset: number): number => {
  const b = new Uint8Array(1);
  vcpu.roundTrip(input.com1, 'pio', reg(offset), 'read', b);
  return b[0]!;
};

// 115200 8N1 with FIFOs, as Linux's 8250 driver programs it (registers: PC16550D table 2).
write(3, 0x80); // LCR: DLAB
write(0, 0x01); // DLL
write(1, 0x00); // DLM
write(3, 0x03); // LCR: 8 bits, no parity, 1 stop
write(2, 0x07); // FCR: enable and clear FIFOs
write(4, 0x03); // MCR: DTR, RTS

write(7, SCRATCH_VALUE);
const hs = new Int32Array(input.handshake);
Atomics.store(hs, 0, 1);
Atomics.notify(hs, 0);
while (Atomics.load(hs, 0) !== 2) Atomics.wait(hs, 0, 1, 100);
const scratchAcrossKill = read(7);

let scratchMismatches = 0;
let scratchChecks = 0;
const enc = new TextEncoder();
for (let i = 1; i <= input.lines; i++) {
  for (const b of enc.encode(line(i))) vcpu.post(input.com1, 'pio', reg(0), Uint8Array.of(b));
  if (i % 25 === 0) {
    // A synchronous write and read between posted ones: each is applied once, in guest order.
    const v = i & 0xff;
    write(7, v);
    scratchChecks++;
    if (read(7) !== v) scratchMismatches++;
  }
}
parentPort!.postMessage({ scratchAcrossKill, scratchMismatches, scratchChecks } satisfies ConsoleVcpuResult);
