// Fuzz target (jazzer.js style: `fuzz(data)`) for the bzImage header decoder and the boot plan.
// The input overlays the setup header of a valid synthetic bzImage (so most runs get past the
// magic checks), then picks the RAM size, the initrd size and the command-line length.
// A finding is: any exception other than a BootError, or a plan that writes outside RAM or
// overlaps itself (planLinuxBoot checks that and throws a plain Error).
import { BootError } from './errors.js';
import { MiB } from './layout.js';
import { planLinuxBoot } from './linux.js';
import { fakeBzImage } from './testing.js';

const HEADER_START = 0x1f1;
const HEADER_END = 0x270;
/** One zeroed buffer that initrds are views of: the plan only reads their size. */
const INITRD_POOL = new Uint8Array(64 * MiB);

export function fuzz(data: Buffer): void {
  const image = fakeBzImage();
  const overlay = data.subarray(0, HEADER_END - HEADER_START);
  image.set(overlay, HEADER_START);
  const tail = data.subarray(overlay.length);
  const ramBytes = (32 + (tail[0] ?? 0) * 2) * MiB; // 32 MiB (rejected) .. 542 MiB
  const initrd = INITRD_POOL.subarray(0, (tail[1] ?? 0) * 257 * 1024); // 0 .. ~64 MiB
  const cmdline = 'x'.repeat((tail[2] ?? 0) * 16);
  const vcpus = tail[3] ?? 1;
  try {
    planLinuxBoot({ kernel: image, initrd, cmdline, ramBytes, vcpus });
  } catch (e) {
    if (!(e instanceof BootError)) throw e;
  }
}
