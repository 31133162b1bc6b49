// A legacy interrupt line across two domain processes: the console process's
// UART asserts IRQ 4 (set_pin) into the lines page, the ioapic process reads
// it (set_irq) and fires pin 4's irqfd; and it still does after kill -9 of
// either process, including a line that changed while the ioapic was down.
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as sys from '../../microhv/sys/index.js';
import { compiledWorker } from '../../microhv/worker-path.js';
import { ensureBuilt, repoRoot } from '../../driver-domains/build.js';
import { Role } from '../../idl/generated/control.js';
import { COM1, IOAPIC_BASE } from '../../boot/layout.js';
import { FakeCore, createLinesPage, type Instance, type LinesPage } from './fake-core.js';
import type { VcpuStep } from './console-script.js';

let lines: LinesPage;
beforeAll(async () => {
  await ensureBuilt(repoRoot(), 'console');
  await ensureBuilt(repoRoot(), 'ioapic');
  lines = createLinesPage();
});
afterAll(() => {
  sys.close(lines.page);
  sys.close(lines.changed);
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class Vcpu {
  private readonly w: Worker;
  constructor(endpoints: SharedArrayBuffer) {
    this.w = new Worker(compiledWorker(import.meta.url, 'vcpu-script-worker.js'), { workerData: { endpoints } });
  }
  run(steps: VcpuStep[]): Promise<number[]> {
    return new Promise((resolve, reject) => {
      this.w.once('message', resolve);
      this.w.once('error', reject);
      this.w.postMessage(steps);
    });
  }
  stop(): Promise<number> { return this.w.terminate(); }
}

async function started(inst: Instance): Promise<void> {
  await Promise.race([inst.ready, inst.exited.then(() => { throw new Error(`domain exited during start-up:\n${inst.stderr}`); })]);
}

/** Waits until the eventfd has been written; returns its count (0 on timeout). */
async function fired(fd: number, ms = 3000): Promise<bigint> {
  for (let t = 0; t < ms; t += 10) {
    const n = sys.eventfdTryRead(fd);
    if (n > 0n) return n;
    await sleep(10);
  }
  return 0n;
}

describe('legacy interrupt lines between processes', () => {
  test('uart_irq_4_from_the_console_process_fires_the_ioapic_pin_4_irqfd_across_kill_9_of_either', async () => {
    const con = new FakeCore(Role.ROLE_CONSOLE, 4, []);
    const io = new FakeCore(Role.ROLE_IOAPIC, 1, []);
    con.lines = lines;
    io.lines = lines;
    let ci = con.spawn();
    let ii = io.spawn();
    const cv = new Vcpu(con.table.buffer);
    const iv = new Vcpu(io.table.buffer);
    try {
      await started(ci);
      await started(ii);
      const com1 = con.endpoints.get(`pio:${COM1.port}:${COM1.size}`)!.id;
      const ep = io.endpoints.get(`mmio:${IOAPIC_BASE}:4096`)!.id;
      const pio = (offset: number, value: number): VcpuStep => ({ op: 'write', endpoint: com1, space: 'pio', addr: COM1.port + offset, size: 1, value });
      // PC16550D: MCR.OUT2 (bit 3) gates the IRQ line on PC boards; IER.ETBEI (bit 1) raises the
      // THR-empty interrupt, pending at once since nothing is being sent. IER 0 drops the line.
      const assertLine = (): Promise<number[]> => cv.run([pio(4, 0x08), pio(1, 0x02)]);
      const deassertLine = (): Promise<number[]> => cv.run([pio(1, 0x00)]);

      // Pin 4: vector 0x24, edge, active high, unmasked, physical destination APIC 0 (82093AA 3.2.4).
      await iv.run([
        { op: 'write', endpoint: ep, space: 'mmio', addr: IOAPIC_BASE, size: 4, value: 0x18 },
        { op: 'write', endpoint: ep, space: 'mmio', addr: IOAPIC_BASE + 0x10, size: 4, value: 0x24 },
      ]);
      for (let i = 0; i < 300 && io.routes.filter((r) => r.pin === 4).at(-1)?.masked !== false; i++) await sleep(10);
      const irqfd = io.irqfds.get(4);
      if (irqfd === undefined) throw new Error('no irqfd for pin 4');
      sys.eventfdTryRead(irqfd);

      // 1. Both alive: a rising edge on IRQ 4 becomes one MSI through pin 4's irqfd.
      await assertLine();
      expect(await fired(irqfd)).toBeGreaterThan(0n);
      await deassertLine();
      await sleep(100);
      expect(sys.eventfdTryRead(irqfd)).toBe(0n);

      // 2. The ioapic dies; the line rises while it is down; its successor applies it at start.
      await io.kill(ii);
      await assertLine();
      ii = io.spawn();
      await started(ii);
      expect(await fired(irqfd)).toBeGreaterThan(0n);
      await deassertLine();

      // 3. The console dies; its successor's UART still drives the same line.
      await con.kill(ci);
      ci = con.spawn();
      await started(ci);
      await sleep(100);
      sys.eventfdTryRead(irqfd);
      await assertLine();
      expect(await fired(irqfd)).toBeGreaterThan(0n);
      await deassertLine();
      await sleep(100);
      expect(sys.eventfdTryRead(irqfd)).toBe(0n);
      expect(ii.stderr + ci.stderr).not.toMatch(/not delivered/);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- console:\n${con.log}\n--- ioapic:\n${io.log}`, { cause: e });
    } finally {
      await cv.stop();
      await iv.stop();
      ci.child.kill('SIGKILL');
      ii.child.kill('SIGKILL');
      await con.stop();
      await io.stop();
    }
  });
});
