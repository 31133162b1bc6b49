// The pci domain's bus sync against the real pci module: what microhv is told
// when the guest places a BAR or programs MSI-X, and a masked vector's signal
// held in the PBA and delivered once through its eventfd on unmask.
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import * as sys from '../../microhv/sys/index.js';
import { PciMsixFlag } from './abi.js';
import { COMMAND_STATED, mayMaster } from './process-common.js';
import { PciBus, type BarPlacement, type PciBusHost, type VectorRoute } from './pci-bus.js';
import { stagePciTable, virtioBlockFunction, VIRTIO_BAR, VIRTIO_MSIX_BAR } from './pci-table.js';
import { StubHarness } from './testing.js';
import { CMD, REG, STATUS, VIRTIO, ecamRead, ecamWrite, enableMsix, msixPba, programVector, type Pci } from '../pci/testing.js';
import { pciIntxGsi } from '../../boot/layout.js';

const SLOT = VIRTIO.slot;
// Three queues: four vectors, the same MSI-X layout as the pci module's own test table.
const TABLE = [virtioBlockFunction(SLOT, 3)];
const MSI_ADDR = 0xfee0_0000;

class FakeMicrohv implements PciBusHost {
  readonly bars: BarPlacement[] = [];
  readonly routes: VectorRoute[] = [];
  readonly watched = new Map<number, () => void>();
  readonly fds: number[] = Array.from({ length: 4 }, () => sys.eventfd(0, sys.consts.EFD_CLOEXEC | sys.consts.EFD_NONBLOCK));
  /** The INTx request page (plain buffers here): the backend's request word, the command word, and the eventfd. */
  readonly intx = { word: new Uint32Array(1), command: new Uint32Array(1), changed: sys.eventfd(0, sys.consts.EFD_CLOEXEC | sys.consts.EFD_NONBLOCK) };
  commits = 0;
  mapBar(b: BarPlacement): Promise<void> { this.bars.push(b); return Promise.resolve(); }
  setMsiRoute(r: VectorRoute): Promise<void> { this.routes.push(r); return Promise.resolve(); }
  msixEventfds(slot: number): Promise<number[]> { return slot === SLOT ? Promise.resolve([...this.fds]) : Promise.reject(new Error('no such slot')); }
  intxRequest(slot: number): Promise<{ word: Uint32Array; command: Uint32Array; changed: number }> { return slot === SLOT ? Promise.resolve(this.intx) : Promise.reject(new Error('no such slot')); }
  /** What the backend does: the word, then the eventfd; the reactor would then call the watcher. */
  requestIntx(level: 0 | 1): void {
    this.intx.word[0] = level;
    sys.eventfdWrite(this.intx.changed, 1n);
    this.watched.get(this.intx.changed)?.();
  }
  watch(fd: number, onReadable: () => void): () => void {
    this.watched.set(fd, onReadable);
    return () => this.watched.delete(fd);
  }
  commit(): void { this.commits++; }
  close(): void { for (const fd of [...this.fds, this.intx.changed]) sys.close(fd); }
}

let h: Pci;
let host: FakeMicrohv;
let bus: PciBus;
beforeEach(async () => {
  h = await StubHarness.create('pci', { beforeInit: (e) => stagePciTable(e, TABLE) });
  host = new FakeMicrohv();
  bus = new PciBus(h.exports, TABLE, host);
  await bus.start();
});
afterEach(() => host.close());

const bar = (b: number): BarPlacement | undefined => host.bars.filter((x) => x.bar === b).at(-1);
const route = (v: number): VectorRoute | undefined => host.routes.filter((x) => x.vector === v).at(-1);

