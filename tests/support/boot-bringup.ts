// Test-host program: boots the embedded guest kernel under the microhv core
// alone, with no domain and nothing claiming any I/O, until the guest's kernel log (read from
// guest memory) contains UNTIL or SECONDS pass. Prints the log and counters.
//   node dist/tests/support/boot-bringup.js GUEST_DIR SECONDS VCPUS UNTIL [CMDLINE]
import { readFileSync } from 'node:fs';
import { Guest } from '../../microhv/vm/guest.js';
import { kernelLogFromMemory } from './kernel-log.js';

const [dir = '/opt/microhv/.cache/guest', secs = '60', cpus = '1', until = 'reboot: System halted'] = process.argv.slice(2);
const cmdline = process.argv[6] ?? 'console=ttyS0 nokaslr noapic panic=-1 microhv.scenario=hello';
const guest = Guest.create({ kernel: readFileSync(`${dir}/vmlinuz`), initrd: readFileSync(`${dir}/initramfs.cpio`), cmdline, memMiB: 512, vcpus: Number(cpus) });
guest.on('power', (k) => console.log(`bringup: power event ${k}`));
guest.on('failed', (d) => console.log(`bringup: failed: ${d}`));
const klog = (): string[] => guest.memory.regions.flatMap((r) => kernelLogFromMemory(r.bytes));
process.on('uncaughtException', (e) => { console.log(`bringup: uncaught: ${e.stack ?? e.message}`); });
process.on('unhandledRejection', (e) => { console.log(`bringup: unhandled rejection: ${String(e)}`); });
const t0 = performance.now();
await guest.start();
let found = false;
while (!found && guest.state === 'running' && performance.now() - t0 < Number(secs) * 1000) {
  await new Promise((r) => setTimeout(r, 2000));
  found = klog().some((l) => l.includes(until));
}
console.log(`bringup: ${found ? 'found' : 'did not find'} "${until}" after ${((performance.now() - t0) / 1000).toFixed(1)} s, state ${guest.state}`);
guest.pause();
// After a power event the vCPUs are gone but guest memory is still mapped: the log shows why (e.g. a panic).
for (const l of klog()) console.log(`klog: ${l}`);
console.log(`bringup: counters ${JSON.stringify(guest.counters(), (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))}`);
await guest.stop();
guest.destroy();
