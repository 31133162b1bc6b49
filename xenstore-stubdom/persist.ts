// Durable state of the store: an append-only journal plus periodic snapshots,
// in one state directory that survives the daemon.
//
//   <dir>/snapshot          JSON image of the whole DurableState, tagged with epoch E
//   <dir>/journal.<N>       records appended after snapshot epoch N (N >= E)
//
// Record framing: u32 length, u32 CRC-32 of the body, body (JSON), all
// little-endian. Recovery loads the snapshot, replays journal.E, journal.E+1, ...
// and stops at the first short or corrupt record: only a torn tail written by a
// process killed mid-append can be there, and no reply was sent for it.
//
// fsync policy: a reply (and a watch event) that follows a change is released
// only after the journal record holding that change has been written and
// fdatasync'ed. Changes from requests that arrive while a sync is in flight are
// batched into the next write + fdatasync (group commit). A snapshot is written
// to snapshot.tmp, fsync'ed, renamed over snapshot, and the directory fsync'ed,
// before older journals are deleted.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { PersistError } from './errors.js';
import type { Limits, QuotaName } from './config.js';
import { QUOTA_NAMES } from './config.js';
import { formatPerm, parsePerm } from './perms.js';
import type { Perms } from './perms.js';
import type { DurableState, JournalRecord, SpecialPath } from './records.js';
import { applyRecord, freshState, isSpecialPath } from './records.js';
import type { Effect } from './store.js';
import { Tree } from './store.js';
import type { JournalSink } from './daemon.js';

const SNAPSHOT = 'snapshot';
const JOURNAL_PREFIX = 'journal.';
const FRAME_HEADER = 8;
/** A record longer than this is corruption, not data: bounds recovery's allocation. */
const MAX_RECORD = 64 * 1024 * 1024;

type WireEffect = { kind: 'set'; path: string; value: string; perms: string[] } | { kind: 'rm'; path: string };
type WireRecord = Exclude<JournalRecord, { t: 'fx' } | { t: 'special' }> | { t: 'fx'; fx: WireEffect[] } | { t: 'special'; name: SpecialPath; perms: string[] };

function effectToWire(e: Effect): WireEffect {
  return e.kind === 'set' ? { kind: 'set', path: e.path, value: e.value.toString('base64'), perms: e.perms.map(formatPerm) } : e;
}

function effectFromWire(e: WireEffect): Effect {
  return e.kind === 'set' ? { kind: 'set', path: e.path, value: Buffer.from(e.value, 'base64'), perms: e.perms.map(parsePerm) } : e;
}

export function encodeRecord(r: JournalRecord): Buffer {
  let w: WireRecord;
  if (r.t === 'fx') w = { t: 'fx', fx: r.fx.map(effectToWire) };
  else if (r.t === 'special') w = { t: 'special', name: r.name, perms: r.perms.map(formatPerm) };
  else w = r;
  const body = Buffer.from(JSON.stringify(w));
  const out = Buffer.allocUnsafe(FRAME_HEADER + body.length);
  out.writeUInt32LE(body.length, 0);
  out.writeUInt32LE(crc32(body), 4);
  body.copy(out, FRAME_HEADER);
  return out;
}

export function decodeRecord(body: Buffer): JournalRecord {
  const w = JSON.parse(body.toString('utf8')) as WireRecord;
  if (w.t === 'fx') return { t: 'fx', fx: w.fx.map(effectFromWire) };
  if (w.t === 'special') return { t: 'special', name: w.name, perms: w.perms.map(parsePerm) };
  return w;
}

/** Splits a journal file into its records; stops at a torn or corrupt tail. */
export function readJournal(buf: Buffer): { records: JournalRecord[]; validBytes: number; torn: boolean } {
  const records: JournalRecord[] = [];
  let at = 0;
  while (at + FRAME_HEADER <= buf.length) {
    const len = buf.readUInt32LE(at);
    const crc = buf.readUInt32LE(at + 4);
    if (len > MAX_RECORD || at + FRAME_HEADER + len > buf.length) break;
    const body = buf.subarray(at + FRAME_HEADER, at + FRAME_HEADER + len);
    if (crc32(body) !== crc) break;
    try {
      records.push(decodeRecord(body));
    } catch {
      break;
    }
    at += FRAME_HEADER + len;
  }
  return { records, validBytes: at, torn: at !== buf.length };
}

interface SnapshotImage {
  version: 1;
  epoch: number;
  nodes: Array<[string, string, string[]]>;
  domains: Array<[number, number | null]>;
  special: Array<[string, string[]]>;
  limits: Partial<Record<QuotaName, number>>;
}

