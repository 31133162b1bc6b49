// microhv's side of every domain's control channel: it greets each instance
// with its role and capabilities, answers its resource requests within what
// the role allows, keeps what must outlive an instance (state region, ioreq
// endpoints) and supervises it. A restarted instance gets the same fds.
import { EventEmitter } from 'node:events';
import * as sys from '../sys/index.js';
import { ControlServer, type Connection } from '../../idl/control/channel.js';
import type { Frame } from '../../idl/control/framing.js';
import type { Reactor } from '../../idl/control/reactor.js';
import { AddressSpace, DeliveryMode, ErrorCode, IntxRequestLayout, IrqLinesLayout, PlatformEventKind, Role, TriggerMode, type EnvelopeBody } from '../../idl/generated/control.js';
import { PCI_MMIO32 } from '../../boot/layout.js';
import { IoRangeError } from '../ioreq/ranges.js';
import type { Guest } from '../vm/guest.js';
import type { EndpointFds } from '../ioreq/endpoints.js';
import { DomainSupervisor, DEFAULT_POLICY, type SupervisorPolicy } from './supervisor.js';
import { ROLE_POLICY, allowedRange, type AllowedRange, type DomainRole } from './policy.js';

export const STATE_REGION_BYTES = 256 * 1024;
const PROTOCOL_VERSION = 1;
/** How long a new instance may take to answer Hello before it counts as hung. */
const STARTUP_DEADLINE_MS = 30_000;
const GUEST_ID = 1;
/** Endpoints are kept per allowed range, so a successor re-registering it gets the same fds. */
const rangeKey = (r: AllowedRange): string => `${r.space}:${r.first}:${r.last}`;
/** The endpoint key of a PCI backend's BAR (it has no fixed range). */
const BAR_KEY = 'bar';
/** One frame carries at most 16 fds (control.proto Limits): GetMsixEventfds answers in one. */
const MAX_VECTORS = 16;
/** libuv threads of a backend domain (its concurrent file system calls). */
const BACKEND_IO_THREADS = 16;

/** A PCI function whose BAR a backend domain serves: where its BAR is routed and which MSI-X eventfds are its. */
export interface PciBackend {
  /** Device number on bus 0 (1..31) and the BAR index the backend serves. */
  readonly slot: number;
  readonly bar: number;
  readonly barSize: number;
  /** MSI-X table entries of the function (its backend signals each by its eventfd). */
  readonly vectors: number;
}

/** A doorbell of a backend: an ioeventfd at an offset in its BAR, bound wherever the BAR is. */
interface Doorbell { readonly fd: number; readonly offset: number; readonly len: 0 | 1 | 2 | 4 | 8; readonly datamatch: bigint | undefined; wanted: boolean; boundAt: number | undefined }

interface BackendState {
  readonly pci: PciBackend;
  /** Per MSI-X vector: the eventfd microhv owns and the GSI of its route. */
  readonly msix: ReadonlyArray<{ readonly fd: number; readonly gsi: number }>;
  /** The function's INTx request page and its eventfd (control.proto, "INTx"): the backend writes, the pci domain reads. */
  readonly intx: { readonly page: number; readonly changed: number };
  readonly doorbells: Map<string, Doorbell>;
  /** Where the BAR decodes now, if it does. */
  base: number | undefined;
}

interface Domain {
  readonly id: number;
  readonly role: DomainRole;
  readonly backend?: BackendState;
  readonly sup: DomainSupervisor;
  stateFd: number;
  stateHanded: boolean;
  readonly endpoints: Map<string, { rangeId: number; fds: EndpointFds }>;
  conn?: Connection;
  heartbeat?: NodeJS.Timeout;
  /** The current instance has answered Hello (at upAt); only then do heartbeats judge it. */
  up: boolean;
  upAt: number;
  seq: bigint;
}

export interface ManagerEvents {
  /** The guest asked to power off, reset or sleep (ACPI or i8042, through the console domain). */
  platform: [kind: 'poweroff' | 'reset' | 'sleep'];
  down: [domain: string, why: string];
  log: [line: string];
}

export class DomainManager extends EventEmitter<ManagerEvents> {
  private readonly server: ControlServer;
  private readonly domains: Domain[] = [];
  /** Decoding BARs by "slot:bar": where the range table routes them now. */
  private readonly bars = new Map<string, { base: number; size: number }>();
  /** The guest's legacy interrupt lines page and its `changed` eventfd (control.proto), made on first request. */
  private lines: { page: number; changed: number } | undefined;

