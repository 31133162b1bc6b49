/* The physical limit for the xenstore benchmark: a request/response server
 * over a Unix socket that speaks the same framing (16-byte xsd_sockmsg header,
 * payload) and does no work. READ-type requests get their payload echoed;
 * WRITE and WATCH get "OK\0", as xenstored answers; a WRITE also sends one
 * WATCH_EVENT (the written path plus token) to every connection that sent a
 * WATCH, the smallest thing that models watch fan-out.
 * Single-threaded epoll, like the daemon it is compared with.
 *   echo <socket-path>
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <signal.h>
#include <unistd.h>

#define HDR 16
#define MAXP 4096
#define MAXC 1024
#define T_WATCH 4
#define T_WRITE 11
#define T_EVENT 15

struct conn {
	int fd;
	int watcher;
	size_t have;
	unsigned char in[HDR + MAXP];
};

static struct conn *conns[MAXC];

static void write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static void reply(int fd, const unsigned char *hdr, const void *payload, uint32_t len, uint32_t type)
{
	unsigned char out[HDR + MAXP];
	memcpy(out, hdr, HDR);
	memcpy(out, &type, 4);
	memcpy(out + 12, &len, 4);
	memcpy(out + HDR, payload, len);
	write_all(fd, out, HDR + len);
}

static void handle(struct conn *c)
{
	for (;;) {
		if (c->have < HDR)
			return;
		uint32_t type, len;
		memcpy(&type, c->in, 4);
		memcpy(&len, c->in + 12, 4);
		if (len > MAXP) {
			close(c->fd);
			c->fd = -1;
			return;
		}
		if (c->have < HDR + len)
			return;
		const unsigned char *payload = c->in + HDR;
		if (type == T_WATCH) {
			c->watcher = 1;
			reply(c->fd, c->in, "OK", 3, type);
		} else if (type == T_WRITE) {
			reply(c->fd, c->in, "OK", 3, type);
			size_t plen = strnlen((const char *)payload, len);
			unsigned char ev[MAXP];
			size_t evlen = 0;
			if (plen + 6 <= sizeof(ev)) {
				memcpy(ev, payload, plen);
				memcpy(ev + plen, "\0tok\0", 5);
				evlen = plen + 5;
				unsigned char hdr[HDR] = {0};
				for (int i = 0; i < MAXC; i++)
					if (conns[i] && conns[i]->watcher && conns[i]->fd >= 0)
						reply(conns[i]->fd, hdr, ev, (uint32_t)evlen, T_EVENT);
			}
		} else {
			reply(c->fd, c->in, payload, len, type);
		}
		size_t used = HDR + len;
		memmove(c->in, c->in + used, c->have - used);
		c->have -= used;
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s <socket>\n", argv[0]);
		return 2;
	}
	/* A client that exits mid-reply must not kill the server. */
	signal(SIGPIPE, SIG_IGN);
	int ls = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	strncpy(a.sun_path, argv[1], sizeof(a.sun_path) - 1);
	unlink(argv[1]);
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 128)) {
		perror("bind/listen");
		return 1;
	}
	int ep = epoll_create1(0);
	struct epoll_event e = {.events = EPOLLIN, .data.fd = -1};
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &e);
	printf("echo ready\n");
	fflush(stdout);
	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == -1) {
				int fd = accept(ls, NULL, NULL);
				if (fd < 0)
					continue;
				int slot = -1;
				for (int j = 0; j < MAXC; j++)
					if (!conns[j]) {
						slot = j;
						break;
					}
				if (slot < 0) {
					close(fd);
					continue;
				}
				conns[slot] = calloc(1, sizeof(struct conn));
				conns[slot]->fd = fd;
				struct epoll_event ce = {.events = EPOLLIN, .data.fd = slot};
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
				continue;
			}
			struct conn *c = conns[evs[i].data.fd];
			ssize_t r = read(c->fd, c->in + c->have, sizeof(c->in) - c->have);
			if (r <= 0) {
				close(c->fd);
				free(c);
				conns[evs[i].data.fd] = NULL;
				continue;
			}
			c->have += (size_t)r;
			handle(c);
			if (c->fd < 0) {
				free(c);
				conns[evs[i].data.fd] = NULL;
			}
		}
	}
}
