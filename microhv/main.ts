// `microhv run`: boots one guest with its device domains as supervised
// processes. The vCPUs start once every domain has registered its ranges, so
// the guest never sees a device missing at boot. Exit status: 0 when the guest
// powered off, 1 on failure, 2 on bad usage, 124 on --timeout.
import { closeSync, openSync, readSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Reactor } from '../idl/control/reactor.js';
import { Role } from '../idl/generated/control.js';
import { Guest } from './vm/guest.js';
import { DomainManager } from './domains/manager.js';

const USAGE = `usage: microhv run --kernel BZIMAGE [--initrd FILE] [--cmdline TEXT] [--mem MIB] [--vcpus N]
                   [--console-log FILE] [--console-socket PATH] [--timeout SECONDS] [--fault kill:DOMAIN:MS] [--until TEXT]
  Boots a guest under microhv. Its console is written to --console-log (and echoed here) and can be
  attached on --console-socket. --fault kill:console:2000 kills the console domain every 2 s (fault injection; domains: console, ioapic).
  --until TEXT ends the run (exit 0) once the guest's console shows TEXT.`;

interface Options { kernel: string; initrd?: string; cmdline: string; memMiB: number; vcpus: number; consoleLog: string; consoleSocket?: string; timeoutS?: number; until?: string; faults: Array<{ domain: string; everyMs: number }> }

function parse(argv: string[]): Options {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: {
    kernel: { type: 'string' }, initrd: { type: 'string' }, cmdline: { type: 'string' }, mem: { type: 'string' }, vcpus: { type: 'string' },
    'console-log': { type: 'string' }, 'console-socket': { type: 'string' }, timeout: { type: 'string' }, until: { type: 'string' }, fault: { type: 'string', multiple: true }, help: { type: 'boolean' },
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
  const faults = (values.fault ?? []).map((f) => {
    const m = /^kill:([a-z]+):(\d+)$/.exec(f);
    if (!m) throw new Error(`--fault ${f}: expected kill:DOMAIN:MS`);
    return { domain: m[1]!, everyMs: Number(m[2]) };
  });
  return {
    kernel: values.kernel, initrd: values.initrd, cmdline: values.cmdline ?? 'console=ttyS0 panic=-1', memMiB: int(values.mem, '--mem', 512, 64, 1 << 20),
    vcpus: int(values.vcpus, '--vcpus', 1, 1, 64), consoleLog: values['console-log'] ?? `/tmp/microhv-console-${process.pid}.log`,
    consoleSocket: values['console-socket'], until: values.until, timeoutS: values.timeout === undefined ? undefined : int(values.timeout, '--timeout', 0, 1, 86_400), faults,
  };
}

/** Echoes what the console domain appends to the log file; calls `seen` once `until` appears in it. */
function followLog(path: string, until: string | undefined, seen: () => void): () => void {
  let offset = 0;
  let tail = '';
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
        if (until !== undefined) {
          // Keep enough of the previous chunk that a marker split across reads is still found.
          tail = (tail + buf.subarray(0, n).toString('latin1')).slice(-(until.length + n));
          if (tail.includes(until)) { seen(); until = undefined; }
        }
      }
    } finally { closeSync(fd); }
  };
}

async function main(argv: string[]): Promise<number> {
  const o = parse(argv);
  writeFileSync(o.consoleLog, '');
  const guest = Guest.create({ kernel: readFileSync(o.kernel), initrd: o.initrd ? readFileSync(o.initrd) : undefined, cmdline: o.cmdline, memMiB: o.memMiB, vcpus: o.vcpus });
  const reactor = new Reactor();
  const manager = new DomainManager(reactor, guest);
  const runtime = join(dirname(fileURLToPath(import.meta.url)), '../driver-domains/runtime/main.js');
  const consoleArgs = [runtime, '--console-log', o.consoleLog, ...(o.consoleSocket ? ['--console-socket', o.consoleSocket] : [])];
  manager.add(Role.ROLE_CONSOLE, 'console', consoleArgs);
  // The guest's IO-APIC (split irqchip): with it the guest boots without noapic, and the console's
  // UART and SCI lines reach it through the lines page.
  manager.add(Role.ROLE_IOAPIC, 'ioapic', [runtime]);
  manager.on('log', (l) => console.error(`microhv: ${l}`));
  const timers: NodeJS.Timeout[] = [];
  let untilSeen = (): void => undefined;
  const echo = followLog(o.consoleLog, o.until, () => untilSeen());
  const ticker = setInterval(echo, 100);
  const result = await new Promise<number>((resolve) => {
    untilSeen = () => { console.error(`microhv: console showed "${o.until}"`); resolve(0); };
    manager.on('down', (name, why) => { console.error(`microhv: domain ${name} is DOWN: ${why}`); });
    manager.once('ready', () => {
      guest.start().catch((e: unknown) => { console.error(`microhv: ${(e as Error).message}`); resolve(1); });
      for (const f of o.faults) {
        timers.push(setInterval(() => { console.error(`microhv: fault: killing ${f.domain}`); manager.domain(f.domain)?.kill(); }, f.everyMs));
      }
    });
    manager.on('platform', (kind) => { console.error(`microhv: guest requested ${kind}`); if (kind === 'poweroff') resolve(0); });
    guest.on('power', (kind) => { console.error(`microhv: guest ${kind}`); resolve(kind === 'crash' ? 1 : 0); });
    guest.on('failed', (d) => { console.error(`microhv: guest failed: ${d}`); resolve(1); });
    if (o.timeoutS !== undefined) timers.push(setTimeout(() => { console.error(`microhv: timeout after ${o.timeoutS} s`); resolve(124); }, o.timeoutS * 1000));
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve(130));
    manager.start();
  });
  for (const t of timers) clearInterval(t);
  await guest.stop();
  manager.stop();
  echo();
  clearInterval(ticker);
  await reactor.stop();
  guest.destroy();
  console.error(`microhv: domains ${JSON.stringify(manager.health())}`);
  return result;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (e: unknown) => {
  console.error(`microhv: ${(e as Error).message}\n${USAGE}`);
  process.exit(2);
});
