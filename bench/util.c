/* SPDX-License-Identifier: MIT */
/* util.c - clocks, /proc readers and a random generator for the benchmarks. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "bench.h"

int bench_syscall(long calls, double *ns)
{
	uint64_t t0 = bench_now_ns();

	for (long i = 0; i < calls; i++)
		syscall(SYS_getppid);
	*ns = (double)(bench_now_ns() - t0) / (double)calls;
	return 0;
}

int bench_pin_here(cpu_set_t *old)
{
	cpu_set_t one;
	int cpu = sched_getcpu();

	if (cpu < 0 || sched_getaffinity(0, sizeof *old, old) < 0)
		return -errno;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return sched_setaffinity(0, sizeof one, &one) < 0 ? -errno : 0;
}

int bench_unpin(const cpu_set_t *old)
{
	return sched_setaffinity(0, sizeof *old, old) < 0 ? -errno : 0;
}

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

long bench_maps_count(uintptr_t start, uintptr_t end, long *total)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	long in = 0, all = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		unsigned long s, e;
		if (!strchr(line, '\n') && !feof(f)) {
			/* a long path: skip the rest of the line */
			int ch;
			while ((ch = fgetc(f)) != EOF && ch != '\n')
				;
		}
		/* NOLINTNEXTLINE(cert-err34-c): the kernel's format, in range */
		if (sscanf(line, "%lx-%lx", &s, &e) != 2)
			continue;
		all++;
		if (s < end && e > start)
			in++;
	}
	fclose(f);
	if (total)
		*total = all;
	return in;
}

/* The number of kB after "key:" in a /proc file, or -1. */
static long long proc_kb(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	char line[256];
	size_t n = strlen(key);
	long long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, n) == 0 && line[n] == ':') {
			/* NOLINTNEXTLINE(cert-err34-c): a kernel-written number of kB */
			v = atoll(line + n + 1);
			break;
		}
	fclose(f);
	return v;
}

/* The process's anonymous memory, plus all shared memory of the system:
 * an emulated page lives in a memfd whether it is mapped yet or not (the
 * process's RssShmem counts only the mapped ones). */
long long bench_resident_bytes(void)
{
	return (proc_kb("/proc/self/status", "RssAnon") + proc_kb("/proc/meminfo", "Shmem")) * 1024;
}

uint64_t bench_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}
