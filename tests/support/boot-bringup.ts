// Test-host program: boots the embedded guest kernel under the microhv core,
// with nothing claiming any I/O yet, until the guest's kernel log (read from
// guest memory) contains UNTIL or SECONDS pass. Prints the log and counters.
//   node dist/tests/support/boot-bringup.js GUEST_DIR SECONDS VCPUS UNTIL [CMDLINE]
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { compiledWorker } from '../../microhv/worker-path.js';
import { ACPI_PM, COM1, I8042, IOAPIC_BASE } from '../../boot/layout.js';
import { Guest } from '../../microhv/vm/guest.js';
import { kernelLogFromMemory } from './kernel-log.js';

const [dir = '/opt/microhv/.cache/guest', secs = '60', cpus = '1', until = 'reboot: System halted'] = process.argv.slice(2);
const cmdline = process.argv[6] ?? 'console=ttyS0 nokaslr noapic panic=-1 microhv.scenario=hello';
const guest = Guest.create({ kernel: readFileSync(`${dir}/vmlinuz`), initrd: readFileSync(`${dir}/initramfs.cpio`), cmdline, memMiB: 512, vcpus: Number(cpus) });
// With BRINGUP_PLATFORM=<dir with console.wasm and ioapic.wasm>, COM1, the i8042 and ACPI PM ports and the
// IO-APIC are served by the stub modules through the ioreq channel, with interrupts delivered.
const wasmDir = process.env.BRINGUP_PLATFORM;
const platformStop = new SharedArrayBuffer(4);
const platformEvents = new SharedArrayBuffer(4);
let platform: Worker | undefined;
if (wasmDir) {
  const reg = (space: 'pio' | 'mmio', first: number, last: number, buffered: boolean) => guest.registerRange({ space, first, last, buffered }).fds;
  const consoleFds = [reg('pio', COM1.port, COM1.port + COM1.size - 1, true), reg('pio', I8042.data, I8042.data, false), reg('pio', I8042.command, I8042.command, false),
    reg('pio', ACPI_PM.pm1aEvent, ACPI_PM.pmTimer + ACPI_PM.pmTimerLen - 1, false)];
  const ioapicFds = reg('mmio', IOAPIC_BASE, IOAPIC_BASE + 0xfff, false);
  platform = new Worker(compiledWorker(import.meta.url, 'platform-worker.js'), {
    workerData: { vmFd: guest.vmFd, console: consoleFds, ioapic: ioapicFds, wasmDir, stop: platformStop, events: platformEvents },
  });
  platform.on('error', (e) => console.log(`bringup: platform thread failed: ${e.message}`));
}
guest.on('power', (k) => console.log(`bringup: power event ${k}`));
guest.on('failed', (d) => console.log(`bringup: failed: ${d}`));
const klog = (): string[] => guest.memory.regions.flatMap((r) => kernelLogFromMemory(r.bytes));
process.on('uncaughtException', (e) => { console.log(`bringup: uncaught: ${e.stack ?? e.message}`); });
process.on('unhandledRejection', (e) => { console.log(`bringup: unhandled rejection: ${String(e)}`); });
const t0 = performance.now();
await guest.start();
let found = false;
while (!found && guest.state === 'running' && Atomics.load(new Int32Array(platformEvents), 0) === 0 && performance.now() - t0 < Number(secs) * 1000) {
  await new Promise((r) => setTimeout(r, 2000));
  found = klog().some((l) => l.includes(until));
}
console.log(`bringup: ${found ? 'found' : 'did not find'} "${until}" after ${((performance.now() - t0) / 1000).toFixed(1)} s, state ${guest.state}`);
guest.pause();
// After a power event the vCPUs are gone but guest memory is still mapped: the log shows why (e.g. a panic).
if (process.env.BRINGUP_KLOG !== '0' || guest.state === 'stopped') for (const l of klog()) console.log(`klog: ${l}`);
console.log(`bringup: counters ${JSON.stringify(guest.counters(), (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))}`);
await guest.stop();
guest.destroy();
if (platform) {
  console.log(`bringup: platform event ${Atomics.load(new Int32Array(platformEvents), 0)}`);
  Atomics.store(new Int32Array(platformStop), 0, 1);
  await new Promise((r) => platform!.once('exit', r));
}
