// MICROHV_TRACE=1: start-up phases, and the time of each of microhv's log lines, on stderr, in ms
// since the process started. process.uptime() is that clock in every thread, so the vCPU threads'
// lines fall on the same timeline as the main thread's.
export const tracing = process.env.MICROHV_TRACE === '1';

/** "+N ms " when tracing, else nothing: the prefix of a timed line. */
export const stamp = (): string => (tracing ? `+${(process.uptime() * 1000).toFixed(0)} ms ` : '');

/** One timed line when tracing. */
export const trace = (what: string): void => { if (tracing) console.error(`microhv: ${stamp()}${what}`); };
