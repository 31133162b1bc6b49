// A guest: one KVM VM with its memory, its vCPU threads and its boot
// configuration. The core owns exactly this; devices live in domains.
import { EventEmitter } from 'node:events';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import * as sys from '../sys/index.js';
import { Kvm, type MsrEntry, type Regs, type Sregs, type Vm, type Vcpu } from '../kvm/index.js';
import { planLinuxBoot, type BootPlan } from '../../boot/linux.js';
import { IOAPIC_PINS, KVM_IDENTITY_MAP, KVM_TSS } from '../../boot/layout.js';
import { entryPoint } from '../worker-path.js';
import { GuestMemory } from './memory.js';
import { RESET_MSRS, bootMsrs, guestCpuid } from './cpuid.js';
import { STAT } from './io-dispatch.js';
import { IrqRouting } from './irq.js';
import { IoRangeError, RangeTable, type Space } from '../ioreq/ranges.js';
import { EndpointTable, MAX_ENDPOINTS, createEndpoint, settleSlots, type EndpointFds } from '../ioreq/endpoints.js';
import { unmapSharedRing } from '../../idl/ring/shm.js';
import { VCPU_CTL, type VcpuEvent, type VcpuInput } from './vcpu-protocol.js';

export interface BootConfig {
  readonly kernel: Uint8Array;
  /** The initrd's bytes, or a file the core reads straight into guest RAM (no copy through the JS heap). */
  readonly initrd?: Uint8Array | { readonly path: string };
  readonly cmdline: string;
  readonly memMiB: number;
  readonly vcpus: number;
}

export type GuestState = 'created' | 'running' | 'paused' | 'halted' | 'stopped';
export interface GuestEvents {
  power: [kind: 'poweroff' | 'reset' | 'crash', detail?: string];
  failed: [detail: string];
  stopped: [];
}

/** What a vCPU looks like before it first runs; a platform reset puts it back. */
interface PowerOnState { readonly regs: Regs; readonly sregs: Sregs; readonly lapic: Uint8Array; readonly mpState: number; readonly msrs: MsrEntry[] }
interface VcpuThread { readonly vcpu: Vcpu; worker?: Worker; exited?: Promise<void>; tid?: number; control: SharedArrayBuffer; readonly powerOn: PowerOnState }

/** A vCPU thread started ahead of its vCPU: its modules load while the core builds the guest. */
interface SpareWorker { readonly worker: Worker; error?: Error }
function spareWorker(): SpareWorker {
  const spare: SpareWorker = { worker: new Worker(entryPoint('microhv/vm/vcpu-worker')) };
  spare.worker.once('error', (e) => { spare.error = e; });
  return spare;
}

const KICK = sys.consts.SIGUSR2;
const MAX_VCPUS = 64;

export class Guest extends EventEmitter<GuestEvents> {
  state: GuestState = 'created';
  readonly stats = new SharedArrayBuffer(STAT.WORDS * 8);
  readonly ranges = new RangeTable();
  readonly endpoints = new EndpointTable();
  private nextEndpoint = 0;
  /** GSI routes and irqfds; only the core touches them, on domains' semantic requests. */
  readonly irq: IrqRouting;
  private readonly threads: VcpuThread[] = [];
  /** The initrd when it is read from its file straight into guest RAM. */
  private initrdFile: string | undefined;
  /** Threads started ahead of start(); a restart after a reset starts new ones. */
  private readonly spares: SpareWorker[] = [];

  private constructor(private readonly kvm: Kvm, private readonly vm: Vm, readonly memory: GuestMemory, readonly plan: BootPlan, private readonly mmapSize: number) {
    super();
    this.irq = new IrqRouting(vm);
  }

