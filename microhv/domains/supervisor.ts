// Supervision of one domain, in the manner of the MINIX 3 reincarnation
// server: microhv is the parent, so it learns of a death from the domain's
// pidfd; a domain that stops answering heartbeats is killed; either way it is
// restarted with exponential backoff, within a restart budget. A domain that
// spends its budget is marked down and reported, never treated as healthy.
//
// The I/O fence: each instance gets, as fd 4, the write end of a pipe whose read end only
// microhv holds. A successor starts only once every copy of that write end is closed, not merely
// once the process is gone. A domain whose kernel-side I/O can outlive it (an io_uring: a killed
// process's ring is torn down asynchronously, and its reads may still land in guest RAM) registers
// fd 4 with that I/O, so the fence falls only after the last request; otherwise it falls at exit.
//
// The standby: a domain process spends most of its start-up before it reads microhv's Hello (the
// sandbox's execs, Node, its modules and koffi: over a second on the emulated test host), and does
// nothing with the guest until then. So once an instance is up, the supervisor starts the next one
// and leaves it waiting for its Hello; a restart hands over that process rather than a new one,
// after the same backoff and fence, and the guest's I/O waits only for its protocol set-up. A
// standby that dies waiting is dropped and started again at the next instance's Hello.
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as sys from '../sys/index.js';
import type { Reactor } from '../../idl/control/reactor.js';
import { childrenOf, killSandboxed, spawnSandboxed } from './sandbox.js';

export interface SupervisorPolicy {
  /** First restart delay; doubles per consecutive restart up to maxBackoffMs. */
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  /** At most this many restarts within windowMs, or the domain is marked down. */
  readonly maxRestarts: number;
  readonly windowMs: number;
  /** A domain that has not answered a heartbeat for this long is killed. */
  readonly hungAfterMs: number;
  readonly heartbeatMs: number;
  /**
   * An instance that lived at least this long was working: its successor starts after the initial
   * backoff. Only instances that die younger (a crash loop) make the backoff grow.
   */
  readonly stableAfterMs: number;
  /**
   * The standby is started this long after the first instance is up, so that it stays out of the
   * guest's boot; after a restart, as soon as the new instance is up. Undefined: no standby.
   */
  readonly standbyAfterMs?: number;
}

export const DEFAULT_POLICY: SupervisorPolicy = {
  initialBackoffMs: 50, maxBackoffMs: 5_000, maxRestarts: 20, windowMs: 60_000, hungAfterMs: 5_000, heartbeatMs: 1_000, stableAfterMs: 2_000, standbyAfterMs: 5_000,
};

/** A spawned domain process: its control socket and I/O fence (microhv's ends) and its pidfd. */
interface Instance {
  readonly child: ChildProcess & { pid: number };
  readonly control: number;
  readonly fence: number;
  readonly pidfd: number;
}

export type DomainHealth = 'starting' | 'up' | 'restarting' | 'down' | 'stopped';

export interface SupervisorEvents {
  /** A new instance is running; `controlFd` is microhv's end of its control socket. */
  spawned: [generation: number, controlFd: number, pid: number];
  died: [generation: number, why: string];
  down: [why: string];
}

export class DomainSupervisor extends EventEmitter<SupervisorEvents> {
  health: DomainHealth = 'starting';
  generation = 0;
  readonly restarts: number[] = [];
  private child: ChildProcess | undefined;
  private pidfd = -1;
  private pidfdKey = -1;
  /** The domain process of an instance this supervisor killed: its death is reported once this pidfd is readable. */
  private dying = -1;
  private backoffMs: number;
  private timer: NodeJS.Timeout | undefined;
  private spawnedAt = 0;
  /** The current instance is being killed by fault injection. */
  private injected = false;
  /** Deaths by injected faults so far (they are not restarts the budget counts). */
  injectedKills = 0;
  /** microhv's end of the current instance's I/O fence (see above). */
  private fence = -1;
  /** The next instance, started and waiting for its Hello (see above), and its pidfd's reactor key. */
  private standby: { readonly i: Instance; readonly key: number } | undefined;
  private standbyTimer: NodeJS.Timeout | undefined;

