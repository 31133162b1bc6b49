import { afterEach, describe, expect, it } from 'vitest';
import * as sys from '../../microhv/sys/index.js';
import { Capability, ErrorCode, FrameHeader } from '../generated/control.js';
import { SharedBytes } from '../runtime/shared.js';
import { ControlServer, adoptControl } from './channel.js';
import type { Connection } from './channel.js';
import type { ControlError } from './errors.js';
import { HEADER_BYTES, MAX_FRAME_BYTES } from './framing.js';
import type { Frame } from './framing.js';
import { Reactor } from './reactor.js';

// In-process sockets: real kernel objects, no child processes.
let reactor: Reactor;
afterEach(async () => {
  await reactor.stop();
});

function pair(): [number, number] {
  return sys.socketpair(sys.consts.AF_UNIX, sys.consts.SOCK_STREAM, 0);
}

function until(cond: () => boolean, ms = 3000): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (cond()) resolve();
      else if (Date.now() - start > ms) reject(new Error('condition not met in time'));
      else setTimeout(tick, 2);
    };
    tick();
  });
}

function startServer(onFrame: (c: Connection, f: Frame) => void, closed: Array<ControlError | null>): ControlServer {
  return new ControlServer(reactor, {
    onConnect: (c) => {
      c.capabilities = new Set([Capability.CAPABILITY_STATE_REGION]);
    },
    onFrame,
    onClose: (_c, err) => closed.push(err),
  });
}

describe('control channel', () => {
  it('answers_a_request_with_an_fd_that_works_on_the_other_side', async () => {
    reactor = new Reactor();
    const memfd = sys.memfdCreate('state', sys.consts.MFD_CLOEXEC);
    sys.ftruncate(memfd, 4096);
    sys.write(memfd, new TextEncoder().encode('state!'));
    const server = startServer((c, f) => {
      c.reply(f, { case: 'stateRegionReply', value: { memfd: { index: 0 }, size: 4096n, fresh: false } }, [memfd]);
    }, []);
    const [a, b] = pair();
    server.adopt(a);
    const client = adoptControl(reactor, b, { onFrame: () => {} });

    const reply = await client.request({ case: 'getStateRegion', value: {} });
    const fd = reply.fds[0] as number;
    const m = sys.mmap(4096, sys.consts.PROT_READ, sys.consts.MAP_SHARED, fd, 0);
    const text = new TextDecoder().decode(new Uint8Array(m.buffer, 0, 6));

    expect(reply.body.case).toBe('stateRegionReply');
    expect(text).toBe('state!');
    sys.munmap(m);
    sys.close(fd);
    sys.close(memfd);
    server.close();
    client.close();
  });

  it('answers_not_permitted_when_the_domain_lacks_the_capability', async () => {
    reactor = new Reactor();
    let handled = 0;
    const server = startServer(() => handled++, []);
    const [a, b] = pair();
    server.adopt(a);
    const client = adoptControl(reactor, b, { onFrame: () => {} });

    const reply = await client.request({ case: 'setMsiRoute', value: { guestId: 1, slot: 1, vector: 0, address: 0xfee00000n, data: 0x30, effective: true } });

    expect(reply.body.case === 'error' && reply.body.value.code).toBe(ErrorCode.ERROR_CODE_NOT_PERMITTED);
    expect(handled).toBe(0);
    expect(client.closed).toBe(false);
    server.close();
    client.close();
  });

  it('closes_only_the_connection_that_sent_a_malformed_frame', async () => {
    reactor = new Reactor();
    const closed: Array<ControlError | null> = [];
    const server = startServer((c, f) => c.reply(f, { case: 'ack', value: {} }), closed);
    const [badServerEnd, badPeer] = pair();
    const [goodServerEnd, goodPeer] = pair();
    server.adopt(badServerEnd);
    server.adopt(goodServerEnd);
    const good = adoptControl(reactor, goodPeer, { onFrame: () => {} });
    const forged = new Uint8Array(HEADER_BYTES);
    const h = new SharedBytes(forged.buffer);
    FrameHeader.write(h, 0, { length: MAX_FRAME_BYTES + 1, fdCount: 0, version: 1 });

    sys.write(badPeer, forged);
    await until(() => closed.length === 1);
    const reply = await good.request({ case: 'getStateRegion', value: {} });

    expect(closed[0]?.code).toBe('FRAME_TOO_LARGE');
    expect(server.connections.size).toBe(1);
    expect(reply.body.case).toBe('ack');
    sys.close(badPeer);
    server.close();
    good.close();
  });

  it('rejects_pending_requests_when_the_peer_goes_away', async () => {
    reactor = new Reactor();
    const [a, b] = pair();
    const client = adoptControl(reactor, b, { onFrame: () => {} });
    const pending = client.request({ case: 'getStateRegion', value: {} });

    sys.close(a);

    await expect(pending).rejects.toMatchObject({ code: 'CLOSED' });
  });
});
