// One vCPU: a worker thread that owns the vCPU's KVM_RUN loop, so a guest
// that never exits cannot block the core's event loop. Exits that the core
// must see (power events, failures) are posted; port and MMIO accesses are
// dispatched here, on the vCPU's own thread, without a round trip through
// the main thread.
import { parentPort } from 'node:worker_threads';
import * as sys from '../sys/index.js';
import { Vcpu } from '../kvm/index.js';
import { KVM_SYSTEM_EVENT } from '../kvm/abi.js';
import { IoDispatch } from './io-dispatch.js';
import { trace } from '../trace.js';
import { VCPU_CTL, type VcpuEvent, type VcpuInput } from './vcpu-protocol.js';

function main(input: VcpuInput): VcpuEvent {
  // The kick must only ever end a KVM_RUN: blocked in this thread, open inside KVM_RUN.
  sys.threadSigmask(true, [input.kickSignal]);
  const map = sys.mmap(input.mmapSize, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, input.vcpuFd, 0);
  const vcpu = new Vcpu(input.vcpuFd, map);
  vcpu.setSignalMask([input.kickSignal]);
  const ctl = new Int32Array(input.control);
  const stopping = (): boolean => Atomics.load(ctl, VCPU_CTL.STOP) !== 0;
  const io = new IoDispatch(input.stats, input.ranges, input.endpoints, input.index, stopping);
  parentPort!.postMessage({ type: 'ready', tid: sys.gettid() } satisfies VcpuEvent);
  trace(`vCPU ${input.index} entering KVM_RUN`);
  const run = vcpu.run;
  for (;;) {
    if (Atomics.load(ctl, VCPU_CTL.STOP) !== 0) return { type: 'stopped' };
    if (Atomics.load(ctl, VCPU_CTL.PAUSE) !== 0) {
      // Paused: sleep on the control word until unpaused or stopped.
      Atomics.store(ctl, VCPU_CTL.PAUSED, 1);
      Atomics.notify(ctl, VCPU_CTL.PAUSED);
      Atomics.wait(ctl, VCPU_CTL.PAUSE, 1, 1000);
      continue;
    }
    if (Atomics.load(ctl, VCPU_CTL.PAUSED) !== 0) Atomics.store(ctl, VCPU_CTL.PAUSED, 0);
    const reason = vcpu.runOnce();
    io.count(reason);
    switch (reason) {
      case 'IO': {
        const a = run.io();
        // GUEST-INPUT: RunPage.io() has checked size, count and the data offset against the page.
        for (let i = 0; i < a.count; i++) {
          const data = a.data.subarray(i * a.size, (i + 1) * a.size);
          const done = a.direction === 'out' ? io.write('pio', a.port, data) : io.read('pio', a.port, data);
          // Stopped while parked on a domain: the access never completes, as the guest is going away.
          if (done === 'stopped') return { type: 'stopped' };
        }
        break;
      }
      case 'MMIO': {
        const m = run.mmio();
        const done = m.isWrite ? io.write('mmio', Number(m.physAddr), m.data) : io.read('mmio', Number(m.physAddr), m.data);
        if (done === 'stopped') return { type: 'stopped' };
        break;
      }
      case 'INTR':
        // Kicked: the loop head looks at the control words. The kick is taken off, or it would end
        // every later KVM_RUN too (the signal stays pending while blocked outside KVM_RUN).
        sys.takePendingSignal(input.kickSignal);
        break;
      case 'IOAPIC_EOI':
        if (io.eoi(run.ioapicEoi().vector) === 'stopped') return { type: 'stopped' };
        break;
      case 'SYSTEM_EVENT': {
        const ev = run.systemEvent();
        const kind = ev.type === KVM_SYSTEM_EVENT.RESET ? 'reset' : ev.type === KVM_SYSTEM_EVENT.SHUTDOWN ? 'poweroff' : 'crash';
        return { type: 'power', kind };
      }
      case 'SHUTDOWN': {
        // A triple fault: a PC resets. Where the vCPU was is logged, so an unexpected one can be
        // traced; on AMD, KVM has already put the vCPU through INIT (the VMCB is undefined after a
        // shutdown), so the state reads as the reset vector and only the guest's log can tell more.
        const r = vcpu.getRegs();
        const s = vcpu.getSregs();
        const where = r.rip === 0xfff0n && (s.cr0 & 1n) === 0n ? 'state lost: KVM re-initialized the vCPU'
          : `rip 0x${r.rip.toString(16)} rsp 0x${r.rsp.toString(16)} cr0 0x${s.cr0.toString(16)} cr2 0x${s.cr2.toString(16)} cr3 0x${s.cr3.toString(16)} cr4 0x${s.cr4.toString(16)}`;
        return { type: 'power', kind: 'reset', detail: `triple fault on vCPU ${input.index} (${where})` };
      }
      case 'FAIL_ENTRY': {
        const f = run.failEntry();
        return { type: 'failed', detail: `VM entry failed: hardware reason 0x${f.hardwareEntryFailureReason.toString(16)} on cpu ${f.cpu}` };
      }
      case 'INTERNAL_ERROR': {
        const e = run.internalError();
        const rip = vcpu.getRegs().rip;
        return { type: 'failed', detail: `KVM internal error, suberror ${e.suberror} at rip 0x${rip.toString(16)} (data ${e.data.map((d) => d.toString(16)).join(' ')})` };
      }
      case 'HLT':
        // With the LAPIC in the kernel, HLT is handled there; seeing it means the vCPU can never wake.
        return { type: 'failed', detail: 'HLT exit with an in-kernel LAPIC' };
      default: {
        const rip = vcpu.getRegs().rip;
        return { type: 'failed', detail: `unexpected exit ${reason} at rip 0x${rip.toString(16)}` };
      }
    }
  }
}

// The thread is started early (its modules load while the core builds the guest) and runs its vCPU
// when the core posts the VcpuInput.
const port = parentPort;
port?.once('message', (input: VcpuInput) => {
  let ev: VcpuEvent;
  try {
    ev = main(input);
  } catch (e) {
    ev = { type: 'failed', detail: e instanceof Error ? e.message : String(e) };
  }
  port.postMessage(ev);
});
