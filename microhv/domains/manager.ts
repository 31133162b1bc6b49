// microhv's side of every domain's control channel: it greets each instance
// with its role and capabilities, answers its resource requests within what
// the role allows, keeps what must outlive an instance (state region, ioreq
// endpoints) and supervises it. A restarted instance gets the same fds.
import { EventEmitter } from 'node:events';
import * as sys from '../sys/index.js';
import { ControlServer, type Connection } from '../../idl/control/channel.js';
import type { Frame } from '../../idl/control/framing.js';
import type { Reactor } from '../../idl/control/reactor.js';
import { AddressSpace, DeliveryMode, ErrorCode, IrqLinesLayout, PlatformEventKind, TriggerMode, type EnvelopeBody } from '../../idl/generated/control.js';
import type { Guest } from '../vm/guest.js';
import type { EndpointFds } from '../ioreq/endpoints.js';
import { DomainSupervisor, DEFAULT_POLICY, type SupervisorPolicy } from './supervisor.js';
import { ROLE_POLICY, allowedRange, type AllowedRange, type StubRole } from './policy.js';

export const STATE_REGION_BYTES = 256 * 1024;
const PROTOCOL_VERSION = 1;
/** How long a new instance may take to answer Hello before it counts as hung. */
const STARTUP_DEADLINE_MS = 30_000;
const GUEST_ID = 1;
/** Endpoints are kept per allowed range, so a successor re-registering it gets the same fds. */
const rangeKey = (r: AllowedRange): string => `${r.space}:${r.first}:${r.last}`;

interface Domain {
  readonly id: number;
  readonly role: StubRole;
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
  /** The guest's legacy interrupt lines page and its `changed` eventfd (control.proto), made on first request. */
  private lines: { page: number; changed: number } | undefined;

  constructor(private readonly reactor: Reactor, private readonly guest: Guest) {
    super();
    this.server = new ControlServer(reactor, { onFrame: (c, f) => this.onFrame(c, f), onClose: (c) => this.onClose(c) });
  }

  /** Adds a supervised domain of `role`, started by `argv` (node arguments). */
  add(role: StubRole, name: string, argv: readonly string[], policy: SupervisorPolicy = DEFAULT_POLICY): DomainSupervisor {
    const sup = new DomainSupervisor(this.reactor, name, argv, policy);
    const d: Domain = { id: this.domains.length + 1, role, sup, stateFd: -1, stateHanded: false, endpoints: new Map(), up: false, upAt: 0, seq: 0n };
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
        const allowed = space === undefined ? undefined : allowedRange(d.role, space, start, length);
        if (r.guestId !== GUEST_ID) return c.replyError(f, ErrorCode.ERROR_CODE_NO_SUCH_GUEST, `no guest ${r.guestId}`);
        if (!space || !allowed) return c.replyError(f, ErrorCode.ERROR_CODE_NOT_PERMITTED, `${d.sup.name} may not serve that range`);
        if (allowed.buffered !== r.bufferedWrites) return c.replyError(f, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, 'buffered_writes does not match the range');
        // Claimed when the domain was added; every instance gets the very same fds.
        const ep = d.endpoints.get(rangeKey(allowed));
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
          const page = sys.memfdCreate('irq-lines', sys.consts.MFD_CLOEXEC | sys.consts.MFD_ALLOW_SEALING);
          sys.ftruncate(page, IrqLinesLayout.IRQ_LINES_PAGE_BYTES);
          sys.addSeals(page, sys.consts.F_SEAL_SHRINK | sys.consts.F_SEAL_GROW | sys.consts.F_SEAL_SEAL);
          this.lines = { page, changed: sys.eventfd(0, sys.consts.EFD_CLOEXEC | sys.consts.EFD_NONBLOCK) };
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
      default:
        c.replyError(f, ErrorCode.ERROR_CODE_UNSUPPORTED, `${body.case} is not served yet`);
    }
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
    if (this.lines) for (const fd of [this.lines.page, this.lines.changed]) sys.close(fd);
    this.lines = undefined;
  }
}
