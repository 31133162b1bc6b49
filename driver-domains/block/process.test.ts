// The block domain process (main.ts) against a fake microhv: the control conversation with
// real fds (guest RAM and state memfds, an ioreq endpoint, doorbell and MSI-X eventfds), a
// guest driver that reaches the BAR through the ioreq channel and rings doorbells as KVM's
// ioeventfds would, kill -9 with requests in flight and a successor on the same fds, and
// hostile start-ups. Needs the build (npx tsc -p .); no KVM, no privileges.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ControlServer, type Connection } from '../../idl/control/channel.js';
import type { Frame } from '../../idl/control/framing.js';
import { Reactor } from '../../idl/control/reactor.js';
import { AddressSpace, Capability, ErrorCode, IntxRequestLayout, Role, type RegisterIoreqRange } from '../../idl/generated/control.js';
import { IoreqApplied, IoreqDir, IoreqSlot, IoreqState, IoreqType } from '../../idl/generated/ioreq.js';
import { VirtioBlkReqHeader, VirtioPciCommonCfg as C, VirtqState } from '../../idl/generated/virtio.js';
import { SharedBytes } from '../../idl/runtime/shared.js';
import { IoreqClient, fromBig, toBig } from '../../microhv/ioreq/client.js';
import { SANDBOX_ENV } from '../../microhv/domains/sandbox.js';
import { EndpointTable, createEndpoint, slotPageBytes, type EndpointFds } from '../../microhv/ioreq/endpoints.js';
import * as sys from '../../microhv/sys/index.js';
import { entryPoint } from '../../microhv/worker-path.js';
import { COMMAND_STATED } from '../runtime/process-common.js';
import { STATUS } from '../virtio/device.js';
import { COMMON_CFG, DEVICE_CFG_OFFSET, NOTIFY_CFG_OFFSET, NOTIFY_OFF_MULTIPLIER, notifyOffset } from '../virtio/pci.js';
import { FakeGuestMemory, VirtioPciDriver, type Bar, type DriverQueue } from '../virtio/testing.js';
import { SECTOR, WRITEBACK_OFFSET } from './config.js';
import { BlockState } from './persist.js';
import { BLOCK_REGION_BASE, regionBytes } from './region.js';
import { VIRTIO_BLK_S, VIRTIO_BLK_T } from './request.js';
import { ALL_FEATURES, firstDiff, pattern } from './testing.js';

const RAM_BYTES = 16 << 20;
const STATE_BYTES = 256 << 10;
const IMAGE_BYTES = 8 << 20;
const VCPUS = 2;
const SLOT = 5;
const RUNNING = STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK;
const RW = sys.consts.PROT_READ | sys.consts.PROT_WRITE;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}
const efd = (): number => sys.eventfd(0, sys.consts.EFD_CLOEXEC | sys.consts.EFD_NONBLOCK);

/** The script microhv starts: the bundle when the build made one. */
function mainJs(): string {
  return entryPoint('driver-domains/block/main');
}

interface Instance {
  readonly generation: number;
  readonly child: ChildProcess;
  readonly conn: Connection;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once the instance bound every doorbell (its last request). */
  readonly ready: Promise<void>;
  stderr: string;
}

/**
 * microhv's side of one block domain, as control.proto specifies it: the same memfds,
 * endpoint and eventfds for every instance, a state region that is fresh only the first time.
 */
class FakeMicrohv {
  readonly reactor = new Reactor();
  readonly server: ControlServer;
  readonly ramFd = sys.memfdCreate('test-ram', sys.consts.MFD_CLOEXEC | sys.consts.MFD_ALLOW_SEALING);
  readonly stateFd = sys.memfdCreate('test-state', sys.consts.MFD_CLOEXEC | sys.consts.MFD_ALLOW_SEALING);
  readonly endpoint: EndpointFds = createEndpoint('test-blk', VCPUS).fds;
  readonly table = new EndpointTable();
  readonly doorbells: number[];
  readonly msix: number[];
  /** The function's INTx request page (mapped here as the pci domain would) and its eventfd. */
  readonly intxPage = sys.memfdCreate('test-intx', sys.consts.MFD_CLOEXEC | sys.consts.MFD_ALLOW_SEALING);
  readonly intxChanged = efd();
  readonly intxWord: Uint32Array;
  /** The page's command word, which the pci domain would write. */
  readonly commandWord: Uint32Array;
  /** Requests as they came, for checks on what the domain asked. */
  readonly ranges: RegisterIoreqRange[] = [];
  readonly binds: Array<{ addr: bigint; length: number; space: AddressSpace }> = [];
  readonly msixAsks: Array<{ guestId: number; slot: number }> = [];
  private stateHanded = false;
  private generation = 1;
  private current: { inst: Instance; bound: number; onReady: () => void } | undefined;