  static create(cfg: BootConfig): Guest {
    if (!Number.isInteger(cfg.vcpus) || cfg.vcpus < 1 || cfg.vcpus > MAX_VCPUS) throw new RangeError(`vcpus must be 1..${MAX_VCPUS}`);
    const initrdFile = cfg.initrd instanceof Uint8Array || cfg.initrd === undefined ? undefined : cfg.initrd.path;
    const initrd = initrdFile === undefined ? cfg.initrd as Uint8Array | undefined : { byteLength: statSync(initrdFile).size };
    const plan = planLinuxBoot({ kernel: cfg.kernel, initrd, cmdline: cfg.cmdline, ramBytes: cfg.memMiB * 2 ** 20, vcpus: cfg.vcpus });
    const spares = Array.from({ length: cfg.vcpus }, spareWorker);
    try {
      const kvm = Kvm.open();
      const vm = kvm.createVm();
      vm.setTssAddr(KVM_TSS);
      vm.setIdentityMapAddr(BigInt(KVM_IDENTITY_MAP));
      // Split irqchip: LAPICs in KVM, the IO-APIC in the ioapic domain. Must precede vCPU creation.
      vm.enableSplitIrqchip(IOAPIC_PINS);
      const memory = GuestMemory.create(plan.memory);
      const guest = new Guest(kvm, vm, memory, plan, kvm.vcpuMmapSize());
      memory.registerWith(vm);
      guest.initrdFile = initrdFile;
      guest.loadImages();
      const supported = kvm.supportedCpuid();
      for (let i = 0; i < cfg.vcpus; i++) {
        const vcpu = vm.createVcpu(i);
        vcpu.setCpuid2(guestCpuid(supported, i, cfg.vcpus));
        vcpu.setMsrs(bootMsrs());
        // Secondary vCPUs wait for INIT/SIPI in the in-kernel LAPIC; only the boot vCPU gets the entry state.
        if (i === 0) {
          const cur = vcpu.getSregs();
          const s = plan.sregs;
          vcpu.setSregs({ ...cur, cr0: s.cr0, cr3: s.cr3, cr4: s.cr4, efer: s.efer, gdt: { ...cur.gdt, ...s.gdt }, idt: { ...cur.idt, ...s.idt },
            cs: { ...cur.cs, ...s.cs }, ds: { ...cur.ds, ...s.ds }, es: { ...cur.es, ...s.es }, fs: { ...cur.fs, ...s.fs },
            gs: { ...cur.gs, ...s.gs }, ss: { ...cur.ss, ...s.ss }, tr: { ...cur.tr, ...s.tr } });
          vcpu.setRegs({ ...vcpu.getRegs(), ...plan.regs });
        }
        const powerOn = { regs: vcpu.getRegs(), sregs: vcpu.getSregs(), lapic: vcpu.getLapic(), mpState: vcpu.getMpState(), msrs: readableMsrs(vcpu, RESET_MSRS) };
        guest.threads.push({ vcpu, control: new SharedArrayBuffer(VCPU_CTL.WORDS * 4), powerOn });
        guest.spares.push(spares[i]!);
      }
      return guest;
    } catch (e) {
      for (const spare of spares) void spare.worker.terminate();
      throw e;
    }
  }

  /** Writes the boot images into guest RAM: at creation, and again at every reset, as firmware reloads them. */
  private loadImages(): void {
    for (const w of this.plan.writes) this.memory.write(w.gpa, w.bytes);
    const file = this.initrdFile;
    const at = this.plan.initrd;
    if (file === undefined || at === undefined) return;
    const dst = this.memory.slice(at.gpa, at.size);
    if (!dst) throw new RangeError(`initrd at 0x${at.gpa.toString(16)} is outside guest RAM`);
    const fd = openSync(file, 'r');
    try {
      for (let done = 0; done < at.size;) {
        const n = readSync(fd, dst, done, at.size - done, done);
        if (n <= 0) throw new Error(`${file}: ended after ${done} of ${at.size} bytes (changed while booting?)`);
        done += n;
      }
    } finally {
      closeSync(fd);
    }
  }

  /** The VM's fd, for the core's own interrupt delivery (never handed to a domain). */
  get vmFd(): number { return this.vm.fd; }

