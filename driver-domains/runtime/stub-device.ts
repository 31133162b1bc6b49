// A stub-domain module as an ioreq handler: the piece of the stub-domain
// runtime that turns slot and ring records into calls of the module's
// `ioreq` export and collects its `answer`. The module answers each ioreq
// exactly once, synchronously; anything else is an ABI violation.
import { readFileSync } from 'node:fs';
import type { IoreqHandler, IoSpace as WireSpace } from '../../idl/ioreq/server.js';
import { IMPORT_MODULE, IoDir, IoSpace, bindExports, checkImports, type StubExportsByKind, type StubImports, type StubKind } from './abi.js';
import { StubDomainError } from './errors.js';
import { Wasm } from './wasm.js';

export interface StubHost {
  setPin?(gsi: number, level: number): void;
  msi?(addr: bigint, data: number): void;
  log?(level: number, text: string): void;
}

export class StubDevice<K extends StubKind> implements IoreqHandler {
  private seq = 0n;
  private answer: bigint | undefined;
  private answers = 0;
  readonly exports: StubExportsByKind[K];

  private constructor(readonly kind: K, wasm: Uint8Array, host: StubHost) {
    const module = new Wasm.Module(wasm);
    checkImports(kind, module);
    const imports: StubImports = {
      answer: (_seq, data) => { this.answer = data; this.answers++; },
      set_pin: (gsi, level) => host.setPin?.(gsi, level),
      msi: (addr, data) => host.msi?.(addr, data),
      log: (level, ptr, len) => {
        const mem = new Uint8Array(this.exports.memory.buffer);
        // The module is untrusted too: clamp its pointer and length to its memory.
        const start = Math.min(ptr >>> 0, mem.length);
        host.log?.(level, Buffer.from(mem.subarray(start, Math.min(start + (len >>> 0), mem.length, start + 1024))).toString('utf8'));
      },
      now_ns: () => process.hrtime.bigint(),
    };
    this.exports = bindExports(kind, new Wasm.Instance(module, { [IMPORT_MODULE]: imports as unknown as Record<string, unknown> }));
  }

  /** Instantiates the module at `path` in its power-on state. */
  static open<K extends StubKind>(kind: K, path: string, host: StubHost = {}): StubDevice<K> {
    const d = StubDevice.instantiate(kind, path, host);
    d.exports.init();
    return d;
  }

  /**
   * Instantiates the module at `path` without init(): its state window holds nothing yet, so the
   * caller either copies a saved window in (restart) or calls init() (power-on). ABI.md, restart.
   */
  static instantiate<K extends StubKind>(kind: K, path: string, host: StubHost = {}): StubDevice<K> {
    return new StubDevice(kind, readFileSync(path), host);
  }

  /** The module's state window, as a view of its memory (which never grows, so the view stays valid). */
  stateWindow(): Uint8Array {
    return new Uint8Array(this.exports.memory.buffer, this.exports.state_base(), this.exports.state_size());
  }

  private call(space: WireSpace, addr: number, size: number, dir: IoDir, data: bigint): bigint {
    this.seq++;
    this.answer = undefined;
    this.answers = 0;
    this.exports.ioreq(this.seq, space === 'pio' ? IoSpace.Pio : IoSpace.Mmio, BigInt(addr), size, dir, data);
    if (this.answers !== 1 || this.answer === undefined) {
      throw new StubDomainError('ABI_VIOLATION', `${this.kind}: ioreq ${this.seq} answered ${this.answers} times`);
    }
    return this.answer;
  }

  read(space: WireSpace, addr: number, size: number): bigint { return this.call(space, addr, size, IoDir.Read, 0n); }
  write(space: WireSpace, addr: number, size: number, data: bigint): void { this.call(space, addr, size, IoDir.Write, data); }
}
