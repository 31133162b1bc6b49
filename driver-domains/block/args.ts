// The block domain's command line (main.ts): the disk and the PCI function it is. Every
// value is checked here, so a bad one ends the process at once with one line and status 2.
import { basename } from 'node:path';
import { DomainProcessError } from '../runtime/process-errors.js';
import { ID_BYTES } from './config.js';

export const USAGE = 'usage: main.js --image PATH --slot N [--readonly] [--direct] [--uring | --no-uring] [--queues N] [--queue-size N] [--serial TEXT]';

export interface Args {
  readonly image: string;
  /** PCI device number on bus 0 (1..31) of the function this disk is. */
  readonly slot: number;
  readonly readOnly: boolean;
  readonly direct: boolean;
  /**
   * Serve the image through the domain's io_uring (--uring), or through libuv's thread pool (the
   * default, --no-uring): a guest's fio job was seen to stall for good on the io_uring path in the
   * test host, so the ring stays opt-in until that is understood.
   */
  readonly uring: boolean;
  readonly queues: number;
  readonly queueSize: number;
  readonly serial: string;
}

/** The GET_ID serial from the image's file name: printable ASCII, at most ID_BYTES bytes. */
export function serialFromImage(image: string): string {
  const name = [...basename(image)].map((ch) => (ch >= '!' && ch <= '~' ? ch : '_')).join('');
  return (name === '' ? 'microhv-block' : name).slice(0, ID_BYTES);
}

function intArg(flag: string, value: string, ok: (n: number) => boolean, what: string): number {
  const n = /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || !ok(n)) throw new DomainProcessError('USAGE', `${flag} ${value}: ${what}`);
  return n;
}

/** The command line; 'help' for --help. Throws DomainProcessError('USAGE') with a one-line reason. */
export function parseArgs(argv: readonly string[]): Args | 'help' {
  let image: string | undefined;
  let slot: number | undefined;
  let serial: string | undefined;
  let readOnly = false;
  let direct = false;
  let uring = false;
  let queues = 1;
  let queueSize = 256;
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] ?? '';
    if (flag === '--readonly') {
      readOnly = true;
      continue;
    }
    if (flag === '--direct') {
      direct = true;
      continue;
    }
    if (flag === '--uring' || flag === '--no-uring') {
      uring = flag === '--uring';
      continue;
    }
    const value = argv[++i];
    const known = ['--image', '--slot', '--queues', '--queue-size', '--serial'];
    if (!known.includes(flag)) throw new DomainProcessError('USAGE', `unknown option ${JSON.stringify(flag)}; ${USAGE}`);
    if (value === undefined) throw new DomainProcessError('USAGE', `${flag} needs a value`);
    switch (flag) {
      case '--image':
        if (value === '') throw new DomainProcessError('USAGE', '--image needs a path');
        image = value;
        break;
      case '--slot': slot = intArg(flag, value, (n) => n >= 1 && n <= 31, 'a device number on bus 0, 1..31'); break;
      case '--queues': queues = intArg(flag, value, (n) => n >= 1 && n <= 16, 'request queues, 1..16'); break;
      case '--queue-size': queueSize = intArg(flag, value, (n) => n >= 2 && n <= 1024 && (n & (n - 1)) === 0, 'a power of 2 in 2..1024'); break;
      case '--serial':
        if (new TextEncoder().encode(value).length > ID_BYTES || [...value].some((ch) => ch < ' ' || ch > '~')) {
          throw new DomainProcessError('USAGE', `--serial ${JSON.stringify(value)}: printable ASCII, at most ${ID_BYTES} bytes`);
        }
        serial = value;
        break;
    }
  }
  if (image === undefined) throw new DomainProcessError('USAGE', `--image is required; ${USAGE}`);
  if (slot === undefined) throw new DomainProcessError('USAGE', `--slot is required; ${USAGE}`);
  return { image, slot, readOnly, direct, uring, queues, queueSize, serial: serial ?? serialFromImage(image) };
}
