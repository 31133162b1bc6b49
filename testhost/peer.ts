// The peer: QEMU/KVM inside the test host booting the embedded default guest.
// It is what microhv is compared with, and the proof that the guest image boots.
import { GUEST_IN_TESTHOST } from '../images/build.js';

/** A raw disk image for the guest (its /dev/vda), as microhv's `--disk PATH[,readonly][,direct][,uring][,queues=N]` takes it. */
export interface GuestDisk {
  readonly path: string;
  readonly readonly?: boolean;
  /** O_DIRECT on the image (QEMU's cache=none): the host's page cache is bypassed. Not on tmpfs. */
  readonly direct?: boolean;
  /** QEMU's asynchronous I/O back end; io_uring by default with direct, a thread pool without. */
  readonly aio?: 'io_uring' | 'native' | 'threads';
  /** Request queues (virtio-blk multiqueue); 1 by default. */
  readonly queues?: number;
  /** microhv only: the block domain serves the image through its own io_uring (`--disk ...,uring`). */
  readonly uring?: boolean;
}

export interface GuestBoot {
  readonly scenario: string;
  readonly args?: readonly string[];
  readonly smp?: number;
  readonly memMiB?: number;
  readonly disk?: GuestDisk;
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
    ...(b.disk ? qemuDiskArgs(b.disk) : []),
  ].join(' ');
  return `timeout -s KILL ${Math.max(b.timeoutS ?? 240, 10)} ${qemu}`;
}

/** QEMU's arguments for the disk: a virtio-blk-pci device on the raw image, as microhv's --disk gives the guest. */
export function qemuDiskArgs(d: GuestDisk): string[] {
  const aio = d.aio ?? (d.direct ? 'io_uring' : 'threads');
  const drive = [`file=${d.path}`, 'format=raw', 'if=none', 'id=d0', `cache=${d.direct ? 'none' : 'writeback'}`, `aio=${aio}`, ...(d.readonly ? ['readonly=on'] : [])];
  return ['-drive', drive.join(','), '-device', `virtio-blk-pci,drive=d0${d.queues === undefined ? '' : `,num-queues=${d.queues}`}`];
}

/** microhv's `--disk` option for the same disk. */
export function microhvDiskArg(d: GuestDisk): string {
  return `--disk ${[d.path, ...(d.readonly ? ['readonly'] : []), ...(d.direct ? ['direct'] : []), ...(d.uring === true ? ['uring'] : []), ...(d.queues === undefined ? [] : [`queues=${d.queues}`])].join(',')}`;
}
