import { describe, expect, it } from 'vitest';
import { SysError, close, errnoName, open } from './index.js';

describe('SysError', () => {
  it('carries_syscall_errno_and_name_when_close_fails', () => {
    // Act
    let err: unknown;
    try { close(-1); } catch (e) { err = e; }
    // Assert
    expect(err).toBeInstanceOf(SysError);
    const e = err as SysError;
    expect(e.code).toBe('SYS');
    expect(e.syscall).toBe('close');
    expect(e.errno).toBe(9);
    expect(e.errnoName).toBe('EBADF');
    expect(e.message).toContain('EBADF');
  });

  it('reports_enoent_for_a_missing_path', () => {
    // Act / Assert
    expect(() => open('/nonexistent/microhv-test', 0)).toThrow(expect.objectContaining({ syscall: 'open', errnoName: 'ENOENT' }));
  });

  it('names_common_errnos_and_falls_back_to_the_number', () => {
    // Act / Assert
    expect([errnoName(11), errnoName(38), errnoName(95), errnoName(40), errnoName(4095)])
      .toEqual(['EAGAIN', 'ENOSYS', 'EOPNOTSUPP', 'ELOOP', 'E4095']);
  });
});
