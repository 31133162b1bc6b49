// Hostile clients against the daemon process: each gets an error reply or a
// closed connection, and an honest client on another connection carries on.
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { XenstoreClient } from '../../xenstore-stubdom/client.js';
import { Op, PAYLOAD_MAX, encodeFrame, strings } from '../../xenstore-stubdom/wire.js';
import { RawConn, buildDaemon, startDaemon, tempDir, waitFor } from './harness.js';
import type { Daemon } from './harness.js';

let daemon: Daemon;
let honest: XenstoreClient;

beforeAll(async () => {
  buildDaemon();
  daemon = await startDaemon(tempDir('hostile'), ['--tx-timeout-ms', '300']);
  honest = new XenstoreClient({ path: daemon.socket });
});

afterAll(async () => {
  honest?.close();
  await daemon?.stop();
});

async function honestStillWorks(tag: string): Promise<void> {
  await honest.write(`/hostile/ok/${tag}`, tag);
  expect((await honest.read(`/hostile/ok/${tag}`)).toString()).toBe(tag);
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

function header(type: number, len: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(type, 0);
  h.writeUInt32LE(1, 4);
  h.writeUInt32LE(len, 12);
  return h;
}

describe('hostile clients', () => {
  it('header_length_above_limit_closes_only_that_connection', async () => {
    const bad = await RawConn.open(daemon.socket);
    bad.send(header(Op.READ, PAYLOAD_MAX + 1));
    expect(await bad.waitClosed()).toBe(true);
    expect(await honest.control('stats')).toMatch(/protocol-violations=1 /);
    await honestStillWorks('len');
  });

  it('unknown_type_gets_ENOSYS_and_connection_stays_usable', async () => {
    const c = await RawConn.open(daemon.socket);
    c.send(encodeFrame(12345, 9, 0, strings('/')));
    const f = await c.frame();
    expect([f.type, f.reqId, f.payload.toString()]).toEqual([Op.ERROR, 9, 'ENOSYS\0']);
    c.send(encodeFrame(Op.READ, 10, 0, strings('/tool')));
    expect((await c.frame()).type).toBe(Op.READ);
    c.close();
  });

  it('missing_nul_terminator_gets_EINVAL', async () => {
    const c = await RawConn.open(daemon.socket);
    c.send(encodeFrame(Op.READ, 1, 0, Buffer.from('/tool')));
    expect((await c.frame()).payload.toString()).toBe('EINVAL\0');
    c.close();
  });

  it('over_long_path_gets_EINVAL', async () => {
    const c = await RawConn.open(daemon.socket);
    c.send(encodeFrame(Op.WRITE, 1, 0, Buffer.concat([strings(`/${'p'.repeat(4000)}`), Buffer.from('v')])));
    expect((await c.frame()).payload.toString()).toBe('EINVAL\0');
    c.close();
  });

  it('thousands_of_watches_are_capped_with_E2BIG', async () => {
    const c = await RawConn.open(daemon.socket);
    const n = 3000;
    c.send(Buffer.concat(Array.from({ length: n }, (_, i) => encodeFrame(Op.WATCH, i + 1, 0, strings(`/hostile/w/${i}`, 't')))));
    let ok = 0;
    let e2big = 0;
    let replies = 0;
    while (replies < n) {
      const f = await c.frame();
      if (f.type === Op.WATCH_EVENT) continue;
      replies++;
      if (f.type === Op.WATCH) ok++;
      else if (f.payload.toString() === 'E2BIG\0') e2big++;
    }
    expect(ok).toBe(1025);
    expect(e2big).toBe(n - 1025);
    await honestStillWorks('watches');
    c.close();
  });

  it('transaction_left_open_is_discarded_and_blocks_nobody', async () => {
    const c = await RawConn.open(daemon.socket);
    c.send(encodeFrame(Op.TRANSACTION_START, 1, 0, strings('')));
    const tx = Number((await c.frame()).payload.toString().replace(/\0$/, ''));
    c.send(encodeFrame(Op.WRITE, 2, tx, Buffer.concat([strings('/hostile/tx'), Buffer.from('in-tx')])));
    expect((await c.frame()).type).toBe(Op.WRITE);
    await honest.write('/hostile/tx', 'outside');
    await new Promise((r) => setTimeout(r, 1500));
    c.send(encodeFrame(Op.READ, 3, tx, strings('/hostile/tx')));
    expect((await c.frame()).payload.toString()).toBe('ENOENT\0');
    expect((await honest.read('/hostile/tx')).toString()).toBe('outside');
    c.close();
  });

  it('client_that_never_reads_replies_is_paused_with_bounded_memory', async () => {
    await honest.write('/hostile/big', 'x'.repeat(4000));
    const c = await RawConn.open(daemon.socket);
    c.sock.pause();
    const before = rssKb(daemon.proc.pid as number);
    const req = encodeFrame(Op.READ, 1, 0, strings('/hostile/big'));
    // 100 MB of replies requested; the daemon must stop reading rather than buffer them.
    const burst = Buffer.concat(Array.from({ length: 1000 }, () => req));
    for (let i = 0; i < 25; i++) c.sock.write(burst);
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = Date.now();
    await honestStillWorks('noread');
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await honest.control('stats')).toMatch(/pauses=[1-9]/);
    const grown = rssKb(daemon.proc.pid as number) - before;
    expect(grown).toBeLessThan(32 * 1024);
    // Once it reads again, it gets its replies, in order.
    c.sock.resume();
    const first = await c.frame();
    expect([first.type, first.payload.length]).toEqual([Op.READ, 4000]);
    c.close();
  });

  it('client_that_never_reads_watch_events_is_disconnected', async () => {
    const c = await RawConn.open(daemon.socket);
    c.send(encodeFrame(Op.WATCH, 1, 0, strings('/hostile/flood', 'tok')));
    await c.frame();
    c.sock.pause();
    for (let i = 0; i < 800; i++) await honest.write(`/hostile/flood/${i}/${'k'.repeat(1500)}`, 'v');
    c.sock.resume();
    expect(await c.waitClosed(10_000)).toBe(true);
    expect(await honest.control('stats')).toMatch(/overflow-closes=1 /);
    await honestStillWorks('flood');
    await waitFor(() => daemon.proc.exitCode === null, 100, 'daemon alive');
  }, 60_000);
});
