// The core's side of the PCI requests, as a pci domain and a block backend
// would send them over their control channels, with hostile ones among them:
// where a BAR is routed, how doorbells follow it, which MSI-X eventfds and
// routes each role may touch. The guest is a stand-in with the core's real
// range table and interrupt routing over a Vm that records what KVM was asked;
// no process is spawned (the supervisor's 'spawned' event is played).
import { fstatSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import * as sys from '../sys/index.js';
import { adoptControl, type Connection } from '../../idl/control/channel.js';
import type { Frame } from '../../idl/control/framing.js';
import { Reactor } from '../../idl/control/reactor.js';
import { AddressSpace, ErrorCode, Role, type EnvelopeBody } from '../../idl/generated/control.js';
import { PCI_ECAM, PCI_MMIO32 } from '../../boot/layout.js';
import type { GsiRoute, Vm } from '../kvm/index.js';
import { RangeTable } from '../ioreq/ranges.js';
import { createEndpoint, type EndpointFds } from '../ioreq/endpoints.js';
import { IrqRouting } from '../vm/irq.js';
import type { Guest } from '../vm/guest.js';
import { DomainManager } from './manager.js';

interface IoeventfdCall { fd: number; addr: number; len: number; deassign?: boolean }

/** What the manager uses of a Guest, with the core's own range table and routing. */
class FakeGuest {
  readonly ranges = new RangeTable();
  readonly gsiRoutes: GsiRoute[][] = [];
  readonly irqfdCalls: Array<{ fd: number; gsi: number; deassign?: boolean }> = [];
  readonly ioeventfds: IoeventfdCall[] = [];
  readonly irq = new IrqRouting({
    setGsiRouting: (r: GsiRoute[]) => { this.gsiRoutes.push(r); },
    irqfd: (o: { fd: number; gsi: number; deassign?: boolean }) => { this.irqfdCalls.push(o); },
  } as unknown as Vm);
  readonly memory: { regions: Array<{ gpa: number; size: number; fd: number }> };
  private readonly made: EndpointFds[] = [];
  constructor() {
    const fd = sys.memfdCreate('test-ram', sys.consts.MFD_CLOEXEC);
    sys.ftruncate(fd, 1 << 20);
    this.memory = { regions: [{ gpa: 0, size: 1 << 20, fd }] };
  }
  registerRange(r: { space: 'pio' | 'mmio'; first: number; last: number; buffered: boolean }): { endpoint: number; fds: EndpointFds } {
    const e = this.createEndpoint();
    this.ranges.add({ ...r, endpoint: e.endpoint });
    return e;
  }
  createEndpoint(): { endpoint: number; fds: EndpointFds } {
    const { fds } = createEndpoint(`test-${this.made.length}`, 1);
    this.made.push(fds);
    return { endpoint: this.made.length - 1, fds };
  }
  ioeventfd(o: IoeventfdCall): void { this.ioeventfds.push(o); }
  /** Doorbell addresses bound now (assigns minus deassigns). */
  boundDoorbells(): number[] {
    const bound = new Map<number, number>();
    for (const c of this.ioeventfds) bound.set(c.addr, (bound.get(c.addr) ?? 0) + (c.deassign === true ? -1 : 1));
    return [...bound].filter(([, n]) => n > 0).map(([a]) => a);
  }
}

const BLOCK = { slot: 1, bar: 4, barSize: 0x4000, vectors: 2 } as const;
const BASE = PCI_MMIO32.base + 0x10_0000;

let reactor: Reactor;
let guest: FakeGuest;
let manager: DomainManager;
let pci: Connection;
let block: Connection;
const received: number[] = [];

/** Plays a spawned instance of the domain `name`: its end of the control channel, after Hello. */
async function instance(name: string): Promise<Connection> {
  const [mine, theirs] = sys.socketpair(sys.consts.AF_UNIX, sys.consts.SOCK_STREAM | sys.consts.SOCK_CLOEXEC, 0);
  let hello!: () => void;
  const greeted = new Promise<void>((r) => { hello = r; });
  const conn = adoptControl(reactor, theirs, { onFrame: (_c, f) => { if (f.body.case === 'hello') hello(); } });
  manager.domain(name)?.emit('spawned', 1, mine, 4242);
  await greeted;
  return conn;
}

async function ask(conn: Connection, body: EnvelopeBody): Promise<Frame> {
  const f = await conn.request(body);
  received.push(...f.fds);
  return f;
}
const code = (f: Frame): ErrorCode | undefined => (f.body.case === 'error' ? f.body.value.code : undefined);
const mapBar = (o: { slot?: number; bar?: number; base: number; size?: number; decoding?: boolean; servedByPci?: boolean }, from = pci): Promise<Frame> =>
  ask(from, { case: 'mapBar', value: { guestId: 1, slot: o.slot ?? BLOCK.slot, bar: o.bar ?? BLOCK.bar, base: BigInt(o.base), size: BigInt(o.size ?? BLOCK.barSize), decoding: o.decoding ?? true, servedByPci: o.servedByPci ?? false } });

beforeEach(async () => {
  reactor = new Reactor();
  guest = new FakeGuest();
  manager = new DomainManager(reactor, guest as unknown as Guest);
  manager.add(Role.ROLE_PCI, 'pci', ['unused']);
  manager.add(Role.ROLE_BLOCK, 'block', ['unused'], undefined, BLOCK);
  pci = await instance('pci');
  block = await instance('block');
});

afterEach(async () => {
  pci.close();
  block.close();
  manager.stop();
  for (const fd of received.splice(0)) sys.close(fd);
  await reactor.stop();
});

describe('BAR placement', () => {
  test('a_backend_bar_is_routed_to_the_backend_at_offsets_and_follows_a_move', async () => {
    expect((await mapBar({ base: BASE })).body.case).toBe('ack');
    const r = guest.ranges.lookup('mmio', BASE + 0x10);
    expect(r).toMatchObject({ first: BASE, last: BASE + BLOCK.barSize - 1, relative: true });
    // The pci domain's own endpoints come first; the backend's is the one made for it.
    const pciEndpoints = new Set(guest.ranges.list().filter((x) => x.first === PCI_ECAM.base || x.space === 'pio').map((x) => x.endpoint));
    expect(pciEndpoints.has(r!.endpoint)).toBe(false);
    expect((await mapBar({ base: BASE + 0x4000 })).body.case).toBe('ack');
    expect(guest.ranges.lookup('mmio', BASE + 0x10)).toBeUndefined();
    expect(guest.ranges.lookup('mmio', BASE + 0x4010)?.relative).toBe(true);
    expect((await mapBar({ base: BASE + 0x4000, decoding: false })).body.case).toBe('ack');
    expect(guest.ranges.lookup('mmio', BASE + 0x4010)).toBeUndefined();
  });

  test('an_msix_bar_is_routed_to_the_pci_domains_ecam_endpoint_at_guest_physical_addresses', async () => {
    expect((await mapBar({ bar: 1, base: BASE, size: 0x1000, servedByPci: true })).body.case).toBe('ack');
    const ecam = guest.ranges.lookup('mmio', PCI_ECAM.base);
    expect(guest.ranges.lookup('mmio', BASE + 8)).toMatchObject({ endpoint: ecam!.endpoint, relative: false });
  });

  test('hostile_placements_are_refused_and_change_nothing', async () => {
    const before = guest.ranges.list().length;
    expect(code(await mapBar({ base: PCI_ECAM.base }))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT); // outside the BAR window
    expect(code(await mapBar({ base: BASE + 0x1000 }))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT); // not naturally aligned
    expect(code(await mapBar({ base: PCI_MMIO32.base + PCI_MMIO32.size - 0x2000 }))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT); // runs past the window
    expect(code(await mapBar({ base: BASE, size: 0x8000 }))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT); // not the backend's BAR size
    expect(code(await mapBar({ slot: 7, base: BASE }))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT); // no backend there
    expect(code(await mapBar({ base: BASE, size: 0x3000 }))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT); // not a power of two
    expect(guest.ranges.list()).toHaveLength(before);
    // A backend cannot place BARs at all.
    expect(code(await mapBar({ base: BASE }, block))).toBe(ErrorCode.ERROR_CODE_NOT_PERMITTED);
  });

  test('a_bar_placed_over_another_is_a_conflict', async () => {
    await mapBar({ bar: 1, base: BASE, size: 0x1000, servedByPci: true });
    expect(code(await mapBar({ base: BASE }))).toBe(ErrorCode.ERROR_CODE_CONFLICT);
    expect(guest.ranges.lookup('mmio', BASE + 0x2000)).toBeUndefined();
  });
});

describe('backend resources', () => {
  test('doorbells_are_microhvs_eventfds_bound_where_the_bar_decodes', async () => {
    const bind = (): Promise<Frame> => ask(block, { case: 'bindIoeventfd', value: { guestId: 1, space: AddressSpace.ADDRESS_SPACE_MMIO, addr: 0x3000n, length: 2, datamatch: false, datamatchValue: 0n, unbind: false } });
    const first = await bind();
    expect(first.body.case).toBe('ioeventfdReply');
    expect(guest.boundDoorbells()).toEqual([]); // the BAR is nowhere yet
    await mapBar({ base: BASE });
    expect(guest.boundDoorbells()).toEqual([BASE + 0x3000]);
    await mapBar({ base: BASE + 0x8000 });
    expect(guest.boundDoorbells()).toEqual([BASE + 0x8000 + 0x3000]);
    // A successor binding again gets the same eventfd (same counter) and no second binding.
    const again = await bind();
    const ino = (f: Frame): number => fstatSync(f.fds[0]!).ino;
    expect(ino(again)).toBe(ino(first));
    expect(guest.boundDoorbells()).toEqual([BASE + 0x8000 + 0x3000]);
    await mapBar({ base: BASE + 0x8000, decoding: false });
    expect(guest.boundDoorbells()).toEqual([]);
    const outside = await ask(block, { case: 'bindIoeventfd', value: { guestId: 1, space: AddressSpace.ADDRESS_SPACE_MMIO, addr: 0x3fffn, length: 2, datamatch: false, datamatchValue: 0n, unbind: false } });
    expect(code(outside)).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
  });

  test('the_backend_registers_its_bar_only_as_offsets_of_its_exact_size', async () => {
    const reg = (length: number): Promise<Frame> => ask(block, { case: 'registerIoreqRange', value: { guestId: 1, space: AddressSpace.ADDRESS_SPACE_MMIO, start: 0n, length: BigInt(length), bufferedWrites: false } });
    expect((await reg(BLOCK.barSize)).body.case).toBe('ioreqRangeReply');
    expect(code(await reg(BLOCK.barSize * 2))).toBe(ErrorCode.ERROR_CODE_NOT_PERMITTED);
    const ecam = await ask(block, { case: 'registerIoreqRange', value: { guestId: 1, space: AddressSpace.ADDRESS_SPACE_MMIO, start: BigInt(PCI_ECAM.base), length: BigInt(PCI_ECAM.size), bufferedWrites: false } });
    expect(code(ecam)).toBe(ErrorCode.ERROR_CODE_NOT_PERMITTED);
  });

  test('guest_memory_goes_to_the_backend_and_not_to_the_pci_domain', async () => {
    const mem = await ask(block, { case: 'mapGuestMemory', value: { guestId: 1 } });
    expect(mem.body.case === 'mapGuestMemoryReply' && mem.body.value.regions.map((r) => [r.gpa, r.size])).toEqual([[0n, 1n << 20n]]);
    expect(mem.fds).toHaveLength(1);
    expect(code(await ask(pci, { case: 'mapGuestMemory', value: { guestId: 1 } }))).toBe(ErrorCode.ERROR_CODE_NOT_PERMITTED);
  });
});

describe('INTx request', () => {
  test('the_backend_and_the_pci_domain_share_one_sealed_page_and_eventfd_and_a_backend_gets_only_its_own', async () => {
    const a = await ask(block, { case: 'getIntxRequest', value: { guestId: 1, slot: BLOCK.slot } });
    const b = await ask(pci, { case: 'getIntxRequest', value: { guestId: 1, slot: BLOCK.slot } });
    expect(a.body.case).toBe('intxRequestReply');
    expect(a.fds).toHaveLength(2);
    expect(a.fds.map((fd) => fstatSync(fd).ino)).toEqual(b.fds.map((fd) => fstatSync(fd).ino));
    // What the backend writes, the pci domain reads: the same page, and it cannot be resized under either.
    const [page, changed] = a.fds as [number, number];
    expect(fstatSync(page).size).toBe(4096);
    expect(() => sys.ftruncate(page, 8192)).toThrow(/EPERM/);
    const mine = sys.mmap(4096, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, page, 0);
    const theirs = sys.mmap(4096, sys.consts.PROT_READ, sys.consts.MAP_SHARED, b.fds[0]!, 0);
    Atomics.store(new Uint32Array(mine.buffer), 0, 1);
    sys.eventfdWrite(changed, 1n);
    expect(new Uint32Array(theirs.buffer)[0]).toBe(1);
    expect(sys.eventfdTryRead(b.fds[1]!)).toBe(1n);
    sys.munmap(mine);
    sys.munmap(theirs);
    // Hostile or confused: a slot with no backend, another function's page, another guest.
    expect(code(await ask(pci, { case: 'getIntxRequest', value: { guestId: 1, slot: 2 } }))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    expect(code(await ask(block, { case: 'getIntxRequest', value: { guestId: 1, slot: 2 } }))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    expect(code(await ask(block, { case: 'getIntxRequest', value: { guestId: 7, slot: BLOCK.slot } }))).toBe(ErrorCode.ERROR_CODE_NO_SUCH_GUEST);
  });
});

describe('MSI-X', () => {
  test('each_side_gets_the_same_vector_eventfds_and_a_backend_only_its_own', async () => {
    const a = await ask(block, { case: 'getMsixEventfds', value: { guestId: 1, slot: BLOCK.slot } });
    const b = await ask(pci, { case: 'getMsixEventfds', value: { guestId: 1, slot: BLOCK.slot } });
    expect(a.fds).toHaveLength(BLOCK.vectors);
    expect(a.fds.map((fd) => fstatSync(fd).ino)).toEqual(b.fds.map((fd) => fstatSync(fd).ino));
    expect(code(await ask(block, { case: 'getMsixEventfds', value: { guestId: 1, slot: 2 } }))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
  });

  test('an_effective_vector_gets_a_route_and_its_irqfd_and_loses_both_when_masked', async () => {
    const route = (effective: boolean, address = 0xfee0_0000n, vector = 1): Promise<Frame> =>
      ask(pci, { case: 'setMsiRoute', value: { guestId: 1, slot: BLOCK.slot, vector, address, data: 0x41, effective } });
    const on = await route(true);
    expect(on.body.case).toBe('msiRouteReply');
    const gsi = on.body.case === 'msiRouteReply' ? on.body.value.gsi : -1;
    expect(gsi).toBeGreaterThanOrEqual(24);
    expect(guest.gsiRoutes.at(-1)).toContainEqual(expect.objectContaining({ gsi, addressLo: 0xfee0_0000, data: 0x41 }));
    expect(guest.irqfdCalls).toEqual([expect.objectContaining({ gsi })]);
    await route(true); // repeated by a successor: no second irqfd
    expect(guest.irqfdCalls).toHaveLength(1);
    await route(false);
    expect(guest.irqfdCalls.at(-1)).toMatchObject({ gsi, deassign: true });
    expect(guest.gsiRoutes.at(-1)?.some((r) => r.gsi === gsi)).toBe(false);
    // Hostile: not an x86 interrupt message, a vector the function lacks, and a backend setting a route.
    expect(code(await route(true, 0xdead_0000n))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    expect(code(await route(true, 0xfee0_0000n, BLOCK.vectors))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    const fromBackend = await ask(block, { case: 'setMsiRoute', value: { guestId: 1, slot: BLOCK.slot, vector: 0, address: 0xfee0_0000n, data: 0x41, effective: true } });
    expect(code(fromBackend)).toBe(ErrorCode.ERROR_CODE_NOT_PERMITTED);
  });
});
