// The stub-domain process: one wasm stub module (console, ioapic or pci) served as
// its own OS process, spawned, supervised and restarted by microhv.
//
//   node dist/driver-domains/runtime/main.js [--console-log PATH] [--console-socket PATH]
//
// fd 3 is the control socket (control.proto). microhv says Hello (role,
// generation); the domain answers, asks for its state region, restores the
// module from it (or powers it on when the region was never committed),
// registers its ioreq ranges (a successor gets the same endpoints) and
// serves them. Every effect is committed to the state region before it is
// visible (domain.ts), so kill -9 at any point loses and repeats nothing.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sys from '../../microhv/sys/index.js';
import { adoptControl, type Connection } from '../../idl/control/channel.js';
import type { Frame } from '../../idl/control/framing.js';
import { Reactor } from '../../idl/control/reactor.js';
import {
  AddressSpace, ENVELOPE_BODY_SENDER, ErrorCode, PlatformEventKind, Role,
  type EnvelopeBody, type EnvelopeBodyCase, type Hello,
} from '../../idl/generated/control.js';
import { ACPI_PM, COM1, I8042, IOAPIC_BASE, PCI_CONFIG_PORTS, PCI_ECAM } from '../../boot/layout.js';
import { LogLevel, PlatformEvent, type IoapicExports, type PciExports, type StubExportsByKind, type StubKind } from './abi.js';
import { ConsoleLog, ConsoleSocket } from './console-io.js';
import { StubRuntime } from './domain.js';
import { CONTROL_FD, ackIn, checkInheritedFds, closeFds, endpointFds, enumName, explainFatal, getIntxRequest, installStartFilter, mapPageAndEventfd, requestReply, takeFd } from './process-common.js';
import { installFilter, sealedRules } from './seccomp.js';
import { SANDBOX_ENV } from '../../microhv/domains/sandbox-env.js';
import { IoapicDelivery } from './ioapic-delivery.js';
import { IrqLines, LineReader, LINES_PAGE_BYTES } from './irq-lines.js';
import { DEFAULT_PCI_TABLE, stagePciTable, virtioBlockFunction, type PciFunctionSpec } from './pci-table.js';
import { PciBus } from './pci-bus.js';
import { DomainProcessError } from './process-errors.js';

const PROTOCOL_VERSION = 1;

interface RangeSpec { readonly space: AddressSpace; readonly start: number; readonly length: number; readonly buffered: boolean }

/** The ranges each role serves, in the order it registers them (which fixes the endpoint numbering in the state region). */
const RANGES = {
  console: [
    // Guest output is posted writes to THR, so COM1 takes the buffered ring.
    { space: AddressSpace.ADDRESS_SPACE_PIO, start: COM1.port, length: COM1.size, buffered: true },
    { space: AddressSpace.ADDRESS_SPACE_PIO, start: I8042.data, length: 1, buffered: false },
    { space: AddressSpace.ADDRESS_SPACE_PIO, start: I8042.command, length: 1, buffered: false },
    { space: AddressSpace.ADDRESS_SPACE_PIO, start: ACPI_PM.pm1aEvent, length: ACPI_PM.pmTimer + ACPI_PM.pmTimerLen - ACPI_PM.pm1aEvent, buffered: false },
  ],
  // microhv forwards KVM_EXIT_IOAPIC_EOI as a posted write of the vector to IOAPIC_BASE + 0x40 on
  // this endpoint's buffered ring; the module's ioreq() handles that register like any other.
  ioapic: [{ space: AddressSpace.ADDRESS_SPACE_MMIO, start: IOAPIC_BASE, length: 0x1000, buffered: false }],
  // CONFIG_ADDRESS, CONFIG_DATA and bus 0 of ECAM, all answered before the guest goes on. The
  // ServedByPci BARs (MSI-X tables) are not here: they move with bar_generation() and arrive
  // with the first endpoint that has one.
  pci: [
    { space: AddressSpace.ADDRESS_SPACE_PIO, start: PCI_CONFIG_PORTS.base, length: 4, buffered: false },
    { space: AddressSpace.ADDRESS_SPACE_PIO, start: PCI_CONFIG_PORTS.base + 4, length: PCI_CONFIG_PORTS.size - 4, buffered: false },
    { space: AddressSpace.ADDRESS_SPACE_MMIO, start: PCI_ECAM.base, length: PCI_ECAM.size, buffered: false },
  ],
} as const satisfies Record<StubKind, readonly RangeSpec[]>;

