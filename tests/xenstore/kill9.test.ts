// kill -9 during writes: clients write 10,000 keys through the client library
// while the daemon is SIGKILLed at random points and restarted on the same
// state directory. Every acknowledged write must be there afterwards, with the
// right value, and every watch the library re-registered must fire for changes
// made after each restart.
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { XenstoreClient } from '../../xenstore-stubdom/client.js';
import { buildDaemon, startDaemon, tempDir, waitFor } from './harness.js';
import type { Daemon } from './harness.js';

const CLIENTS = 8;
const KEYS_PER_CLIENT = 1250; // 10,000 in all
const value = (c: number, k: number): string => createHash('sha256').update(`${c}/${k}`).digest('hex').slice(0, 24);

let daemon: Daemon | undefined;
afterAll(async () => {
  await daemon?.stop();
});

describe('kill -9 during writes', () => {
  it('loses_no_acknowledged_write_and_keeps_watches_firing', async () => {
    buildDaemon();
    const dir = tempDir('kill9');
    daemon = await startDaemon(dir);
    const socket = daemon.socket;
    const clients = Array.from({ length: CLIENTS }, () => new XenstoreClient({ path: socket, minBackoffMs: 5, maxBackoffMs: 50 }));
    const watcher = new XenstoreClient({ path: socket, minBackoffMs: 5, maxBackoffMs: 50 });
    const seen: string[] = [];
    await watcher.watch('/kill9/marks', 'marks', (p) => { seen.push(p); });

    const acked = new Set<string>();
    let writing = true;
    const writers = clients.map(async (c, ci) => {
      for (let k = 0; k < KEYS_PER_CLIENT; k++) {
        const key = `/kill9/data/c${ci}/k${k}`;
        // The library re-sends a write cut off by the crash; it resolves only on an ack.
        await c.write(key, value(ci, k));
        acked.add(key);
      }
    });
    const allWritten = Promise.all(writers).then(() => { writing = false; });

    let kills = 0;
    const marker = new XenstoreClient({ path: socket, minBackoffMs: 5, maxBackoffMs: 50 });
    while (writing) {
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 400));
      if (!writing) break;
      const ackedBefore = acked.size;
      await daemon.kill9();
      kills++;
      const from = seen.length;
      daemon = await startDaemon(dir);
      // A change made right after the restart, possibly before the watcher is back.
      const mark = `/kill9/marks/restart-${kills}`;
      await marker.write(mark, String(ackedBefore));
      const afterMark = seen.length;
      // Reported either by its own event, or by the fire that re-registration
      // causes once the watcher is back, if that came after the change.
      await waitFor(() => seen.slice(from).includes(mark) || seen.slice(afterMark).includes('/kill9/marks'), 10_000, `watch fire for ${mark}`);
      expect((await marker.read(mark)).toString()).toBe(String(ackedBefore));
    }
    await allWritten;

    const reader = new XenstoreClient({ path: daemon.socket });
    const missing: string[] = [];
    const digest = createHash('sha256');
    for (let ci = 0; ci < CLIENTS; ci++) {
      for (let k = 0; k < KEYS_PER_CLIENT; k++) {
        const key = `/kill9/data/c${ci}/k${k}`;
        const got = (await reader.read(key).catch(() => undefined))?.toString();
        if (got !== value(ci, k)) missing.push(key);
        digest.update(got ?? '');
      }
    }
    const expected = createHash('sha256');
    for (let ci = 0; ci < CLIENTS; ci++) for (let k = 0; k < KEYS_PER_CLIENT; k++) expected.update(value(ci, k));

    for (const c of [...clients, watcher, marker, reader]) c.close();
    expect(acked.size).toBe(CLIENTS * KEYS_PER_CLIENT);
    expect(kills).toBeGreaterThanOrEqual(3);
    expect(missing).toEqual([]);
    expect(digest.digest('hex')).toBe(expected.digest('hex'));
    expect(watcher.reconnects).toBeGreaterThanOrEqual(kills);
    console.log(`kill9: ${kills} kills during ${CLIENTS * KEYS_PER_CLIENT} acknowledged writes, ${seen.length} watch fires`);
  }, 110_000);
});
