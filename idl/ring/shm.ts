// A ring in a memfd shared by two processes: the creator (normally microhv)
// makes and seals the memfd and writes the header; the other party maps the
// fd it received (over the control channel, or inherited) and attaches.

import fs from 'node:fs';
import * as sys from '../../microhv/sys/index.js';
import type { Mapping } from '../../microhv/sys/index.js';
import type { RingProtocol } from '../generated/ring.js';
import { SharedBytes } from '../runtime/shared.js';
import { RingError } from './errors.js';
import { attachRing, initRing, ringBytes } from './ring.js';
import type { RingGeometry } from './ring.js';

export interface SharedRing {
  readonly fd: number;
  readonly mapping: Mapping;
  readonly mem: SharedBytes;
  readonly geometry: RingGeometry;
}

const PAGE = 4096;

function mapFd(fd: number, bytes: number): { mapping: Mapping; mem: SharedBytes } {
  const mapping = sys.mmap(bytes, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, fd, 0);
  return { mapping, mem: new SharedBytes(mapping.buffer) };
}

/** Creator: a sealed memfd holding a fresh ring. */
export function createSharedRing(name: string, g: RingGeometry): SharedRing {
  const bytes = Math.ceil(ringBytes(g) / PAGE) * PAGE;
  const fd = sys.memfdCreate(name, sys.consts.MFD_CLOEXEC | sys.consts.MFD_ALLOW_SEALING);
  try {
    sys.ftruncate(fd, bytes);
    // The size can never change again, so a mapping of it can never fault.
    sys.addSeals(fd, sys.consts.F_SEAL_SHRINK | sys.consts.F_SEAL_GROW | sys.consts.F_SEAL_SEAL);
    const { mapping, mem } = mapFd(fd, bytes);
    initRing(mem, 0, g);
    return { fd, mapping, mem, geometry: g };
  } catch (e) {
    sys.close(fd);
    throw e;
  }
}

/**
 * Other party: maps a ring memfd it was given. The fd must be sealed
 * against shrinking (or a peer could truncate it and turn our next slot
 * access into SIGBUS), and the ring the header describes must fit it.
 */
export function mapSharedRing(fd: number, protocol: RingProtocol): SharedRing {
  const seals = sys.getSeals(fd);
  if ((seals & sys.consts.F_SEAL_SHRINK) === 0) throw new RingError('BAD_HEADER', 'ring memfd is not sealed against shrinking');
  const size = fs.fstatSync(fd).size;
  if (size < PAGE || size > 1 << 30) throw new RingError('BAD_HEADER', `ring memfd of ${size} bytes`);
  const { mapping, mem } = mapFd(fd, size);
  try {
    const geometry = attachRing(mem, 0, protocol);
    return { fd, mapping, mem, geometry };
  } catch (e) {
    sys.munmap(mapping);
    throw e;
  }
}

export function unmapSharedRing(r: SharedRing): void {
  sys.munmap(r.mapping);
}
