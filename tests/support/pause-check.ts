// Test-host program: boots the embedded guest under the microhv core alone
// and checks pause, unpause and destroy against the guest's own progress. The
// guest writes numbered lines to its kernel log (the `kmsg` scenario), which
// this program reads out of guest memory: while paused the newest line and
// the vCPU exit count must not move; after unpause both must move again.
//   node dist/tests/support/pause-check.js GUEST_DIR
import { readFileSync } from 'node:fs';
import { Guest } from '../../microhv/vm/guest.js';
import { kernelLogFromMemory } from './kernel-log.js';

const dir = process.argv[2] ?? '/opt/microhv/.cache/guest';
const cmdline = 'console=ttyS0 quiet nokaslr noapic panic=-1 microhv.scenario=kmsg microhv.args=1000,0.1';
const guest = Guest.create({ kernel: readFileSync(`${dir}/vmlinuz`), initrd: { path: `${dir}/initramfs.cpio` }, cmdline, memMiB: 512, vcpus: 2 });
guest.on('failed', (d) => console.log(`pause-check: failed: ${d}`));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const newest = (): number => Math.max(0, ...guest.memory.regions.flatMap((r) => kernelLogFromMemory(r.bytes))
  .map((l) => /microhv-guest: line (\d+)/.exec(l)?.[1]).filter((n): n is string => n !== undefined).map(Number));
const exits = (): bigint => Object.values(guest.counters()).reduce((a, b) => a + b, 0n);

async function waitFor(what: string, ok: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !ok(); await sleep(500)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}

await guest.start();
await waitFor('line 5', () => newest() >= 5, 180_000);
guest.pause();
await sleep(500); // a vCPU inside KVM_RUN leaves it at the kick; let every thread reach its pause
const pausedLine = newest();
const pausedExits = exits();
await sleep(4000);
console.log(`pause-check: paused ${guest.state}, line ${pausedLine} -> ${newest()}, exits ${pausedExits} -> ${exits()}`);
guest.unpause();
await waitFor('a line after unpause', () => newest() > pausedLine, 60_000);
console.log(`pause-check: unpaused ${guest.state}, line ${newest()}, exits ${exits()}`);
await guest.stop();
guest.destroy();
console.log('pause-check: destroyed');
