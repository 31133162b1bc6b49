// A domain process for the control-channel test. argv[2]: socket path.
// It connects, asks for its state region, checks the memfd it receives by
// reading it through a mapping, writes an answer into it, then hands
// microhv an eventfd of its own (BindIrqfd) after writing 5 to it.
// Exit status 0 only if every step worked.

import * as sys from '../../microhv/sys/index.js';
import { createBindIrqfd } from '../../idl/generated/control.js';
import { connectControl } from '../../idl/control/channel.js';
import { Reactor } from '../../idl/control/reactor.js';

async function main(): Promise<number> {
  const reactor = new Reactor();
  const conn = connectControl(reactor, process.argv[2] ?? '', { onFrame: () => {} });
  try {
    const reply = await conn.request({ case: 'getStateRegion', value: {} });
    if (reply.body.case !== 'stateRegionReply' || reply.body.value.memfd === undefined) {
      console.error(`unexpected reply ${reply.body.case}`);
      return 2;
    }
    const fd = reply.fds[reply.body.value.memfd.index];
    if (fd === undefined) return 3;
    const size = Number(reply.body.value.size);
    const m = sys.mmap(size, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, fd, 0);
    const bytes = new Uint8Array(m.buffer);
    const seen = new TextDecoder().decode(bytes.subarray(0, 15));
    if (seen !== 'written-by-host') {
      console.error(`memfd held ${JSON.stringify(seen)}`);
      return 4;
    }
    bytes.set(new TextEncoder().encode('written-by-domain'), 100);
    sys.munmap(m);
    sys.close(fd);

    const efd = sys.eventfd(0, sys.consts.EFD_CLOEXEC);
    sys.eventfdWrite(efd, 5n);
    const ack = await conn.request(
      { case: 'bindIrqfd', value: createBindIrqfd({ guestId: 1, gsi: 5, eventfd: { index: 0 } }) },
      [efd],
    );
    sys.close(efd);
    return ack.body.case === 'ack' ? 0 : 5;
  } finally {
    conn.close();
    await reactor.stop();
  }
}

process.exitCode = await main();
