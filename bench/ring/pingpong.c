/*
 * Reference for bench/ring: the cheapest cross-process wakeup this machine
 * offers. Two processes bounce a counter through two eventfds with blocking
 * read()/write(); each round trip is two wakeups. Prints one JSON line:
 *   {"iterations":N,"p50_ns":..,"p99_ns":..,"round_trips_per_s":..}
 * argv[1]: round trips to time (after a warm-up of a tenth as many).
 * argv[2]: "pin" puts the parent on CPU 0 and the child on CPU 1, as the
 *          ring benchmark does with its two processes.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <sched.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void pin(int cpu) {
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void must(int ok, const char *what) {
	if (!ok) {
		perror(what);
		exit(1);
	}
}

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 100000;
	long warm = n / 10;
	int pinned = argc > 2 && strcmp(argv[2], "pin") == 0;
	int ping = eventfd(0, 0), pong = eventfd(0, 0);
	must(ping >= 0 && pong >= 0, "eventfd");
	uint64_t v = 1;
	pid_t child = fork();
	must(child >= 0, "fork");
	if (child == 0) {
		if (pinned) pin(1);
		for (long i = 0; i < n + warm; i++) {
			must(read(ping, &v, 8) == 8, "read");
			must(write(pong, &v, 8) == 8, "write");
		}
		_exit(0);
	}
	if (pinned) pin(0);
	uint64_t *rtt = malloc(sizeof(uint64_t) * (size_t)n);
	must(rtt != NULL, "malloc");
	uint64_t start = 0;
	for (long i = 0; i < n + warm; i++) {
		if (i == warm) start = now_ns();
		uint64_t t0 = now_ns();
		must(write(ping, &v, 8) == 8, "write");
		must(read(pong, &v, 8) == 8, "read");
		if (i >= warm) rtt[i - warm] = now_ns() - t0;
	}
	uint64_t total = now_ns() - start;
	waitpid(child, NULL, 0);
	qsort(rtt, (size_t)n, sizeof(uint64_t), cmp_u64);
	printf("{\"iterations\":%ld,\"p50_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64 ",\"round_trips_per_s\":%.0f}\n",
	       n, rtt[n / 2], rtt[(n * 99) / 100], (double)n * 1e9 / (double)total);
	return 0;
}
