/* Closed-loop load generator for the xenstore benchmark, used unchanged against
 * the daemon and against echo.c. Each client is a thread with its own
 * connection sending one request, waiting for its reply, and timing it.
 *   load <socket> read|write|watch <clients> <seconds>
 * read:  READ /bench/key/NNNNN (16-byte path, 16-byte values prepared by the caller)
 * write: WRITE /bench/key/NNNNN + 16-byte value
 * watch: one extra connection watches /bench/w; clients WRITE /bench/w/CC/SSSSSSSS;
 *        latency is write-sent to event-received, rate is events received.
 * Prints one JSON line: ops, ops_per_s, p50_us, p99_us.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HDR 16
#define T_READ 2
#define T_WATCH 4
#define T_WRITE 11
#define T_EVENT 15
#define MAXLAT 4000000
#define MAXCLIENTS 64
#define KEYS 100

static const char *sock_path;
static int mode; /* 0 read, 1 write, 2 watch */
static volatile int stop;
static double *lat;
static long nlat;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static double sent_at[MAXCLIENTS][1 << 16];

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int dial(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	strncpy(a.sun_path, sock_path, sizeof(a.sun_path) - 1);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		perror("connect");
		exit(1);
	}
	return fd;
}

static int read_full(int fd, unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Reads one frame; returns its type, payload in buf (NUL-terminated copy). */
static int read_frame(int fd, unsigned char *buf, uint32_t *len)
{
	unsigned char h[HDR];
	if (read_full(fd, h, HDR))
		return -1;
	uint32_t type;
	memcpy(&type, h, 4);
	memcpy(len, h + 12, 4);
	if (*len > 4096 || read_full(fd, buf, *len))
		return -1;
	buf[*len] = 0;
	return (int)type;
}

static void send_frame(int fd, uint32_t type, uint32_t req, const void *p, uint32_t len)
{
	unsigned char out[HDR + 4096];
	uint32_t z = 0;
	memcpy(out, &type, 4);
	memcpy(out + 4, &req, 4);
	memcpy(out + 8, &z, 4);
	memcpy(out + 12, &len, 4);
	memcpy(out + HDR, p, len);
	if (write(fd, out, HDR + len) != (ssize_t)(HDR + len)) {
		perror("write");
		exit(1);
	}
}

static void record(double us)
{
	pthread_mutex_lock(&mu);
	if (nlat < MAXLAT)
		lat[nlat++] = us;
	pthread_mutex_unlock(&mu);
}

static void *client(void *arg)
{
	long id = (long)arg;
	int fd = dial();
	unsigned char buf[4097];
	char msg[128];
	uint32_t seq = 0, len;
	while (!stop) {
		uint32_t mlen;
		int type;
		if (mode == 0) {
			mlen = (uint32_t)snprintf(msg, sizeof(msg), "/bench/key/%05u", (unsigned)((id * 7 + seq) % KEYS)) + 1;
			type = T_READ;
		} else if (mode == 1) {
			mlen = (uint32_t)snprintf(msg, sizeof(msg), "/bench/key/%05u", (unsigned)((id * 7 + seq) % KEYS)) + 1;
			memcpy(msg + mlen, "0123456789abcdef", 16);
			mlen += 16;
			type = T_WRITE;
		} else {
			mlen = (uint32_t)snprintf(msg, sizeof(msg), "/bench/w/%02ld/%08u", id, seq & 0xffff) + 1;
			memcpy(msg + mlen, "0123456789abcdef", 16);
			mlen += 16;
			type = T_WRITE;
			sent_at[id][seq & 0xffff] = now_us();
		}
		double t0 = now_us();
		send_frame(fd, (uint32_t)type, seq + 1, msg, mlen);
		int rt;
		do {
			rt = read_frame(fd, buf, &len);
		} while (rt == T_EVENT);
		if (rt < 0) {
			fprintf(stderr, "connection lost\n");
			exit(1);
		}
		if (rt != type) {
			fprintf(stderr, "error reply: %s\n", buf);
			exit(1);
		}
		if (mode != 2)
			record(now_us() - t0);
		seq++;
	}
	close(fd);
	return NULL;
}

static long events;

static void *watcher(void *arg)
{
	int fd = *(int *)arg;
	unsigned char buf[4097];
	uint32_t len;
	while (!stop) {
		int t = read_frame(fd, buf, &len);
		if (t < 0)
			break;
		if (t != T_EVENT)
			continue;
		long cid;
		unsigned s;
		if (sscanf((char *)buf, "/bench/w/%ld/%u", &cid, &s) == 2 && cid >= 0 && cid < MAXCLIENTS) {
			record(now_us() - sent_at[cid][s & 0xffff]);
			__atomic_add_fetch(&events, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s <socket> read|write|watch <clients> <seconds>\n", argv[0]);
		return 2;
	}
	sock_path = argv[1];
	mode = !strcmp(argv[2], "read") ? 0 : !strcmp(argv[2], "write") ? 1 : 2;
	int clients = atoi(argv[3]);
	double secs = atof(argv[4]);
	if (clients < 1 || clients > MAXCLIENTS)
		return 2;
	lat = malloc(sizeof(double) * MAXLAT);
	pthread_t w, th[MAXCLIENTS];
	int wfd = -1;
	if (mode == 2) {
		wfd = dial();
		const char wmsg[] = "/bench/w\0tok";
		send_frame(wfd, T_WATCH, 1, wmsg, sizeof(wmsg));
		pthread_create(&w, NULL, watcher, &wfd);
		usleep(100000);
		nlat = 0;
	}
	/* Warm-up: let the peer's JIT and caches settle before measuring. */
	for (long i = 0; i < clients; i++)
		pthread_create(&th[i], NULL, client, (void *)i);
	usleep(500000);
	pthread_mutex_lock(&mu);
	nlat = 0;
	pthread_mutex_unlock(&mu);
	long ev0 = __atomic_load_n(&events, __ATOMIC_RELAXED);
	double t0 = now_us();
	usleep((useconds_t)(secs * 1e6));
	pthread_mutex_lock(&mu);
	long n = nlat;
	double t1 = now_us();
	long ev = __atomic_load_n(&events, __ATOMIC_RELAXED) - ev0;
	qsort(lat, (size_t)n, sizeof(double), cmp);
	pthread_mutex_unlock(&mu);
	stop = 1;
	double p50 = n ? lat[n / 2] : 0, p99 = n ? lat[(long)(n * 0.99)] : 0;
	long ops = mode == 2 ? ev : n;
	printf("{\"ops\":%ld,\"ops_per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f}\n", ops, ops / ((t1 - t0) / 1e6), p50, p99);
	fflush(stdout);
	_exit(0);
}
