import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  close, consts, eventfd, eventfdRead, eventfdWrite, ftruncate, memfdCreate, mmap, munmap, recvmsg, sendmsg, socketpair,
} from './index.js';

const { AF_UNIX, SOCK_SEQPACKET, SOCK_STREAM, EFD_CLOEXEC, EFD_NONBLOCK } = consts;
const openFds = (): number => readdirSync('/proc/self/fd').length;

describe('SCM_RIGHTS', () => {
  it('passes_a_memfd_that_a_child_process_can_write', async () => {
    // Arrange
    const [mine, theirs] = socketpair(AF_UNIX, SOCK_STREAM, 0);
    const memfd = memfdCreate('scm-child', consts.MFD_CLOEXEC);
    ftruncate(memfd, 4096);
    const payload = 'written by the child';
    const helper = fileURLToPath(new URL('./scm-child.mjs', import.meta.url));
    const child = spawn(process.execPath, [helper, payload], { stdio: ['ignore', 'inherit', 'inherit', theirs] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    close(theirs);
    // Act
    sendmsg(mine, new TextEncoder().encode('fd'), [memfd]);
    const code = await exited;
    // Assert
    expect(code).toBe(0);
    const map = mmap(4096, consts.PROT_READ, consts.MAP_SHARED, memfd, 0);
    expect(new TextDecoder().decode(new Uint8Array(map.buffer, 0, payload.length))).toBe(payload);
    munmap(map);
    close(memfd);
    close(mine);
  });

  it('delivers_data_and_a_working_fd_in_process', () => {
    // Arrange
    const [a, b] = socketpair(AF_UNIX, SOCK_SEQPACKET, 0);
    const efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    // Act
    sendmsg(a, new Uint8Array([1, 2, 3]), [efd]);
    const got = recvmsg(b, 16, 4);
    // Assert
    expect([...got.data]).toEqual([1, 2, 3]);
    expect(got.fds).toHaveLength(1);
    expect(got.truncated).toBe(false);
    eventfdWrite(got.fds[0] ?? -1, 9n);
    expect(eventfdRead(efd)).toBe(9n); // same eventfd object on both fds
    [a, b, efd, ...got.fds].forEach(close);
  });

  it('closes_received_fds_beyond_max_fds', () => {
    // Arrange
    const [a, b] = socketpair(AF_UNIX, SOCK_SEQPACKET, 0);
    const sent = [0, 1, 2].map(() => eventfd(0, EFD_CLOEXEC));
    sendmsg(a, new Uint8Array([7]), sent);
    const baseline = openFds();
    // Act
    const got = recvmsg(b, 16, 1);
    // Assert
    expect(got.fds).toHaveLength(1);
    expect(got.truncated).toBe(true);
    expect(openFds()).toBe(baseline + 1);
    [a, b, ...sent, ...got.fds].forEach(close);
  });

  it('closes_every_received_fd_when_max_fds_is_zero', () => {
    // Arrange
    const [a, b] = socketpair(AF_UNIX, SOCK_SEQPACKET, 0);
    const efd = eventfd(0, EFD_CLOEXEC);
    sendmsg(a, new Uint8Array([7]), [efd, efd]);
    const baseline = openFds();
    // Act
    const got = recvmsg(b, 16, 0);
    // Assert
    expect(got).toMatchObject({ fds: [], truncated: true });
    expect(openFds()).toBe(baseline);
    [a, b, efd].forEach(close);
  });

  it('reports_truncation_when_data_exceeds_max_bytes', () => {
    // Arrange
    const [a, b] = socketpair(AF_UNIX, SOCK_SEQPACKET, 0);
    sendmsg(a, new Uint8Array(100).fill(5));
    // Act
    const got = recvmsg(b, 10, 0);
    // Assert
    expect(got.data).toEqual(new Uint8Array(10).fill(5));
    expect(got.truncated).toBe(true);
    [a, b].forEach(close);
  });

  it('rejects_more_fds_than_the_kernel_accepts_per_message', () => {
    // Act / Assert
    expect(() => sendmsg(0, new Uint8Array(1), new Array<number>(254).fill(0))).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
  });
});