describe('BARs', () => {
  test('start_states_both_bars_at_their_firmware_places_and_serves_the_msix_one_itself', () => {
    expect(bar(VIRTIO_MSIX_BAR)).toMatchObject({ slot: SLOT, size: 0x1000n, servedByPci: true, base: h.exports.bar_addr(SLOT, VIRTIO_MSIX_BAR) });
    expect(bar(VIRTIO_BAR)).toMatchObject({ slot: SLOT, size: 0x4000n, servedByPci: false, base: h.exports.bar_addr(SLOT, VIRTIO_BAR) });
    expect(bus.dirty()).toBe(false);
  });

  test('a_bar_the_guest_moves_is_told_at_its_new_address_once_it_decodes', async () => {
    ecamWrite(h, SLOT, REG.command, 0, 2); // memory decoding off, as Linux does while it sizes and moves BARs
    const at = 0xc800_0000;
    ecamWrite(h, SLOT, REG.bar0 + 4 * VIRTIO_BAR, at);
    ecamWrite(h, SLOT, REG.bar0 + 4 * VIRTIO_BAR + 4, 0);
    expect(bus.dirty()).toBe(true);
    await bus.sync();
    expect(bar(VIRTIO_BAR)?.decoding).toBe(false);
    ecamWrite(h, SLOT, REG.command, CMD.memory, 2);
    await bus.sync();
    expect(bar(VIRTIO_BAR)).toMatchObject({ base: BigInt(at), decoding: true });
    const told = host.bars.length;
    await bus.sync(); // nothing changed: nothing told
    expect(host.bars.length).toBe(told);
  });
});

describe('INTx', () => {
  const gsi = pciIntxGsi(SLOT, 0);

  test('the_backends_request_drives_the_slots_prt_gsi_and_its_release_lets_it_go', () => {
    expect(h.exports.intx_gsi(SLOT)).toBe(gsi);
    expect(host.watched.has(host.intx.changed)).toBe(true);
    h.clearEvents();
    host.requestIntx(1);
    expect(h.pins()).toEqual([{ kind: 'pin', gsi, level: 1 }]);
    expect(ecamRead(h, SLOT, REG.status, 2) & STATUS.interrupt).toBe(STATUS.interrupt);
    // The eventfd was drained: the next wake-up is for a new change only.
    expect(sys.eventfdTryRead(host.intx.changed)).toBe(0n);
    host.requestIntx(0);
    expect(h.pins()).toEqual([{ kind: 'pin', gsi, level: 1 }, { kind: 'pin', gsi, level: 0 }]);
    expect(ecamRead(h, SLOT, REG.status, 2) & STATUS.interrupt).toBe(0);
  });

  test('with_msix_enabled_the_request_shows_in_status_but_drives_no_line', () => {
    enableMsix(h);
    h.clearEvents();
    host.requestIntx(1);
    expect(h.pins()).toEqual([]);
    expect(ecamRead(h, SLOT, REG.status, 2) & STATUS.interrupt).toBe(STATUS.interrupt);
  });

  test('a_successor_applies_the_request_standing_in_the_page_at_start', async () => {
    host.intx.word[0] = 1;
    const h2 = await StubHarness.create('pci', { beforeInit: (e) => stagePciTable(e, TABLE) });
    await new PciBus(h2.exports, TABLE, host).start();
    expect(h2.pins()).toContainEqual({ kind: 'pin', gsi, level: 1 });
    // Any nonzero word is a request (the page is the backend's to write, and it may write anything).
    host.intx.word[0] = 0xdead;
    const h3 = await StubHarness.create('pci', { beforeInit: (e) => stagePciTable(e, TABLE) });
    await new PciBus(h3.exports, TABLE, host).start();
    expect(h3.pins()).toContainEqual({ kind: 'pin', gsi, level: 1 });
  });
});