  /** Starts every vCPU thread; resolves once all are in their run loops. */
  async start(): Promise<void> {
    if (this.state !== 'created') throw new Error(`cannot start a guest that is ${this.state}`);
    this.state = 'running';
    const spares = this.spares.splice(0);
    await Promise.all(this.threads.map((t, index) => new Promise<void>((resolve, reject) => {
      const input: VcpuInput = { index, vcpuFd: t.vcpu.fd, mmapSize: this.mmapSize, kickSignal: KICK, control: t.control, stats: this.stats, ranges: this.ranges.buffer, endpoints: this.endpoints.buffer };
      const spare = spares[index] ?? spareWorker();
      const w = spare.worker;
      if (spare.error) { reject(spare.error); this.fail(`vCPU ${index} thread: ${spare.error.message}`); return; }
      t.worker = w;
      // An ended thread's tid may name another thread soon: it is never kicked again.
      t.exited = new Promise<void>((r) => { w.once('exit', () => { t.tid = undefined; r(); }); });
      w.on('error', (e) => { reject(e); this.fail(`vCPU ${index} thread: ${e.message}`); });
      w.on('message', (ev: VcpuEvent) => {
        switch (ev.type) {
          case 'ready': t.tid = ev.tid; resolve(); break;
          case 'stopped': break;
          // A reset request leaves the other vCPUs running: the owner of the guest decides (reboot or stop).
          case 'power': this.emit('power', ev.kind, ev.detail); if (ev.kind !== 'reset') void this.stop(); break;
          case 'failed': this.fail(`vCPU ${index}: ${ev.detail}`); break;
          default: { const never: never = ev; this.fail(`vCPU ${index}: unknown event ${JSON.stringify(never)}`); }
        }
      });
      w.postMessage(input);
    })));
  }

  private fail(detail: string): void {
    if (this.state === 'stopped') return;
    this.emit('failed', detail);
    void this.stop();
  }

  private kickAll(): void {
    for (const t of this.threads) {
      if (t.tid === undefined) continue;
      try {
        sys.tgkill(process.pid, t.tid, KICK);
      } catch (e) {
        // The thread ended (a vCPU returns after a triple fault) before its exit event arrived.
        if (!(e instanceof sys.SysError && e.errnoName === 'ESRCH')) throw e;
      }
    }
  }

  pause(): void {
    if (this.state !== 'running') return;
    for (const t of this.threads) Atomics.store(new Int32Array(t.control), VCPU_CTL.PAUSE, 1);
    this.kickAll();
    this.state = 'paused';
  }

  unpause(): void {
    if (this.state !== 'paused') return;
    for (const t of this.threads) {
      const c = new Int32Array(t.control);
      Atomics.store(c, VCPU_CTL.PAUSE, 0);
      Atomics.notify(c, VCPU_CTL.PAUSE);
    }
    this.state = 'running';
  }

  /** Stops every vCPU thread (kicking them out of KVM_RUN) and waits for them. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    const halted = this.state === 'halted' || this.state === 'created';
    this.state = 'stopped';
    if (!halted) await this.stopThreads();
    this.emit('stopped');
  }

  /** Ends every vCPU thread (kicking each out of KVM_RUN, waking a paused one) and waits for them. */
  private async stopThreads(): Promise<void> {
    for (const t of this.threads) {
      const c = new Int32Array(t.control);
      Atomics.store(c, VCPU_CTL.STOP, 1);
      Atomics.store(c, VCPU_CTL.PAUSE, 0);
      Atomics.notify(c, VCPU_CTL.PAUSE);
    }
    this.kickAll();
    await Promise.all(this.threads.map((t) => t.exited));
  }

  /**
   * First half of a platform reset (reboot): every vCPU thread stops, then each ioreq slot settles
   * (settleSlots), so that no access from before the reset is answered after it. The devices are
   * the caller's to reset between halt() and powerOn().
   */
  async halt(): Promise<void> {
    if (this.state !== 'running' && this.state !== 'paused') throw new Error(`cannot halt a guest that is ${this.state}`);
    this.state = 'halted';
    await this.stopThreads();
    for (let id = 0; id < this.nextEndpoint; id++) {
      const fds = this.endpoints.get(id);
      if (fds && await settleSlots(fds, 2_000) > 0) this.emit('failed', `ioreq endpoint ${id}: a slot stayed in process through the reset`);
    }
  }

