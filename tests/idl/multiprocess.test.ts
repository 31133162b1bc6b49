// Two-process tests of the IDL runtime: a ring in a memfd with eventfd
// notifications, and the control channel passing fds both ways.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as sys from '../../microhv/sys/index.js';
import { ControlServer } from '../../idl/control/channel.js';
import { Reactor } from '../../idl/control/reactor.js';
import { EventChannel, createEventfd } from '../../idl/evtchn/evtchn.js';
import { Capability } from '../../idl/generated/control.js';
import { RingProtocol, RingTestRecord } from '../../idl/generated/ring.js';
import { FrontRing, slotSizeFor } from '../../idl/ring/ring.js';
import { createSharedRing, unmapSharedRing } from '../../idl/ring/shm.js';
import { waitForResponses } from '../../idl/ring/wait.js';
import { IDL_DIST, buildIdl } from './build.js';
import { requestPayload, responsePayload } from './ring-traffic.js';

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(script: string, args: string[], fds: number[]): { done: Promise<Exit> } {
  const child = spawn(process.execPath, [path.join(IDL_DIST, script), ...args], { stdio: ['ignore', 'pipe', 'pipe', ...fds] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return { done: new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr }))) };
}

beforeAll(() => {
  buildIdl();
}, 120_000);

describe('ring between two processes', () => {
  it('passes_100000_messages_each_way_in_order_and_intact', async () => {
    const COUNT = 100_000;
    const ring = createSharedRing('idl-test-ring', {
      order: 6,
      slotSize: slotSizeFor(RingTestRecord.SIZE, RingTestRecord.SIZE),
      protocol: RingProtocol.RING_PROTOCOL_TEST,
    });
    const toBack = createEventfd();
    const toFront = createEventfd();
    const peer = run('tests/idl/ring-peer.js', [String(COUNT)], [ring.fd, toBack, toFront]);
    const front = new FrontRing(ring.mem, 0, ring.geometry);
    const ch = new EventChannel(0, toBack, toFront);
    const mem = ring.mem;
    let sent = 0n;
    let received = 0n;
    let badResponses = 0;

    while (received < BigInt(COUNT)) {
      while (sent < BigInt(COUNT) && front.freeRequests() > 0) {
        RingTestRecord.write(mem, front.requestOffset(), { seq: sent, payload: requestPayload(sent), length: Number(sent & 0xffn) });
        front.commitRequest();
        sent++;
      }
      if (front.pushRequests()) ch.notify();
      const n = waitForResponses(front, ch, { spinUs: 20, timeoutMs: 10_000 });
      for (let i = 0; i < n; i++) {
        const rsp = RingTestRecord.read(mem, front.responseOffset());
        if (rsp.seq !== received || rsp.payload !== responsePayload(received)) badResponses++;
        front.consumeResponse();
        received++;
      }
    }
    const exit = await peer.done;

    expect(badResponses).toBe(0);
    expect(received).toBe(BigInt(COUNT));
    expect(exit.stderr).toBe('');
    expect(exit.code).toBe(0);
    expect(JSON.parse(exit.stdout)).toEqual({ received: COUNT });
    ch.close();
    unmapSharedRing(ring);
    sys.close(ring.fd);
  }, 60_000);
});

describe('control channel between two processes', () => {
  it('passes_fds_that_are_usable_on_the_other_side', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idl-ctl-'));
    const sock = path.join(dir, 'control.sock');
    const reactor = new Reactor();
    const memfd = sys.memfdCreate('state-region', sys.consts.MFD_CLOEXEC);
    sys.ftruncate(memfd, 4096);
    const m = sys.mmap(4096, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, memfd, 0);
    new Uint8Array(m.buffer).set(new TextEncoder().encode('written-by-host'));
    let irqfdValue = -1n;
    const server = new ControlServer(reactor, {
      onConnect: (c) => {
        c.capabilities = new Set([Capability.CAPABILITY_STATE_REGION, Capability.CAPABILITY_IRQFD]);
      },
      onFrame: (c, f) => {
        switch (f.body.case) {
          case 'getStateRegion':
            c.reply(f, { case: 'stateRegionReply', value: { memfd: { index: 0 }, size: 4096n, fresh: false } }, [memfd]);
            break;
          case 'bindIrqfd': {
            const fd = f.fds[f.body.value.eventfd?.index ?? -1];
            if (fd !== undefined) {
              irqfdValue = sys.eventfdRead(fd);
              sys.close(fd);
            }
            c.reply(f, { case: 'ack', value: {} });
            break;
          }
          default:
            break;
        }
      },
    });
    server.listen(sock);

    const exit = await run('tests/idl/control-peer.js', [sock], []).done;
    const answer = new TextDecoder().decode(new Uint8Array(m.buffer, 100, 17));

    expect(exit.stderr).toBe('');
    expect(exit.code).toBe(0);
    expect(answer).toBe('written-by-domain');
    expect(irqfdValue).toBe(5n);
    server.close();
    await reactor.stop();
    sys.munmap(m);
    sys.close(memfd);
    fs.rmSync(dir, { recursive: true, force: true });
  }, 30_000);
});