  constructor(public args: readonly string[], readonly queues = 1, readonly stateBytes = STATE_BYTES) {
    this.server = new ControlServer(this.reactor, { onFrame: (c, f) => this.onFrame(c, f) });
    sys.ftruncate(this.ramFd, RAM_BYTES);
    sys.ftruncate(this.stateFd, stateBytes);
    sys.addSeals(this.stateFd, sys.consts.F_SEAL_SHRINK | sys.consts.F_SEAL_GROW);
    this.table.set(0, this.endpoint);
    this.doorbells = Array.from({ length: queues }, efd);
    this.msix = Array.from({ length: queues + 1 }, efd);
    sys.ftruncate(this.intxPage, 4096);
    const page = sys.mmap(4096, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, this.intxPage, 0).buffer;
    this.intxWord = new Uint32Array(page, 0, 1);
    this.commandWord = new Uint32Array(page, IntxRequestLayout.INTX_REQUEST_COMMAND_OFFSET, 1);
    // As the pci domain states it once the driver has enabled the function (memory decoding, bus mastering).
    Atomics.store(this.commandWord, 0, (COMMAND_STATED | 0x6) >>> 0);
  }

  /** `leak`: fds passed as 5, 6, ... (what a careless spawner would leak); `env`: added to the environment. */
  spawn(opts: { leak?: number[]; env?: Record<string, string> } = {}): Instance {
    const [mine, theirs] = sys.socketpair(sys.consts.AF_UNIX, sys.consts.SOCK_STREAM | sys.consts.SOCK_CLOEXEC, 0);
    const [fence, fenceEnd] = sys.pipe2(sys.consts.O_CLOEXEC);
    // As microhv spawns a domain: fd 3 the control socket, fd 4 an I/O fence, an environment of PATH only.
    const child = spawn(process.execPath, [mainJs(), ...this.args], {
      stdio: ['ignore', 'ignore', 'pipe', theirs, fenceEnd, ...(opts.leak ?? [])], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...opts.env },
    });
    for (const fd of [theirs, fence, fenceEnd]) sys.close(fd);
    const conn = this.server.adopt(mine);
    conn.capabilities = new Set([Capability.CAPABILITY_STATE_REGION, Capability.CAPABILITY_MAP_GUEST_MEMORY, Capability.CAPABILITY_IOREQ_SERVER, Capability.CAPABILITY_IOEVENTFD, Capability.CAPABILITY_IRQFD]);
    let onReady = (): void => undefined;
    const ready = new Promise<void>((resolve) => { onReady = resolve; });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
    const inst: Instance = { generation: this.generation++, child, conn, exited, ready, stderr: '' };
    child.stderr?.on('data', (d: Buffer) => { inst.stderr += d.toString(); });
    this.current = { inst, bound: 0, onReady };
    conn.send({ case: 'hello', value: {
      protocolVersion: 1, domainId: 9, role: Role.ROLE_BLOCK, capabilities: [...conn.capabilities], guestIds: [1],
      generation: inst.generation, heartbeatIntervalMs: 1000,
    } });
    return inst;
  }

  /** Spawns and waits until the instance holds every resource (or fails with its stderr). */
  async start(): Promise<Instance> {
    const inst = this.spawn();
    await Promise.race([inst.ready, inst.exited.then(() => { throw new Error(`block domain exited during start-up:\n${inst.stderr}`); })]);
    return inst;
  }

  async kill(inst: Instance): Promise<void> {
    inst.child.kill('SIGKILL');
    await inst.exited;
    inst.conn.close();
  }

  private onFrame(c: Connection, f: Frame): void {
    for (const fd of f.fds) sys.close(fd);
    const cur = this.current;
    if (cur === undefined || cur.inst.conn !== c) return;
    const body = f.body;
    switch (body.case) {
      case 'helloReply':
        return;
      case 'getStateRegion': {
        const fresh = !this.stateHanded;
        this.stateHanded = true;
        return c.reply(f, { case: 'stateRegionReply', value: { memfd: { index: 0 }, size: BigInt(this.stateBytes), fresh } }, [this.stateFd]);
      }
      case 'mapGuestMemory':
        if (body.value.guestId !== 1) return c.replyError(f, ErrorCode.ERROR_CODE_NO_SUCH_GUEST, 'guest 1 only');
        return c.reply(f, { case: 'mapGuestMemoryReply', value: { guestId: 1, regions: [{ gpa: 0n, size: BigInt(RAM_BYTES), offset: 0n, memfd: { index: 0 } }] } }, [this.ramFd]);
      case 'getMsixEventfds':
        this.msixAsks.push({ ...body.value });
        if (body.value.slot !== SLOT) return c.replyError(f, ErrorCode.ERROR_CODE_NOT_PERMITTED, `slot ${body.value.slot} is not this backend's`);
        return c.reply(f, { case: 'msixEventfdsReply', value: { eventfds: this.msix.map((_, i) => ({ index: i })) } }, this.msix);
      case 'getIntxRequest':
        if (body.value.slot !== SLOT) return c.replyError(f, ErrorCode.ERROR_CODE_NOT_PERMITTED, `slot ${body.value.slot} is not this backend's`);
        return c.reply(f, { case: 'intxRequestReply', value: { page: { index: 0 }, changed: { index: 1 } } }, [this.intxPage, this.intxChanged]);
      case 'registerIoreqRange': {
        this.ranges.push({ ...body.value });
        const e = this.endpoint;
        const ref = (i: number): { index: number } => ({ index: i });
        return c.reply(f, { case: 'ioreqRangeReply', value: {
          rangeId: 1, slots: ref(0), vcpuCount: e.vcpus,
          toServer: e.toServer.map((_, v) => ref(1 + v)), toVcpu: e.toVcpu.map((_, v) => ref(1 + e.vcpus + v)),
          bufferedRing: ref(1 + 2 * e.vcpus), bufferedNotify: ref(2 + 2 * e.vcpus),
        } }, [e.slots, ...e.toServer, ...e.toVcpu, e.ring, e.ringNotify]);
      }
      case 'bindIoeventfd': {
        const b = body.value;
        this.binds.push({ addr: b.addr, length: b.length, space: b.space });
        const q = (Number(b.addr) - NOTIFY_CFG_OFFSET) / NOTIFY_OFF_MULTIPLIER;
        const fd = this.doorbells[q];
        if (fd === undefined) return c.replyError(f, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `no queue notifies at 0x${b.addr.toString(16)}`);
        c.reply(f, { case: 'ioeventfdReply', value: { eventfd: { index: 0 } } }, [fd]);
        if (++cur.bound === this.queues) cur.onReady();
        return;
      }
      default:
        if (f.envelope.id !== 0) c.replyError(f, ErrorCode.ERROR_CODE_UNSUPPORTED, `${body.case} is not part of this test`);
    }
  }

  async stop(): Promise<void> {
    this.server.close();
    await this.reactor.stop();
  }
}

