// Test helper for scm.test.ts: a separate process that receives one fd over SCM_RIGHTS on
// its fd 3 and writes a payload into it. It calls recvmsg through koffi on its own, with
// no code from the module under test, so the test checks that module against a peer.
import * as koffi from 'koffi';
import { writeSync } from 'node:fs';

const libc = koffi.load('libc.so.6');
const recvmsg = libc.func('long recvmsg(int fd, void *msg, int flags)');
const payload = process.argv[2] ?? '';

// struct msghdr (56) | struct iovec (16) | control: cmsghdr (16) + one int, padded (24) | data (64)
const mem = koffi.alloc('uint8_t', 160);
const dv = new DataView(koffi.view(mem, 160));
dv.setBigUint64(16, mem + 56n, true); // msg_iov
dv.setBigUint64(24, 1n, true); // msg_iovlen
dv.setBigUint64(32, mem + 72n, true); // msg_control
dv.setBigUint64(40, 24n, true); // msg_controllen
dv.setBigUint64(56, mem + 96n, true); // iov_base
dv.setBigUint64(64, 64n, true); // iov_len
if (recvmsg(3, mem, 0) < 0) process.exit(2);
if (dv.getInt32(72 + 8, true) !== 1 || dv.getInt32(72 + 12, true) !== 1) process.exit(3); // SOL_SOCKET, SCM_RIGHTS
const fd = dv.getInt32(72 + 16, true);
writeSync(fd, Buffer.from(payload), 0, payload.length, 0);
process.exit(0);
