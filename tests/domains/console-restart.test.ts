// The console stub domain as its own process, killed with -9 at random points
// while the guest (a worker thread playing vCPU 0) writes numbered lines to
// COM1 as posted writes. Each kill is followed by a new instance with the same
// endpoints and state region. The console log must hold every line exactly
// once and in order, and a scratch register value must survive a kill.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureBuilt, repoRoot } from '../../driver-domains/build.js';
import { compiledWorker } from '../../microhv/worker-path.js';
import { Role } from '../../idl/generated/control.js';
import { COM1 } from '../../boot/layout.js';
import { FakeCore, type Instance } from './fake-core.js';
import { SCRATCH_VALUE, line, type ConsoleVcpuInput, type ConsoleVcpuResult } from './console-script.js';

const LINES = 1500;
const RANDOM_KILLS = 6;
const CONSOLE_RANGES = 4;

let dir: string;
beforeAll(async () => {
  await ensureBuilt(repoRoot(), 'console');
  dir = mkdtempSync(join(tmpdir(), 'microhv-console-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, ms: number, what: string, core: FakeCore): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; domain stderr:\n${core.log}`);
    await sleep(10);
  }
}

describe('console stub domain process', () => {
  test('every_line_reaches_the_log_exactly_once_in_order_across_kill_9_restarts', async () => {
    const logPath = join(dir, 'console.log');
    const core = new FakeCore(Role.ROLE_CONSOLE, CONSOLE_RANGES, ['--console-log', logPath]);
    let inst: Instance = core.spawn();
    let worker: Worker | undefined;
    try {
      await inst.ready;
      const com1 = core.endpoints.get(`pio:${COM1.port}:${COM1.size}`);
      expect(com1).toBeDefined();
      const handshake = new SharedArrayBuffer(4);
      const input: ConsoleVcpuInput = { endpoints: core.table.buffer, com1: com1!.id, handshake, lines: LINES };
      worker = new Worker(compiledWorker(import.meta.url, 'console-vcpu-worker.js'), { workerData: input });
      let result: ConsoleVcpuResult | undefined;
      let failure: Error | undefined;
      worker.once('message', (m: ConsoleVcpuResult) => { result = m; });
      worker.once('error', (e) => { failure = e; });

      // The scratch register is written, then the domain dies before the guest reads it back.
      const hs = new Int32Array(handshake);
      await waitFor(() => Atomics.load(hs, 0) === 1 || failure !== undefined, 15_000, 'the scratch write', core);
      await core.kill(inst);
      inst = core.spawn();
      Atomics.store(hs, 0, 2);
      Atomics.notify(hs, 0);

      // Kills at random points of the line stream: some during start-up, most mid-batch.
      let kills = 1;
      const killedAt: number[] = [];
      while (kills <= RANDOM_KILLS && result === undefined && failure === undefined) {
        // One kill lands in start-up (restore, range registration); the others while serving.
        if (kills !== 2) await inst.ready;
        await sleep(5 + Math.random() * 120);
        await core.kill(inst);
        killedAt.push(readFileSync(logPath).length);
        kills++;
        if (Math.random() < 0.5) await sleep(Math.random() * 50); // the guest keeps posting while nobody serves
        inst = core.spawn();
      }
      await waitFor(() => result !== undefined || failure !== undefined, 60_000, 'the guest to finish writing', core);
      if (failure) throw failure;

      const expected = Array.from({ length: LINES }, (_, i) => line(i + 1)).join('');
      await waitFor(() => readFileSync(logPath, 'utf8').length >= expected.length, 15_000, 'the last line in the log', core);
      const got = readFileSync(logPath, 'utf8');
      // Compare as lines first, for a readable failure, then byte for byte.
      expect(got.split('\n').filter((l) => l !== '').length).toBe(LINES);
      expect(got).toBe(expected);
      expect(result!.scratchAcrossKill).toBe(SCRATCH_VALUE);
      expect(result!.scratchMismatches).toBe(0);
      expect(result!.scratchChecks).toBe(LINES / 25);
      // The kills fell inside the stream, not after it: the log was still growing at each.
      expect(kills).toBeGreaterThanOrEqual(3);
      expect(killedAt.filter((n) => n < expected.length).length).toBeGreaterThanOrEqual(2);
      console.log(`kills at log sizes ${killedAt.join(', ')} of ${expected.length}`);
      expect(inst.generation).toBe(kills);

      // An orderly stop: Shutdown is acknowledged and the process exits 0.
      await inst.ready;
      const ack = await inst.conn.request({ case: 'shutdown', value: { reason: 1, deadlineMs: 2000 } });
      expect(ack.body.case).toBe('ack');
      expect((await inst.exited).code).toBe(0);
    } finally {
      await worker?.terminate();
      inst.child.kill('SIGKILL');
      await core.stop();
    }
  }, 120_000);
});
