// Test-host program: boots the embedded guest kernel under the microhv core,
// with nothing claiming any I/O yet, until the guest's kernel log (read from
// guest memory) contains UNTIL or SECONDS pass. Prints the log and counters.
//   node dist/tests/support/boot-bringup.js GUEST_DIR SECONDS VCPUS UNTIL [CMDLINE]
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { compiledWorker } from '../../microhv/worker-path.js';
import { Guest } from '../../microhv/vm/guest.js';
import { kernelLogFromMemory } from './kernel-log.js';

const [dir = '/opt/microhv/.cache/guest', secs = '60', cpus = '1', until = 'reboot: System halted'] = process.argv.slice(2);
const cmdline = process.argv[6] ?? 'console=ttyS0 nokaslr noapic panic=-1 microhv.scenario=hello';
const guest = Guest.create({ kernel: readFileSync(`${dir}/vmlinuz`), initrd: readFileSync(`${dir}/initramfs.cpio`), cmdline, memMiB: 512, vcpus: Number(cpus) });
// With BRINGUP_CONSOLE=<console.wasm>, COM1 is served by the console stub module through the ioreq channel.
const consoleWasm = process.env.BRINGUP_CONSOLE;
const consoleStop = new SharedArrayBuffer(4);
let consoleWorker: Worker | undefined;
if (consoleWasm) {
  const { fds } = guest.registerRange({ space: 'pio', first: 0x3f8, last: 0x3ff, buffered: true });
  consoleWorker = new Worker(compiledWorker(import.meta.url, 'console-server-worker.js'), { workerData: { fds, wasm: consoleWasm, stop: consoleStop } });
}
guest.on('power', (k) => console.log(`bringup: power event ${k}`));
guest.on('failed', (d) => console.log(`bringup: failed: ${d}`));
const klog = (): string[] => guest.memory.regions.flatMap((r) => kernelLogFromMemory(r.bytes));
const t0 = performance.now();
await guest.start();
let found = false;
while (!found && guest.state === 'running' && performance.now() - t0 < Number(secs) * 1000) {
  await new Promise((r) => setTimeout(r, 2000));
  found = klog().some((l) => l.includes(until));
}
console.log(`bringup: ${found ? 'found' : 'did not find'} "${until}" after ${((performance.now() - t0) / 1000).toFixed(1)} s, state ${guest.state}`);
guest.pause();
if (process.env.BRINGUP_KLOG !== '0') for (const l of klog()) console.log(`klog: ${l}`);
console.log(`bringup: counters ${JSON.stringify(guest.counters(), (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))}`);
await guest.stop();
guest.destroy();
if (consoleWorker) {
  Atomics.store(new Int32Array(consoleStop), 0, 1);
  await new Promise((r) => consoleWorker!.once('exit', r));
}
