// A small stand-in for microhv's side of one stub domain, for process tests:
// it spawns dist/driver-domains/runtime/main.js with its control socket as
// fd 3, says Hello, hands out one state region (fresh only the first time)
// and real ioreq endpoints (microhv/ioreq/endpoints.ts) that it keeps across
// restarts, and records the domain's notifications. It is deliberately not
// microhv's DomainManager: the domain is tested against the contract alone.
import { spawn, type ChildProcess } from 'node:child_process';
import * as sys from '../../microhv/sys/index.js';
import { EndpointTable, createEndpoint, type EndpointFds } from '../../microhv/ioreq/endpoints.js';
import { ControlServer, type Connection } from '../../idl/control/channel.js';
import type { Frame } from '../../idl/control/framing.js';
import { Reactor } from '../../idl/control/reactor.js';
import { AddressSpace, Capability, ErrorCode, IrqLinesLayout, Role, type PlatformEventKind, type RouteIoapicPin } from '../../idl/generated/control.js';
import { entryPoint } from '../../microhv/worker-path.js';
import { spawnSandboxed, type SandboxPlan } from '../../microhv/domains/sandbox.js';

export const STATE_REGION_BYTES = 256 * 1024;

export interface Instance {
  readonly generation: number;
  readonly child: ChildProcess;
  readonly conn: Connection;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when the instance registered every range it serves. */
  readonly ready: Promise<void>;
  stderr: string;
}

/** A guest's legacy interrupt lines page and `changed` eventfd (control.proto), as microhv keeps them. */
export interface LinesPage { readonly page: number; readonly changed: number }

export function createLinesPage(): LinesPage {
  const page = sys.memfdCreate('test-irq-lines', sys.consts.MFD_CLOEXEC | sys.consts.MFD_ALLOW_SEALING);
  sys.ftruncate(page, IrqLinesLayout.IRQ_LINES_PAGE_BYTES);
  return { page, changed: sys.eventfd(0, sys.consts.EFD_CLOEXEC | sys.consts.EFD_NONBLOCK) };
}

export class FakeCore {
  readonly reactor = new Reactor();
  readonly table = new EndpointTable();
  readonly platformEvents: PlatformEventKind[] = [];
  /** RouteIoapicPin requests, in arrival order, tagged with the generation that sent them. */
  readonly routes: Array<RouteIoapicPin & { generation: number }> = [];
  /** The irqfd (here a plain eventfd) handed out per GSI; the same one to every instance. */
  readonly irqfds = new Map<number, number>();
  /** Error codes the domain answered microhv's messages with. */
  readonly refusals: ErrorCode[] = [];
  /** Endpoints by "space:start:length", in creation order (their id in the table). */
  readonly endpoints = new Map<string, { id: number; fds: EndpointFds }>();
  private readonly server: ControlServer;
  private stateFd = -1;
  private stateHanded = false;
  private generation = 0;
  private current: { inst: Instance; registered: number; onReady: () => void } | undefined;
  /** Stderr of every instance so far, for failure messages. */
  log = '';
  /** The lines page handed out on GetIrqLines; share one between two cores to connect their domains. */
  lines: LinesPage | undefined;

  constructor(private readonly role: Role, private readonly rangeCount: number, private readonly args: readonly string[], private readonly vcpus = 1) {
    this.server = new ControlServer(this.reactor, { onFrame: (c, f) => this.onFrame(c, f) });
  }

  /** The script microhv starts: the bundle when the build made one. */
  static mainJs(): string {
    return entryPoint('driver-domains/runtime/main');
  }

