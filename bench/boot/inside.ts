// Runs inside the test host: boots the embedded guest under QEMU/KVM and under
// microhv, alternately, N times each, and times every boot from spawning the
// process to the first INIT_LINE on its console. Prints one RESULT_PREFIX line
// with the samples; the front end (run.ts) computes and prints the ratio.
//   node dist/bench/boot/inside.js N QEMU_TIMEOUT_S MICROHV_TIMEOUT_S
import { spawn } from 'node:child_process';
import { GUEST_IN_TESTHOST } from '../../images/build.js';
import { guestCmdline, qemuGuestCommand } from '../../testhost/peer.js';
import { InitLineWatcher, RESULT_PREFIX, type BootSample, type Contender } from './measure.js';

const [n = '2', qemuTimeoutS = '120', microhvTimeoutS = '400'] = process.argv.slice(2);
const rounds = Number(n);
if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`N must be a positive integer, not ${n}`);

// Both contenders boot the same kernel, initramfs, command line, memory and vCPU count.
const boot = { scenario: 'hello', smp: 1, memMiB: 512 } as const;

function command(c: Contender): { file: string; args: string[]; env: NodeJS.ProcessEnv } {
  switch (c) {
    case 'qemu':
      return { file: 'sh', args: ['-c', qemuGuestCommand({ ...boot, timeoutS: Number(qemuTimeoutS) })], env: process.env };
    case 'microhv':
      // The product: `microhv run` with its console and ioapic domains as supervised processes, the
      // guest booting with its IO-APIC (no noapic). The console is echoed on stdout, where the init
      // line is watched; --no-reboot matches QEMU's.
      return {
        file: process.execPath,
        args: ['dist/microhv/main.js', 'run', '--kernel', `${GUEST_IN_TESTHOST}/vmlinuz`, '--initrd', `${GUEST_IN_TESTHOST}/initramfs.cpio`,
          '--cmdline', guestCmdline(boot), '--vcpus', String(boot.smp), '--mem', String(boot.memMiB), '--no-reboot',
          '--console-log', `/tmp/bench-boot-console-${process.pid}.log`, '--timeout', microhvTimeoutS],
        env: process.env,
      };
    default: {
      const never: never = c;
      throw new Error(`unknown contender ${String(never)}`);
    }
  }
}

/** One boot; the process group is killed as soon as the init line is seen (what follows is not timed). */
function timeBoot(c: Contender, timeoutS: number): Promise<BootSample> {
  const { file, args, env } = command(c);
  return new Promise((resolve) => {
    const t0 = performance.now();
    // Its own process group, so that QEMU under sh and timeout, or the bring-up's threads, die together.
    const p = spawn(file, args, { cwd: '/opt/microhv', env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const watcher = new InitLineWatcher();
    let result: BootSample | undefined;
    let tail = '';
    const finish = (r: BootSample): void => {
      if (result) return;
      result = r;
      clearTimeout(timer);
      try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* already gone */ }
    };
    const timer = setTimeout(() => finish({ contender: c, failed: `no init line within ${timeoutS} s` }), timeoutS * 1000);
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (chunk: string) => {
      tail = (tail + chunk).slice(-2000);
      if (watcher.feed(chunk)) finish({ contender: c, ms: performance.now() - t0 });
    });
    p.stderr.setEncoding('utf8');
    p.stderr.on('data', (chunk: string) => { tail = (tail + chunk).slice(-2000); });
    p.on('error', (e) => finish({ contender: c, failed: `cannot start: ${e.message}` }));
    p.on('close', (code, signal) => {
      finish({ contender: c, failed: `exited (${signal ?? code}) before the init line; output tail: ${tail.trim().slice(-400)}` });
      resolve(result!);
    });
  });
}

const samples: BootSample[] = [];
for (let i = 0; i < rounds; i++) {
  // Alternating keeps a slow drift in the shared machine's load from landing on one contender only.
  for (const c of ['qemu', 'microhv'] as const) {
    const s = await timeBoot(c, Number(c === 'qemu' ? qemuTimeoutS : microhvTimeoutS));
    console.log(`boot-bench: round ${i + 1} ${c}: ${'ms' in s ? `${(s.ms / 1000).toFixed(2)} s to init` : `FAILED: ${s.failed}`}`);
    samples.push(s);
  }
}
console.log(RESULT_PREFIX + JSON.stringify(samples));
