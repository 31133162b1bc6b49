// `node dist/microhv/kvm/probe-cli.js [--deadline-ms N] [--dev PATH]`: says whether this
// machine can run a guest on /dev/kvm directly. Exit 0 usable, 1 not, 2 bad usage.
import { parseArgs } from 'node:util';
import { probeKvm } from './probe.js';

let values: { 'deadline-ms'?: string; dev?: string };
try {
  ({ values } = parseArgs({ options: { 'deadline-ms': { type: 'string' }, dev: { type: 'string' } } }));
} catch (e) {
  console.error(`usage: probe-cli [--deadline-ms N] [--dev PATH]: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(2);
}
const deadlineMs = Number(values['deadline-ms'] ?? 1000);
if (!Number.isFinite(deadlineMs) || deadlineMs <= 0) {
  console.error('--deadline-ms must be a positive number');
  process.exit(2);
}
const result = await probeKvm({ deadlineMs, devKvm: values.dev ?? '/dev/kvm' });
console.log(`${result.usable ? 'usable' : 'not usable'}: ${result.reason}`);
process.exit(result.usable ? 0 : 1);
