// What every domain process shares at its boundary with microhv: taking the fds a reply
// carries, the ioreq endpoint of an IoreqRangeReply, the start filter and the inherited-fd
// check made before serving, and the one-line account of a fatal error. Used by the
// stub-domain runtime (main.ts) and the block domain (../block/main.ts).
import { fstatSync } from 'node:fs';
import * as sys from '../../microhv/sys/index.js';
import type { Connection } from '../../idl/control/channel.js';
import type { Frame } from '../../idl/control/framing.js';
import { ErrorCode, IntxRequestLayout, type EnvelopeBody, type EnvelopeBodyCase, type IoreqRangeReply } from '../../idl/generated/control.js';
import type { IoreqEndpointFds } from '../../idl/ioreq/server.js';
import { closeInheritedFds } from './fds.js';
import { DomainProcessError } from './process-errors.js';
import { installFilter, startRules, type StartOptions } from './seccomp.js';

/** fd 3 of every domain process: its control socket to microhv. */
export const CONTROL_FD = 3;
/**
 * fd 4 of a domain process that microhv's supervisor started: its end of the I/O fence (a pipe).
 * The successor starts once no copy of it is open; I/O the kernel may finish after the process
 * is gone (an io_uring) holds a copy until it is done (supervisor.ts).
 */
export const FENCE_FD = 4;

/** Whether this process was given an I/O fence (started by microhv's supervisor, not by hand). */
export function hasFence(): boolean {
  try {
    return fstatSync(FENCE_FD).isFIFO();
  } catch {
    return false;
  }
}
/** How long microhv may take to answer one of a domain's requests before the domain gives up (and is restarted). */
export const REQUEST_TIMEOUT_MS = 10_000;

/**
 * Sends a request to microhv and returns its reply when that is `expect`. A refusal (Error) is a
 * CONTROL error, any other answer a PROTOCOL error; the fds of an unexpected reply are closed.
 */
export async function requestReply(conn: Connection, body: EnvelopeBody, expect: EnvelopeBodyCase): Promise<Frame> {
  let f: Frame;
  try {
    f = await conn.request(body, [], REQUEST_TIMEOUT_MS);
  } catch (e) {
    throw new DomainProcessError('CONTROL', `${body.case}`, { cause: e });
  }
  if (f.body.case === expect) return f;
  closeFds(f.fds);
  if (f.body.case === 'error') throw new DomainProcessError('CONTROL', `${body.case} refused: ${enumName(ErrorCode, f.body.value.code)}: ${f.body.value.message}`);
  throw new DomainProcessError('PROTOCOL', `${body.case} answered with ${f.body.case}`);
}

/** Answers a lifecycle request from microhv with Ack while `phase` is one of `phases`, else BAD_STATE. */
export function ackIn<P extends string>(conn: Connection, f: Frame, phase: P, phases: readonly P[]): void {
  closeFds(f.fds);
  if (!phases.includes(phase)) return conn.replyError(f, ErrorCode.ERROR_CODE_BAD_STATE, `${f.body.case} while ${phase}`);
  conn.reply(f, { case: 'ack', value: {} });
}

/** The IDL name of an enum value, for messages. */
export function enumName(e: Readonly<Record<string, number>>, v: number): string {
  return Object.keys(e).find((k) => e[k] === v) ?? String(v);
}

export function closeFds(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      sys.close(fd);
    } catch {
      // Already closed.
    }
  }
}

/** The fd an FdRef names; the framing layer already checked the index against the fds that came. */
export function takeFd(f: Frame, index: number | undefined, what: string): number {
  const fd = index === undefined ? undefined : f.fds[index];
  if (fd === undefined) {
    closeFds(f.fds);
    throw new DomainProcessError('PROTOCOL', `${what} missing from the reply`);
  }
  for (const other of f.fds) if (other !== fd) closeFds([other]);
  return fd;
}

/**
 * A shared page microhv owns and the eventfd that goes with it (the lines page, an INTx request
 * page): both must have come with the frame, distinct. The page is mapped shared (`bytes` long)
 * and its fd closed; the eventfd stays open for the process's life. Other fds are closed.
 */
export function mapPageAndEventfd(f: Frame, page: number | undefined, changed: number | undefined, bytes: number, prot: number, what: string): { buffer: ArrayBuffer; changed: number } {
  const pageFd = page === undefined ? undefined : f.fds[page];
  const changedFd = changed === undefined ? undefined : f.fds[changed];
  if (pageFd === undefined || changedFd === undefined || pageFd === changedFd) {
    closeFds(f.fds);
    throw new DomainProcessError('PROTOCOL', `${what} reply without its page or eventfd`);
  }
  for (const other of f.fds) if (other !== pageFd && other !== changedFd) closeFds([other]);
  try {
    return { buffer: sys.mmap(bytes, prot, sys.consts.MAP_SHARED, pageFd, 0).buffer, changed: changedFd };
  } catch (e) {
    closeFds([changedFd]);
    throw new DomainProcessError('PROTOCOL', `mmap of the ${what} page`, { cause: e });
  } finally {
    // The mapping keeps the page.
    sys.close(pageFd);
  }
}