export function encodeSnapshot(state: DurableState, epoch: number): Buffer {
  const nodes: SnapshotImage['nodes'] = [];
  for (const [p, n] of state.tree.walk()) nodes.push([p, n.value.toString('base64'), n.perms.map(formatPerm)]);
  const limits: SnapshotImage['limits'] = {};
  for (const name of Object.keys(QUOTA_NAMES) as QuotaName[]) limits[name] = state.limits[QUOTA_NAMES[name]];
  const image: SnapshotImage = {
    version: 1,
    epoch,
    nodes,
    domains: [...state.domains].map(([d, r]) => [d, r.target ?? null]),
    special: [...state.special].map(([k, v]) => [k, v.map(formatPerm)]),
    limits,
  };
  return Buffer.from(JSON.stringify(image));
}

export function decodeSnapshot(buf: Buffer, defaults: Limits): { state: DurableState; epoch: number } {
  let image: SnapshotImage;
  try {
    image = JSON.parse(buf.toString('utf8')) as SnapshotImage;
  } catch (e) {
    throw new PersistError('corrupt-snapshot', 'snapshot is not valid JSON', { cause: e });
  }
  if (image.version !== 1 || !Array.isArray(image.nodes) || image.nodes[0]?.[0] !== '/') {
    throw new PersistError('corrupt-snapshot', 'snapshot has an unknown layout');
  }
  const [, rootValue, rootPerms] = image.nodes[0];
  const tree = new Tree(rootPerms.map(parsePerm));
  tree.set('/', Buffer.from(rootValue, 'base64'), rootPerms.map(parsePerm));
  for (const [p, v, perms] of image.nodes.slice(1)) tree.set(p, Buffer.from(v, 'base64'), perms.map(parsePerm));
  tree.takeEffects();
  const state = freshState(defaults);
  state.tree = tree;
  state.domains = new Map(image.domains.map(([d, t]) => [d, { target: t ?? undefined }]));
  state.special = new Map(
    image.special.filter(([k]) => isSpecialPath(k)).map(([k, v]) => [k as SpecialPath, v.map(parsePerm) as Perms]),
  );
  for (const [name, value] of Object.entries(image.limits)) {
    if (name in QUOTA_NAMES && typeof value === 'number') state.limits[QUOTA_NAMES[name as QuotaName]] = value;
  }
  return { state, epoch: image.epoch };
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function journalEpochs(dir: string): number[] {
  return fs.readdirSync(dir)
    .filter((f) => f.startsWith(JOURNAL_PREFIX) && /^\d+$/.test(f.slice(JOURNAL_PREFIX.length)))
    .map((f) => Number(f.slice(JOURNAL_PREFIX.length)))
    .sort((a, b) => a - b);
}

export interface RecoveryReport {
  epoch: number;
  records: number;
  tornTail: boolean;
  badRecords: number;
}

/** Loads snapshot and journals; throws PersistError if the directory is unusable. */
export function recover(dir: string, defaults: Limits): { state: DurableState; report: RecoveryReport } {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new PersistError('bad-state-dir', `cannot create ${dir}`, { cause: e });
  }
  let state = freshState(defaults);
  let epoch = 0;
  const snapPath = path.join(dir, SNAPSHOT);
  if (fs.existsSync(snapPath)) ({ state, epoch } = decodeSnapshot(fs.readFileSync(snapPath), defaults));
  const report: RecoveryReport = { epoch, records: 0, tornTail: false, badRecords: 0 };
  for (const e of journalEpochs(dir)) {
    if (e < epoch) continue;
    const { records, torn } = readJournal(fs.readFileSync(path.join(dir, `${JOURNAL_PREFIX}${e}`)));
    for (const r of records) {
      try {
        applyRecord(state, r);
        report.records++;
      } catch {
        report.badRecords++;
      }
    }
    report.tornTail ||= torn;
    report.epoch = e;
  }
  return { state, report };
}

interface Pending {
  epoch: number;
  bytes: Buffer;
  seq: number;
}

/**
 * The journal writer. `append` is synchronous and cheap; durability follows
 * asynchronously and `onDurable` listeners hear when a sequence number is safe.
 */
export class Journal implements JournalSink {
  appendedSeq = 0;
  durableSeq = 0;
  private epoch: number;
  private fd: number;
  private pending: Pending[] = [];
  private flushing = false;
  private recordsSinceSnapshot = 0;
  private bytesSinceSnapshot = 0;
  private snapshotting = false;
  private readonly listeners: Array<(seq: number) => void> = [];

  constructor(
    private readonly dir: string,
    private readonly state: DurableState,
    startEpoch: number,
    private readonly onFatal: (e: PersistError) => void,
    private readonly snapshotEveryRecords = 100_000,
    private readonly snapshotEveryBytes = 64 * 1024 * 1024,
  ) {
    // Start from a clean slate: a fresh snapshot at a new epoch, so no later
    // record can ever land after a torn tail.
    this.epoch = startEpoch + 1;
    this.writeSnapshotSync(this.epoch);
    this.fd = this.openJournal(this.epoch);
    this.removeOlderThan(this.epoch);
  }

  onDurable(f: (seq: number) => void): void {
    this.listeners.push(f);
  }