/** Which side of the lines page each kind takes: the console (UART, SCI) and pci (INTx) drive lines, the ioapic reads them. */
const LINE_SOURCE = { console: true, ioapic: false, pci: true } as const satisfies Record<StubKind, boolean>;

/** Power-on staging before init() (StubRuntime.open); a restored instance finds it in its state window. */
function beforeInit(kind: StubKind, table: readonly PciFunctionSpec[]): ((ex: StubExportsByKind[StubKind]) => void) | undefined {
  switch (kind) {
    // The module was bound as kind pci (bindExports checked every PciExports function).
    case 'pci': return (ex) => stagePciTable(ex as PciExports, table);
    case 'console': case 'ioapic': return undefined;
    default: {
      const never: never = kind;
      return never;
    }
  }
}

interface Args { consoleLog?: string; consoleSocket?: string; pciTable: PciFunctionSpec[] }

const USAGE = 'usage: main.js [--console-log PATH] [--console-socket PATH] [--virtio-blk SLOT:QUEUES]...';

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { pciTable: [...DEFAULT_PCI_TABLE] };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new DomainProcessError('USAGE', `${flag ?? ''} needs a value`);
    if (flag === '--console-log') args.consoleLog = value;
    else if (flag === '--console-socket') args.consoleSocket = value;
    else if (flag === '--virtio-blk') {
      // The pci domain's device table: a virtio-blk function whose BAR 4 the block domain serves.
      const m = /^(\d+):(\d+)$/.exec(value);
      const slot = Number(m?.[1]);
      const queues = Number(m?.[2]);
      if (!m || slot < 1 || slot > 31 || queues < 1 || queues > 15 || args.pciTable.some((f) => f.slot === slot)) {
        throw new DomainProcessError('USAGE', `--virtio-blk ${value}: expected SLOT:QUEUES, a free slot 1..31 and 1..15 queues`);
      }
      args.pciTable.push(virtioBlockFunction(slot, queues));
    } else throw new DomainProcessError('USAGE', `unknown option ${flag ?? ''}; ${USAGE}`);
  }
  return args;
}

function kindOf(role: Role): StubKind | undefined {
  switch (role) {
    case Role.ROLE_CONSOLE: return 'console';
    case Role.ROLE_IOAPIC: return 'ioapic';
    case Role.ROLE_PCI: return 'pci';
    case Role.ROLE_INVALID: case Role.ROLE_DOM0: case Role.ROLE_XENSTORE: case Role.ROLE_BLOCK: case Role.ROLE_NET:
      return undefined;
    default: {
      const never: never = role;
      return never;
    }
  }
}

function platformEventKind(e: PlatformEvent): PlatformEventKind | undefined {
  switch (e) {
    case PlatformEvent.PowerOff: return PlatformEventKind.PLATFORM_EVENT_KIND_POWER_OFF;
    case PlatformEvent.Reset: return PlatformEventKind.PLATFORM_EVENT_KIND_RESET;
    case PlatformEvent.Sleep: return PlatformEventKind.PLATFORM_EVENT_KIND_SLEEP;
    case PlatformEvent.None: return undefined;
    default: {
      const never: never = e;
      return never;
    }
  }
}

/** The repository (or installed tree) root: the nearest directory above this file with a package.json. */
function rootDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new DomainProcessError('USAGE', 'no package.json above the runtime: cannot find build/driver-domains');
    dir = parent;
  }
  return dir;
}

/** Bodies microhv may send (the decoder already refused the others). */
type FromMicrohv = { [C in EnvelopeBodyCase]: (typeof ENVELOPE_BODY_SENDER)[C] extends 'domain' ? never : C }[EnvelopeBodyCase];
type Handler = (d: Domain, f: Frame) => void;
type Phase = 'greeting' | 'starting' | 'serving' | 'sleeping' | 'closing';