  /**
   * Second half of a platform reset: every vCPU returns to its power-on state (registers, LAPIC,
   * MSRs such as kvmclock that would otherwise keep writing into guest RAM, no pending event) and
   * the boot images are written again, as firmware reloads them. RAM is not cleared, as on a PC.
   * Then the vCPUs start from the kernel's entry point.
   */
  async powerOn(): Promise<void> {
    if (this.state !== 'halted') throw new Error(`cannot power on a guest that is ${this.state}`);
    for (const t of this.threads) {
      const p = t.powerOn;
      t.vcpu.setSregs(p.sregs); // first: it carries the APIC base, which decides how the LAPIC page is read
      t.vcpu.setRegs(p.regs);
      t.vcpu.setLapic(p.lapic);
      t.vcpu.setMsrs(p.msrs);
      t.vcpu.clearPendingEvents();
      t.vcpu.setMpState(p.mpState);
      t.control = new SharedArrayBuffer(VCPU_CTL.WORDS * 4);
      t.worker = undefined;
      t.exited = undefined;
      t.tid = undefined;
    }
    this.loadImages();
    this.state = 'created';
    await this.start();
  }

  /** Frees the VM, its vCPUs and its memory. The guest must be stopped. */
  destroy(): void {
    if (this.state === 'running' || this.state === 'paused') throw new Error('stop the guest before destroying it');
    for (const t of this.threads) t.vcpu.close();
    for (const spare of this.spares.splice(0)) void spare.worker.terminate();
    this.memory.close();
    sys.close(this.vm.fd);
    this.kvm.close();
  }

  /**
   * Claims a port or MMIO range for a domain: creates its endpoint (slots, event channels, buffered
   * ring), publishes it to the vCPU threads and returns the fds the domain receives.
   */
  registerRange(r: { space: Space; first: number; last: number; buffered: boolean }): { endpoint: number; fds: EndpointFds } {
    this.ranges.check(r); // throws on a bad or overlapping range before anything is created
    const e = this.createEndpoint();
    this.ranges.add({ ...r, endpoint: e.endpoint });
    return e;
  }

  /** An endpoint with no range yet (a PCI backend's: its BAR is mapped where the pci domain places it). */
  createEndpoint(): { endpoint: number; fds: EndpointFds } {
    const endpoint = this.nextEndpoint;
    if (endpoint >= MAX_ENDPOINTS) throw new IoRangeError('FULL', `at most ${MAX_ENDPOINTS} ioreq endpoints`);
    const { fds, ring } = createEndpoint(`ioreq-${endpoint}`, this.threads.length);
    unmapSharedRing(ring); // the core keeps the fd; vCPU threads map it themselves
    this.endpoints.set(endpoint, fds);
    this.nextEndpoint++;
    return { endpoint, fds };
  }

  /** KVM ioeventfd: a guest write to [addr, addr + len) signals `fd` without leaving the kernel. */
  ioeventfd(o: { fd: number; addr: number; len: 0 | 1 | 2 | 4 | 8; space: Space; datamatch?: bigint; deassign?: boolean }): void {
    this.vm.ioeventfd({ ...o, addr: BigInt(o.addr) });
  }

  counters(): Record<keyof typeof STAT, bigint> {
    const s = new BigUint64Array(this.stats);
    return Object.fromEntries(Object.entries(STAT).map(([k, i]) => [k, s[i] ?? 0n])) as Record<keyof typeof STAT, bigint>;
  }
}

/** The MSRs of `indices` this KVM lets us read (the PV ones depend on its version). */
function readableMsrs(vcpu: Vcpu, indices: readonly number[]): MsrEntry[] {
  const out: MsrEntry[] = [];
  for (const index of indices) {
    try { out.push(...vcpu.getMsrs([index])); } catch { /* not offered by this KVM: nothing to reset */ }
  }
  return out;
}
