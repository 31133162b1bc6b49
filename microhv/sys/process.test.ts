import { cpus } from 'node:os';
import { describe, expect, it } from 'vitest';
import { SOCK_FILTER, close, closeRange, consts, dup, eventfd, eventfdRead, eventfdWrite, pipe2, prctl, read, schedSetaffinity, seccompSetFilter, write } from './index.js';
import { StructView } from './layout.js';

describe('process controls', () => {
  it('reads_the_no_new_privs_flag_through_prctl', () => {
    // Act
    const flag = prctl(consts.PR_GET_NO_NEW_PRIVS);
    // Assert
    expect([0, 1]).toContain(flag);
  });

  it('refuses_an_empty_seccomp_program_before_the_system_call', () => {
    // Act / Assert
    expect(() => seccompSetFilter(new Uint8Array(0), 0)).toThrow(expect.objectContaining({ syscall: 'seccomp', errnoName: 'EINVAL' }));
    expect(() => seccompSetFilter(new Uint8Array(SOCK_FILTER.size + 1), 0)).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
  });

  it('passes_the_program_to_the_kernel_which_refuses_an_unknown_opcode', () => {
    // Arrange: one instruction, opcode 0xffff. Nothing can be installed in this test process.
    const program = StructView.alloc(SOCK_FILTER).set('code', 0xffff).buffer;
    // Act / Assert: EINVAL from the kernel's checker, or EACCES first where neither no_new_privs nor CAP_SYS_ADMIN holds
    expect(() => seccompSetFilter(program, consts.SECCOMP_FILTER_FLAG_TSYNC)).toThrow(expect.objectContaining({ syscall: 'seccomp', errnoName: expect.stringMatching(/^(EINVAL|EACCES)$/) }));
  });

  it('rejects_affinity_to_a_cpu_beyond_the_mask', () => {
    // Act / Assert
    expect(() => schedSetaffinity(0, [5000])).toThrow(expect.objectContaining({ syscall: 'sched_setaffinity', errnoName: 'EINVAL' }));
  });

  it('accepts_affinity_to_every_online_cpu', () => {
    // Act / Assert: leaves this thread where it was allowed to run anyway
    expect(() => schedSetaffinity(0, cpus().map((_c, i) => i))).not.toThrow();
  });

  it('closes_every_fd_in_the_range', () => {
    // Arrange
    const fd = eventfd(0, consts.EFD_CLOEXEC);
    // Act
    closeRange(fd, fd, 0);
    // Assert
    expect(() => close(fd)).toThrow(expect.objectContaining({ errnoName: 'EBADF' }));
  });

  it('dup_shares_the_underlying_object', () => {
    // Arrange
    const fd = eventfd(0, consts.EFD_CLOEXEC | consts.EFD_NONBLOCK);
    // Act
    const copy = dup(fd);
    eventfdWrite(copy, 3n);
    // Assert
    expect(copy).not.toBe(fd);
    expect(eventfdRead(fd)).toBe(3n);
    close(fd);
    close(copy);
  });

  it('moves_bytes_through_a_pipe', () => {
    // Arrange
    const [r, w] = pipe2(consts.O_CLOEXEC);
    const out = new Uint8Array(8);
    // Act
    write(w, new Uint8Array([1, 2, 3]));
    const n = read(r, out.subarray(2));
    // Assert
    expect(n).toBe(3);
    expect([...out]).toEqual([0, 0, 1, 2, 3, 0, 0, 0]);
    close(r);
    close(w);
  });
});
