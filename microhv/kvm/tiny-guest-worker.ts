// Worker-thread entry that runs the tiny guest, so a guest that never exits cannot block
// the caller's event loop. Protocol: posts {type:'ready', tid}, then {type:'done', exits}
// or {type:'error', message}, then waits to be terminated (see probe.ts for why).
import { parentPort, workerData } from 'node:worker_threads';
import * as sys from '../sys/index.js';
import { runTinyGuestHere } from './tiny-guest.js';

interface Input { devKvm: string; stop: SharedArrayBuffer; kickSignal: number; spin: boolean }

const port = parentPort;
if (port !== null) {
  const input = workerData as Input;
  // Block the kick before anyone can send it: it must only ever end a KVM_RUN, never reach
  // the default action (which would terminate the process).
  sys.threadSigmask(true, [input.kickSignal]);
  port.postMessage({ type: 'ready', tid: sys.gettid() });
  try {
    const exits = runTinyGuestHere({ devKvm: input.devKvm, stop: new Int32Array(input.stop), kickSignal: input.kickSignal, spin: input.spin });
    port.postMessage({ type: 'done', exits });
  } catch (e) {
    port.postMessage({ type: 'error', message: e instanceof Error ? e.message : String(e) });
  }
  port.on('message', () => undefined); // stay alive (and our tid ours) until terminated
}