  /**
   * Starts the next instance (generation 0, then +1 per restart) and says Hello. As microhv does, fd
   * 4 is the write end of an I/O fence pipe; `extraFds` are passed as fds 5, 6, ... (what a careless
   * spawner would leak); `protocolVersion` overrides Hello's;
   * `sandbox` starts it through microhv's sandboxed spawn path with that plan.
   */
  spawn(opts: { extraFds?: number[]; protocolVersion?: number; sandbox?: SandboxPlan } = {}): Instance {
    const [mine, theirs] = sys.socketpair(sys.consts.AF_UNIX, sys.consts.SOCK_STREAM | sys.consts.SOCK_CLOEXEC, 0);
    const argv = [FakeCore.mainJs(), ...this.args];
    const [fence, fenceEnd] = sys.pipe2(sys.consts.O_CLOEXEC);
    const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'ignore', 'pipe', theirs, fenceEnd, ...(opts.extraFds ?? [])];
    const child = opts.sandbox === undefined ? spawn(process.execPath, argv, { stdio }) : spawnSandboxed(argv, stdio, opts.sandbox);
    for (const fd of [theirs, fence, fenceEnd]) sys.close(fd);
    const conn = this.server.adopt(mine);
    // What microhv grants each role (microhv/domains/policy.ts).
    conn.capabilities = new Set(this.role === Role.ROLE_IOAPIC
      ? [Capability.CAPABILITY_STATE_REGION, Capability.CAPABILITY_IOREQ_SERVER, Capability.CAPABILITY_IOAPIC_ROUTE, Capability.CAPABILITY_IRQFD, Capability.CAPABILITY_IRQ_LINES]
      : [Capability.CAPABILITY_STATE_REGION, Capability.CAPABILITY_IOREQ_SERVER, Capability.CAPABILITY_PLATFORM_EVENT, Capability.CAPABILITY_IRQ_LINES]);
    let onReady = (): void => undefined;
    const ready = new Promise<void>((resolve) => { onReady = resolve; });
    // 'close', not 'exit': stderr is complete by then.
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
    const inst: Instance = { generation: this.generation++, child, conn, exited, ready, stderr: '' };
    child.stderr?.on('data', (d: Buffer) => {
      inst.stderr += d.toString();
      this.log += d.toString();
    });
    this.current = { inst, registered: 0, onReady };
    conn.send({ case: 'hello', value: {
      protocolVersion: opts.protocolVersion ?? 1, domainId: 7, role: this.role, capabilities: [...conn.capabilities], guestIds: [1],
      generation: inst.generation, heartbeatIntervalMs: 1000,
    } });
    return inst;
  }

  /** kill -9, as microhv does to a hung domain; resolves once it is gone. */
  async kill(inst: Instance): Promise<void> {
    inst.child.kill('SIGKILL');
    await inst.exited;
    inst.conn.close();
  }

  private onFrame(c: Connection, f: Frame): void {
    for (const fd of f.fds) sys.close(fd);
    const body = f.body;
    const cur = this.current;
    if (cur === undefined || cur.inst.conn !== c) return; // a dead instance's last words
    switch (body.case) {
      case 'helloReply':
        return;
      case 'error':
        this.refusals.push(body.value.code);
        return;
      case 'routeIoapicPin':
        this.routes.push({ ...body.value, generation: cur.inst.generation });
        c.reply(f, { case: 'ack', value: {} });
        return;
      case 'evtchnBindGsi': {
        let fd = this.irqfds.get(body.value.gsi);
        if (fd === undefined) {
          fd = sys.eventfd(0, sys.consts.EFD_CLOEXEC | sys.consts.EFD_NONBLOCK);
          this.irqfds.set(body.value.gsi, fd);
        }
        c.reply(f, { case: 'evtchnBound', value: { port: body.value.gsi + 1, send: { index: 0 }, receive: undefined } }, [fd]);
        return;
      }
      case 'getIrqLines': {
        this.lines ??= createLinesPage();
        // As microhv's policy: the console is source bit 0, the ioapic the reader.
        const isSource = this.role !== Role.ROLE_IOAPIC;
        c.reply(f, { case: 'irqLinesReply', value: { lines: { index: 0 }, changed: { index: 1 }, sourceBit: 0, isSource } }, [this.lines.page, this.lines.changed]);
        return;
      }
      case 'platformEvent':
        this.platformEvents.push(body.value.kind);
        return;
      case 'getStateRegion': {
        if (this.stateFd < 0) {
          this.stateFd = sys.memfdCreate('test-state', sys.consts.MFD_CLOEXEC | sys.consts.MFD_ALLOW_SEALING);
          sys.ftruncate(this.stateFd, STATE_REGION_BYTES);
          sys.addSeals(this.stateFd, sys.consts.F_SEAL_SHRINK | sys.consts.F_SEAL_GROW);
        }
        const fresh = !this.stateHanded;
        this.stateHanded = true;
        c.reply(f, { case: 'stateRegionReply', value: { memfd: { index: 0 }, size: BigInt(STATE_REGION_BYTES), fresh } }, [this.stateFd]);
        return;
      }
      case 'registerIoreqRange': {
        const r = body.value;
        if (r.guestId !== 1) return c.replyError(f, ErrorCode.ERROR_CODE_NO_SUCH_GUEST, 'guest 1 only');
        const key = `${r.space === AddressSpace.ADDRESS_SPACE_PIO ? 'pio' : 'mmio'}:${r.start}:${r.length}`;
        let ep = this.endpoints.get(key);
        if (ep === undefined) {
          ep = { id: this.endpoints.size, fds: createEndpoint(`test-${key}`, this.vcpus).fds };
          this.table.set(ep.id, ep.fds);
          this.endpoints.set(key, ep);
        }
        const e = ep.fds;
        const ref = (i: number): { index: number } => ({ index: i });
        c.reply(f, { case: 'ioreqRangeReply', value: {
          rangeId: ep.id + 1, slots: ref(0), vcpuCount: e.vcpus,
          toServer: e.toServer.map((_, v) => ref(1 + v)), toVcpu: e.toVcpu.map((_, v) => ref(1 + e.vcpus + v)),
          bufferedRing: ref(1 + 2 * e.vcpus), bufferedNotify: ref(2 + 2 * e.vcpus),
        } }, [e.slots, ...e.toServer, ...e.toVcpu, e.ring, e.ringNotify]);
        if (++cur.registered === this.rangeCount) cur.onReady();
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