  constructor(private readonly reactor: Reactor, private readonly guest: Guest) {
    super();
    this.server = new ControlServer(reactor, { onFrame: (c, f) => this.onFrame(c, f), onClose: (c) => this.onClose(c) });
  }

  /**
   * Adds a supervised domain of `role`, started by `argv` (node arguments). A backend role serves
   * the PCI function `pci`: its endpoint and MSI-X eventfds are made now, its BAR routed on MapBar.
   */
  add(role: DomainRole, name: string, argv: readonly string[], policy: SupervisorPolicy = DEFAULT_POLICY, pci?: PciBackend): DomainSupervisor {
    if ((role === Role.ROLE_BLOCK) !== (pci !== undefined)) throw new RangeError(`${name}: a PCI backend role needs its function, and only it`);
    const backend = pci === undefined ? undefined : this.attachBackend(name, pci);
    // A backend's file I/O runs on libuv's pool, sized once at process start: one thread per request in flight.
    const sup = new DomainSupervisor(this.reactor, name, argv, policy, backend ? { UV_THREADPOOL_SIZE: String(BACKEND_IO_THREADS) } : {});
    const d: Domain = { id: this.domains.length + 1, role, backend, sup, stateFd: -1, stateHanded: false, endpoints: new Map(), up: false, upAt: 0, seq: 0n };
    if (backend) {
      const e = this.guest.createEndpoint();
      d.endpoints.set(BAR_KEY, { rangeId: e.endpoint + 1, fds: e.fds });
    }
    // The role's ranges are claimed now, before the process exists: the guest may run at once, and an
    // access before the domain is up parks in its slot like one during a restart (DESIGN.md 2.2).
    for (const r of ROLE_POLICY[role].ranges) {
      const reg = this.guest.registerRange({ space: r.space, first: r.first, last: r.last, buffered: r.buffered });
      d.endpoints.set(rangeKey(r), { rangeId: reg.endpoint + 1, fds: reg.fds });
    }
    this.domains.push(d);
    sup.on('spawned', (generation, fd) => this.onSpawned(d, generation, fd));
    sup.on('died', (generation, why) => {
      this.emit('log', `${name} (generation ${generation}) ${why}`);
      if (d.heartbeat) clearInterval(d.heartbeat);
      d.conn?.close();
      d.conn = undefined;
    });
    sup.on('down', (why) => this.emit('down', name, why));
    return sup;
  }

  start(): void {
    for (const d of this.domains) d.sup.start();
  }

  private attachBackend(name: string, pci: PciBackend): BackendState {
    const pow2 = (n: number): boolean => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
    if (!Number.isInteger(pci.slot) || pci.slot < 1 || pci.slot > 31 || !Number.isInteger(pci.bar) || pci.bar < 0 || pci.bar > 5) {
      throw new RangeError(`${name}: PCI slot ${pci.slot} BAR ${pci.bar} (slots 1..31, BARs 0..5)`);
    }
    if (!pow2(pci.barSize) || pci.barSize < 16 || pci.barSize > PCI_MMIO32.size) throw new RangeError(`${name}: BAR size ${pci.barSize} is not a power of two in 16..${PCI_MMIO32.size}`);
    if (!Number.isInteger(pci.vectors) || pci.vectors < 1 || pci.vectors > MAX_VECTORS) throw new RangeError(`${name}: ${pci.vectors} MSI-X vectors (1..${MAX_VECTORS})`);
    if (this.domains.some((o) => o.backend?.pci.slot === pci.slot)) throw new RangeError(`${name}: PCI slot ${pci.slot} already has a backend`);
    const msix = Array.from({ length: pci.vectors }, () => ({ fd: sys.eventfd(0, sys.consts.EFD_CLOEXEC | sys.consts.EFD_NONBLOCK), gsi: this.guest.irq.allocateMsiGsi() }));
    return { pci, msix, intx: { page: sharedPage('intx-request', IntxRequestLayout.INTX_REQUEST_PAGE_BYTES), changed: sys.eventfd(0, sys.consts.EFD_CLOEXEC | sys.consts.EFD_NONBLOCK) }, doorbells: new Map(), base: undefined };
  }