/**
 * A PCI function's INTx request page (control.proto, "INTx"): the backend's request word, the
 * command word the pci domain states, and the eventfd that says the request changed.
 */
export interface IntxRequest { readonly word: Uint32Array; readonly command: Uint32Array; readonly changed: number }

/** Bit 31 of the command word: the pci domain has stated it. */
export const COMMAND_STATED = 0x8000_0000;
/** The command register's Bus Master Enable. */
export const PCI_COMMAND_MASTER = 0x4;

/** Whether a command word lets the function master the bus: stated, with Bus Master Enable. */
export const mayMaster = (word: number): boolean => (word & COMMAND_STATED) !== 0 && (word & PCI_COMMAND_MASTER) !== 0;

/**
 * GetIntxRequest for function `slot`, its page mapped shared and writable (the backend writes the
 * request, the pci domain the command). A core that refuses it is told to `refused` and gives undefined.
 */
export async function getIntxRequest(conn: Connection, guest: number, slot: number, refused: (why: string) => void): Promise<IntxRequest | undefined> {
  let f: Frame;
  try {
    f = await requestReply(conn, { case: 'getIntxRequest', value: { guestId: guest, slot } }, 'intxRequestReply');
  } catch (e) {
    if (!(e instanceof DomainProcessError) || e.code !== 'CONTROL') throw e;
    refused(e.message);
    return undefined;
  }
  if (f.body.case !== 'intxRequestReply') throw new DomainProcessError('PROTOCOL', 'unreachable');
  const { buffer, changed } = mapPageAndEventfd(f, f.body.value.page?.index, f.body.value.changed?.index, IntxRequestLayout.INTX_REQUEST_PAGE_BYTES,
    sys.consts.PROT_READ | sys.consts.PROT_WRITE, 'INTx request');
  return { word: new Uint32Array(buffer, 0, 1), command: new Uint32Array(buffer, IntxRequestLayout.INTX_REQUEST_COMMAND_OFFSET, 1), changed };
}

/** The endpoint fds of an IoreqRangeReply; every one must have come with the frame. */
export function endpointFds(f: Frame, r: IoreqRangeReply): IoreqEndpointFds {
  const at = (i: number | undefined, what: string): number => {
    const fd = i === undefined ? undefined : f.fds[i];
    if (fd === undefined) {
      closeFds(f.fds);
      throw new DomainProcessError('PROTOCOL', `ioreq range reply without its ${what}`);
    }
    return fd;
  };
  if (r.vcpuCount < 1 || r.toServer.length !== r.vcpuCount || r.toVcpu.length !== r.vcpuCount) {
    closeFds(f.fds);
    throw new DomainProcessError('PROTOCOL', `ioreq range reply for ${r.vcpuCount} vCPUs with ${r.toServer.length}/${r.toVcpu.length} event channels`);
  }
  return {
    vcpus: r.vcpuCount,
    slots: at(r.slots?.index, 'slot page'),
    ring: at(r.bufferedRing?.index, 'buffered ring'),
    ringNotify: at(r.bufferedNotify?.index, 'buffered ring notify'),
    toServer: r.toServer.map((ref, v) => at(ref.index, `to_server[${v}]`)),
    toVcpu: r.toVcpu.map((ref, v) => at(ref.index, `to_vcpu[${v}]`)),
  };
}

/**
 * Before any request is served: the calls no domain makes are refused for every thread
 * (seccomp.ts). A kernel without seccomp is reported, not fatal (DESIGN.md 5: where practical).
 * `label` starts the exit line (`stub-domain`, `block`); `o` what START leaves to the domain.
 */
export function installStartFilter(label: string, o: StartOptions = {}): boolean {
  try {
    return installFilter(startRules(process.pid, o));
  } catch (e) {
    process.stderr.write(`${label}[${process.pid}]: exiting (3): SANDBOX: start seccomp filter: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(3);
  }
}

/**
 * The fd self-check (DESIGN.md 5: no fds beyond those it was given). Anything above the control
 * socket and the I/O fence that Node did not open itself is closed (fds.ts). Under microhv's
 * sandbox, which hands over exactly stdio, fd 3 and fd 4, such an fd means the spawner leaked it:
 * the domain refuses to run.
 */
export function checkInheritedFds(sandboxed: boolean, out: { warn(text: string): void; fatal(e: unknown): void }): void {
  const leaked = closeInheritedFds(FENCE_FD);
  for (const { fd, target } of leaked) out.warn(`closed inherited fd ${fd} (${target})`);
  const first = leaked[0];
  if (sandboxed && first !== undefined) out.fatal(new DomainProcessError('SANDBOX', `inherited fd ${first.fd} (${first.target}) that microhv did not give`));
}

/** Exit status and the one line (code and cause chain, no stacks) a fatal error ends a domain with. */
export function explainFatal(e: unknown): { status: number; text: string } {
  const code = e instanceof DomainProcessError ? e.code : 'INTERNAL';
  let why = e instanceof Error ? e.message : String(e);
  for (let c: unknown = e instanceof Error ? e.cause : undefined; c instanceof Error; c = c.cause) why += `: ${c.message}`;
  return { status: code === 'SANDBOX' ? 3 : 1, text: `${code}: ${why}` };
}