/** Requests and notifications from microhv; replies to our own requests never reach this table. */
const HANDLERS = {
  hello: (d, f) => d.onHello(f),
  heartbeat: (d, f) => {
    if (f.body.case !== 'heartbeat') return;
    // Answered from the event loop, so a loop stuck in a module or a commit shows up as a miss.
    // Ioreqs are applied and answered within one turn of the loop: none is in flight here.
    d.conn.reply(f, { case: 'heartbeatReply', value: { seq: f.body.value.seq, inflight: 0 } });
  },
  // The region was restored at GetStateRegion time; Restore and Activate only confirm it.
  restore: (d, f) => d.ack(f, ['starting', 'serving']),
  activate: (d, f) => d.ack(f, ['starting', 'serving']),
  sleep: (d, f) => d.sleep(f),
  wake: (d, f) => d.wake(f),
  snapshot: (d, f) => d.snapshot(f),
  shutdown: (d, f) => d.shutdown(f),
  resetDevice: (d, f) => d.resetDevice(f),
  ack: (d, f) => d.stray(f),
  error: (d, f) => {
    // An Error with reply_to 0 answers a notification (PlatformEvent): microhv refused it.
    closeFds(f.fds);
    if (f.body.case === 'error') d.warn(`microhv refused a notification: ${enumName(ErrorCode, f.body.value.code)}: ${f.body.value.message}`);
  },
  mapGuestMemoryReply: (d, f) => d.stray(f),
  stateRegionReply: (d, f) => d.stray(f),
  ioreqRangeReply: (d, f) => d.stray(f),
  msiRouteReply: (d, f) => d.stray(f),
  evtchnBound: (d, f) => d.stray(f),
  irqLinesReply: (d, f) => d.stray(f),
  ioeventfdReply: (d, f) => d.stray(f),
  msixEventfdsReply: (d, f) => d.stray(f),
  intxRequestReply: (d, f) => d.stray(f),
} satisfies Record<FromMicrohv, Handler>;

class Domain {
  readonly reactor = new Reactor();
  readonly conn: Connection;
  private phase: Phase = 'greeting';
  private kind: StubKind | undefined;
  private generation = 0;
  private runtime: StubRuntime<StubKind> | undefined;
  private socket: ConsoleSocket | undefined;
  private log: ConsoleLog | undefined;
  private readonly waitKeys: Array<{ key: number; fd: number }> = [];
  private readonly waitFds: number[] = [];
  private resourcesReady = false;
  private delivery: IoapicDelivery | undefined;
  /** Route sync without irqfds (microhv refused EvtchnBindGsi): MSIs are counted, not sent. */
  private routesOnly: IoapicDelivery | undefined;
  private lineWarned = false;
  /** Console and pci: the lines page as a source, its bit and the `changed` eventfd. */
  private lineFds: { lines: IrqLines; changed: number } | undefined;
  private lineSource: { lines: IrqLines; bit: number; changed: number } | undefined;
  /** Ioapic: the lines page as reader and its `changed` eventfd. */
  private lineReader: { reader: LineReader; changed: number } | undefined;
  private msiWarned = false;
  /** Pci: BAR placement and MSI-X routes, told to microhv as the module changes them. */
  private bus: PciBus | undefined;
  /** Pci: a bus sync is under way; ioreqs wait (the one that changed the bus is held in its slot). */
  private syncing = false;

  constructor(private readonly args: Args) {
    this.reactor.onHandlerError = (e) => this.fatal(e);
    this.conn = adoptControl(this.reactor, CONTROL_FD, {
      onFrame: (_c, f) => this.onFrame(f),
      onClose: (_c, err) => {
        // microhv is gone (or broke the protocol): without it there is nothing to serve.
        if (this.phase === 'closing') return;
        if (err !== null) this.fatal(err);
        else this.exit(0, 'control channel closed by microhv');
      },
    });
  }

  private onFrame(f: Frame): void {
    const handler: Handler = HANDLERS[f.body.case as FromMicrohv];
    if (this.phase === 'greeting' && f.body.case !== 'hello') {
      closeFds(f.fds);
      if (f.envelope.id !== 0) this.conn.replyError(f, ErrorCode.ERROR_CODE_BAD_STATE, `${f.body.case} before Hello`);
      return;
    }
    handler(this, f);
  }