  private onSpawned(d: Domain, generation: number, fd: number): void {
    const conn = this.server.adopt(fd);
    conn.capabilities = new Set(ROLE_POLICY[d.role].capabilities);
    d.conn = conn;
    conn.send({ case: 'hello', value: {
      protocolVersion: PROTOCOL_VERSION, domainId: d.id, role: d.role, capabilities: [...ROLE_POLICY[d.role].capabilities],
      guestIds: [GUEST_ID], generation, heartbeatIntervalMs: d.sup.policy.heartbeatMs,
    } });
    const spawnedAt = Date.now();
    d.up = false;
    let lastAnswer = spawnedAt;
    d.heartbeat = setInterval(() => {
      if (d.conn !== conn || conn.closed) return;
      if (!d.up) {
        // Starting a process (a node runtime loading its modules) on a loaded host takes seconds:
        // the heartbeat only judges an instance that has answered Hello; until then, a longer deadline.
        if (Date.now() - spawnedAt <= STARTUP_DEADLINE_MS) return;
        this.emit('log', `${d.sup.name} did not answer Hello within ${STARTUP_DEADLINE_MS} ms: killing it`);
        d.sup.kill();
        return;
      }
      if (lastAnswer < d.upAt) lastAnswer = d.upAt;
      if (Date.now() - lastAnswer > d.sup.policy.hungAfterMs) {
        this.emit('log', `${d.sup.name} missed heartbeats for ${d.sup.policy.hungAfterMs} ms: killing it`);
        d.sup.kill();
        return;
      }
      conn.request({ case: 'heartbeat', value: { seq: ++d.seq } }, [], d.sup.policy.hungAfterMs).then(() => { lastAnswer = Date.now(); }, () => undefined);
    }, d.sup.policy.heartbeatMs);
  }

  private onClose(c: Connection): void {
    for (const d of this.domains) if (d.conn === c) d.conn = undefined;
  }

  private domainOf(c: Connection): Domain | undefined {
    return this.domains.find((d) => d.conn === c);
  }

