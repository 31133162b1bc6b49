// Listening sockets and the process-level wiring of daemon, journal and
// connections.
//
// Privilege comes from the socket a connection arrives on, never from what the
// client says: the main socket (XENSTORED_PATH, mode 0600) is dom0's; each
// introduced domain gets <domainSocketDir>/<domid> (mode 0600), whose
// connections act as that domain. When microhv's control channel exists it will
// hand us pre-authenticated connection fds with a domid instead; attach() is
// the seam for that.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Connection } from './connection.js';
import type { ConnectionStats } from './connection.js';
import { Xenstored } from './daemon.js';
import type { Limits } from './config.js';
import type { PersistError } from './errors.js';
import { Journal, recover } from './persist.js';
import type { RecoveryReport } from './persist.js';

export interface ServerOptions {
  socketPath: string;
  stateDir: string;
  /** Directory for per-domain sockets; unset: domains cannot connect until microhv hands us their fds. */
  domainSocketDir: string | undefined;
  limits: Limits;
  log: (msg: string) => void;
  onFatal: (e: PersistError) => void;
}

export class Server {
  readonly daemon: Xenstored;
  readonly journal: Journal;
  readonly recovery: RecoveryReport;
  readonly stats: ConnectionStats = { violations: 0, overflowCloses: 0, coalescedEvents: 0, pauses: 0 };
  private readonly connections = new Set<Connection>();
  private readonly listeners = new Map<number, net.Server>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ServerOptions) {
    const { state, report } = recover(opts.stateDir, opts.limits);
    this.recovery = report;
    this.journal = new Journal(opts.stateDir, state, report.epoch, opts.onFatal);
    this.daemon = new Xenstored(state, this.journal, {
      domainIntroduced: (domid) => this.listenDomain(domid),
      domainReleased: (domid) => this.unlistenDomain(domid),
      snapshot: () => void this.journal.snapshot(),
      stats: () => `protocol-violations=${this.stats.violations} overflow-closes=${this.stats.overflowCloses} coalesced-events=${this.stats.coalescedEvents} pauses=${this.stats.pauses}`,
      log: opts.log,
    });
    this.journal.onDurable(() => {
      for (const c of this.connections) if (c.hasBacklog) c.pump();
    });
  }

  async start(): Promise<void> {
    await this.listen(this.opts.socketPath, 0);
    for (const domid of this.daemon.state.domains.keys()) this.listenDomain(domid);
    this.timer = setInterval(() => this.daemon.sweep(), 1000);
    this.timer.unref();
  }

  /** Serves an already-connected socket as `domid` (the future microhv hand-off path). */
  attach(socket: net.Socket, domid: number): void {
    const c = new Connection(socket, this.daemon, { domid }, () => this.journal.durableSeq, this.stats, (x) => this.connections.delete(x));
    this.connections.add(c);
  }

  private listen(socketPath: string, domid: number): Promise<void> {
    fs.mkdirSync(path.dirname(socketPath), { recursive: true });
    fs.rmSync(socketPath, { force: true });
    const srv = net.createServer({ allowHalfOpen: false }, (sock) => this.attach(sock, domid));
    this.listeners.set(domid, srv);
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(socketPath, () => {
        // The socket's mode is the privilege boundary until microhv authenticates peers.
        fs.chmodSync(socketPath, 0o600);
        srv.off('error', reject);
        resolve();
      });
    });
  }

  private listenDomain(domid: number): void {
    const dir = this.opts.domainSocketDir;
    if (dir === undefined || this.listeners.has(domid)) return;
    this.listen(path.join(dir, String(domid)), domid).catch((e: unknown) => this.opts.log(`domain ${domid} socket: ${String(e)}`));
  }

  private unlistenDomain(domid: number): void {
    const srv = this.listeners.get(domid);
    if (srv === undefined || domid === 0) return;
    this.listeners.delete(domid);
    srv.close();
    if (this.opts.domainSocketDir !== undefined) fs.rmSync(path.join(this.opts.domainSocketDir, String(domid)), { force: true });
  }

  /** Orderly stop: flush the journal synchronously, close sockets. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    for (const srv of this.listeners.values()) srv.close();
    for (const c of [...this.connections]) c.close('shutdown');
    this.journal.closeSync();
  }
}