  constructor(private readonly reactor: Reactor, readonly name: string, private readonly argv: readonly string[], readonly policy: SupervisorPolicy = DEFAULT_POLICY,
    private readonly env: Readonly<Record<string, string>> = {}) {
    super();
    this.backoffMs = policy.initialBackoffMs;
  }

  /** The spawned pid: the domain's own, or with a PID namespace the `unshare` that is its parent and lives exactly as long (sandbox.ts). */
  get pid(): number | undefined { return this.child?.pid; }

  /** The standby's spawned pid (as `pid`), while one waits. */
  get standbyPid(): number | undefined { return this.standby?.i.child.pid; }

  start(): void {
    this.spawnOnce();
  }

  /** Spawns a domain process; undefined when it could not be. */
  private launch(): Instance | undefined {
    const [mine, theirs] = sys.socketpair(sys.consts.AF_UNIX, sys.consts.SOCK_STREAM | sys.consts.SOCK_CLOEXEC, 0);
    const [fence, fenceEnd] = sys.pipe2(sys.consts.O_CLOEXEC | sys.consts.O_NONBLOCK);
    // fd 3 of the child is its control socket, fd 4 its end of the I/O fence; nothing else is inherited (sandbox.ts).
    const child = spawnSandboxed(this.argv, ['ignore', 'inherit', 'inherit', theirs, fenceEnd], undefined, this.env);
    sys.close(theirs);
    sys.close(fenceEnd);
    if (child.pid === undefined) {
      sys.close(mine);
      sys.close(fence);
      return undefined;
    }
    child.on('error', () => undefined); // reported through the pidfd or the missing pid above
    return { child: child as Instance['child'], control: mine, fence, pidfd: sys.pidfdOpen(child.pid) };
  }

  private spawnOnce(): void {
    const waiting = this.standby;
    this.standby = undefined;
    if (waiting) this.reactor.remove(waiting.key, waiting.i.pidfd);
    const i = waiting?.i ?? this.launch();
    this.generation++;
    if (i === undefined) return this.onDeath('spawn failed');
    this.child = i.child;
    this.fence = i.fence;
    this.spawnedAt = Date.now();
    this.pidfd = i.pidfd;
    // The pidfd becomes readable when the process exits, however it dies.
    this.pidfdKey = this.reactor.add(this.pidfd, sys.consts.EPOLLIN, () => this.onExit());
    this.health = 'up';
    this.emit('spawned', this.generation, i.control, i.child.pid);
  }

  /**
   * The current instance answered Hello: its standby may start (see above), unless one waits
   * already. The first instance's waits standbyAfterMs, out of the guest's boot.
   */
  up(): void {
    const after = this.policy.standbyAfterMs;
    if (after === undefined || this.standby !== undefined || this.standbyTimer !== undefined) return;
    this.standbyTimer = setTimeout(() => {
      this.standbyTimer = undefined;
      if (this.health !== 'up' || this.standby !== undefined) return;
      const i = this.launch();
      if (i === undefined) return;
      // It died waiting: dropped; the next instance's Hello starts another.
      const key = this.reactor.add(i.pidfd, sys.consts.EPOLLIN, () => { if (this.standby?.i === i) this.dropStandby(); });
      this.standby = { i, key };
    }, this.generation === 1 ? after : 0);
  }

  /** Ends the standby, if one waits (it never became an instance), and closes microhv's ends of it. */
  private dropStandby(): void {
    if (this.standby === undefined) return;
    const { i, key } = this.standby;
    this.standby = undefined;
    this.reactor.remove(key, i.pidfd);
    const domain = killSandboxed(i.pidfd, i.child.pid);
    for (const fd of [i.pidfd, i.control, i.fence, ...(domain === undefined ? [] : [domain])]) sys.close(fd);
  }

