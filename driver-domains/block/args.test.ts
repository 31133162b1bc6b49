// The block domain's command line: defaults, every option, and the one-line refusals.
import { describe, expect, it } from 'vitest';
import { parseArgs, serialFromImage } from './args.js';

describe('block command line', () => {
  it('defaults_to_one_queue_of_256_and_a_serial_from_the_image_name', () => {
    expect(parseArgs(['--image', '/var/lib/disks/root.img', '--slot', '3'])).toEqual({
      image: '/var/lib/disks/root.img', slot: 3, readOnly: false, direct: false, uring: false, queues: 1, queueSize: 256, serial: 'root.img',
    });
  });

  it('takes_every_option', () => {
    expect(parseArgs(['--image', 'd', '--slot', '31', '--readonly', '--direct', '--no-uring', '--queues', '4', '--queue-size', '128', '--serial', 'SN 1'])).toEqual({
      image: 'd', slot: 31, readOnly: true, direct: true, uring: false, queues: 4, queueSize: 128, serial: 'SN 1',
    });
  });

  it('takes_the_last_of_uring_and_no_uring', () => {
    expect(parseArgs(['--image', 'd', '--slot', '1', '--uring'])).toMatchObject({ uring: true });
    expect(parseArgs(['--image', 'd', '--slot', '1', '--uring', '--no-uring'])).toMatchObject({ uring: false });
  });

  it('answers_help', () => {
    expect(parseArgs(['--slot', 'x', '--help'])).toBe('help');
  });

  it.each([
    [[], /--image is required/],
    [['--image', 'd'], /--slot is required/],
    [['--image', 'd', '--slot', '0'], /--slot 0: a device number on bus 0, 1\.\.31/],
    [['--image', 'd', '--slot', '3x'], /--slot 3x/],
    [['--image', 'd', '--slot', '3', '--queues', '17'], /--queues 17/],
    [['--image', 'd', '--slot', '3', '--queue-size', '100'], /--queue-size 100: a power of 2/],
    [['--image', 'd', '--slot', '3', '--serial', 'x'.repeat(21)], /--serial .*at most 20 bytes/],
    [['--image', 'd', '--slot', '3', '--serial', 'tab\there'], /--serial/],
    [['--image', 'd', '--slot'], /--slot needs a value/],
    [['--image', 'd', '--slot', '3', '--bogus'], /unknown option "--bogus"/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseArgs(argv)).toThrow(message);
  });

  it('serial_from_an_image_name_is_printable_and_at_most_20_bytes', () => {
    expect(serialFromImage('/x/a very long disk image name.raw')).toBe('a_very_long_disk_ima');
    expect(serialFromImage('/x/dïsk')).toBe('d_sk');
  });
});
