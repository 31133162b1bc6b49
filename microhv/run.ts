// `microhv run` (started by main.ts): boots one guest with its device domains as supervised
// processes. The domains' ranges are claimed before they start, so the vCPUs
// start at once: an access to a device whose domain is still starting parks,
// as during a restart. A guest reset reboots it from its boot configuration.
// Exit status: 0 when the guest powered off (or --until matched), 1 on
// failure, 2 on bad usage, 124 on --timeout.
import { closeSync, openSync, readSync, readFileSync, statSync, watch, writeFileSync } from 'node:fs';
import { Reactor } from '../idl/control/reactor.js';
import { Role } from '../idl/generated/control.js';
import { Guest } from './vm/guest.js';
import { DomainManager } from './domains/manager.js';
import { USAGE, diskDomain, diskPci, parse, type Fault } from './options.js';
import { entryPoint } from './worker-path.js';
import { stamp, trace } from './trace.js';

/** Echoes what the console domain appends to the log file; calls `seen` once `until` has appeared `count` times. */
function followLog(path: string, until: string | undefined, count: number, seen: () => void): () => void {
  let offset = 0;
  let tail = '';
  let found = 0;
  const buf = Buffer.alloc(64 * 1024);
  return () => {
    let size = 0;
    try { size = statSync(path).size; } catch { return; }
    if (size <= offset) return;
    const fd = openSync(path, 'r');
    try {
      while (offset < size) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, size - offset), offset);
        if (n <= 0) break;
        process.stdout.write(buf.subarray(0, n));
        offset += n;
        const marker = until;
        if (marker !== undefined) {
          tail += buf.subarray(0, n).toString('latin1');
          for (let at = tail.indexOf(marker); at >= 0; at = tail.indexOf(marker)) {
            tail = tail.slice(at + marker.length);
            if (++found === count) { seen(); until = undefined; break; }
          }
          // Keep just enough that a marker split across reads is still found.
          tail = tail.slice(-(marker.length - 1) || tail.length);
        }
      }
    } finally { closeSync(fd); }
  };
}