  private onFrame(c: Connection, f: Frame): void {
    const d = this.domainOf(c);
    if (!d) {
      for (const fd of f.fds) sys.close(fd);
      return;
    }
    // Nothing a domain sends carries fds microhv wants; close any it sent.
    for (const fd of f.fds) sys.close(fd);
    const body: EnvelopeBody = f.body;
    switch (body.case) {
      case 'helloReply':
        d.up = true;
        d.upAt = Date.now();
        this.emit('log', `${d.sup.name} up (pid ${body.value.pid})`);
        d.sup.up();
        return;
      case 'getStateRegion': {
        if (d.stateFd < 0) {
          d.stateFd = sys.memfdCreate(`state-${d.sup.name}`, sys.consts.MFD_CLOEXEC | sys.consts.MFD_ALLOW_SEALING);
          sys.ftruncate(d.stateFd, STATE_REGION_BYTES);
          sys.addSeals(d.stateFd, sys.consts.F_SEAL_SHRINK | sys.consts.F_SEAL_GROW | sys.consts.F_SEAL_SEAL);
        }
        const fresh = !d.stateHanded;
        d.stateHanded = true;
        c.reply(f, { case: 'stateRegionReply', value: { memfd: { index: 0 }, size: BigInt(STATE_REGION_BYTES), fresh } }, [d.stateFd]);
        return;
      }
      case 'registerIoreqRange': {
        const r = body.value;
        const space = r.space === AddressSpace.ADDRESS_SPACE_PIO ? 'pio' : r.space === AddressSpace.ADDRESS_SPACE_MMIO ? 'mmio' : undefined;
        const start = Number(r.start);
        const length = Number(r.length);
        if (r.guestId !== GUEST_ID) return c.replyError(f, ErrorCode.ERROR_CODE_NO_SUCH_GUEST, `no guest ${r.guestId}`);
        let key: string;
        if (d.backend) {
          // A backend's one range is its BAR, named by offsets (control.proto RegisterIoreqRange).
          if (space !== 'mmio' || start !== 0 || length !== d.backend.pci.barSize || r.bufferedWrites) {
            return c.replyError(f, ErrorCode.ERROR_CODE_NOT_PERMITTED, `${d.sup.name} serves its BAR only: MMIO offset 0, ${d.backend.pci.barSize} bytes, unbuffered`);
          }
          key = BAR_KEY;
        } else {
          const allowed = space === undefined ? undefined : allowedRange(d.role, space, start, length);
          if (!space || !allowed) return c.replyError(f, ErrorCode.ERROR_CODE_NOT_PERMITTED, `${d.sup.name} may not serve that range`);
          if (allowed.buffered !== r.bufferedWrites) return c.replyError(f, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, 'buffered_writes does not match the range');
          key = rangeKey(allowed);
        }
        // Claimed when the domain was added; every instance gets the very same fds.
        const ep = d.endpoints.get(key);
        if (!ep) return c.replyError(f, ErrorCode.ERROR_CODE_INTERNAL, 'range allowed but not claimed');
        const e = ep.fds;
        const fds = [e.slots, ...e.toServer, ...e.toVcpu, e.ring, e.ringNotify];
        const ref = (i: number) => ({ index: i });
        c.reply(f, { case: 'ioreqRangeReply', value: {
          rangeId: ep.rangeId, slots: ref(0), vcpuCount: e.vcpus,
          toServer: e.toServer.map((_, v) => ref(1 + v)), toVcpu: e.toVcpu.map((_, v) => ref(1 + e.vcpus + v)),
          bufferedRing: ref(1 + 2 * e.vcpus), bufferedNotify: ref(2 + 2 * e.vcpus),
        } }, fds);
        return;
      }
      case 'platformEvent': {
        // A notification: no reply. Repeats after a domain restart are expected (at-least-once).
        const k = body.value.kind;
        const kind = k === PlatformEventKind.PLATFORM_EVENT_KIND_POWER_OFF ? 'poweroff' : k === PlatformEventKind.PLATFORM_EVENT_KIND_RESET ? 'reset'
          : k === PlatformEventKind.PLATFORM_EVENT_KIND_SLEEP ? 'sleep' : undefined;
        if (kind) this.emit('platform', kind);
        return;
      }
      case 'routeIoapicPin': {
        const r = body.value;
        if (r.guestId !== GUEST_ID) return c.replyError(f, ErrorCode.ERROR_CODE_NO_SUCH_GUEST, `no guest ${r.guestId}`);
        const trigger = r.trigger === TriggerMode.TRIGGER_MODE_EDGE ? 'edge' : r.trigger === TriggerMode.TRIGGER_MODE_LEVEL ? 'level' : undefined;
        const delivery = r.delivery === DeliveryMode.DELIVERY_MODE_FIXED ? 'fixed' : r.delivery === DeliveryMode.DELIVERY_MODE_LOWEST_PRIORITY ? 'lowest-priority'
          : r.delivery === DeliveryMode.DELIVERY_MODE_NMI ? 'nmi' : undefined;
        if (!trigger || !delivery) return c.replyError(f, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, 'trigger and delivery must be valid enums');
        try {
          this.guest.irq.routePin(r.pin, { vector: r.vector, trigger, delivery, destApicId: r.destApicId, masked: r.masked });
        } catch (e) {
          return c.replyError(f, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, (e as Error).message);
        }
        c.reply(f, { case: 'ack', value: {} });
        return;
      }
      case 'getIrqLines': {
        if (body.value.guestId !== GUEST_ID) return c.replyError(f, ErrorCode.ERROR_CODE_NO_SUCH_GUEST, `no guest ${body.value.guestId}`);
        // microhv's, not the domains': the masks outlive a restart of either side.
        if (!this.lines) {
          this.lines = { page: sharedPage('irq-lines', IrqLinesLayout.IRQ_LINES_PAGE_BYTES), changed: sys.eventfd(0, sys.consts.EFD_CLOEXEC | sys.consts.EFD_NONBLOCK) };
        }
        const side = ROLE_POLICY[d.role].lines;
        c.reply(f, { case: 'irqLinesReply', value: { lines: { index: 0 }, changed: { index: 1 }, sourceBit: side.source ? side.bit : 0, isSource: side.source } },
          [this.lines.page, this.lines.changed]);
        return;
      }
      case 'evtchnBindGsi': {
        const r = body.value;
        if (r.guestId !== GUEST_ID) return c.replyError(f, ErrorCode.ERROR_CODE_NO_SUCH_GUEST, `no guest ${r.guestId}`);
        let fd: number;
        try {
          fd = this.guest.irq.irqfd(r.gsi);
        } catch (e) {
          return c.replyError(f, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, (e as Error).message);
        }
        // Port numbers are per domain; a GSI's port is its number + 1 (0 is never a port).
        c.reply(f, { case: 'evtchnBound', value: { port: r.gsi + 1, send: { index: 0 }, receive: undefined } }, [fd]);
        return;
      }
      case 'mapGuestMemory': {
        // Only roles granted CAPABILITY_MAP_GUEST_MEMORY get here (the channel checks it): a backend of this guest.
        if (body.value.guestId !== GUEST_ID) return c.replyError(f, ErrorCode.ERROR_CODE_NO_SUCH_GUEST, `no guest ${body.value.guestId}`);
        const regions = this.guest.memory.regions;
        c.reply(f, { case: 'mapGuestMemoryReply', value: { guestId: GUEST_ID, regions: regions.map((r, i) => ({ gpa: BigInt(r.gpa), size: BigInt(r.size), offset: 0n, memfd: { index: i } })) } },
          regions.map((r) => r.fd));
        return;
      }
      case 'bindIoeventfd': return this.bindIoeventfd(d, c, f, body.value);
      case 'getMsixEventfds': {
        const b = this.signalsOf(d, c, f, body.value, 'MSI-X function');
        if (b) c.reply(f, { case: 'msixEventfdsReply', value: { eventfds: b.msix.map((_, i) => ({ index: i })) } }, b.msix.map((v) => v.fd));
        return;
      }
      case 'getIntxRequest': {
        const b = this.signalsOf(d, c, f, body.value, 'PCI function');
        if (b) c.reply(f, { case: 'intxRequestReply', value: { page: { index: 0 }, changed: { index: 1 } } }, [b.intx.page, b.intx.changed]);
        return;
      }
      case 'setMsiRoute': {
        const r = body.value;
        if (r.guestId !== GUEST_ID) return c.replyError(f, ErrorCode.ERROR_CODE_NO_SUCH_GUEST, `no guest ${r.guestId}`);
        const v = this.backendAt(r.slot)?.backend?.msix[r.vector];
        if (!v) return c.replyError(f, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `no MSI-X vector ${r.vector} at slot ${r.slot}`);
        try {
          this.guest.irq.setMsi(v.gsi, v.fd, r.effective ? { address: r.address, data: r.data } : undefined);
        } catch (e) {
          return c.replyError(f, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, (e as Error).message);
        }
        c.reply(f, { case: 'msiRouteReply', value: { gsi: v.gsi } });
        return;
      }
      case 'mapBar': return this.mapBar(d, c, f, body.value);
      default:
        c.replyError(f, ErrorCode.ERROR_CODE_UNSUPPORTED, `${body.case} is not served yet`);
    }
  }

