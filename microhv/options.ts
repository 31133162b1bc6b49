// `microhv run`'s command line: parsed and checked here, before anything is
// created, so a bad option costs one line and status 2, never a half-built guest.
import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** Disks a guest may have: slots 1..MAX_DISKS of bus 0. */
export const MAX_DISKS = 8;
/** Request queues of one disk: one MSI-X vector each plus the configuration vector, 16 in all. */
export const MAX_QUEUES = 15;

export const USAGE = `usage: microhv run --kernel BZIMAGE [--initrd FILE] [--cmdline TEXT] [--mem MIB] [--vcpus N]
                   [--console-log FILE] [--console-socket PATH] [--timeout SECONDS] [--no-reboot]
                   [--disk IMAGE[,readonly][,direct][,uring][,queues=N]]... [--fault ACTION:DOMAIN:EVERY_MS[:FIRST_MS]]...
                   [--until TEXT [--until-count N]] [--dump-on-reset FILE]
  Boots a guest under microhv with its console, ioapic and pci domains. Each --disk gives it a virtio-blk
  disk on the raw image file IMAGE (/dev/vda, /dev/vdb, ... in a Linux guest, in order; at most ${MAX_DISKS}),
  served by its own block domain: readonly refuses the guest's writes, direct uses O_DIRECT (the image
  must be on a file system that allows it), uring serves it through the domain's own io_uring instead
  of a thread pool, queues=N gives it N request queues (1..${MAX_QUEUES}, default 1). Its console is written to
  --console-log (and echoed here) and can be attached on --console-socket. A guest reset (reboot) boots
  it again; --no-reboot ends the run instead.
  --fault injects faults into a domain every EVERY_MS, first after FIRST_MS (default EVERY_MS): kill
  (SIGKILL) or hang (SIGSTOP: the heartbeat finds it hung). Domains: console, ioapic, pci, and block,
  block1, block2, ... for the disks in order. Repeatable.
  --until TEXT ends the run (exit 0) once the guest's console has shown TEXT N times (default 1).
  --dump-on-reset FILE writes guest RAM to FILE when the guest resets (a triple fault, a reboot), before
  it boots again or the run ends: a sparse raw image whose file offset is the guest-physical address.`;

export type FaultAction = 'kill' | 'hang';
export interface Fault { readonly action: FaultAction; readonly domain: string; readonly everyMs: number; readonly firstMs: number }
export interface Disk { readonly path: string; readonly readOnly: boolean; readonly direct: boolean; readonly uring: boolean; readonly queues: number }
export interface Options {
  readonly kernel: string; readonly initrd?: string; readonly cmdline: string; readonly memMiB: number; readonly vcpus: number;
  readonly consoleLog: string; readonly consoleSocket?: string; readonly timeoutS?: number; readonly until?: string; readonly untilCount: number;
  readonly noReboot: boolean; readonly faults: readonly Fault[]; readonly disks: readonly Disk[]; readonly dumpOnReset?: string;
}

/** The block domain serving disk `index` (0: /dev/vda): block, block1, block2, ... */
export function diskDomain(index: number): string {
  return index === 0 ? 'block' : `block${index}`;
}

/** Where disk `index` sits on bus 0: slot index + 1, its virtio registers in BAR 4 (16 KiB). */
export function diskPci(index: number, disk: Disk): { slot: number; bar: number; barSize: number; vectors: number } {
  return { slot: index + 1, bar: 4, barSize: 0x4000, vectors: disk.queues + 1 };
}

function parseDisk(spec: string): Disk {
  const [path, ...flags] = spec.split(',');
  if (!path) throw new Error(`--disk ${spec}: needs an image path`);
  let queues = 1;
  for (const f of flags) {
    const q = /^queues=(\d+)$/.exec(f);
    if (q) {
      queues = Number(q[1]);
      if (queues < 1 || queues > MAX_QUEUES) throw new Error(`--disk ${spec}: queues must be 1..${MAX_QUEUES}`);
    } else if (f !== 'readonly' && f !== 'direct' && f !== 'uring') {
      throw new Error(`--disk ${spec}: unknown option '${f}' (readonly, direct, uring, queues=N)`);
    }
  }
  let st;
  try { st = statSync(path); } catch (e) { throw new Error(`--disk ${path}: ${(e as Error).message}`); }
  if (!st.isFile() || st.size < 512 || st.size % 512 !== 0) throw new Error(`--disk ${path}: a raw image must be a regular file of a nonzero multiple of 512 bytes`);
  return { path, readOnly: flags.includes('readonly'), direct: flags.includes('direct'), uring: flags.includes('uring'), queues };
}

/** The options of `microhv run`; throws an Error whose message is the one line to print. */
export function parse(argv: string[]): Options {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: {
    kernel: { type: 'string' }, initrd: { type: 'string' }, cmdline: { type: 'string' }, mem: { type: 'string' }, vcpus: { type: 'string' },
    'console-log': { type: 'string' }, 'console-socket': { type: 'string' }, timeout: { type: 'string' }, until: { type: 'string' }, 'until-count': { type: 'string' },
    'no-reboot': { type: 'boolean' }, 'dump-on-reset': { type: 'string' }, fault: { type: 'string', multiple: true }, disk: { type: 'string', multiple: true }, help: { type: 'boolean' },
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
  const specs = values.disk ?? [];
  if (specs.length > MAX_DISKS) throw new Error(`--disk: at most ${MAX_DISKS} disks`);
  const disks = specs.map(parseDisk);
  const domains = ['console', 'ioapic', 'pci', ...disks.map((_, i) => diskDomain(i))];
  const faults = (values.fault ?? []).map((f): Fault => {
    const m = /^(kill|hang):([a-z]+\d*):(\d+)(?::(\d+))?$/.exec(f);
    if (!m) throw new Error(`--fault ${f}: expected kill|hang:DOMAIN:EVERY_MS[:FIRST_MS]`);
    if (!domains.includes(m[2]!)) throw new Error(`--fault ${f}: no domain '${m[2]}' in this run (domains: ${domains.join(', ')})`);
    const everyMs = Number(m[3]);
    if (everyMs < 100) throw new Error(`--fault ${f}: EVERY_MS must be at least 100`);
    return { action: m[1] as FaultAction, domain: m[2]!, everyMs, firstMs: m[4] === undefined ? everyMs : Number(m[4]) };
  });
  if (values['until-count'] !== undefined && values.until === undefined) throw new Error('--until-count needs --until');
  return {
    kernel: values.kernel, initrd: values.initrd, cmdline: values.cmdline ?? 'console=ttyS0 panic=-1', memMiB: int(values.mem, '--mem', 512, 64, 1 << 20),
    vcpus: int(values.vcpus, '--vcpus', 1, 1, 64), consoleLog: values['console-log'] ?? `/tmp/microhv-console-${process.pid}.log`,
    consoleSocket: values['console-socket'], until: values.until, untilCount: int(values['until-count'], '--until-count', 1, 1, 1_000_000), noReboot: values['no-reboot'] ?? false,
    timeoutS: values.timeout === undefined ? undefined : int(values.timeout, '--timeout', 0, 1, 86_400), faults, disks,
    dumpOnReset: values['dump-on-reset'],
  };
}
