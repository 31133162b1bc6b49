// `microhv run`: boots one guest with its device domains as supervised
// processes. The domains' ranges are claimed before they start, so the vCPUs
// start at once: an access to a device whose domain is still starting parks,
// as during a restart. A guest reset reboots it from its boot configuration.
// Exit status: 0 when the guest powered off (or --until matched), 1 on
// failure, 2 on bad usage, 124 on --timeout.
import { closeSync, openSync, readSync, readFileSync, statSync, watch, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Reactor } from '../idl/control/reactor.js';
import { Role } from '../idl/generated/control.js';
import { Guest } from './vm/guest.js';
import { DomainManager } from './domains/manager.js';

const USAGE = `usage: microhv run --kernel BZIMAGE [--initrd FILE] [--cmdline TEXT] [--mem MIB] [--vcpus N]
                   [--console-log FILE] [--console-socket PATH] [--timeout SECONDS] [--no-reboot]
                   [--disk IMAGE[,readonly][,direct]] [--fault ACTION:DOMAIN:EVERY_MS[:FIRST_MS]]...
                   [--until TEXT [--until-count N]]
  Boots a guest under microhv with its console, ioapic and pci domains. --disk gives it a virtio-blk
  disk (/dev/vda in a Linux guest) on the raw image file IMAGE, served by a block domain: readonly
  refuses the guest's writes, direct uses O_DIRECT (the image must be on a file system that allows
  it). Its console is written to
  --console-log (and echoed here) and can be
  attached on --console-socket. A guest reset (reboot) boots it again; --no-reboot ends the run instead.
  --fault injects faults into a domain (console, ioapic, pci, block) every EVERY_MS, first after FIRST_MS
  (default EVERY_MS): kill (SIGKILL) or hang (SIGSTOP: the heartbeat finds it hung). Repeatable.
  --until TEXT ends the run (exit 0) once the guest's console has shown TEXT N times (default 1).`;

type FaultAction = 'kill' | 'hang';
interface Fault { action: FaultAction; domain: string; everyMs: number; firstMs: number }
interface Options {
  kernel: string; initrd?: string; cmdline: string; memMiB: number; vcpus: number; consoleLog: string; consoleSocket?: string;
  timeoutS?: number; until?: string; untilCount: number; noReboot: boolean; faults: Fault[]; disk?: Disk;
}
interface Disk { path: string; readOnly: boolean; direct: boolean }
const DOMAINS = ['console', 'ioapic', 'pci', 'block'];
/** Where the disk sits on bus 0: slot 1, its virtio registers in BAR 4 (16 KiB), one queue and the config vector. */
const DISK_PCI = { slot: 1, bar: 4, barSize: 0x4000, queues: 1 } as const;

