// jazzer.js fuzz target for the frame decoder and everything behind it: the
// input is a byte stream from one hostile client (raw, or re-framed from
// records), cut into chunks at places the fuzzer chooses, decoded, and fed to
// a daemon built from the test fakes.
// A finding is: an exception escaping, a frame over PAYLOAD_MAX, a request
// without exactly one reply carrying its req_id, or an internal error (EIO
// from a handler bug, which the daemon logs).
import { FakeSink, MemoryJournal } from './testing.js';
import { Xenstored } from './daemon.js';
import { DEFAULT_LIMITS } from './config.js';
import { freshState } from './records.js';
import { FrameDecoder, Op, PAYLOAD_MAX, encodeFrame } from './wire.js';

/**
 * Structured mode: records separated by 0xff, each `type, tx_id, payload...`,
 * re-encoded with correct lengths, so byte-level mutations reach the handlers
 * instead of mostly breaking the framing.
 */
function structured(data: Buffer): Buffer {
  const frames: Buffer[] = [];
  let start = 0;
  let reqId = 1;
  while (start < data.length) {
    let end = data.indexOf(0xff, start);
    if (end < 0) end = data.length;
    const rec = data.subarray(start, end);
    if (rec.length >= 2) frames.push(encodeFrame(rec[0] ?? 0, reqId++, rec[1] ?? 0, rec.subarray(2, 2 + PAYLOAD_MAX)));
    start = end + 1;
  }
  return Buffer.concat(frames);
}

export function fuzz(data: Buffer): void {
  const internal: string[] = [];
  const d = new Xenstored(freshState(DEFAULT_LIMITS), new MemoryJournal(), { log: (m) => { if (m.startsWith('internal error')) internal.push(m); } });
  d.state.domains.set(3, { target: undefined });
  const sinks = [new FakeSink(), new FakeSink()];
  const sessions = [d.openSession({ domid: 0 }, sinks[0] as FakeSink), d.openSession({ domid: 3 }, sinks[1] as FakeSink)];
  const dec = new FrameDecoder();
  // First byte: chunk size; second: which session (privileged or not) speaks,
  // and whether the rest is a raw stream or structured records.
  const chunk = Math.max(1, data[0] ?? 1);
  const who = (data[1] ?? 0) & 1;
  const stream = ((data[1] ?? 0) & 2) !== 0 ? structured(data.subarray(2)) : data.subarray(2);
  const session = sessions[who];
  const sink = sinks[who] as FakeSink;
  if (session === undefined) return;
  for (let at = 0; at < stream.length; at += chunk) {
    dec.push(Buffer.from(stream.subarray(at, at + chunk)));
    for (;;) {
      const r = dec.next();
      if (r.kind === 'need-more') break;
      if (r.kind === 'violation') {
        if (r.len <= PAYLOAD_MAX) throw new Error(`violation for legal length ${r.len}`);
        return;
      }
      if (r.frame.payload.length > PAYLOAD_MAX) throw new Error('frame over PAYLOAD_MAX');
      const before = sink.frames.length;
      d.handle(session, r.frame);
      const replies = sink.frames.slice(before).filter((f) => f.kind === 'reply');
      if (replies.length !== 1) throw new Error(`${replies.length} replies to one request`);
      const reply = replies[0];
      if (reply?.frame.header.reqId !== r.frame.header.reqId) throw new Error('reply carries another req_id');
      if (reply.frame.header.type !== r.frame.header.type && reply.frame.header.type !== Op.ERROR) throw new Error('reply of another type');
      if (internal.length > 0) throw new Error(`internal error: ${internal.join('; ')}`);
    }
  }
}
