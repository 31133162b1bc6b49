import { describe, expect, it } from 'vitest';
import { SysError, addSeals, addressOf, close, consts, ftruncate, getSeals, memfdCreate, mmap, munmap } from './index.js';

const { PROT_READ, PROT_WRITE, MAP_SHARED, MFD_CLOEXEC, MFD_ALLOW_SEALING } = consts;

describe('memfd', () => {
  it('shows_the_same_bytes_through_two_mappings', () => {
    // Arrange
    const fd = memfdCreate('two-maps', MFD_CLOEXEC);
    ftruncate(fd, 8192);
    const a = mmap(8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const b = mmap(4096, PROT_READ, MAP_SHARED, fd, 4096);
    // Act
    new Uint8Array(a.buffer).set([0xde, 0xad, 0xbe, 0xef], 4096 + 10);
    // Assert
    expect(a.addr).not.toBe(b.addr);
    expect([...new Uint8Array(b.buffer, 10, 4)]).toEqual([0xde, 0xad, 0xbe, 0xef]);
    munmap(a);
    munmap(b);
    close(fd);
  });

  it('rejects_shrinking_ftruncate_once_sealed_against_shrink', () => {
    // Arrange
    const fd = memfdCreate('sealed', MFD_CLOEXEC | MFD_ALLOW_SEALING);
    ftruncate(fd, 4096);
    addSeals(fd, consts.F_SEAL_SHRINK);
    // Act
    let err: unknown;
    try { ftruncate(fd, 100); } catch (e) { err = e; }
    // Assert
    expect(err).toBeInstanceOf(SysError);
    expect(err).toMatchObject({ syscall: 'ftruncate', errno: 1, errnoName: 'EPERM' });
    expect(getSeals(fd) & consts.F_SEAL_SHRINK).toBe(consts.F_SEAL_SHRINK);
    ftruncate(fd, 8192); // growing is still allowed
    close(fd);
  });

  it('rejects_seals_on_a_memfd_created_without_sealing', () => {
    // Arrange
    const fd = memfdCreate('unsealable', MFD_CLOEXEC);
    // Act / Assert
    expect(() => addSeals(fd, consts.F_SEAL_GROW)).toThrow(expect.objectContaining({ errnoName: 'EPERM' }));
    close(fd);
  });

  it('refuses_a_mapping_too_large_to_view_without_mapping_it', () => {
    // Act / Assert
    expect(() => mmap(2 ** 32 + 4096, PROT_READ, consts.MAP_PRIVATE | consts.MAP_ANONYMOUS | consts.MAP_NORESERVE, -1, 0))
      .toThrow(expect.objectContaining({ syscall: 'mmap', errnoName: 'EINVAL' }));
  });

  it('maps_exactly_4_gib_as_one_view', () => {
    // Arrange
    const m = mmap(2 ** 32, PROT_READ | PROT_WRITE, consts.MAP_PRIVATE | consts.MAP_ANONYMOUS | consts.MAP_NORESERVE, -1, 0);
    // Act
    const last = new Uint8Array(m.buffer, 2 ** 32 - 1, 1);
    last[0] = 7;
    // Assert
    expect(m.buffer.byteLength).toBe(2 ** 32);
    expect(last[0]).toBe(7);
    munmap(m);
  });

  it('reports_mmap_failure_as_sys_error', () => {
    // Act / Assert
    expect(() => mmap(4096, PROT_READ, MAP_SHARED, -1, 0)).toThrow(expect.objectContaining({ syscall: 'mmap', errnoName: 'EBADF' }));
  });

  it('gives_the_native_address_of_a_view_over_a_mapping_and_refuses_other_buffers', () => {
    // Arrange
    const m = mmap(8192, PROT_READ | PROT_WRITE, consts.MAP_PRIVATE | consts.MAP_ANONYMOUS, -1, 0);
    const view = new Uint8Array(m.buffer).subarray(4096 + 12, 4096 + 20);
    // Act / Assert
    expect(addressOf(view)).toBe(Number(m.addr) + 4096 + 12);
    expect(() => addressOf(new Uint8Array(64))).toThrow(expect.objectContaining({ syscall: 'addressOf', errnoName: 'EFAULT' }));
    munmap(m);
    // An unmapped buffer has no address any more.
    expect(() => addressOf(view)).toThrow(expect.objectContaining({ errnoName: 'EFAULT' }));
  });
});
