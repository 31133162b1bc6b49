// Where the console domain's UART output goes and its input comes from:
// - ConsoleLog: an append-only file written with positional writes, so that
//   replaying a committed outbox at its recorded offset after a restart is
//   idempotent (the bytes land where they already are);
// - ConsoleSocket: an attachable console on a Unix socket. Every connected
//   client gets the output; what clients type is queued for the UART's
//   receive path. Like a serial line it is best effort: a client that does not
//   keep up is dropped, input beyond the queue bound is dropped, and neither
//   ever blocks the domain.
import { closeSync, constants, fstatSync, lstatSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { DomainProcessError } from './process-errors.js';

/** Output a client may have queued before it is dropped as too slow. */
export const CLIENT_BACKLOG_BYTES = 256 * 1024;
/** Typed input waiting for the UART, across all clients, before further input is dropped. */
export const INPUT_QUEUE_BYTES = 4096;

export class ConsoleLog {
  private readonly fd: number;

  constructor(readonly path: string) {
    try {
      // Not O_APPEND: Linux ignores the offset of a positional write on an O_APPEND file, and the
      // replay after a restart must land at the recorded offset.
      this.fd = openSync(path, constants.O_WRONLY | constants.O_CREAT, 0o644);
    } catch (e) {
      throw new DomainProcessError('CONSOLE_IO', `open ${path}`, { cause: e });
    }
  }

  /** Current size: where a fresh domain starts writing (it never overwrites earlier output). */
  size(): bigint {
    return BigInt(fstatSync(this.fd).size);
  }

  /** Writes all of `bytes` at `offset`. */
  writeAt(bytes: Uint8Array, offset: bigint): void {
    let done = 0;
    try {
      while (done < bytes.byteLength) done += writeSync(this.fd, bytes, done, bytes.byteLength - done, Number(offset) + done);
    } catch (e) {
      throw new DomainProcessError('CONSOLE_IO', `write ${this.path} at ${offset}`, { cause: e });
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

export interface ConsoleSocketCounters { clients: number; dropped_clients: number; dropped_input: number }

export class ConsoleSocket {
  readonly counters: ConsoleSocketCounters = { clients: 0, dropped_clients: 0, dropped_input: 0 };
  private readonly clients = new Set<Socket>();
  private readonly input: number[] = [];
  private readonly server: Server;

  /** `onInput` is called when typed bytes were queued (the runtime offers them to the UART). */
  private constructor(readonly path: string, private readonly onInput: () => void) {
    this.server = createServer((s) => this.attach(s));
  }

  static async listen(path: string, onInput: () => void): Promise<ConsoleSocket> {
    removeStaleSocket(path);
    const c = new ConsoleSocket(path, onInput);
    await new Promise<void>((resolve, reject) => {
      c.server.once('error', (e) => reject(new DomainProcessError('CONSOLE_IO', `listen on ${path}`, { cause: e })));
      c.server.listen(path, () => resolve());
    });
    // After the listen: errors of accepted connections are per client (attach), not fatal.
    c.server.on('error', () => undefined);
    return c;
  }

  private attach(s: Socket): void {
    this.clients.add(s);
    this.counters.clients++;
    s.on('data', (buf: Buffer) => {
      for (const b of buf) {
        if (this.input.length >= INPUT_QUEUE_BYTES) this.counters.dropped_input++;
        else this.input.push(b);
      }
      this.onInput();
    });
    s.on('error', () => s.destroy());
    s.on('close', () => this.clients.delete(s));
  }

  /** The oldest queued input byte, without taking it. */
  peekInput(): number | undefined {
    return this.input[0];
  }

  takeInput(): void {
    this.input.shift();
  }

  /** Sends output to every client; one that has too much unsent already is disconnected. */
  broadcast(bytes: Uint8Array): void {
    for (const s of this.clients) {
      if (s.writableLength + bytes.byteLength > CLIENT_BACKLOG_BYTES) {
        this.counters.dropped_clients++;
        this.clients.delete(s);
        s.destroy();
        continue;
      }
      s.write(Buffer.from(bytes));
    }
  }

  close(): void {
    for (const s of this.clients) s.destroy();
    this.server.close();
  }
}

/** A predecessor killed with -9 leaves its socket file behind; only a socket is ever removed. */
function removeStaleSocket(path: string): void {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) throw new DomainProcessError('CONSOLE_IO', `${path} exists and is not a socket`);
  unlinkSync(path);
}
