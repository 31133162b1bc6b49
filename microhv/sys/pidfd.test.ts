import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { close, consts, pidfdOpen, pidfdSendSignal, waitid } from './index.js';

const { P_PIDFD, WEXITED, WNOHANG, WNOWAIT, SIGKILL, CLD_KILLED } = consts;

describe('pidfd', () => {
  it('kills_a_child_and_waitid_on_the_pidfd_reports_it', async () => {
    // Arrange
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
    const pid = child.pid ?? -1;
    const pidfd = pidfdOpen(pid);
    const beforeKill = waitid(P_PIDFD, pidfd, WEXITED | WNOHANG | WNOWAIT);
    // Act
    pidfdSendSignal(pidfd, SIGKILL);
    // WNOWAIT leaves the zombie for Node's own reaper, so the child's 'exit' event still fires.
    const report = waitid(P_PIDFD, pidfd, WEXITED | WNOWAIT);
    // Assert
    expect(beforeKill).toBeNull();
    expect(report).toEqual({ pid, code: CLD_KILLED, status: SIGKILL });
    expect(await exited).toBe('SIGKILL');
    close(pidfd);
  });

  it('fails_pidfd_open_for_a_nonexistent_pid', () => {
    // Act / Assert: pid_max is at most 2^22 on Linux
    expect(() => pidfdOpen(2 ** 22 + 1)).toThrow(expect.objectContaining({ syscall: 'pidfd_open', errnoName: 'ESRCH' }));
  });
});