/** A request the guest made: where its data and status are. */
interface Req { readonly head: number; readonly sector: number; readonly dataGpa: number; readonly len: number; readonly statusGpa: number; completions: number }

/**
 * The guest: RAM is the fake microhv's memfd, mapped here too; the BAR is reached through the
 * ioreq endpoint from vCPU 0 (blocking, as a vCPU does); queue notifications ring the doorbell
 * eventfds, as KVM's ioeventfd does for a write at the notify address.
 */
class Guest {
  readonly fake: FakeGuestMemory;
  readonly driver: VirtioPciDriver;
  readonly client: IoreqClient;
  queues: DriverQueue[] = [];
  readonly outstanding = new Map<number, Req>();
  readonly anomalies: string[] = [];
  private deadline = 0;

  constructor(readonly mh: FakeMicrohv) {
    const ram = sys.mmap(RAM_BYTES, RW, sys.consts.MAP_SHARED, mh.ramFd, 0);
    this.fake = new FakeGuestMemory([{ gpa: 0, size: RAM_BYTES }], () => ({ buffer: ram.buffer, hostAlign: 4096 }));
    this.client = new IoreqClient(mh.table, 0, () => Date.now() > this.deadline);
    const bar: Bar = {
      read: (offset, size) => {
        const data = new Uint8Array(size);
        this.roundTrip(offset, 'read', data);
        return toBig(data);
      },
      write: (offset, size, value) => {
        if (offset >= NOTIFY_CFG_OFFSET) {
          sys.eventfdWrite(mh.doorbells[(offset - NOTIFY_CFG_OFFSET) / NOTIFY_OFF_MULTIPLIER]!, 1n);
          return;
        }
        const data = new Uint8Array(size);
        fromBig(value, data);
        this.roundTrip(offset, 'write', data);
      },
    };
    this.driver = new VirtioPciDriver(bar, this.fake);
  }

