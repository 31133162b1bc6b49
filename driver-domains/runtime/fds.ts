// A domain keeps no file descriptor it was not given (DESIGN.md 5). By the
// time the first line of JavaScript runs, Node and libuv already hold fds of
// their own above 3 (epoll, eventfds, pipes) and have marked inherited fds
// close-on-exec too, so neither a close_range(4, ~0) nor the close-on-exec
// flag can tell the two apart. What can: the kind of file. Node's startup
// creates only epoll instances, eventfds, pipes and /dev/null or urandom
// handles; anything else above the control socket (a memfd, a socket, a KVM
// fd, a regular file) was inherited, and is closed. An inherited pipe or
// eventfd would survive this; the spawner creates every fd close-on-exec, and
// the sandboxing step is where that residue goes away.
import { readdirSync, readlinkSync } from 'node:fs';
import * as sys from '../../microhv/sys/index.js';

const NODE_OWN = [/^anon_inode:\[eventpoll\]$/, /^anon_inode:\[eventfd\]$/, /^pipe:\[\d+\]$/, /^\/dev\/(null|u?random)$/];

/** Every fd above `keepThrough` that Node did not open itself, with what it refers to. */
export function foreignFds(keepThrough: number): Array<{ fd: number; target: string }> {
  const found: Array<{ fd: number; target: string }> = [];
  for (const name of readdirSync('/proc/self/fd')) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || fd <= keepThrough) continue;
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue; // the directory handle readdirSync used, closed by now
    }
    if (NODE_OWN.some((re) => re.test(target))) continue;
    found.push({ fd, target });
  }
  return found;
}

/** Closes every fd above `keepThrough` that Node did not open itself; returns what it closed. */
export function closeInheritedFds(keepThrough: number): Array<{ fd: number; target: string }> {
  const closed: Array<{ fd: number; target: string }> = [];
  for (const f of foreignFds(keepThrough)) {
    try {
      sys.close(f.fd);
      closed.push(f);
    } catch {
      // Already closed between the listing and now.
    }
  }
  return closed;
}
