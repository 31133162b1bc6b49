import { describe, expect, test } from 'vitest';
import { ConsoleParser, EXIT, READY } from './markers.js';

const feedAll = (p: ConsoleParser, chunks: string[]): string => chunks.map((c) => p.feed(c)).join('');

describe('ConsoleParser', () => {
  test('drops_everything_before_ready', () => {
    const p = new ConsoleParser();
    const out = feedAll(p, ['boot noise\n', `${READY}\n`, 'hello\n']);
    expect(out).toBe('hello\n');
    expect(p.ready).toBe(true);
  });

  test('returns_exit_status_and_output_before_it', () => {
    const p = new ConsoleParser();
    const out = feedAll(p, [`${READY}\nline1\nline2 ${EXIT}42@@\n`]);
    expect(out).toBe('line1\nline2 ');
    expect(p.exitCode).toBe(42);
  });

  test('finds_markers_split_across_chunks_byte_by_byte', () => {
    const p = new ConsoleParser();
    const text = `noise${READY}\nabc\n${EXIT}7@@\ntrailing`;
    const out = feedAll(p, [...text]);
    expect(out).toBe('abc\n');
    expect(p.exitCode).toBe(7);
  });

  test('does_not_report_exit_before_marker_completes', () => {
    const p = new ConsoleParser();
    p.feed(`${READY}\nx${EXIT}1`);
    expect(p.exitCode).toBeUndefined();
    p.feed('2@@');
    expect(p.exitCode).toBe(12);
  });

  test('passes_through_text_that_only_resembles_the_marker', () => {
    const p = new ConsoleParser();
    const out = feedAll(p, [`${READY}\n`, '@@microhv-test', 'ing is fun\n', `${EXIT}x@@ still output\n`]);
    expect(out).toBe(`@@microhv-testing is fun\n${EXIT}x@@ still output\n`);
    expect(p.exitCode).toBeUndefined();
  });

  test('ignores_output_after_exit', () => {
    const p = new ConsoleParser();
    p.feed(`${READY}\n${EXIT}0@@`);
    expect(p.feed('late\n')).toBe('');
    expect(p.exitCode).toBe(0);
  });
});