  /**
   * Kills the current instance; supervision restarts it. `injected`: a fault injected on purpose
   * (`--fault`), not a failure of the domain, so it neither grows the backoff nor spends the restart
   * budget: a campaign may kill a domain as often as it likes. A hung instance is killed as a failure.
   */
  kill(o: { injected?: boolean } = {}): void {
    const pid = this.child?.pid;
    if (this.pidfd < 0 || pid === undefined || this.dying >= 0) return;
    this.dying = killSandboxed(this.pidfd, pid) ?? -1;
    this.injected = o.injected === true;
  }

  /** Fault injection: stops the domain process (SIGSTOP) without killing it; the heartbeat finds it hung. */
  hang(): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    // With a PID namespace the spawned process is unshare, and the domain its only child.
    const target = childrenOf(pid)[0] ?? pid;
    try { process.kill(target, 'SIGSTOP'); } catch { /* gone already */ }
  }

  /** The spawned process exited; a domain killed through its sandbox may still be dying, so that is awaited first. */
  private onExit(): void {
    this.reactor.remove(this.pidfdKey, this.pidfd);
    sys.close(this.pidfd);
    this.pidfd = -1;
    const dying = this.dying;
    if (dying < 0) return this.afterFence(Date.now());
    const key = this.reactor.add(dying, sys.consts.EPOLLIN, () => {
      this.reactor.remove(key, dying);
      sys.close(dying);
      this.dying = -1;
      this.afterFence(Date.now());
    });
  }

  /** The instance is gone: its death counts once the I/O fence has fallen too. */
  private afterFence(goneAt: number): void {
    const fd = this.fence;
    this.fence = -1;
    const fallen = (): boolean => {
      // Bytes a domain wrote into its end mean nothing: drained. End of file: no write end is left.
      const scratch = new Uint8Array(64);
      for (;;) {
        try {
          if (sys.read(fd, scratch) === 0) return true;
        } catch (e) {
          return !(e instanceof sys.SysError && e.errnoName === 'EAGAIN');
        }
      }
    };
    const done = (): void => {
      sys.close(fd);
      const held = Date.now() - goneAt;
      this.onDeath(held >= 100 ? `exited; its I/O fence fell ${(held / 1000).toFixed(1)} s later` : 'exited');
    };
    if (fd < 0) return this.onDeath('exited');
    if (fallen()) return done();
    const key = this.reactor.add(fd, sys.consts.EPOLLIN, () => {
      if (!fallen()) return;
      this.reactor.remove(key, fd);
      done();
    });
  }

  private onDeath(why: string): void {
    this.child = undefined;
    const injected = this.injected;
    this.injected = false;
    this.emit('died', this.generation, injected ? `${why} (injected fault)` : why);
    if (this.health === 'stopped') return;
    const now = Date.now();
    if (injected) {
      this.injectedKills++;
      this.health = 'restarting';
      this.timer = setTimeout(() => this.spawnOnce(), this.policy.initialBackoffMs);
      return;
    }
    this.restarts.push(now);
    while (this.restarts.length > 0 && now - this.restarts[0]! > this.policy.windowMs) this.restarts.shift();
    if (this.restarts.length > this.policy.maxRestarts) {
      this.health = 'down';
      this.emit('down', `${this.name}: ${this.restarts.length} restarts within ${this.policy.windowMs / 1000} s`);
      return;
    }
    this.health = 'restarting';
    if (now - this.spawnedAt >= this.policy.stableAfterMs) this.backoffMs = this.policy.initialBackoffMs;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.policy.maxBackoffMs);
    this.timer = setTimeout(() => this.spawnOnce(), delay);
  }

  stop(): void {
    this.health = 'stopped';
    if (this.timer) clearTimeout(this.timer);
    if (this.standbyTimer) clearTimeout(this.standbyTimer);
    this.dropStandby();
    this.kill();
  }
}
