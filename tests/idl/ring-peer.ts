// The back end of the two-process ring test, run as its own process.
// fd 3: the ring memfd; fd 4: eventfd the front writes (requests pushed);
// fd 5: eventfd this process writes (responses pushed). argv[2]: message count.
// Checks every request's order and content, answers each one, and exits 0
// only if all arrived intact.

import { EventChannel } from '../../idl/evtchn/evtchn.js';
import { RingProtocol, RingTestRecord } from '../../idl/generated/ring.js';
import { BackRing } from '../../idl/ring/ring.js';
import { mapSharedRing } from '../../idl/ring/shm.js';
import { waitForRequests } from '../../idl/ring/wait.js';
import { requestPayload, responsePayload } from './ring-traffic.js';

const count = BigInt(process.argv[2] ?? '0');
const ring = mapSharedRing(3, RingProtocol.RING_PROTOCOL_TEST);
const back = new BackRing(ring.mem, 0, ring.geometry);
const ch = new EventChannel(0, 5, 4);
const mem = ring.mem;

let expected = 0n;
while (expected < count) {
  const n = waitForRequests(back, ch, { spinUs: 20, timeoutMs: 10_000 });
  for (let i = 0; i < n; i++) {
    const req = RingTestRecord.read(mem, back.requestOffset());
    if (req.seq !== expected || req.payload !== requestPayload(expected) || req.length !== Number(expected & 0xffn)) {
      console.error(`request ${expected}: got seq ${req.seq} payload ${req.payload} length ${req.length}`);
      process.exit(2);
    }
    back.consumeRequest();
    RingTestRecord.write(mem, back.responseOffset(), { seq: expected, payload: responsePayload(expected), length: 0 });
    back.commitResponse();
    expected++;
  }
  if (back.pushResponses()) ch.notify();
}
console.log(JSON.stringify({ received: Number(expected) }));