async function main(argv: string[]): Promise<number> {
  trace('modules loaded');
  const o = parse(argv);
  writeFileSync(o.consoleLog, '');
  const kernel = readFileSync(o.kernel);
  // The initrd goes from its file straight into guest RAM (Guest reads it), without a copy on the heap.
  const initrd = o.initrd ? { path: o.initrd } : undefined;
  trace('images read');
  const guest = Guest.create({ kernel, initrd, cmdline: o.cmdline, memMiB: o.memMiB, vcpus: o.vcpus });
  trace('guest created');
  const reactor = new Reactor();
  const manager = new DomainManager(reactor, guest);
  const runtime = entryPoint('driver-domains/runtime/main');
  const consoleArgs = [runtime, '--console-log', o.consoleLog, ...(o.consoleSocket ? ['--console-socket', o.consoleSocket] : [])];
  manager.add(Role.ROLE_CONSOLE, 'console', consoleArgs);
  // The guest's IO-APIC (split irqchip): with it the guest boots without noapic, and the console's
  // UART and SCI lines reach it through the lines page.
  manager.add(Role.ROLE_IOAPIC, 'ioapic', [runtime]);
  // PCI bus 0 (config ports and ECAM): with it the guest finds a config access method and its host
  // bridge; the bus's endpoints, when there are any, raise INTx through the lines page.
  manager.add(Role.ROLE_PCI, 'pci', [runtime, ...o.disks.flatMap((d, i) => ['--virtio-blk', `${diskPci(i, d).slot}:${d.queues}`])]);
  const block = entryPoint('driver-domains/block/main');
  o.disks.forEach((d, i) => {
    // A disk's backend: it serves the function's BAR wherever the pci domain places it, and signals
    // its MSI-X vectors (one per queue, plus configuration changes) through eventfds microhv owns.
    const pci = diskPci(i, d);
    manager.add(Role.ROLE_BLOCK, diskDomain(i), [block, '--image', d.path, '--slot', String(pci.slot), '--queues', String(d.queues),
      ...(d.readOnly ? ['--readonly'] : []), ...(d.direct ? ['--direct'] : []), ...(d.uring ? ['--uring'] : [])], undefined, pci);
  });
  manager.on('log', (l) => console.error(`microhv: ${stamp()}${l}`));
  const timers: NodeJS.Timeout[] = [];
  let reboots = 0;
  const inject = (f: Fault): void => {
    const sup = manager.domain(f.domain);
    console.error(`microhv: fault: ${f.action === 'kill' ? 'killing' : 'hanging'} ${f.domain}`);
    if (f.action === 'kill') sup?.kill({ injected: true });
    else sup?.hang();
  };
  let untilSeen = (): void => undefined;
  const echo = followLog(o.consoleLog, o.until, o.untilCount, () => untilSeen());
  // inotify wakes the echo as soon as the console domain writes; the ticker is the fallback.
  const watcher = watch(o.consoleLog, () => echo());
  const ticker = setInterval(echo, 250);
  const result = await new Promise<number>((resolve) => {
    untilSeen = () => { console.error(`microhv: ${stamp()}console showed "${o.until}"${o.untilCount > 1 ? ` ${o.untilCount} times` : ''}`); resolve(0); };
    manager.on('down', (name, why) => { console.error(`microhv: domain ${name} is DOWN: ${why}`); });
    // A reset request may come from the console domain (i8042, ACPI) and from a vCPU (triple fault) at
    // once: the first starts the reboot, the rest find it under way.
    let rebooting = false;
    const dump = async (): Promise<void> => {
      if (o.dumpOnReset === undefined) return;
      try {
        const bytes = await guest.memory.dump(o.dumpOnReset);
        console.error(`microhv: guest RAM written to ${o.dumpOnReset} (${(bytes / 2 ** 20).toFixed(1)} MiB not zero)`);
      } catch (e) { console.error(`microhv: --dump-on-reset ${o.dumpOnReset}: ${(e as Error).message}`); }
    };
    const reboot = (source: string): void => {
      if (o.noReboot) {
        // The run ends with the first reset; the rest find it ending.
        if (rebooting) return;
        rebooting = true;
        console.error(`microhv: guest reset (${source}); --no-reboot`);
        if (o.dumpOnReset === undefined) return resolve(0);
        // Every vCPU stopped first, so the dump is one moment of the guest.
        guest.halt().then(dump, (e: unknown) => { console.error(`microhv: halt before the dump: ${(e as Error).message}`); }).finally(() => resolve(0));
        return;
      }
      if (rebooting || (guest.state !== 'running' && guest.state !== 'paused')) return;
      rebooting = true;
      console.error(`microhv: guest reset (${source}): rebooting`);
      (async () => {
        await guest.halt();
        await dump();
        await manager.resetDevices();
        await guest.powerOn();
        reboots++;
        console.error(`microhv: guest rebooted (${reboots})`);
      })().catch((e: unknown) => { console.error(`microhv: reboot failed: ${(e as Error).message}`); resolve(1); }).finally(() => { rebooting = false; });
    };
    manager.on('platform', (kind) => {
      console.error(`microhv: guest requested ${kind}`);
      if (kind === 'poweroff') resolve(0);
      else if (kind === 'reset') reboot('platform reset');
    });
    guest.on('power', (kind, detail) => {
      if (kind === 'reset') return reboot(detail === undefined ? 'vCPU reset' : `vCPU reset: ${detail}`);
      console.error(`microhv: guest ${kind}`);
      resolve(kind === 'crash' ? 1 : 0);
    });
    guest.on('failed', (d) => { console.error(`microhv: guest failed: ${d}`); resolve(1); });
    if (o.timeoutS !== undefined) timers.push(setTimeout(() => { console.error(`microhv: timeout after ${o.timeoutS} s`); resolve(124); }, o.timeoutS * 1000));
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve(130));
    // The vCPUs first: their threads are loaded, and spawning the domains (a few hundred ms of the main
    // thread each on a slow host) then overlaps the guest's early boot, which needs no domain.
    guest.start().then(() => trace('vCPUs running')).catch((e: unknown) => { console.error(`microhv: ${(e as Error).message}`); resolve(1); });
    manager.start();
    trace('domains spawned');
    for (const f of o.faults) timers.push(setTimeout(() => { inject(f); timers.push(setInterval(() => inject(f), f.everyMs)); }, f.firstMs));
  });
  for (const t of timers) clearInterval(t);
  try {
    await guest.stop();
    manager.stop();
    echo();
  } finally {
    clearInterval(ticker);
    watcher.close();
    // Whatever failed above: a reactor left waiting on the worker pool would hold process.exit forever.
    await reactor.stop();
  }
  guest.destroy();
  console.error(`microhv: domains ${JSON.stringify(manager.health())}`);
  return result;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (e: unknown) => {
  console.error(`microhv: ${(e as Error).message}\n${USAGE}`);
  process.exit(2);
});
