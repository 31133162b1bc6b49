// A vitest reporter for the test-host tests: after the run it prints one short block per failure,
// last, so that a log shown only by its tail (as CI shows it) still says what failed and why. A
// test-host error brings the last lines of the command's output and of the test host's kernel log;
// a failed expectation on a run's output brings that output's last diagnostic lines.
import type { Reporter, SerializedError, TestModule } from 'vitest/node';

const WIDTH = 200;
const cut = (line: string): string => (line.length > WIDTH ? `${line.slice(0, WIDTH - 1)}…` : line);
const lastLines = (text: unknown, n: number, keep: (l: string) => boolean = () => true): string[] =>
  typeof text === 'string' ? text.split('\n').map((l) => l.trimEnd()).filter((l) => l.trim() !== '' && keep(l)).slice(-n) : [];

/** Lines that say what a guest, microhv or fio did; the rest of a run's output is noise here. */
const diagnostic = (l: string): boolean => /microhv|run-exit|error|fault|fail|timeout|lockup|stuck|stall|panic|DOWN|kvm-trace|pt-check|=/i.test(l);

/** The lines printed for one error: its first line, then the evidence it carries. */
export function digestError(e: SerializedError): string[] {
  const out = [`  ${cut(`${e.name ?? 'Error'}${typeof e.code === 'string' ? ` ${e.code}` : ''}: ${e.message.split('\n')[0]}`)}`];
  for (const l of lastLines(e.output, 4, diagnostic)) out.push(`    output | ${cut(l)}`);
  for (const l of lastLines(e.kernelLogTail, 3)) out.push(`    kernel | ${cut(l)}`);
  // The test host's last heartbeat: a live machine, and what ran or blocked in it, or a frozen one.
  for (const l of lastLines(e.heartbeatTail, 1)) out.push(`    beat   | ${cut(l)}`);
  // QEMU's busiest threads in its last second (a hung test host's): spinning vCPUs or sleeping ones.
  if (Array.isArray(e.qemuThreads)) for (const l of (e.qemuThreads as unknown[]).slice(0, 4)) out.push(`    qemu   | ${cut(String(l))}`);
  if (e.output === undefined) for (const l of lastLines(e.actual, 10, diagnostic)) out.push(`    actual | ${cut(l)}`);
  return out;
}

/** The digest of a whole run: empty when nothing failed. */
export function digest(modules: ReadonlyArray<TestModule>, unhandled: ReadonlyArray<SerializedError>): string[] {
  const lines: string[] = [];
  const add = (where: string, errors: ReadonlyArray<SerializedError>): void => {
    if (errors.length === 0) return;
    lines.push(`✗ ${cut(where)}`);
    for (const e of errors.slice(0, 2)) lines.push(...digestError(e));
  };
  for (const m of modules) {
    const file = m.moduleId.replace(/^.*\//, '');
    add(file, m.errors());
    for (const s of m.children.allSuites()) add(`${file} > ${s.fullName} (hook)`, s.errors());
    for (const t of m.children.allTests('failed')) add(`${file} > ${t.fullName}`, t.result().errors ?? []);
  }
  add('unhandled', unhandled);
  return lines.length === 0 ? [] : ['', '── test-host failures, in short ──', ...lines];
}

export class FailureDigest implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandled: ReadonlyArray<SerializedError>): void {
    const lines = digest(modules, unhandled);
    if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
  }
}
