// Test helper: plays a vCPU thread. Performs the accesses it is given through
// the real IoreqClient and posts what the reads returned.
import { parentPort, workerData } from 'node:worker_threads';
import { IoreqClient } from './client.js';
import { EndpointTable } from './endpoints.js';

export interface ScriptStep { readonly op: 'read' | 'write' | 'post'; readonly addr: number; readonly size: number; readonly value?: number }
interface Input { readonly endpoints: SharedArrayBuffer; readonly endpoint: number; readonly vcpu: number; readonly steps: readonly ScriptStep[] }

const input = workerData as Input;
const client = new IoreqClient(new EndpointTable(input.endpoints), input.vcpu, () => false);
const reads: number[] = [];
for (const s of input.steps) {
  const data = new Uint8Array(s.size);
  if (s.op === 'read') {
    client.roundTrip(input.endpoint, 'pio', s.addr, 'read', data);
    reads.push(new DataView(data.buffer).getUint8(0) | (s.size > 1 ? new DataView(data.buffer).getUint8(1) << 8 : 0));
  } else {
    data[0] = (s.value ?? 0) & 0xff;
    if (s.size > 1) data[1] = ((s.value ?? 0) >> 8) & 0xff;
    if (s.op === 'write') client.roundTrip(input.endpoint, 'pio', s.addr, 'write', data);
    else client.post(input.endpoint, 'pio', s.addr, data);
  }
}
parentPort!.postMessage(reads);