  /**
   * The function whose interrupt signals (MSI-X eventfds, INTx request) `d` asks for: the pci
   * domain may have any function's, a backend only its own. Answers the refusal itself.
   */
  private signalsOf(d: Domain, c: Connection, f: Frame, r: { guestId: number; slot: number }, what: string): BackendState | undefined {
    if (r.guestId !== GUEST_ID) return void c.replyError(f, ErrorCode.ERROR_CODE_NO_SUCH_GUEST, `no guest ${r.guestId}`);
    const b = d.role === Role.ROLE_PCI ? this.backendAt(r.slot)?.backend : d.backend?.pci.slot === r.slot ? d.backend : undefined;
    if (!b) c.replyError(f, d.role === Role.ROLE_PCI || d.backend ? ErrorCode.ERROR_CODE_INVALID_ARGUMENT : ErrorCode.ERROR_CODE_NOT_PERMITTED, `no ${what} at slot ${r.slot} for ${d.sup.name}`);
    return b;
  }

  private backendAt(slot: number): Domain | undefined {
    return this.domains.find((o) => o.backend?.pci.slot === slot);
  }

  /** A backend's doorbell: microhv's eventfd, bound at BAR base + offset while the BAR decodes. */
  private bindIoeventfd(d: Domain, c: Connection, f: Frame, r: Extract<EnvelopeBody, { case: 'bindIoeventfd' }>['value']): void {
    if (r.guestId !== GUEST_ID) return c.replyError(f, ErrorCode.ERROR_CODE_NO_SUCH_GUEST, `no guest ${r.guestId}`);
    const b = d.backend;
    if (!b) return c.replyError(f, ErrorCode.ERROR_CODE_NOT_PERMITTED, `${d.sup.name} is no PCI backend: doorbells are bound at offsets in a backend's BAR`);
    const len = r.length;
    const offset = Number(r.addr);
    if (r.space !== AddressSpace.ADDRESS_SPACE_MMIO || (len !== 0 && len !== 1 && len !== 2 && len !== 4 && len !== 8) || !Number.isSafeInteger(offset) || offset < 0 || offset + Math.max(len, 1) > b.pci.barSize) {
      return c.replyError(f, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `doorbell at MMIO BAR offset ${offset}, ${len} bytes: outside the ${b.pci.barSize}-byte BAR or not a width of 0, 1, 2, 4, 8`);
    }
    const datamatch = r.datamatch ? r.datamatchValue : undefined;
    const key = `${offset}:${len}:${datamatch ?? '-'}`;
    let bell = b.doorbells.get(key);
    if (!bell) {
      if (b.doorbells.size >= 64) return c.replyError(f, ErrorCode.ERROR_CODE_NO_RESOURCES, 'at most 64 doorbells per backend');
      bell = { fd: sys.eventfd(0, sys.consts.EFD_CLOEXEC | sys.consts.EFD_NONBLOCK), offset, len, datamatch, wanted: false, boundAt: undefined };
      b.doorbells.set(key, bell);
    }
    bell.wanted = !r.unbind;
    try {
      this.placeDoorbell(bell, bell.wanted ? b.base : undefined);
    } catch (e) {
      return c.replyError(f, ErrorCode.ERROR_CODE_INTERNAL, `ioeventfd: ${(e as Error).message}`);
    }
    c.reply(f, { case: 'ioeventfdReply', value: { eventfd: { index: 0 } } }, [bell.fd]);
  }

