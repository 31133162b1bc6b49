// Test helper: a vCPU thread that runs scripts of accesses on request, through
// the real IoreqClient, and answers each script with the values its reads
// returned. It blocks while the domain is down, as a vCPU does.
import { parentPort, workerData } from 'node:worker_threads';
import { IoreqClient, fromBig, toBig } from '../../microhv/ioreq/client.js';
import { EndpointTable } from '../../microhv/ioreq/endpoints.js';
import type { VcpuStep } from './console-script.js';

const vcpu = new IoreqClient(new EndpointTable((workerData as { endpoints: SharedArrayBuffer }).endpoints), 0, () => false);
parentPort!.on('message', (steps: VcpuStep[]) => {
  const reads: number[] = [];
  for (const s of steps) {
    const data = new Uint8Array(s.size);
    if (s.op === 'read') {
      vcpu.roundTrip(s.endpoint, s.space, s.addr, 'read', data);
      reads.push(Number(toBig(data)));
      continue;
    }
    fromBig(BigInt(s.value ?? 0), data);
    if (s.op === 'write') vcpu.roundTrip(s.endpoint, s.space, s.addr, 'write', data);
    else vcpu.post(s.endpoint, s.space, s.addr, data);
  }
  parentPort!.postMessage(reads);
});
