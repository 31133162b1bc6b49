// The back end of bench/ring, run as its own process.
// fd 3: ring memfd; fd 4: eventfd to wait on; fd 5: eventfd to notify.
// argv: mode ("echo" answers every request at once; "batch" answers a
// whole batch with one push), spin budget in microseconds, message count.

import * as sys from '../../microhv/sys/index.js';
import { EventChannel } from '../../idl/evtchn/evtchn.js';
import { RingProtocol, RingTestRecord } from '../../idl/generated/ring.js';
import { BackRing } from '../../idl/ring/ring.js';
import { mapSharedRing } from '../../idl/ring/shm.js';
import { waitForRequests } from '../../idl/ring/wait.js';

const mode = process.argv[2];
const spinUs = Number(process.argv[3] ?? '0');
const count = Number(process.argv[4] ?? '0');
const cpu = Number(process.argv[5] ?? '-1');
// The bench keeps the two parties on different CPUs (see bench/README.md).
if (cpu >= 0) sys.schedSetaffinity(0, [cpu]);
const ring = mapSharedRing(3, RingProtocol.RING_PROTOCOL_TEST);
const back = new BackRing(ring.mem, 0, ring.geometry);
const ch = new EventChannel(0, 5, 4, { blockingReceive: true });
const mem = ring.mem;
const stats = { immediate: 0, spun: 0, blocked: 0 };
const policy = { spinUs, timeoutMs: -1, stats };

// Tells the front this process is up, so start-up time stays out of the measurement.
ch.notify();

let done = 0;
let errors = 0;
while (done < count) {
  const n = waitForRequests(back, ch, policy);
  for (let i = 0; i < n; i++) {
    const off = back.requestOffset();
    // The sequence number is checked so the benchmark cannot skip work.
    if (RingTestRecord.getSeq(mem, off) !== BigInt(done)) errors++;
    back.consumeRequest();
    if (mode === 'echo') {
      RingTestRecord.setSeq(mem, back.responseOffset(), BigInt(done));
      back.commitResponse();
      if (back.pushResponses()) ch.notify();
    } else {
      back.commitResponse();
    }
    done++;
  }
  if (mode !== 'echo' && back.pushResponses()) ch.notify();
}
console.log(JSON.stringify({ done, errors, stats }));