  /** Binds the doorbell at `base` + its offset, or nowhere; moves it if it is bound elsewhere. */
  private placeDoorbell(bell: Doorbell, base: number | undefined): void {
    if (bell.boundAt === base) return;
    if (bell.boundAt !== undefined) {
      this.guest.ioeventfd({ fd: bell.fd, addr: bell.boundAt + bell.offset, len: bell.len, space: 'mmio', datamatch: bell.datamatch, deassign: true });
      bell.boundAt = undefined;
    }
    if (base !== undefined) {
      this.guest.ioeventfd({ fd: bell.fd, addr: base + bell.offset, len: bell.len, space: 'mmio', datamatch: bell.datamatch });
      bell.boundAt = base;
    }
  }

  /** The pci domain says where a BAR is: its range (and a backend's doorbells) follow it. */
  private mapBar(d: Domain, c: Connection, f: Frame, r: Extract<EnvelopeBody, { case: 'mapBar' }>['value']): void {
    if (r.guestId !== GUEST_ID) return c.replyError(f, ErrorCode.ERROR_CODE_NO_SUCH_GUEST, `no guest ${r.guestId}`);
    const base = Number(r.base);
    const size = Number(r.size);
    const end = PCI_MMIO32.base + PCI_MMIO32.size;
    const bad = r.slot < 1 || r.slot > 31 || r.bar > 5 || !Number.isSafeInteger(base) || !Number.isSafeInteger(size) || size < 16 || (size & (size - 1)) !== 0 || base % size !== 0;
    // A BAR that does not decode may hold anything (the size mask while the guest sizes it): only a decoding one is placed.
    if (bad || (r.decoding && (base < PCI_MMIO32.base || base + size > end))) {
      return c.replyError(f, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `BAR ${r.bar} of slot ${r.slot} at 0x${r.base.toString(16)}, 0x${r.size.toString(16)} bytes: not a naturally aligned power of two inside 0x${PCI_MMIO32.base.toString(16)}..0x${(end - 1).toString(16)}`);
    }
    let endpoint: number;
    let owner: BackendState | undefined;
    if (r.servedByPci) {
      // The MSI-X table and PBA: the pci domain's own MMIO endpoint (the one of its ECAM range), absolute addresses.
      const ecam = ROLE_POLICY[d.role].ranges.find((x) => x.space === 'mmio');
      const ep = ecam === undefined ? undefined : d.endpoints.get(rangeKey(ecam));
      if (!ep) return c.replyError(f, ErrorCode.ERROR_CODE_INTERNAL, 'the pci domain has no MMIO endpoint');
      endpoint = ep.rangeId - 1;
    } else {
      const backend = this.backendAt(r.slot);
      owner = backend?.backend;
      const ep = backend?.endpoints.get(BAR_KEY);
      if (!owner || !ep || owner.pci.bar !== r.bar || owner.pci.barSize !== size) {
        return c.replyError(f, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `slot ${r.slot} BAR ${r.bar} (${size} bytes) is no backend's BAR`);
      }
      endpoint = ep.rangeId - 1;
    }
    const key = `${r.slot}:${r.bar}`;
    const was = this.bars.get(key);
    if (r.decoding && was?.base === base && was.size === size) return c.reply(f, { case: 'ack', value: {} });
    try {
      if (was) {
        this.guest.ranges.remove('mmio', was.base);
        this.bars.delete(key);
      }
      if (owner) owner.base = undefined;
      if (r.decoding) {
        this.guest.ranges.add({ space: 'mmio', first: base, last: base + size - 1, endpoint, buffered: false, relative: !r.servedByPci });
        this.bars.set(key, { base, size });
        if (owner) owner.base = base;
      }
      if (owner) for (const bell of owner.doorbells.values()) this.placeDoorbell(bell, bell.wanted ? owner.base : undefined);
    } catch (e) {
      const code = e instanceof IoRangeError && e.code === 'OVERLAP' ? ErrorCode.ERROR_CODE_CONFLICT : ErrorCode.ERROR_CODE_INTERNAL;
      return c.replyError(f, code, (e as Error).message);
    }
    c.reply(f, { case: 'ack', value: {} });
  }