  private roundTrip(offset: number, dir: 'read' | 'write', data: Uint8Array): void {
    this.deadline = Date.now() + 5000;
    if (this.client.roundTrip(0, 'mmio', offset, dir, data) !== 'answered') throw new Error(`BAR ${dir} at 0x${offset.toString(16)}: no answer within 5 s`);
  }

  /** `msix` false: a driver that leaves MSI-X off (Linux with pci=nomsi), every vector NO_VECTOR, interrupts through INTx. */
  init(queues = 1, msix = true): void {
    const r = this.driver.init(ALL_FEATURES, queues, { msix });
    this.queues = r.queues;
  }

  /** A request of `type` on sector `sector`, `len` data bytes (written from `bytes` for OUT); not yet kicked. */
  post(type: number, sector: number, len: number, bytes?: Uint8Array, q = 0): Req {
    const dq = this.queues[q]!;
    const hdr = this.fake.alloc(VirtioBlkReqHeader.SIZE, 16);
    const h = this.fake.at(hdr, VirtioBlkReqHeader.SIZE);
    VirtioBlkReqHeader.write(h.mem, h.at, { type, ioprio: 0, sector: BigInt(sector) });
    const dataGpa = this.fake.alloc(len, 4096);
    if (bytes !== undefined) this.fake.write(dataGpa, bytes);
    const statusGpa = this.fake.alloc(1, 1);
    this.fake.write(statusGpa, Uint8Array.of(0xff));
    const head = dq.add([
      { gpa: hdr, len: VirtioBlkReqHeader.SIZE, writable: false },
      { gpa: dataGpa, len, writable: type !== VIRTIO_BLK_T.OUT },
      { gpa: statusGpa, len: 1, writable: true },
    ]);
    const req: Req = { head, sector, dataGpa, len, statusGpa, completions: 0 };
    if (this.outstanding.has(head)) this.anomalies.push(`head ${head} reused while outstanding`);
    this.outstanding.set(head, req);
    dq.pushHead(head);
    return req;
  }

  /** Collects used elements: each must answer one outstanding request, once. */
  collect(q = 0): Req[] {
    const out: Req[] = [];
    for (const e of this.queues[q]!.takeUsed()) {
      const r = this.outstanding.get(e.id);
      if (r === undefined) {
        this.anomalies.push(`used element for head ${e.id}, which is not outstanding`);
        continue;
      }
      this.outstanding.delete(e.id);
      r.completions++;
      out.push(r);
    }
    return out;
  }

  status(r: Req): number {
    return this.fake.read(r.statusGpa, 1)[0]!;
  }

  data(r: Req): Uint8Array {
    return this.fake.read(r.dataGpa, r.len);
  }
}

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'microhv-blockproc-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function image(name: string, bytes = IMAGE_BYTES): string {
  const path = join(dir, name);
  writeFileSync(path, new Uint8Array(bytes));
  return path;
}

async function withMicrohv(mh: FakeMicrohv, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } finally {
    await mh.stop();
  }
}

