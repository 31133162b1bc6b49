// `node dist/images/cli.js build`: builds (or finds up to date) the guest and
// test-host images under .cache/, printing what it did and how long it took.
import { buildGuest, buildTestHost } from './build.js';

function main(argv: string[]): number {
  const [cmd] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h') {
    console.log('usage: images build [--guest-only]\n  Builds the embedded default guest and the test-host images, cached under .cache/.');
    return cmd === undefined ? 2 : 0;
  }
  if (cmd !== 'build') {
    console.error(`images: unknown command '${cmd}' (try --help)`);
    return 2;
  }
  const log = (s: string): void => console.log(s);
  if (argv.includes('--guest-only')) buildGuest(log);
  else buildTestHost(log);
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  console.error(`images: ${(err as Error).message}`);
  process.exitCode = 1;
}
