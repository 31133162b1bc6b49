// The peer: QEMU/KVM inside the test host booting the embedded default guest.
// It is what microhv is compared with, and the proof that the guest image boots.
import { GUEST_IN_TESTHOST } from '../images/build.js';

export interface GuestBoot {
  readonly scenario: string;
  readonly args?: readonly string[];
  readonly smp?: number;
  readonly memMiB?: number;
  /** Inner timeout, so a hung guest ends before the test host's own timeout. */
  readonly timeoutS?: number;
}

/** Kernel command line of the embedded guest for a scenario. */
export function guestCmdline(b: GuestBoot): string {
  const args = b.args?.length ? ` microhv.args=${b.args.join(',')}` : '';
  return `console=ttyS0 panic=-1 quiet microhv.scenario=${b.scenario}${args}`;
}

/** A shell command, run inside the test host, that boots the guest under QEMU/KVM with its console on stdout. */
export function qemuGuestCommand(b: GuestBoot): string {
  const qemu = [
    'qemu-system-x86_64', '-accel', 'kvm', '-cpu', 'host', '-smp', String(b.smp ?? 1), '-m', String(b.memMiB ?? 512),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-serial', 'stdio',
    '-kernel', `${GUEST_IN_TESTHOST}/vmlinuz`, '-initrd', `${GUEST_IN_TESTHOST}/initramfs.cpio`,
    '-append', `'${guestCmdline(b)}'`,
  ].join(' ');
  return `timeout -s KILL ${Math.max(b.timeoutS ?? 240, 10)} ${qemu}`;
}
