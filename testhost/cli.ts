// `node dist/testhost/cli.js run [options] -- COMMAND`: runs one shell command
// inside the test host, streaming its output and exiting with its status.
import { runInTestHost, TestHostError, type Accel } from './testhost.js';
import { buildTestHost } from '../images/build.js';
import { qemuGuestCommand } from './peer.js';

const USAGE = `usage: testhost run [--timeout SECONDS] [--smp N] [--mem MIB] [--scratch MIB] [--accel tcg|kvm] -- COMMAND...
       testhost demo | demo-qemu
  run    boot the test host, run COMMAND (a shell command, in /opt/microhv) inside it,
         stream its output and exit with its status (124 on timeout). --scratch adds an empty
         ext4 disk of that size, mounted at /scratch inside (O_DIRECT works there, unlike /tmp).
  demo   boot the embedded default guest under microhv inside the test host with a 64 MiB disk, run a
         checksummed fio job on it while the block domain is killed every 3 s, and show its console.
  demo-qemu  the same guest under QEMU/KVM, the peer microhv is measured against.`;

interface Parsed { cmd: string; timeoutMs: number; smp: number; memMiB: number; scratchMiB?: number; accel?: Accel; rest: string[] }

function parse(argv: string[]): Parsed {
  const p: Parsed = { cmd: argv[0] ?? '', timeoutMs: 300_000, smp: 2, memMiB: 2048, rest: [] };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const num = (name: string, min: number): number => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}`);
      return n;
    };
    if (a === '--') { p.rest = argv.slice(i + 1); break; }
    else if (a === '--timeout') p.timeoutMs = num('--timeout', 1) * 1000;
    else if (a === '--smp') p.smp = num('--smp', 1);
    else if (a === '--mem') p.memMiB = num('--mem', 256);
    else if (a === '--scratch') p.scratchMiB = num('--scratch', 16);
    else if (a === '--accel') { const v = value(); if (v !== 'tcg' && v !== 'kvm') throw new Error('--accel is tcg or kvm'); p.accel = v; }
    else p.rest = argv.slice(i);
    if (p.rest.length) break;
  }
  return p;
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') { console.log(USAGE); return argv.length === 0 ? 2 : 0; }
  const p = parse(argv);
  let command: string;
  if (p.cmd === 'run') {
    command = p.rest.join(' ').trim();
    if (!command) throw new Error('run needs a command after --');
  } else if (p.cmd === 'demo') {
    console.log('demo: `microhv run` inside the test host: the embedded default guest with a virtio-blk disk, running a checksummed fio job while its block domain is killed every 3 s');
    const t = Math.floor(p.timeoutMs / 1000);
    command = 'truncate -s 64M /tmp/demo-disk.img && '
      + `timeout -s KILL ${t - 20} node dist/microhv/main.js run --kernel .cache/guest/vmlinuz --initrd .cache/guest/initramfs.cpio `
      + `--vcpus ${p.smp > 1 ? 2 : 1} --cmdline 'console=ttyS0 quiet panic=-1 microhv.scenario=fioverify microhv.args=15,16' --console-log /tmp/console.log `
      + `--disk /tmp/demo-disk.img --fault kill:block:3000:12000 --timeout ${t - 40}`;
  } else if (p.cmd === 'demo-qemu') {
    console.log('demo-qemu: booting the embedded default guest under QEMU/KVM (the peer) inside the test host');
    command = qemuGuestCommand({ scenario: 'hello', timeoutS: Math.floor(p.timeoutMs / 1000) - 60 });
  } else {
    throw new Error(`unknown command '${p.cmd}' (try --help)`);
  }
  const image = buildTestHost((s) => console.error(s));
  const r = await runInTestHost({ command, image, timeoutMs: p.timeoutMs, smp: p.smp, memMiB: p.memMiB, scratchMiB: p.scratchMiB, accel: p.accel, onOutput: (t) => process.stdout.write(t) });
  console.error(`testhost: ${r.accel}, booted in ${(r.bootMs / 1000).toFixed(1)} s, total ${(r.totalMs / 1000).toFixed(1)} s, exit ${r.exitCode}`);
  return r.exitCode;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
  if (err instanceof TestHostError) {
    console.error(`testhost: ${err.message}`);
    if (err.kernelLogTail) console.error(`--- test host kernel log (tail) ---\n${err.kernelLogTail}`);
    if (err.heartbeatTail) console.error(`--- test host heartbeat (last) ---\n${err.heartbeatTail}`);
    if (err.qemuThreads.length > 0) console.error(`--- QEMU's threads in its last second ---\n${err.qemuThreads.join('\n')}`);
    process.exitCode = err.code === 'TIMEOUT' || err.code === 'BOOT_TIMEOUT' ? 124 : 1;
  } else {
    console.error(`testhost: ${(err as Error).message}`);
    process.exitCode = 2;
  }
});