  onHello(f: Frame): void {
    closeFds(f.fds);
    if (f.body.case !== 'hello') return;
    if (this.phase !== 'greeting') return this.conn.replyError(f, ErrorCode.ERROR_CODE_BAD_STATE, 'second Hello');
    const hello: Hello = f.body.value;
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      this.conn.replyError(f, ErrorCode.ERROR_CODE_VERSION_MISMATCH, `this domain speaks version ${PROTOCOL_VERSION}`);
      return this.exit(1, `microhv speaks protocol version ${hello.protocolVersion}`);
    }
    const kind = kindOf(hello.role);
    const guest = hello.guestIds[0];
    if (kind === undefined || guest === undefined) {
      this.conn.replyError(f, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, 'the stub-domain runtime serves ROLE_CONSOLE, ROLE_IOAPIC or ROLE_PCI for one guest');
      return this.exit(1, `role ${enumName(Role, hello.role)}, guests [${hello.guestIds.join(', ')}]`);
    }
    this.kind = kind;
    this.generation = hello.generation;
    this.phase = 'starting';
    this.conn.reply(f, { case: 'helloReply', value: { protocolVersion: PROTOCOL_VERSION, pid: process.pid } });
    this.start(kind, guest).catch((e: unknown) => this.fatal(e));
  }

  private async start(kind: StubKind, guest: number): Promise<void> {
    const region = await this.request({ case: 'getStateRegion', value: {} }, 'stateRegionReply');
    if (region.body.case !== 'stateRegionReply') throw new DomainProcessError('PROTOCOL', 'unreachable');
    const memfd = takeFd(region, region.body.value.memfd?.index, 'state region memfd');
    const size = Number(region.body.value.size);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(sys.mmap(size, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, memfd, 0).buffer);
    } catch (e) {
      throw new DomainProcessError('STATE', `mmap of the ${size}-byte state region`, { cause: e });
    } finally {
      // The mapping keeps the memory; the fd itself is not needed again.
      sys.close(memfd);
    }
    const wasm = join(rootDir(), 'build', 'driver-domains', `${kind}.wasm`);
    const rt = StubRuntime.open(kind, wasm, bytes, region.body.value.fresh, {
      log: (level, text) => this.moduleLog(level, text),
      setPin: (gsi, level) => this.setPin(gsi, level),
      msi: (addr, data) => (this.delivery ? this.delivery.msi(addr, data) : this.msiNotDelivered()),
    }, beforeInit(kind, this.args.pciTable));
    this.runtime = rt;
    rt.onPlatformEvent = (e) => this.reportPlatformEvent(e);
    this.info(`${kind} generation ${this.generation}: ${rt.restored ? `restored state commit ${rt.generation}` : 'powered on'}`);

    // Lines before ranges: a pin the module drives while serving must have somewhere to go.
    await this.acquireLines(kind, guest);

    // Outputs first: once its last range is registered, microhv may run the guest.
    if (kind === 'console') {
      if (this.args.consoleLog !== undefined) {
        this.log = new ConsoleLog(this.args.consoleLog);
        rt.attachLog(this.log);
      }
      if (this.args.consoleSocket !== undefined) {
        this.socket = await ConsoleSocket.listen(this.args.consoleSocket, () => this.runtime?.pumpInput());
        rt.attachSocket(this.socket);
      }
    }

    for (const r of RANGES[kind]) {
      const reply = await this.request({ case: 'registerIoreqRange', value: { guestId: guest, space: r.space, start: BigInt(r.start), length: BigInt(r.length), bufferedWrites: r.buffered } }, 'ioreqRangeReply');
      if (reply.body.case !== 'ioreqRangeReply') throw new DomainProcessError('PROTOCOL', 'unreachable');
      const fds = endpointFds(reply, reply.body.value);
      const { server, duplicate } = rt.addEndpoint(fds);
      if (duplicate) {
        closeFds(reply.fds);
        continue;
      }
      for (const fd of server.waitFds()) this.waitFds.push(fd);
    }

    if (kind === 'ioapic') {
      const ex = rt.device.exports as IoapicExports;
      await this.startDelivery(ex, guest);
      if (this.lineReader === undefined && this.lineFds !== undefined) {
        const fds = this.lineFds;
        this.lineReader = { reader: new LineReader(fds.lines, (pin, level) => ex.set_irq(pin, level)), changed: fds.changed };
      }
    }

    if (kind === 'pci') {
      const bus = new PciBus(rt.device.exports as PciExports, this.args.pciTable, {
        mapBar: async (b) => { await this.request({ case: 'mapBar', value: { guestId: guest, ...b } }, 'ack'); },
        setMsiRoute: async (r) => { await this.request({ case: 'setMsiRoute', value: { guestId: guest, ...r } }, 'msiRouteReply'); },
        msixEventfds: async (slot) => {
          const f = await this.request({ case: 'getMsixEventfds', value: { guestId: guest, slot } }, 'msixEventfdsReply');
          if (f.body.case !== 'msixEventfdsReply') throw new DomainProcessError('PROTOCOL', 'unreachable');
          const refs = f.body.value.eventfds.map((r) => f.fds[r.index]);
          if (refs.some((fd) => fd === undefined) || new Set(refs).size !== refs.length || refs.length !== f.fds.length) {
            closeFds(f.fds);
            throw new DomainProcessError('PROTOCOL', 'MSI-X eventfds reply does not name each fd it carries once');
          }
          return refs as number[];
        },
        // Refused (an older core): the pin is never driven, and the backend is not gated on Bus Master Enable.
        intxRequest: (slot) => getIntxRequest(this.conn, guest, slot, (why) => this.warn(`INTx of slot ${slot} unavailable: ${why}`)),
        watch: (fd, onReadable) => {
          const key = this.reactor.add(fd, sys.consts.EPOLLIN, onReadable);
          return () => this.reactor.remove(key, fd);
        },
        commit: () => rt.commit(),
      });
      // Every BAR and vector as the module has them, before the first ioreq: a successor's view may be stale.
      await bus.start();
      rt.holdAnswer = () => bus.dirty();
      this.bus = bus;
    }

    this.resourcesReady = true;
    // Every fd this domain will use is open: from here on it makes no new file, path or socket.
    this.seal();
    // Sleep (Wake starts serving then) or Shutdown may have arrived meanwhile.
    if (this.phase === 'starting') this.startServing();
  }

  private seal(): void {
    try {
      installFilter(sealedRules());
    } catch (e) {
      throw new DomainProcessError('SANDBOX', 'sealed seccomp filter', { cause: e });
    }
  }

  /** The ioapic's irqfds and pin routes (ioapic-delivery.ts); routes are re-stated to microhv at every start. */
  private async startDelivery(ex: IoapicExports, guest: number): Promise<void> {
    const delivery = new IoapicDelivery(ex, {
      bindGsi: async (gsi, trigger) => {
        const f = await this.request({ case: 'evtchnBindGsi', value: { guestId: guest, gsi, trigger } }, 'evtchnBound');
        if (f.body.case !== 'evtchnBound') throw new DomainProcessError('PROTOCOL', 'unreachable');
        return takeFd(f, f.body.value.send?.index, `irqfd of GSI ${gsi}`);
      },
      routePin: async (route) => {
        await this.request({ case: 'routeIoapicPin', value: { guestId: guest, ...route } }, 'ack');
      },
      lineLevel: (pin) => this.lineFds?.lines.level(pin) ?? 0,
      warn: (text) => this.warn(text),
    });
    if (await delivery.bind()) this.delivery = delivery;
    // Routes go to microhv even without irqfds: KVM learns the level-triggered vectors from them.
    delivery.sync();
    if (this.delivery === undefined) this.routesOnly = delivery;
  }

  private startServing(): void {
    const rt = this.runtime;
    if (rt === undefined) return;
    this.phase = 'serving';
    const serve = (): void => {
      if (this.syncing) {
        // The wake-ups are taken; serve() after the sync finds every slot and posted write waiting.
        for (const fd of this.waitFds) sys.eventfdTryRead(fd);
        return;
      }
      rt.serve();
      // A config write may have set or cleared Bus Master Enable: the backend sees it at its next look.
      this.bus?.stateCommands();
      // A guest write may have changed a redirection entry: its route goes to microhv now.
      (this.delivery ?? this.routesOnly)?.sync();
      const bus = this.bus;
      if (bus !== undefined && bus.dirty()) {
        // A config write moved a BAR or changed a vector: microhv hears of it before that ioreq is answered.
        this.syncing = true;
        bus.sync().then(() => {
          this.syncing = false;
          if (this.phase === 'serving') serve();
        }, (e: unknown) => this.fatal(e));
      }
    };
    for (const fd of this.waitFds) this.waitKeys.push({ key: this.reactor.add(fd, sys.consts.EPOLLIN, serve), fd });
    const lr = this.lineReader;
    if (lr !== undefined) {
      const lines = (): void => {
        // Drained before the masks are read: a change signalled after this read wakes us again.
        sys.eventfdTryRead(lr.changed);
        if (lr.reader.apply() > 0) {
          // set_irq changed the module (pin levels, remote IRR): keep it across a restart.
          rt.commit();
          lr.reader.acknowledge();
          (this.delivery ?? this.routesOnly)?.sync();
        }
      };
      this.waitKeys.push({ key: this.reactor.add(lr.changed, sys.consts.EPOLLIN, lines), fd: lr.changed });
      // Levels that changed while no instance read them (or that this instance's module has not seen).
      lines();
    }
    // Work that waited while no instance served (parked slots, posted writes) goes first.
    serve();
  }

  /** GetIrqLines: the console and pci drive lines, the ioapic reads them. Refused (an older core): lines are counted, not sent. */
  private async acquireLines(kind: StubKind, guest: number): Promise<void> {
    let f: Frame;
    try {
      f = await this.request({ case: 'getIrqLines', value: { guestId: guest } }, 'irqLinesReply');
    } catch (e) {
      if (e instanceof DomainProcessError && e.code === 'CONTROL') {
        this.warn(`interrupt lines unavailable: ${e.message}`);
        return;
      }
      throw e;
    }
    if (f.body.case !== 'irqLinesReply') throw new DomainProcessError('PROTOCOL', 'unreachable');
    const r = f.body.value;
    if (r.isSource !== LINE_SOURCE[kind] || r.sourceBit > 31) {
      closeFds(f.fds);
      throw new DomainProcessError('PROTOCOL', `irq lines: a ${kind} domain given ${r.isSource ? `source bit ${r.sourceBit}` : 'the reader side'}`);
    }
    const { buffer, changed } = mapPageAndEventfd(f, r.lines?.index, r.changed?.index, LINES_PAGE_BYTES, sys.consts.PROT_READ | sys.consts.PROT_WRITE, 'irq lines');
    const lines = new IrqLines(buffer);
    this.lineFds = { lines, changed };
    if (r.isSource) this.lineSource = { lines, bit: r.sourceBit, changed };
  }

  private stopServing(): void {
    for (const { key, fd } of this.waitKeys.splice(0)) this.reactor.remove(key, fd);
  }

  private request(body: EnvelopeBody, expect: EnvelopeBodyCase): Promise<Frame> {
    return requestReply(this.conn, body, expect);
  }

  ack(f: Frame, phases: readonly Phase[]): void {
    ackIn(this.conn, f, this.phase, phases);
  }

  sleep(f: Frame): void {
    closeFds(f.fds);
    // Also while starting: microhv may ask as soon as it answered the last range, before this
    // side has seen that answer.
    if (this.phase !== 'serving' && this.phase !== 'starting') return this.conn.replyError(f, ErrorCode.ERROR_CODE_BAD_STATE, `sleep while ${this.phase}`);
    // Every ioreq taken so far is answered (serve() runs to completion); new ones stay parked in their slots.
    this.stopServing();
    this.phase = 'sleeping';
    this.conn.reply(f, { case: 'ack', value: {} });
  }

  wake(f: Frame): void {
    closeFds(f.fds);
    if (this.phase !== 'sleeping') return this.conn.replyError(f, ErrorCode.ERROR_CODE_BAD_STATE, `wake while ${this.phase}`);
    this.conn.reply(f, { case: 'ack', value: {} });
    // Still acquiring its resources: start() begins serving when it is done.
    if (this.resourcesReady) this.startServing();
    else this.phase = 'starting';
  }

  snapshot(f: Frame): void {
    closeFds(f.fds);
    const rt = this.runtime;
    if (this.phase !== 'sleeping' || rt === undefined || !this.resourcesReady) return this.conn.replyError(f, ErrorCode.ERROR_CODE_BAD_STATE, `snapshot while ${this.phase}`);
    rt.commit();
    this.conn.reply(f, { case: 'snapshotReply', value: { stateBytes: BigInt(0), snapshotSeq: rt.generation } });
  }

  /** Platform reset (control.proto ResetDevice): the module's registers return to their reset values. */
  resetDevice(f: Frame): void {
    closeFds(f.fds);
    const rt = this.runtime;
    // Until its resources are in place the instance has nothing to reset; microhv asks again.
    if (rt === undefined || !this.resourcesReady) return this.conn.replyError(f, ErrorCode.ERROR_CODE_BAD_STATE, `reset while ${this.phase}`);
    rt.reset();
    // The ioapic's routes changed (every pin masked): microhv hears of it before the guest runs again.
    (this.delivery ?? this.routesOnly)?.sync();
    this.info(`${this.kind ?? 'domain'}: platform reset`);
    // Pci: BARs back at their firmware places, every vector masked; microhv is told before the Ack.
    if (this.bus === undefined) return this.conn.reply(f, { case: 'ack', value: {} });
    this.bus.sync().then(() => this.conn.reply(f, { case: 'ack', value: {} }), (e: unknown) => this.fatal(e));
  }

  shutdown(f: Frame): void {
    closeFds(f.fds);
    this.stopServing();
    // Everything is committed after each piece of work already; one more commit records a cleared outbox.
    this.runtime?.commit();
    this.phase = 'closing';
    this.conn.reply(f, { case: 'ack', value: {} });
    this.exit(0, 'shutdown');
  }

  stray(f: Frame): void {
    closeFds(f.fds);
    this.warn(`ignored ${f.body.case} that answers nothing of ours`);
  }

  private reportPlatformEvent(e: PlatformEvent): void {
    const kind = platformEventKind(e);
    if (kind === undefined) return;
    this.info(`guest platform event ${PlatformEvent[e]}`);
    this.conn.send({ case: 'platformEvent', value: { kind } });
  }

  /** The console's and pci's set_pin: this domain's bit in the GSI's mask, then a wake-up for the reader. */
  private setPin(gsi: number, level: number): void {
    const src = this.lineSource;
    if (src === undefined) return this.lineNotDelivered();
    // The module names GSIs from its own constants; one outside the page is a module defect, counted.
    if (!src.lines.drive(gsi, src.bit, level)) return this.lineNotDelivered();
    sys.eventfdWrite(src.changed, 1n);
  }

  private lineNotDelivered(): void {
    if (this.runtime !== undefined) this.runtime.counters.lines_not_delivered++;
    if (!this.lineWarned) this.warn('an interrupt line change was not delivered (no lines page, or a GSI outside it)');
    this.lineWarned = true;
  }

  private msiNotDelivered(): void {
    if (this.runtime !== undefined) this.runtime.counters.msis_not_delivered++;
    if (!this.msiWarned) this.warn('an MSI was not delivered: microhv gave no irqfds (EvtchnBindGsi refused)');
    this.msiWarned = true;
  }

  private moduleLog(level: number, text: string): void {
    process.stderr.write(`${this.kind ?? 'stub'}[${process.pid}] module ${LogLevel[level] ?? level}: ${text}\n`);
  }

  info(text: string): void {
    process.stderr.write(`${this.kind ?? 'stub'}[${process.pid}]: ${text}\n`);
  }

  warn(text: string): void {
    process.stderr.write(`${this.kind ?? 'stub'}[${process.pid}] warning: ${text}\n`);
  }

  fatal(e: unknown): void {
    // The cause chain, without stacks: what went wrong, for microhv's log.
    const { status, text } = explainFatal(e);
    this.exit(status, text);
  }

  exit(status: number, why: string): void {
    if (status !== 0 || this.phase === 'closing') this.info(`exiting (${status}): ${why}`);
    this.phase = 'closing';
    this.socket?.close();
    this.log?.close();
    // A reply just queued (Ack, Error) is sent by sendmsg synchronously; nothing else needs draining.
    // process.exit joins libuv's pool threads, one of which may be blocked in the reactor's wait:
    // stop() wakes it at once (its eventfd write is synchronous).
    this.reactor.stop().catch(() => undefined);
    process.exit(status);
  }
}

function main(): void {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`stub-domain: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  }
  const seccomp = installStartFilter('stub-domain');
  const domain = new Domain(args);
  // Errors outside the reactor (console socket callbacks) end the process the same way: one line, no stack.
  process.on('uncaughtException', (e) => domain.fatal(e));
  process.on('unhandledRejection', (e) => domain.fatal(e));
  const sandbox = process.env[SANDBOX_ENV];
  domain.info(`sandbox: ${sandbox === undefined ? 'not started by microhv\'s sandbox' : `namespaces ${sandbox}`}; seccomp ${seccomp ? 'on' : 'NOT available (no seccomp in this kernel)'}`);
  // After fd 3 is adopted: nothing else we inherited stays open.
  checkInheritedFds(sandbox !== undefined, domain);
}

main();
