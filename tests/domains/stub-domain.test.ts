// The stub-domain process against a fake core: the control conversation
// (Hello, heartbeat, version check, platform events), the attachable console
// socket, fd hygiene, and the ioapic role's skeleton across kill -9.
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as sys from '../../microhv/sys/index.js';
import { compiledWorker } from '../../microhv/worker-path.js';
import { ensureBuilt, repoRoot } from '../../driver-domains/build.js';
import { DeliveryMode, ErrorCode, PlatformEventKind, Role, TriggerMode } from '../../idl/generated/control.js';
import { RingHeader } from '../../idl/generated/ring.js';
import { SharedBytes } from '../../idl/runtime/shared.js';
import { ACPI_PM, COM1, IOAPIC_BASE, SLEEP_TYPE_S5 } from '../../boot/layout.js';
import { FakeCore, type Instance } from './fake-core.js';
import { probeSandbox, type SandboxPlan } from '../../microhv/domains/sandbox.js';
import { nodePidUnder } from '../support/sandbox-escape.js';
import type { VcpuStep } from './console-script.js';

let dir: string;
beforeAll(async () => {
  await ensureBuilt(repoRoot(), 'console');
  await ensureBuilt(repoRoot(), 'ioapic');
  dir = mkdtempSync(join(tmpdir(), 'microhv-stub-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A vCPU worker that runs one script per call. */
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

async function withDomain(role: Role, ranges: number, args: string[], body: (core: FakeCore, inst: Instance) => Promise<void>, spawnOpts: { sandbox?: SandboxPlan } = {}): Promise<void> {
  const core = new FakeCore(role, ranges, args);
  const inst = core.spawn(spawnOpts);
  try {
    await Promise.race([inst.ready, inst.exited.then(() => { throw new Error(`domain exited during start-up:\n${inst.stderr}`); })]);
    await body(core, inst);
  } finally {
    inst.child.kill('SIGKILL');
    await core.stop();
  }
}

const endpointOf = (core: FakeCore, key: string): number => {
  const ep = core.endpoints.get(key);
  if (ep === undefined) throw new Error(`no endpoint ${key}; have ${[...core.endpoints.keys()].join(', ')}`);
  return ep.id;
};

describe('stub-domain process: control channel', () => {
  test('heartbeat_is_answered_with_its_seq', async () => {
    await withDomain(Role.ROLE_CONSOLE, 4, [], async (_core, inst) => {
      const r = await inst.conn.request({ case: 'heartbeat', value: { seq: 41n } });
      expect(r.body).toEqual({ case: 'heartbeatReply', value: { seq: 41n, inflight: 0 } });
    });
  });

  test('refuses_a_hello_of_another_protocol_version_and_exits', async () => {
    const core = new FakeCore(Role.ROLE_CONSOLE, 4, []);
    const inst = core.spawn({ protocolVersion: 2 });
    const errors: number[] = [];
    try {
      const exit = await inst.exited;
      expect(exit.code).toBe(1);
      expect(inst.stderr).toMatch(/protocol version 2/);
      // The Error was sent before the exit; the core's reactor may read it after the exit is seen.
      for (let i = 0; i < 200 && core.refusals.length === 0; i++) await sleep(10);
      errors.push(...core.refusals);
      expect(errors).toEqual([ErrorCode.ERROR_CODE_VERSION_MISMATCH]);
    } finally {
      await core.stop();
    }
  });

  test('sleep_parks_ioreqs_until_wake_and_snapshot_commits_while_asleep', async () => {
    await withDomain(Role.ROLE_CONSOLE, 4, [], async (core, inst) => {
      const vcpu = new Vcpu(core.table.buffer);
      try {
        const com1 = endpointOf(core, `pio:${COM1.port}:${COM1.size}`);
        expect((await inst.conn.request({ case: 'sleep', value: {} })).body.case).toBe('ack');
        let answered = false;
        const write = vcpu.run([{ op: 'write', endpoint: com1, space: 'pio', addr: COM1.port + 7, size: 1, value: 0x77 }]).then(() => { answered = true; });
        await sleep(150);
        expect(answered).toBe(false);
        const snap = await inst.conn.request({ case: 'snapshot', value: {} });
        expect(snap.body.case).toBe('snapshotReply');
        if (snap.body.case === 'snapshotReply') expect(snap.body.value.snapshotSeq).toBeGreaterThan(0n);
        expect((await inst.conn.request({ case: 'wake', value: {} })).body.case).toBe('ack');
        await write;
        expect(await vcpu.run([{ op: 'read', endpoint: com1, space: 'pio', addr: COM1.port + 7, size: 1 }])).toEqual([0x77]);
        // Snapshot outside SLEEPING is refused (control.proto lifecycle).
        const refused = await inst.conn.request({ case: 'snapshot', value: {} });
        expect(refused.body.case === 'error' && refused.body.value.code).toBe(ErrorCode.ERROR_CODE_BAD_STATE);
      } finally {
        await vcpu.stop();
      }
    });
  });

  test('guest_power_off_is_reported_as_a_platform_event', async () => {
    await withDomain(Role.ROLE_CONSOLE, 4, [], async (core) => {
      const vcpu = new Vcpu(core.table.buffer);
      try {
        const pm = endpointOf(core, `pio:${ACPI_PM.pm1aEvent}:${ACPI_PM.pmTimer + ACPI_PM.pmTimerLen - ACPI_PM.pm1aEvent}`);
        // ACPI 6.5, 4.8.3.2.1 PM1 Control: SLP_TYP in bits 10..12, SLP_EN is bit 13.
        await vcpu.run([{ op: 'write', endpoint: pm, space: 'pio', addr: ACPI_PM.pm1aControl, size: 2, value: (SLEEP_TYPE_S5 << 10) | (1 << 13) }]);
        for (let i = 0; i < 200 && core.platformEvents.length === 0; i++) await sleep(10);
        expect(core.platformEvents).toEqual([PlatformEventKind.PLATFORM_EVENT_KIND_POWER_OFF]);
      } finally {
        await vcpu.stop();
      }
    });
  });
});

describe('stub-domain process: console socket', () => {
  test('clients_get_the_output_and_their_input_reaches_the_uart', async () => {
    const path = join(dir, 'console.sock');
    await withDomain(Role.ROLE_CONSOLE, 4, ['--console-socket', path], async (core) => {
      const vcpu = new Vcpu(core.table.buffer);
      const client = createConnection(path);
      try {
        await new Promise<void>((resolve, reject) => { client.once('connect', resolve); client.once('error', reject); });
        let seen = '';
        client.on('data', (d: Buffer) => { seen += d.toString(); });
        const com1 = endpointOf(core, `pio:${COM1.port}:${COM1.size}`);
        await vcpu.run([...'hello\n'].map((c): VcpuStep => ({ op: 'post', endpoint: com1, space: 'pio', addr: COM1.port, size: 1, value: c.charCodeAt(0) })));
        for (let i = 0; i < 200 && !seen.includes('hello\n'); i++) await sleep(10);
        expect(seen).toBe('hello\n');

        client.write('x');
        // The guest polls LSR.DR (bit 0), then reads RBR.
        let lsr = 0;
        for (let i = 0; i < 200 && (lsr & 1) === 0; i++) {
          [lsr = 0] = await vcpu.run([{ op: 'read', endpoint: com1, space: 'pio', addr: COM1.port + 5, size: 1 }]);
          if ((lsr & 1) === 0) await sleep(10);
        }
        expect(lsr & 1).toBe(1);
        expect(await vcpu.run([{ op: 'read', endpoint: com1, space: 'pio', addr: COM1.port, size: 1 }])).toEqual(['x'.charCodeAt(0)]);
      } finally {
        client.destroy();
        await vcpu.stop();
      }
    });
  });
});

describe('stub-domain process: fd hygiene', () => {
  test('an_inherited_fd_beyond_the_control_socket_is_closed', async () => {
    const leaked = sys.memfdCreate('leaked-guest-memory', sys.consts.MFD_CLOEXEC);
    const core = new FakeCore(Role.ROLE_CONSOLE, 4, []);
    const inst = core.spawn({ extraFds: [leaked] });
    sys.close(leaked);
    try {
      await inst.ready;
      const fds = readdirSync(`/proc/${inst.child.pid}/fd`).map((fd) => {
        try { return readlinkSync(`/proc/${inst.child.pid}/fd/${fd}`); } catch { return ''; }
      });
      expect(fds.some((t) => t.startsWith('socket:'))).toBe(true); // the control socket
      // fd 5 may be reused by the domain's own files; what must be gone is the leaked memfd.
      expect(fds.filter((t) => t.includes('leaked-guest-memory'))).toEqual([]);
      expect(inst.stderr).toMatch(/closed inherited fd 5 \(\/memfd:leaked-guest-memory/);
    } finally {
      inst.child.kill('SIGKILL');
      await core.stop();
    }
  });
});

describe('stub-domain process: in the sandbox', () => {
  const plan = probeSandbox();

  test('the_console_writes_its_log_and_serves_its_socket_from_inside_the_sandbox_then_seals_itself', async () => {
    const log = join(dir, 'sandboxed-console.log');
    const path = join(dir, 'sandboxed-console.sock');
    await withDomain(Role.ROLE_CONSOLE, 4, ['--console-log', log, '--console-socket', path], async (core, inst) => {
      const vcpu = new Vcpu(core.table.buffer);
      const client = createConnection(path);
      try {
        await new Promise<void>((resolve, reject) => { client.once('connect', resolve); client.once('error', reject); });
        let seen = '';
        client.on('data', (d: Buffer) => { seen += d.toString(); });
        const com1 = endpointOf(core, `pio:${COM1.port}:${COM1.size}`);
        await vcpu.run([...'sealed\n'].map((c): VcpuStep => ({ op: 'post', endpoint: com1, space: 'pio', addr: COM1.port, size: 1, value: c.charCodeAt(0) })));
        for (let i = 0; i < 200 && !seen.includes('sealed\n'); i++) await sleep(10);
        expect(seen).toBe('sealed\n');
        expect(readFileSync(log, 'utf8')).toBe('sealed\n');
        expect(inst.stderr).toMatch(new RegExp(`sandbox: namespaces ${plan.namespaces.join(',') || 'none'}; seccomp on`));
        // Both filters (start and sealed) on every thread, no_new_privs, and no capabilities left.
        const status = readFileSync(`/proc/${await nodePidUnder(inst.child.pid ?? -1)}/status`, 'utf8');
        expect(/^Seccomp_filters:\s+(\d+)$/m.exec(status)?.[1]).toBe('2');
        expect(/^NoNewPrivs:\s+(\d+)$/m.exec(status)?.[1]).toBe('1');
        if (plan.dropCaps) expect(/^CapEff:\s+(\w+)$/m.exec(status)?.[1]).toBe('0000000000000000');
      } finally {
        client.destroy();
        await vcpu.stop();
      }
    }, { sandbox: plan });
  });

  test('a_sandboxed_domain_given_an_fd_beyond_its_control_socket_refuses_to_run', async () => {
    const leaked = sys.memfdCreate('leaked-guest-memory', sys.consts.MFD_CLOEXEC);
    const core = new FakeCore(Role.ROLE_CONSOLE, 4, []);
    const inst = core.spawn({ extraFds: [leaked], sandbox: plan });
    sys.close(leaked);
    try {
      const exit = await inst.exited;
      expect(exit.code).toBe(3);
      expect(inst.stderr).toMatch(/SANDBOX: inherited fd 5 \(\/memfd:leaked-guest-memory/);
    } finally {
      await core.stop();
    }
  });
});

describe('stub-domain process: ioapic role', () => {
  test('redirection_entries_survive_kill_9_their_routes_reach_microhv_and_eoi_writes_are_consumed', async () => {
    const core = new FakeCore(Role.ROLE_IOAPIC, 1, []);
    let inst = core.spawn();
    const vcpu = new Vcpu(core.table.buffer);
    try {
      await inst.ready;
      const ep = endpointOf(core, `mmio:${IOAPIC_BASE}:4096`);
      const sel = (reg: number): VcpuStep => ({ op: 'write', endpoint: ep, space: 'mmio', addr: IOAPIC_BASE, size: 4, value: reg });
      const win = (value?: number): VcpuStep => value === undefined
        ? { op: 'read', endpoint: ep, space: 'mmio', addr: IOAPIC_BASE + 0x10, size: 4 }
        : { op: 'write', endpoint: ep, space: 'mmio', addr: IOAPIC_BASE + 0x10, size: 4, value };
      // Pin 4 (the UART): vector 0x24, level-triggered, active high, unmasked, physical
      // destination APIC 0 (82093AA 3.2.4; the high dword, register 0x19, stays 0).
      const entry = 0x24 | (1 << 15);
      await vcpu.run([sel(0x18), win(entry)]);
      const pin4 = (generation: number) => core.routes.filter((r) => r.pin === 4 && r.generation === generation).at(-1);
      for (let i = 0; i < 200 && pin4(0)?.masked !== false; i++) await sleep(10);
      // Every pin is stated at start (masked at power-on), then pin 4 once the guest unmasks it.
      expect(new Set(core.routes.filter((r) => r.generation === 0).map((r) => r.pin)).size).toBe(24);
      expect(pin4(0)).toMatchObject({ vector: 0x24, trigger: TriggerMode.TRIGGER_MODE_LEVEL, delivery: DeliveryMode.DELIVERY_MODE_FIXED, destApicId: 0, masked: false });
      expect(core.irqfds.size).toBe(24);

      await core.kill(inst);
      inst = core.spawn();
      // The successor answers the read from the restored redirection table...
      expect(await vcpu.run([sel(0x18), win()])).toEqual([entry]);
      await inst.ready;
      // ...and re-states pin 4's route from it.
      for (let i = 0; i < 200 && pin4(1) === undefined; i++) await sleep(10);
      expect(pin4(1)).toMatchObject({ vector: 0x24, masked: false });

      // A logical-destination entry has no RouteIoapicPin form: it goes masked, with a warning.
      await vcpu.run([sel(0x1a), win(0x31 | (1 << 11))]);
      const pin5 = () => core.routes.filter((r) => r.pin === 5 && r.generation === 1).at(-1);
      for (let i = 0; i < 200 && pin5()?.vector !== 0x31; i++) await sleep(10);
      expect(pin5()).toMatchObject({ vector: 0x31, masked: true });
      // The warning travels on the domain's stderr pipe, which may arrive after the route request.
      for (let i = 0; i < 200 && !/logical-destination/.test(inst.stderr); i++) await sleep(10);
      expect(inst.stderr).toMatch(/logical-destination/);

      // microhv forwards KVM_EXIT_IOAPIC_EOI as a posted 4-byte write of the vector to the EOI register.
      await vcpu.run([{ op: 'post', endpoint: ep, space: 'mmio', addr: IOAPIC_BASE + 0x40, size: 4, value: 0x24 }]);
      const ring = new SharedBytes(sys.mmap(4096, sys.consts.PROT_READ, sys.consts.MAP_SHARED, core.endpoints.get(`mmio:${IOAPIC_BASE}:4096`)!.fds.ring, 0).buffer);
      for (let i = 0; i < 200 && RingHeader.loadRspProd(ring, 0) !== 1; i++) await sleep(10);
      expect(RingHeader.loadRspProd(ring, 0)).toBe(1);
      // And the domain still serves afterwards.
      expect(await vcpu.run([sel(0x18), win()])).toEqual([entry]);
      expect(inst.stderr).toMatch(/restored state commit/);
    } finally {
      await vcpu.stop();
      inst.child.kill('SIGKILL');
      await core.stop();
    }
  });
});
