// The microhv core boots Debian's stock cloud kernel on real KVM inside the
// test host: memory, boot plan, CPUID and vCPU threads are the core's own.
// The first case runs with no device domain at all and reads the guest's
// kernel log out of guest memory; the others run `microhv run`.
import { beforeAll, describe, expect, test } from 'vitest';
import { buildTestHost, type TestHostImage } from '../images/build.js';
import { runInTestHost } from '../testhost/testhost.js';
import { enableShutdownProbe, readShutdownRegs } from './support/shutdown-probe.js';
import { parseRegs } from './support/pt-check.js';

let image: TestHostImage;
beforeAll(() => { image = buildTestHost(); });

const bringup = (vcpus: number, until: string, cmdline?: string): string =>
  `timeout -s KILL 200 node dist/tests/support/boot-bringup.js /opt/microhv/.cache/guest 180 ${vcpus} '${until}'${cmdline ? ` '${cmdline}'` : ''}`;

describe('microhv core boots a stock kernel', () => {
  test('boots_to_init_with_no_device_domains', async () => {
    const r = await runInTestHost({ image, command: `${bringup(1, 'Run /init as init process')}; echo one-exit=$?`, timeoutMs: 300_000 });
    expect(r.output).toContain('one-exit=0');
    expect(r.output).toContain('bringup: found "Run /init as init process"');
    expect(r.output).toMatch(/klog: Linux version 6\.\d+\.\d+/);
    expect(r.output).toContain('klog: smpboot: Allowing 1 CPUs');
    expect(r.output).not.toContain('bringup: failed');
  });

  test('microhv_run_brings_both_vcpus_of_a_two_vcpu_guest_online', async () => {
    const r = await runInTestHost({
      image,
      command: 'timeout -s KILL 200 node dist/microhv/main.js run --kernel .cache/guest/vmlinuz --initrd .cache/guest/initramfs.cpio --vcpus 2 '
        + "--cmdline 'console=ttyS0 quiet panic=-1 microhv.scenario=hello' --console-log /tmp/console.log --timeout 180 >/dev/null 2>&1; "
        + 'echo run-exit=$?; cat /tmp/console.log',
      timeoutMs: 300_000,
    });
    expect(r.output).toContain('run-exit=0');
    expect(r.output).toContain('microhv-guest: cpus online 0-1 count 2');
    expect(r.output).toContain('microhv-guest: scenario hello done rc=0');
  });

  test('guest_reboot_boots_it_again_from_its_boot_configuration_with_both_vcpus', async () => {
    // The reboot scenario prints the online CPUs and reboots (busybox reboot -f: the kernel's restart
    // path, i8042 reset and then a triple fault). The second boot ends the run at its scenario line.
    const r = await runInTestHost({
      image,
      command: 'timeout -s KILL 250 node dist/microhv/main.js run --kernel .cache/guest/vmlinuz --initrd .cache/guest/initramfs.cpio --vcpus 2 '
        + "--cmdline 'console=ttyS0 quiet panic=-1 microhv.scenario=reboot' --console-log /tmp/console.log --timeout 230 "
        + "--until 'microhv-guest: rebooting' --until-count 2 >/dev/null 2>/tmp/err.txt; echo run-exit=$?; "
        + "grep -c 'microhv-guest: init started' /tmp/console.log | sed 's/^/inits=/'; grep -c 'microhv-guest: cpus online 0-1' /tmp/console.log | sed 's/^/both-online=/'; "
        + "grep 'guest reset\\|rebooted\\|failed' /tmp/err.txt",
      timeoutMs: 330_000,
    });
    expect(r.output).toContain('run-exit=0');
    expect(r.output).toMatch(/guest reset \((platform reset|vCPU reset)\): rebooting/);
    expect(r.output).toContain('guest rebooted (1)');
    expect(r.output).toContain('inits=2');
    expect(r.output).toContain('both-online=2');
    expect(r.output).not.toContain('failed');
  });

  test('a_guest_triple_fault_with_no_reboot_ends_the_run_at_once_leaving_a_ram_dump_whose_page_tables_map_its_rip', async () => {
    // reboot=t: the guest kernel restarts by triple fault, so its vCPU thread ends with a shutdown
    // exit before microhv stops the guest (a stop that kicked the ended thread once threw, and the
    // run then hung at exit until its hard kill). The kernel's page tables are whole then: the
    // post-mortem (--dump-on-reset, pt-check.ts, at the RIP of the test host's KVM shutdown exit) must
    // find them and walk that RIP to a present page. The kprobe of shutdown-probe.ts must read the
    // vCPU's registers from the VMCB at that exit: the same RIP, the empty IDT reboot=t loads, and a
    // CR3 through which the RIP and the stack are mapped.
    const T = '/sys/kernel/tracing';
    const r = await runInTestHost({
      image,
      command: `mount -t tracefs nodev ${T} 2>/dev/null; echo 'exit_reason == 127' > ${T}/events/kvm/kvm_exit/filter; echo 1 > ${T}/events/kvm/kvm_exit/enable; `
        + enableShutdownProbe(T)
        + 'timeout -s KILL 200 node dist/microhv/main.js run --kernel .cache/guest/vmlinuz --initrd .cache/guest/initramfs.cpio --vcpus 1 '
        + "--cmdline 'console=ttyS0 quiet panic=-1 reboot=t microhv.scenario=reboot' --console-log /tmp/console.log --timeout 180 "
        + "--no-reboot --dump-on-reset /tmp/guest.dump >/dev/null 2>/tmp/err.txt; echo run-exit=$?; grep 'guest reset\\|failed\\|domains\\|RAM' /tmp/err.txt; "
        + `rip=$(grep -o -m1 'reason shutdown rip 0x[0-9a-f]*' ${T}/trace | grep -o '0x[0-9a-f]*'); echo rip=$rip; `
        + readShutdownRegs(T)
        + 'node dist/tests/support/pt-check.js /tmp/guest.dump "$rip" --vmcb "$regs"',
      timeoutMs: 300_000,
    });
    expect(r.output).toMatch(/guest reset \(vCPU reset: triple fault on vCPU 0 .*\); --no-reboot/);
    expect(r.output).toContain('run-exit=0');
    expect(r.output).toMatch(/microhv: domains \{/);
    expect(r.output).not.toContain('failed');
    // A few hundred MiB of a 512 MiB guest is not zero by the time it has booted to its /init.
    expect(Number(/guest RAM written to \/tmp\/guest\.dump \(([\d.]+) MiB not zero\)/.exec(r.output)?.[1])).toBeGreaterThan(50);
    const rip = /^rip=(0xffffffff[0-9a-f]{8})$/m.exec(r.output)?.[1];
    expect(rip, 'no shutdown exit in the trace').toBeDefined();
    // Every process's top-level table shares the kernel half: more than one copy.
    expect(Number(/kernel half shared by (\d+) top-level table/.exec(r.output)?.[1])).toBeGreaterThan(1);
    expect(r.output).toMatch(new RegExp(`${rip}: PD\\[\\d+\\] at 0x[0-9a-f]+ = 0x[0-9a-f]+: present \\(2 MiB page\\): the mapping is intact in RAM`));
    const vmcb = /^vmcb: (.*)$/m.exec(r.output)?.[1] ?? '';
    expect(vmcb).toContain(`rip=${rip} `);
    expect(vmcb).toMatch(/ idtl=0 /);
    const regs = parseRegs(vmcb);
    expect(regs.get('cr3'), vmcb).toBeDefined();
    expect(regs.get('cr3')! & 0xfffn, vmcb).toBe(0n);
    // Through that CR3: the RIP (a fetch) and the kernel stack below RSP (a 4 KiB vmalloc page) are mapped.
    const after = r.output.slice(r.output.indexOf('through CR3'));
    expect(after).toMatch(new RegExp(`${rip}: PD\\[\\d+\\] .*: present \\(2 MiB page\\): the mapping is intact in RAM`));
    const push = `0x${((regs.get('rsp') ?? 0n) - 8n).toString(16)}`;
    expect(after).toMatch(new RegExp(`${push}: PT\\[\\d+\\] .*: present \\(4 KiB page\\): the mapping is intact in RAM`));
    // A reset the guest chose is never judged the emulated CPU's (which would let the block test run it again).
    expect(after).toContain("verdict: the guest's: the IDT limit 0 does not cover the #PF and #DF entries");
  });
});