  append(r: JournalRecord): number {
    const bytes = encodeRecord(r);
    const seq = ++this.appendedSeq;
    this.pending.push({ epoch: this.epoch, bytes, seq });
    this.recordsSinceSnapshot++;
    this.bytesSinceSnapshot += bytes.length;
    if (!this.flushing) {
      this.flushing = true;
      // Let every request already read from the sockets append first: group commit.
      setImmediate(() => this.flushLoop());
    }
    if (!this.snapshotting && (this.recordsSinceSnapshot >= this.snapshotEveryRecords || this.bytesSinceSnapshot >= this.snapshotEveryBytes)) {
      void this.snapshot();
    }
    return seq;
  }

  /** Starts a snapshot at a new epoch; records appended from now on go to the new journal. */
  snapshot(): Promise<void> {
    if (this.snapshotting) return Promise.resolve();
    this.snapshotting = true;
    const epoch = this.epoch + 1;
    const image = encodeSnapshot(this.state, epoch);
    this.epoch = epoch;
    this.recordsSinceSnapshot = 0;
    this.bytesSinceSnapshot = 0;
    const tmp = path.join(this.dir, `${SNAPSHOT}.tmp`);
    return (async () => {
      try {
        const fh = await fs.promises.open(tmp, 'w', 0o600);
        try {
          await fh.writeFile(image);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await fs.promises.rename(tmp, path.join(this.dir, SNAPSHOT));
        fsyncDir(this.dir);
        // Older journals are now redundant only once the writer has moved past them.
        await this.waitForEpoch(epoch);
        this.removeOlderThan(epoch);
      } catch (e) {
        this.onFatal(new PersistError('io', 'snapshot failed', { cause: e }));
      } finally {
        this.snapshotting = false;
      }
    })();
  }

  /** Synchronous final flush, for an orderly shutdown. */
  closeSync(): void {
    for (const p of this.pending) {
      if (p.epoch !== this.currentFileEpoch) {
        fs.closeSync(this.fd);
        this.fd = this.openJournal(p.epoch);
        this.currentFileEpoch = p.epoch;
      }
      fs.writeSync(this.fd, p.bytes);
    }
    this.pending = [];
    fs.fdatasyncSync(this.fd);
    fs.closeSync(this.fd);
  }

  private currentFileEpoch = -1;

  private async flushLoop(): Promise<void> {
    if (this.currentFileEpoch < 0) this.currentFileEpoch = this.epoch;
    try {
      while (this.pending.length > 0) {
        const first = this.pending[0] as Pending;
        if (first.epoch !== this.currentFileEpoch) {
          // Everything of the old epoch is durable; switch files.
          fs.closeSync(this.fd);
          this.fd = this.openJournal(first.epoch);
          this.currentFileEpoch = first.epoch;
        }
        let n = 0;
        while (n < this.pending.length && (this.pending[n] as Pending).epoch === this.currentFileEpoch) n++;
        const batch = this.pending.splice(0, n);
        await writeAll(this.fd, batch.map((p) => p.bytes));
        await new Promise<void>((resolve, reject) => fs.fdatasync(this.fd, (err) => (err ? reject(err) : resolve())));
        this.durableSeq = (batch[batch.length - 1] as Pending).seq;
        for (const f of this.listeners) f(this.durableSeq);
      }
    } catch (e) {
      this.onFatal(new PersistError('io', 'journal write failed', { cause: e }));
      return;
    } finally {
      this.flushing = false;
    }
    this.epochWaiters.splice(0).forEach((w) => w());
  }

  private epochWaiters: Array<() => void> = [];

  private waitForEpoch(epoch: number): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.currentFileEpoch >= epoch || (this.pending.length === 0 && !this.flushing)) resolve();
        else this.epochWaiters.push(check);
      };
      check();
    });
  }

  private openJournal(epoch: number): number {
    const fd = fs.openSync(path.join(this.dir, `${JOURNAL_PREFIX}${epoch}`), 'a', 0o600);
    fsyncDir(this.dir);
    return fd;
  }

  private writeSnapshotSync(epoch: number): void {
    const tmp = path.join(this.dir, `${SNAPSHOT}.tmp`);
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, encodeSnapshot(this.state, epoch));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, path.join(this.dir, SNAPSHOT));
    fsyncDir(this.dir);
  }

  private removeOlderThan(epoch: number): void {
    for (const e of journalEpochs(this.dir)) {
      if (e < epoch) fs.rmSync(path.join(this.dir, `${JOURNAL_PREFIX}${e}`), { force: true });
    }
  }
}

function writeAll(fd: number, bufs: Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const go = (list: Buffer[]): void => {
      fs.writev(fd, list, (err, written) => {
        if (err) return reject(err);
        let rest = written;
        const left: Buffer[] = [];
        for (const b of list) {
          if (rest >= b.length) rest -= b.length;
          else {
            left.push(b.subarray(rest));
            rest = 0;
          }
        }
        if (left.length === 0) resolve();
        else go(left);
      });
    };
    go(bufs);
  });
}