describe('the command word', () => {
  test('start_states_the_command_register_marked_stated_and_config_writes_restate_it_only_when_it_changes', () => {
    // As the firmware left it (memory decoding for its BARs, no Bus Master Enable), stated: no DMA yet.
    expect(host.intx.command[0]).toBe((COMMAND_STATED | h.exports.dev_command(SLOT)) >>> 0);
    expect(mayMaster(host.intx.command[0]!)).toBe(false);
    ecamWrite(h, SLOT, REG.command, CMD.memory | CMD.busMaster, 2);
    bus.stateCommands();
    expect(host.intx.command[0]).toBe((COMMAND_STATED | CMD.memory | CMD.busMaster) >>> 0);
    expect(mayMaster(host.intx.command[0]!)).toBe(true);
    const changes = bus.counters.command_changes;
    bus.stateCommands();
    expect(bus.counters.command_changes).toBe(changes);
    ecamWrite(h, SLOT, REG.command, CMD.memory, 2);
    bus.stateCommands();
    expect(mayMaster(host.intx.command[0]!)).toBe(false);
  });

  test('a_successor_restates_what_its_restored_module_holds_over_whatever_the_page_says', async () => {
    // A page that says Bus Master Enable (a predecessor's, or the backend's scribble), and a module that does not.
    host.intx.command[0] = (COMMAND_STATED | CMD.memory | CMD.busMaster) >>> 0;
    const h2 = await StubHarness.create('pci', { beforeInit: (e) => stagePciTable(e, TABLE) });
    await new PciBus(h2.exports, TABLE, host).start();
    expect(host.intx.command[0]).toBe((COMMAND_STATED | h2.exports.dev_command(SLOT)) >>> 0);
    expect(mayMaster(host.intx.command[0]!)).toBe(false);
  });
});

describe('MSI-X', () => {
  test('start_detaches_every_vector_and_watches_its_eventfd', () => {
    expect(host.routes.map((r) => r.effective)).toEqual([false, false, false, false]);
    expect([...host.watched.keys()].filter((fd) => fd !== host.intx.changed).sort()).toEqual([...host.fds].sort());
  });

  test('an_unmasked_vector_becomes_a_route_with_the_tables_address_and_data_and_is_no_longer_watched', async () => {
    programVector(h, 1, MSI_ADDR, 0x41, false);
    enableMsix(h);
    await bus.sync();
    expect(route(1)).toMatchObject({ effective: true, address: BigInt(MSI_ADDR), data: 0x41 });
    expect(host.watched.has(host.fds[1]!)).toBe(false);
    expect(host.watched.has(host.fds[0]!)).toBe(true);
  });

  test('a_signal_on_a_masked_vector_is_held_in_the_pba_and_fired_once_when_it_is_unmasked', async () => {
    programVector(h, 2, MSI_ADDR, 0x42, true);
    enableMsix(h);
    await bus.sync();
    const fd = host.fds[2]!;
    sys.eventfdWrite(fd, 1n); // the backend signals vector 2 while it is masked
    host.watched.get(fd)?.();
    expect(sys.eventfdTryRead(fd)).toBe(0n); // taken off the eventfd ...
    expect(h.mmioRead(msixPba(h)) & (1 << 2)).not.toBe(0); // ... into the pending bit
    expect(h.exports.msix_flags(SLOT, 2) & PciMsixFlag.Pending).not.toBe(0);
    const commits = host.commits;
    h.mmioWrite(Number(h.exports.bar_addr(SLOT, VIRTIO_MSIX_BAR)) + 16 * 2 + 12, 0); // unmask
    await bus.sync();
    expect(route(2)).toMatchObject({ effective: true, data: 0x42 });
    // Fired once through the eventfd (KVM would inject it), committed, and the pending bit is clear.
    expect(sys.eventfdTryRead(fd)).toBe(1n);
    expect(host.commits).toBeGreaterThan(commits);
    expect(h.mmioRead(msixPba(h)) & (1 << 2)).toBe(0);
    await bus.sync();
    expect(sys.eventfdTryRead(fd)).toBe(0n);
  });

  test('bus_master_off_makes_every_vector_not_effective_again', async () => {
    programVector(h, 0, MSI_ADDR, 0x40, false);
    enableMsix(h);
    await bus.sync();
    expect(route(0)?.effective).toBe(true);
    ecamWrite(h, SLOT, REG.command, CMD.memory, 2);
    expect(ecamRead(h, SLOT, REG.command, 2) & CMD.busMaster).toBe(0);
    await bus.sync();
    expect(route(0)?.effective).toBe(false);
    expect(host.watched.has(host.fds[0]!)).toBe(true);
  });
});