// Every test runs with the image on the domain's io_uring (--uring) and on libuv's pool (the default).
describe.each([
  { mode: 'io_uring', extra: ['--uring'] },
  { mode: 'thread pool', extra: [] as string[] },
])('block domain process ($mode)', ({ mode, extra }) => {
  test('guest_sets_up_the_device_through_the_bar_and_a_write_then_read_reach_the_image', async () => {
    const path = image('a.img');
    const mh = new FakeMicrohv(['--image', path, '--slot', String(SLOT), ...extra]);
    const inst = await mh.start();
    await withMicrohv(mh, async () => {
      const guest = new Guest(mh);
      try {
        // What the domain asked for: its BAR from offset 0, its doorbell at the notify offset, its own slot's vectors.
        expect(mh.ranges).toEqual([{ guestId: 1, space: AddressSpace.ADDRESS_SPACE_MMIO, start: 0n, length: 0x4000n, bufferedWrites: false }]);
        expect(mh.binds).toEqual([{ addr: BigInt(notifyOffset(0)), length: 2, space: AddressSpace.ADDRESS_SPACE_MMIO }]);
        expect(mh.msixAsks).toEqual([{ guestId: 1, slot: SLOT }]);

        guest.init();
        expect(guest.driver.status()).toBe(RUNNING);
        expect(guest.driver.config(0, 8)).toBe(BigInt(IMAGE_BYTES / SECTOR)); // capacity
        guest.driver.setCommon(C.OFFSET.queueSelect, 2, 0);
        expect(guest.driver.common(C.OFFSET.queueMsixVector, 2)).toBe(1n);

        const bytes = pattern(16, 8, 1);
        const w = guest.post(VIRTIO_BLK_T.OUT, 16, bytes.byteLength, bytes);
        guest.queues[0]!.kick();
        await waitFor('the write to complete', () => guest.queues[0]!.usedIdx() === 1);
        expect(guest.collect()).toEqual([w]);
        expect(guest.status(w)).toBe(VIRTIO_BLK_S.OK);
        // The completion was signalled on queue 0's vector (1), nothing on the config vector (0).
        await waitFor('the MSI-X eventfd of vector 1', () => sys.eventfdTryRead(mh.msix[1]!) > 0n);
        expect(sys.eventfdTryRead(mh.msix[0]!)).toBe(0n);
        expect([mh.intxWord[0], sys.eventfdTryRead(mh.intxChanged)]).toEqual([0, 0n]);
        expect(firstDiff(readFileSync(path).subarray(16 * SECTOR, 24 * SECTOR), bytes)).toBe(-1);

        const r = guest.post(VIRTIO_BLK_T.IN, 16, bytes.byteLength);
        guest.queues[0]!.kick();
        await waitFor('the read to complete', () => guest.queues[0]!.usedIdx() === 2);
        expect(guest.collect()).toEqual([r]);
        expect(guest.status(r)).toBe(VIRTIO_BLK_S.OK);
        expect(firstDiff(guest.data(r), bytes)).toBe(-1);

        const id = guest.post(VIRTIO_BLK_T.GET_ID, 0, 20);
        guest.queues[0]!.kick();
        await waitFor('GET_ID', () => guest.queues[0]!.usedIdx() === 3);
        expect(new TextDecoder().decode(guest.data(id)).replace(/\0+$/, '')).toBe('a.img');

        const hb = await inst.conn.request({ case: 'heartbeat', value: { seq: 5n } });
        expect(hb.body).toEqual({ case: 'heartbeatReply', value: { seq: 5n, inflight: 0 } });
        expect(guest.anomalies).toEqual([]);

        // libuv's pool was sized before it started: the domain exec'd itself with the variable set.
        const pid = inst.child.pid!;
        expect(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')).toContain('UV_THREADPOOL_SIZE=16');
        expect(inst.stderr).not.toMatch(/thread pool left at its default/);
        // The image went through the ring (one io_uring fd, the domain's) or through the pool (none).
        const rings = readdirSync(`/proc/${pid}/fd`).filter((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`) === 'anon_inode:[io_uring]'; } catch { return false; } });
        expect(rings).toHaveLength(mode === 'io_uring' ? 1 : 0);
        // The ring holds the I/O fence (fd 4, a pipe) as its second file, so it outlives a kill until the ring is gone.
        if (mode === 'io_uring') expect(readFileSync(`/proc/${pid}/fdinfo/${rings[0]}`, 'utf8')).toMatch(/UserFiles:\s+2\n\s+0: .*\.img\n\s+1: pipe:\[\d+\]/);
        expect(inst.stderr).toContain(`, ${mode}) generation 1`);
        expect(inst.stderr).not.toMatch(/no io_uring/);
      } finally {
        await mh.kill(inst);
      }
    });
  });

  test('a_driver_without_msix_gets_its_completions_through_the_intx_request_which_the_isr_read_releases', async () => {
    const mh = new FakeMicrohv(['--image', image('x.img'), '--slot', String(SLOT), ...extra]);
    const inst = await mh.start();
    await withMicrohv(mh, async () => {
      const guest = new Guest(mh);
      try {
        guest.init(1, false);
        expect(mh.intxWord[0]).toBe(0);
        const bytes = pattern(8, 8, 3);
        const w = guest.post(VIRTIO_BLK_T.OUT, 8, bytes.byteLength, bytes);
        guest.queues[0]!.kick();
        await waitFor('the INTx request', () => mh.intxWord[0] === 1);
        expect(sys.eventfdTryRead(mh.intxChanged)).toBe(1n);
        expect(guest.collect()).toEqual([w]);
        // No vector was signalled, and reading the ISR (queue interrupt) releases the pin.
        expect(mh.msix.map((fd) => sys.eventfdTryRead(fd))).toEqual([0n, 0n]);
        expect(guest.driver.isr()).toBe(1);
        expect(mh.intxWord[0]).toBe(0);
        expect(sys.eventfdTryRead(mh.intxChanged)).toBe(1n);
        expect(guest.driver.isr()).toBe(0);
        // A second completion asserts it again.
        guest.post(VIRTIO_BLK_T.IN, 8, bytes.byteLength);
        guest.queues[0]!.kick();
        await waitFor('the INTx request again', () => mh.intxWord[0] === 1);
        expect(guest.anomalies).toEqual([]);
      } finally {
        await mh.kill(inst);
      }
    });
  });

  test('no_request_is_taken_while_the_pci_domain_states_bus_master_enable_clear_and_it_is_once_it_is_set', async () => {
    const path = image('m.img');
    const mh = new FakeMicrohv(['--image', path, '--slot', String(SLOT), ...extra]);
    // Memory decoding on, bus mastering off: the driver has not called pci_set_master yet (or cleared it).
    Atomics.store(mh.commandWord, 0, (COMMAND_STATED | 0x2) >>> 0);
    const inst = await mh.start();
    await withMicrohv(mh, async () => {
      const guest = new Guest(mh);
      try {
        guest.init();
        const bytes = pattern(24, 8, 5);
        const w = guest.post(VIRTIO_BLK_T.OUT, 24, bytes.byteLength, bytes);
        guest.queues[0]!.kick();
        await sleep(300);
        // Untouched: not completed, and the image still holds zeros where the write would go.
        expect(guest.queues[0]!.usedIdx()).toBe(0);
        expect(readFileSync(path).subarray(24 * SECTOR, 32 * SECTOR).every((b) => b === 0)).toBe(true);
        expect(inst.stderr).toMatch(/bus_master_off \(#1\): queue 0: requests wait until the driver sets Bus Master Enable/);
        // The driver sets Bus Master Enable; the pci domain states it; no further kick is needed.
        Atomics.store(mh.commandWord, 0, (COMMAND_STATED | 0x6) >>> 0);
        await waitFor('the write to complete', () => guest.queues[0]!.usedIdx() === 1);
        expect(guest.collect()).toEqual([w]);
        expect(guest.status(w)).toBe(VIRTIO_BLK_S.OK);
        expect(firstDiff(readFileSync(path).subarray(24 * SECTOR, 32 * SECTOR), bytes)).toBe(-1);
        expect(guest.anomalies).toEqual([]);
      } finally {
        await mh.kill(inst);
      }
    });
  });

  test('platform_reset_resets_the_device_as_a_status_0_write_and_is_acknowledged', async () => {
    const mh = new FakeMicrohv(['--image', image('r.img'), '--slot', String(SLOT), ...extra]);
    const inst = await mh.start();
    await withMicrohv(mh, async () => {
      const guest = new Guest(mh);
      try {
        guest.init();
        expect(guest.driver.status()).toBe(RUNNING);
        const reply = await inst.conn.request({ case: 'resetDevice', value: {} });
        expect(reply.body.case).toBe('ack');
        expect(guest.driver.status()).toBe(0);
        guest.driver.setCommon(C.OFFSET.queueSelect, 2, 0);
        expect(guest.driver.common(C.OFFSET.queueEnable, 2)).toBe(0n);
        // The guest's next boot finds a device it can set up again.
        guest.init();
        expect(guest.driver.status()).toBe(RUNNING);
      } finally {
        await mh.kill(inst);
      }
    });
  });

  test('kill_9_with_requests_in_flight_then_a_successor_completes_each_exactly_once_with_the_data', async () => {
    const path = image('k.img');
    const mh = new FakeMicrohv(['--image', path, '--slot', String(SLOT), ...extra]);
    let inst = await mh.start();
    await withMicrohv(mh, async () => {
      const guest = new Guest(mh);
      try {
        guest.init();
        // Writethrough: every write waits for its fdatasync, which keeps requests in flight long enough to be killed among.
        guest.driver.bar.write(DEVICE_CFG_OFFSET + WRITEBACK_OFFSET, 1, 0n);
        const dq = guest.queues[0]!;
        const count = 64;
        const sectors = 64; // 32 KiB each
        const writes: Req[] = [];
        for (let i = 0; i < count; i++) writes.push(guest.post(VIRTIO_BLK_T.OUT, i * sectors, sectors * SECTOR, pattern(i * sectors, sectors, 2)));
        // The device's fetch cursor for queue 0, in the state region: it moves once a chain is recorded in flight.
        const region = new SharedBytes(sys.mmap(regionBytes({}), RW, sys.consts.MAP_SHARED, mh.stateFd, 0).buffer);
        const q0 = new BlockState(region, BLOCK_REGION_BASE, 1, 256).queueRef(0);
        dq.kick();
        // Spin, then kill at once: the writes just taken wait for their fdatasync, far longer than this takes.
        const end = Date.now() + 5000;
        while (VirtqState.loadFetched(q0.m, q0.base) === 0 && Date.now() < end);
        await mh.kill(inst);
        const doneBeforeKill = dq.usedIdx();
        // The kill came with requests taken and not finished: the successor has work to redo.
        expect(VirtqState.loadFetched(q0.m, q0.base)).toBeGreaterThan(0);
        expect(doneBeforeKill).toBeLessThan(count);

        // While the domain is down: a doorbell accumulates, and an ioreq parks in vCPU 1's slot.
        const slots = new SharedBytes(sys.mmap(slotPageBytes(VCPUS), RW, sys.consts.MAP_SHARED, mh.endpoint.slots, 0).buffer);
        const v1 = IoreqSlot.SIZE;
        const seq = IoreqSlot.getSeq(slots, v1) + 1n;
        IoreqSlot.write(slots, v1, {
          seq, addr: BigInt(COMMON_CFG.offset + C.OFFSET.numQueues), data: 0n, state: IoreqState.IOREQ_STATE_READY, count: 1,
          type: IoreqType.IOREQ_TYPE_MMIO, dir: IoreqDir.IOREQ_DIR_READ, size: 2, vcpu: 1,
        });
        sys.eventfdWrite(mh.endpoint.toServer[1]!, 1n);

        inst = await mh.start();
        await waitFor('every write to complete', () => { guest.collect(); return guest.outstanding.size === 0; }, 10_000);
        expect(inst.stderr).toMatch(/resumed device/);
        await waitFor('the parked ioreq to be answered', () => IoreqSlot.loadState(slots, v1) === IoreqState.IOREQ_STATE_RESP_READY);
        expect(IoreqSlot.getData(slots, v1)).toBe(1n);
        IoreqSlot.storeState(slots, v1, IoreqState.IOREQ_STATE_IDLE);

        expect(guest.anomalies).toEqual([]);
        expect(writes.map((w) => w.completions)).toEqual(writes.map(() => 1));
        expect(writes.filter((w) => guest.status(w) !== VIRTIO_BLK_S.OK)).toEqual([]);
        const disk = readFileSync(path);
        for (const [i, w] of writes.entries()) {
          expect(firstDiff(disk.subarray(w.sector * SECTOR, (w.sector + sectors) * SECTOR), pattern(i * sectors, sectors, 2)), `write ${i}`).toBe(-1);
        }
        expect(guest.driver.status()).toBe(RUNNING);
      } finally {
        await mh.kill(inst);
      }
    });
  });

  test('successor_answers_an_ioreq_its_predecessor_applied_from_the_applied_log_without_applying_it_again', async () => {
    const mh = new FakeMicrohv(['--image', image('l.img'), '--slot', String(SLOT), ...extra]);
    let inst = await mh.start();
    await withMicrohv(mh, async () => {
      const guest = new Guest(mh);
      try {
        guest.init();
        await mh.kill(inst);
        // What a predecessor killed between its log record and its answer leaves: the slot still
        // IN_PROCESS, the log holding its seq. The ioreq is a reset (status 0): applied again, it
        // would reset the running device.
        const slots = new SharedBytes(sys.mmap(slotPageBytes(VCPUS), RW, sys.consts.MAP_SHARED, mh.endpoint.slots, 0).buffer);
        const state = new SharedBytes(sys.mmap(4096, RW, sys.consts.MAP_SHARED, mh.stateFd, 0).buffer);
        const v1 = IoreqSlot.SIZE;
        const seq = IoreqSlot.getSeq(slots, v1) + 1n;
        IoreqSlot.write(slots, v1, {
          seq, addr: BigInt(COMMON_CFG.offset + C.OFFSET.deviceStatus), data: 0n, state: IoreqState.IOREQ_STATE_IN_PROCESS, count: 1,
          type: IoreqType.IOREQ_TYPE_MMIO, dir: IoreqDir.IOREQ_DIR_WRITE, size: 1, vcpu: 1,
        });
        IoreqApplied.write(state, 1 * IoreqApplied.SIZE, { seq, data: 0n });
        sys.eventfdWrite(mh.endpoint.toServer[1]!, 1n);

        inst = await mh.start();
        await waitFor('the replayed ioreq to be answered', () => IoreqSlot.loadState(slots, v1) === IoreqState.IOREQ_STATE_RESP_READY);
        IoreqSlot.storeState(slots, v1, IoreqState.IOREQ_STATE_IDLE);
        expect(guest.driver.status()).toBe(RUNNING);
        // Control: the same write with a new seq is applied.
        guest.driver.setStatus(0);
        expect(guest.driver.status()).toBe(0);
        expect(IoreqApplied.getSeq(state, 0)).toBeGreaterThan(0n);
      } finally {
        await mh.kill(inst);
      }
    });
  });
});

describe('block domain process: hostile start-up', () => {
  const run = (args: string[]): Promise<{ code: number | null; stderr: string }> => new Promise((resolve) => {
    const child = spawn(process.execPath, [mainJs(), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.once('close', (code) => resolve({ code, stderr }));
  });

  test.each([
    [['--slot', '3'], /^block: USAGE: --image is required/],
    [['--image', 'x', '--slot', '40'], /^block: USAGE: --slot 40: a device number on bus 0, 1\.\.31\n$/],
    [['--image', 'x', '--slot', '3', '--queue-size', '3'], /--queue-size 3: a power of 2/],
    [['--image', 'x', '--slot', '3', '--frobnicate'], /unknown option "--frobnicate"/],
  ])('bad arguments %j exit 2 with one line', async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('state_region_too_small_ends_the_domain_with_a_clear_error', async () => {
    const mh = new FakeMicrohv(['--image', image('s.img'), '--slot', String(SLOT)], 1, 4096);
    await withMicrohv(mh, async () => {
      const inst = mh.spawn();
      const exit = await inst.exited;
      expect(exit.code).toBe(1);
      expect(inst.stderr).toContain(`STATE: state region of 4096 bytes is too small: this disk needs ${regionBytes({ numQueues: 1, queueSize: 256 })}`);
      expect(regionBytes({})).toBeGreaterThan(BLOCK_REGION_BASE);
    });
  });

  test('a_successor_given_a_region_made_for_another_disk_refuses_it', async () => {
    const path = image('o.img');
    const mh = new FakeMicrohv(['--image', path, '--slot', String(SLOT)]);
    await withMicrohv(mh, async () => {
      await mh.kill(await mh.start());
      mh.args = ['--image', path, '--slot', String(SLOT), '--queue-size', '128'];
      const inst = mh.spawn();
      const exit = await inst.exited;
      expect(exit.code).toBe(1);
      expect(inst.stderr).toMatch(/STATE: .*the state region holds another disk: .*size is 256, this device has 128/);
    });
  });

  test('an_fd_the_spawner_leaked_survives_the_thread_pool_re_exec_and_ends_a_sandboxed_domain', async () => {
    const mh = new FakeMicrohv(['--image', image('f.img'), '--slot', String(SLOT)]);
    const secret = sys.memfdCreate('test-leaked-secret', sys.consts.MFD_CLOEXEC);
    await withMicrohv(mh, async () => {
      const inst = mh.spawn({ leak: [secret], env: { [SANDBOX_ENV]: 'user,mnt' } });
      const exit = await inst.exited;
      expect(exit.code).toBe(3);
      expect(inst.stderr).toMatch(/SANDBOX: inherited fd 5 \(\/memfd:test-leaked-secret/);
    });
    sys.close(secret);
  });

  test('a_missing_image_ends_the_domain_naming_it', async () => {
    const missing = join(dir, 'no-such.img');
    const mh = new FakeMicrohv(['--image', missing, '--slot', String(SLOT)]);
    await withMicrohv(mh, async () => {
      const inst = mh.spawn();
      const exit = await inst.exited;
      expect(exit.code).toBe(1);
      expect(inst.stderr).toContain(`IMAGE: ${missing}`);
    });
  });

  test('a_hello_for_another_role_is_refused_and_the_domain_exits', async () => {
    const mh = new FakeMicrohv(['--image', image('h.img'), '--slot', String(SLOT)]);
    await withMicrohv(mh, async () => {
      const [mine, theirs] = sys.socketpair(sys.consts.AF_UNIX, sys.consts.SOCK_STREAM | sys.consts.SOCK_CLOEXEC, 0);
      const child = spawn(process.execPath, [mainJs(), ...mh.args], { stdio: ['ignore', 'ignore', 'pipe', theirs], env: { PATH: process.env.PATH ?? '' } });
      sys.close(theirs);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
      const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
      const conn = mh.server.adopt(mine);
      const reply = conn.request({ case: 'hello', value: { protocolVersion: 1, domainId: 9, role: Role.ROLE_NET, capabilities: [], guestIds: [1], generation: 1, heartbeatIntervalMs: 1000 } });
      const r = await reply;
      expect(r.body.case === 'error' && r.body.value.code).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
      expect(await exited).toBe(1);
      expect(stderr).toMatch(/role ROLE_NET/);
    });
  });
});