  /**
   * Platform reset of every domain's device (control.proto ResetDevice), called with the guest
   * halted. A domain that is restarting is asked again once its successor answers; one that never
   * confirms within the deadline is reported.
   */
  async resetDevices(deadlineMs = 15_000): Promise<void> {
    const end = Date.now() + deadlineMs;
    await Promise.all(this.domains.map(async (d) => {
      while (Date.now() < end) {
        const conn = d.conn;
        if (conn && !conn.closed) {
          try {
            const f = await conn.request({ case: 'resetDevice', value: {} }, [], Math.max(1, end - Date.now()));
            for (const fd of f.fds) sys.close(fd);
            if (f.body.case === 'ack') return;
          } catch { /* that instance died meanwhile: its successor is asked */ }
        }
        // Not up yet, or still acquiring its resources (it answers BAD_STATE until then).
        await new Promise((r) => setTimeout(r, 20));
      }
      this.emit('log', `${d.sup.name} did not confirm the platform reset within ${deadlineMs} ms`);
    }));
  }

  health(): Record<string, string> {
    return Object.fromEntries(this.domains.map((d) => [d.sup.name, d.sup.health]));
  }

  domain(name: string): DomainSupervisor | undefined {
    return this.domains.find((d) => d.sup.name === name)?.sup;
  }

  stop(): void {
    for (const d of this.domains) {
      if (d.heartbeat) clearInterval(d.heartbeat);
      d.sup.stop();
    }
    this.server.close();
    for (const d of this.domains) {
      for (const v of d.backend?.msix ?? []) sys.close(v.fd);
      if (d.backend) for (const fd of [d.backend.intx.page, d.backend.intx.changed]) sys.close(fd);
      for (const bell of d.backend?.doorbells.values() ?? []) sys.close(bell.fd);
    }
    if (this.lines) for (const fd of [this.lines.page, this.lines.changed]) sys.close(fd);
    this.lines = undefined;
  }
}

/** A page-sized memfd microhv owns and shares, sealed against resizing (a domain could otherwise make a mapping fault). */
function sharedPage(name: string, bytes: number): number {
  const page = sys.memfdCreate(name, sys.consts.MFD_CLOEXEC | sys.consts.MFD_ALLOW_SEALING);
  sys.ftruncate(page, bytes);
  sys.addSeals(page, sys.consts.F_SEAL_SHRINK | sys.consts.F_SEAL_GROW | sys.consts.F_SEAL_SEAL);
  return page;
}