function parse(argv: string[]): Options {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: {
    kernel: { type: 'string' }, initrd: { type: 'string' }, cmdline: { type: 'string' }, mem: { type: 'string' }, vcpus: { type: 'string' },
    'console-log': { type: 'string' }, 'console-socket': { type: 'string' }, timeout: { type: 'string' }, until: { type: 'string' }, 'until-count': { type: 'string' },
    'no-reboot': { type: 'boolean' }, fault: { type: 'string', multiple: true }, disk: { type: 'string' }, help: { type: 'boolean' },
  } });
  if (values.help) { console.log(USAGE); process.exit(0); }
  if (positionals[0] !== 'run') throw new Error(`unknown command '${positionals[0] ?? ''}'`);
  if (!values.kernel) throw new Error('--kernel is required');
  const int = (v: string | undefined, name: string, def: number, min: number, max: number): number => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer in ${min}..${max}`);
    return n;
  };
  const faults = (values.fault ?? []).map((f): Fault => {
    const m = /^(kill|hang):([a-z]+):(\d+)(?::(\d+))?$/.exec(f);
    if (!m) throw new Error(`--fault ${f}: expected kill|hang:DOMAIN:EVERY_MS[:FIRST_MS]`);
    if (!DOMAINS.includes(m[2]!)) throw new Error(`--fault ${f}: no domain '${m[2]}' (domains: ${DOMAINS.join(', ')})`);
    const everyMs = Number(m[3]);
    if (everyMs < 100) throw new Error(`--fault ${f}: EVERY_MS must be at least 100`);
    return { action: m[1] as FaultAction, domain: m[2]!, everyMs, firstMs: m[4] === undefined ? everyMs : Number(m[4]) };
  });
  if (values['until-count'] !== undefined && values.until === undefined) throw new Error('--until-count needs --until');
  let disk: Disk | undefined;
  if (values.disk !== undefined) {
    const [path, ...flags] = values.disk.split(',');
    if (!path) throw new Error('--disk needs an image path');
    const bad = flags.find((x) => x !== 'readonly' && x !== 'direct');
    if (bad !== undefined) throw new Error(`--disk: unknown option '${bad}' (readonly, direct)`);
    let st;
    try { st = statSync(path); } catch (e) { throw new Error(`--disk ${path}: ${(e as Error).message}`); }
    if (!st.isFile() || st.size < 512 || st.size % 512 !== 0) throw new Error(`--disk ${path}: a raw image must be a regular file of a nonzero multiple of 512 bytes`);
    disk = { path, readOnly: flags.includes('readonly'), direct: flags.includes('direct') };
  }
  if (!disk && faults.some((f) => f.domain === 'block')) throw new Error('--fault on block needs --disk');
  return {
    kernel: values.kernel, initrd: values.initrd, cmdline: values.cmdline ?? 'console=ttyS0 panic=-1', memMiB: int(values.mem, '--mem', 512, 64, 1 << 20),
    vcpus: int(values.vcpus, '--vcpus', 1, 1, 64), consoleLog: values['console-log'] ?? `/tmp/microhv-console-${process.pid}.log`,
    consoleSocket: values['console-socket'], until: values.until, untilCount: int(values['until-count'], '--until-count', 1, 1, 1_000_000), noReboot: values['no-reboot'] ?? false,
    timeoutS: values.timeout === undefined ? undefined : int(values.timeout, '--timeout', 0, 1, 86_400), faults, disk,
  };
}

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

/** MICROHV_TRACE=1: start-up phases on stderr, in ms since the process started. */
const trace = process.env.MICROHV_TRACE === '1' ? (what: string): void => console.error(`microhv: +${performance.now().toFixed(0)} ms ${what}`) : (): void => undefined;

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
  const runtime = join(dirname(fileURLToPath(import.meta.url)), '../driver-domains/runtime/main.js');
  const consoleArgs = [runtime, '--console-log', o.consoleLog, ...(o.consoleSocket ? ['--console-socket', o.consoleSocket] : [])];
  manager.add(Role.ROLE_CONSOLE, 'console', consoleArgs);
  // The guest's IO-APIC (split irqchip): with it the guest boots without noapic, and the console's
  // UART and SCI lines reach it through the lines page.
  manager.add(Role.ROLE_IOAPIC, 'ioapic', [runtime]);
  // PCI bus 0 (config ports and ECAM): with it the guest finds a config access method and its host
  // bridge; the bus's endpoints, when there are any, raise INTx through the lines page.
  const disk = o.disk;
  manager.add(Role.ROLE_PCI, 'pci', [runtime, ...(disk ? ['--virtio-blk', `${DISK_PCI.slot}:${DISK_PCI.queues}`] : [])]);
  if (disk) {
    // The disk's backend: it serves the function's BAR wherever the pci domain places it, and signals
    // its MSI-X vectors (one per queue, plus configuration changes) through eventfds microhv owns.
    const block = join(dirname(fileURLToPath(import.meta.url)), '../driver-domains/block/main.js');
    manager.add(Role.ROLE_BLOCK, 'block', [block, '--image', disk.path, '--slot', String(DISK_PCI.slot), '--queues', String(DISK_PCI.queues),
      ...(disk.readOnly ? ['--readonly'] : []), ...(disk.direct ? ['--direct'] : [])], undefined,
    { slot: DISK_PCI.slot, bar: DISK_PCI.bar, barSize: DISK_PCI.barSize, vectors: DISK_PCI.queues + 1 });
  }
  manager.on('log', (l) => console.error(`microhv: ${l}`));
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
    untilSeen = () => { console.error(`microhv: console showed "${o.until}"${o.untilCount > 1 ? ` ${o.untilCount} times` : ''}`); resolve(0); };
    manager.on('down', (name, why) => { console.error(`microhv: domain ${name} is DOWN: ${why}`); });
    // A reset request may come from the console domain (i8042, ACPI) and from a vCPU (triple fault) at
    // once: the first starts the reboot, the rest find it under way.
    let rebooting = false;
    const reboot = (source: string): void => {
      if (o.noReboot) { console.error(`microhv: guest reset (${source}); --no-reboot`); resolve(0); return; }
      if (rebooting || (guest.state !== 'running' && guest.state !== 'paused')) return;
      rebooting = true;
      console.error(`microhv: guest reset (${source}): rebooting`);
      (async () => {
        await guest.halt();
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
    manager.start();
    trace('domains spawned');
    guest.start().then(() => trace('vCPUs running')).catch((e: unknown) => { console.error(`microhv: ${(e as Error).message}`); resolve(1); });
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
