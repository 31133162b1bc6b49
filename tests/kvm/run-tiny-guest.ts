// Test-host helper program: runs the tiny long-mode guest with the project's own
// KVM bindings and prints its exits as one JSON line for the test to check.
import { runTinyGuest } from '../../microhv/kvm/probe.js';

const deadlineMs = Number(process.argv[2] ?? 10_000);
const r = await runTinyGuest({ deadlineMs });
console.log(`tiny-guest-result ${JSON.stringify(r)}`);
