// Bring-up helper: the platform's stub domains on one thread, as the domain
// processes will run them: COM1 and the i8042/ACPI ports (console module)
// and the IO-APIC (ioapic module), each behind its ioreq endpoint. The
// UART's line goes to the IO-APIC pin it is wired to; the IO-APIC's MSIs are
// injected with KVM_SIGNAL_MSI; its pin routes become KVM MSI routes, which is
// how KVM learns which vectors need KVM_EXIT_IOAPIC_EOI.
import { workerData } from 'node:worker_threads';
import * as sys from '../../microhv/sys/index.js';
import { Vm, type GsiRoute } from '../../microhv/kvm/index.js';
import { IoreqServer, MemoryAppliedLog, type IoreqEndpointFds } from '../../idl/ioreq/server.js';
import { StubDevice } from '../../driver-domains/runtime/stub-device.js';
import { RouteFlag, PlatformEvent } from '../../driver-domains/runtime/abi.js';
import { IOAPIC_PINS } from '../../boot/layout.js';

interface Input { vmFd: number; console: IoreqEndpointFds[]; ioapic: IoreqEndpointFds; wasmDir: string; stop: SharedArrayBuffer; events: SharedArrayBuffer }
const input = workerData as Input;
const vm = new Vm(input.vmFd, 0);
const ioapic = StubDevice.open('ioapic', `${input.wasmDir}/ioapic.wasm`, {
  msi: (addr, data) => { vm.signalMsi({ addressLo: Number(addr & 0xffff_ffffn), addressHi: Number(addr >> 32n), data }); },
});
const cons = StubDevice.open('console', `${input.wasmDir}/console.wasm`, { setPin: (gsi, level) => ioapic.exports.set_irq(gsi, level) });
const servers = [new IoreqServer(input.ioapic, ioapic, new MemoryAppliedLog()), ...input.console.map((fds) => new IoreqServer(fds, cons, new MemoryAppliedLog()))];
const ep = sys.epollCreate();
for (const s of servers) for (const fd of s.waitFds()) sys.epollCtl(ep, sys.consts.EPOLL_CTL_ADD, fd, sys.consts.EPOLLIN, fd);

let routeGeneration = -1;
function syncRoutes(): void {
  const gen = ioapic.exports.route_generation();
  if (gen === routeGeneration) return;
  routeGeneration = gen;
  const routes: GsiRoute[] = [];
  for (let pin = 0; pin < IOAPIC_PINS; pin++) {
    if ((ioapic.exports.route_flags(pin) & RouteFlag.Masked) !== 0) continue;
    const addr = ioapic.exports.route_addr(pin);
    routes.push({ kind: 'msi', gsi: pin, addressLo: Number(addr & 0xffff_ffffn), addressHi: Number(addr >> 32n), data: ioapic.exports.route_data(pin) });
  }
  vm.setGsiRouting(routes);
}

const halt = new Int32Array(input.stop);
const events = new Int32Array(input.events);
while (Atomics.load(halt, 0) === 0) {
  sys.epollWait(ep, 16, 100);
  for (const s of servers) s.serve();
  syncRoutes();
  const n = cons.exports.tx_drain();
  if (n > 0) sys.write(1, new Uint8Array(cons.exports.memory.buffer, cons.exports.tx_buf(), n).slice());
  const pe = cons.exports.platform_event();
  if (pe !== PlatformEvent.None) {
    Atomics.store(events, 0, pe);
    cons.exports.platform_event_clear();
  }
}
