// Bring-up helper: serves COM1 with the console stub module on its own
// thread, blocking on the endpoint's event channels as the console domain's
// process will, and writes what the guest transmits to stdout.
import { workerData } from 'node:worker_threads';
import * as sys from '../../microhv/sys/index.js';
import { IoreqServer, MemoryAppliedLog, type IoreqEndpointFds } from '../../idl/ioreq/server.js';
import { StubDevice } from '../../driver-domains/runtime/stub-device.js';

const { fds, wasm, stop } = workerData as { fds: IoreqEndpointFds; wasm: string; stop: SharedArrayBuffer };
const dev = StubDevice.open('console', wasm);
const server = new IoreqServer(fds, dev, new MemoryAppliedLog());
const ep = sys.epollCreate();
for (const fd of server.waitFds()) sys.epollCtl(ep, sys.consts.EPOLL_CTL_ADD, fd, sys.consts.EPOLLIN, fd);
const halt = new Int32Array(stop);
while (Atomics.load(halt, 0) === 0) {
  sys.epollWait(ep, 16, 200);
  server.serve();
  const n = dev.exports.tx_drain();
  if (n > 0) sys.write(1, new Uint8Array(dev.exports.memory.buffer, dev.exports.tx_buf(), n).slice());
}
