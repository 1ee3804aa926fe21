/* SPDX-License-Identifier: MIT */
/*
 * scale.c - large regions: sparse random faults (served by a handler thread)
 * and sparse random installs, with the mappings and memory they cost.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <userfault.h>
#include "bench.h"

struct region {
	char *base;
	size_t len, ps;
	int uffd;
	double register_ms;
};

static int region_open(int target, size_t size, int flags, struct region *g)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	uint64_t t0;
	int r;

	g->ps = (size_t)sysconf(_SC_PAGESIZE);
	g->len = size;
	g->uffd = -1;
	g->base = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (g->base == MAP_FAILED)
		return -errno;
	if ((r = uf_set_backend((enum uf_backend)target)) < 0)
		return r;
	g->uffd = uf_userfaultfd(O_CLOEXEC | flags);
	if (g->uffd < 0)
		return -errno;
	if (uf_ioctl(g->uffd, UFFDIO_API, &api) < 0)
		return -errno;
	reg.range.start = (uintptr_t)g->base;
	reg.range.len = size;
	t0 = bench_now_ns();
	if (uf_ioctl(g->uffd, UFFDIO_REGISTER, &reg) < 0)
		return -errno;
	g->register_ms = (double)(bench_now_ns() - t0) / 1e6;
	return 0;
}

static void region_close(struct region *g)
{
	if (g->uffd >= 0)
		uf_close(g->uffd);
	if (g->base != MAP_FAILED)
		munmap(g->base, g->len);
}

/* Distinct random page numbers. */
static uint64_t *random_pages(size_t npages, long n, uint64_t seed)
{
	uint64_t *out = malloc((size_t)n * sizeof *out), st = seed;
	uint8_t *seen = calloc((npages + 7) / 8, 1);

	if (!out || !seen) {
		free(out);
		free(seen);
		return NULL;
	}
	for (long i = 0; i < n; i++) {
		uint64_t pg;
		do
			pg = bench_rand(&st) % npages;
		while (seen[pg / 8] & (1u << (pg % 8)));
		seen[pg / 8] |= (uint8_t)(1u << (pg % 8));
		out[i] = pg;
	}
	free(seen);
	return out;
}

struct server {
	struct region *g;
	int stopfd;
	char *src;
	_Atomic int err;
};

static void *serve_main(void *arg)
{
	struct server *s = arg;
	struct pollfd pf[2] = { { s->g->uffd, POLLIN, 0 }, { s->stopfd, POLLIN, 0 } };
	struct uffd_msg m[16];

	for (;;) {
		ssize_t n;
		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		n = uf_read(s->g->uffd, m, sizeof m);
		for (ssize_t i = 0; i < n / (ssize_t)sizeof m[0]; i++) {
			struct uffdio_copy c = {
				.dst = m[i].arg.pagefault.address & ~(uint64_t)(s->g->ps - 1),
				.src = (uintptr_t)s->src, .len = s->g->ps };
			if (uf_ioctl(s->g->uffd, UFFDIO_COPY, &c) < 0 && errno != EEXIST)
				atomic_store(&s->err, errno);
		}
	}
	return NULL;
}

int bench_scale(int target, size_t size, long faults, struct scale_result *out)
{
	struct region g = { .base = MAP_FAILED };
	struct server s = { .g = &g, .stopfd = -1 };
	uint64_t *pages = NULL, one = 1, t0;
	long long mem0;
	pthread_t th;
	int r, started = 0;

	if ((r = region_open(target, size, O_NONBLOCK, &g)) < 0)
		goto out;
	if (!(pages = random_pages(size / g.ps, faults, 0x9e3779b97f4a7c15ull ^ size)) ||
	    !(s.src = malloc(g.ps))) {
		r = -ENOMEM;
		goto out;
	}
	memset(s.src, 0x33, g.ps);
	s.stopfd = eventfd(0, EFD_CLOEXEC);
	if (s.stopfd < 0 || pthread_create(&th, NULL, serve_main, &s)) {
		r = -EAGAIN;
		goto out;
	}
	started = 1;
	mem0 = bench_resident_bytes();
	t0 = bench_now_ns();
	for (long i = 0; i < faults; i++)
		(void)*(volatile char *)(g.base + pages[i] * g.ps);
	out->ns = (double)(bench_now_ns() - t0) / (double)faults;
	out->mem_ratio = (double)(bench_resident_bytes() - mem0) / ((double)faults * (double)g.ps);
	out->maps_region = bench_maps_count((uintptr_t)g.base, (uintptr_t)g.base + size, &out->maps_total);
	out->register_ms = g.register_ms;
	if (atomic_load(&s.err))
		r = -atomic_load(&s.err);
out:
	if (started) {
		if (write(s.stopfd, &one, sizeof one) < 0)
			r = r ? r : -errno;
		pthread_join(th, NULL);
	}
	if (s.stopfd >= 0)
		close(s.stopfd);
	free(s.src);
	free(pages);
	region_close(&g);
	return r;
}

int bench_installs(int target, size_t size, long installs, struct install_result *out)
{
	struct region g = { .base = MAP_FAILED };
	uint64_t *pages = NULL, t0, spent = 0;
	long check = installs / 8 > 0 ? installs / 8 : 1;
	long long mem0;
	char *src = NULL;
	int r;

	out->maps_max = 0;
	if ((r = region_open(target, size, O_NONBLOCK, &g)) < 0)
		goto out;
	if (!(pages = random_pages(size / g.ps, installs, 0x2545f4914f6cdd1dull ^ size)) ||
	    !(src = malloc(g.ps))) {
		r = -ENOMEM;
		goto out;
	}
	memset(src, 0x44, g.ps);
	mem0 = bench_resident_bytes();
	for (long i = 0; i < installs; i++) {
		struct uffdio_copy c = { .dst = (uintptr_t)g.base + pages[i] * g.ps,
					 .src = (uintptr_t)src, .len = g.ps };
		t0 = bench_now_ns();
		if (uf_ioctl(g.uffd, UFFDIO_COPY, &c) < 0) {
			r = -errno;
			goto out;
		}
		spent += bench_now_ns() - t0;
		if ((i + 1) % check == 0 || i + 1 == installs) {
			long m = bench_maps_count((uintptr_t)g.base, (uintptr_t)g.base + size, NULL);
			if (m > out->maps_max)
				out->maps_max = m;
		}
	}
	out->ns = (double)spent / (double)installs;
	out->mem_ratio = (double)(bench_resident_bytes() - mem0) / ((double)installs * (double)g.ps);
	bench_maps_count(0, 0, &out->maps_total);
	for (long i = 0; i < installs; i++)
		if (g.base[pages[i] * g.ps] != 0x44) {
			r = -EIO;
			break;
		}
out:
	free(src);
	free(pages);
	region_close(&g);
	return r;
}

int bench_passthrough(long calls, double ns[4])
{
	struct region lib = { .base = MAP_FAILED }, raw = { .base = MAP_FAILED };
	size_t size = (size_t)calls * (size_t)sysconf(_SC_PAGESIZE);
	uint64_t t[4] = { 0 };
	char *src = NULL;
	int r;

	if ((r = region_open(BT_KERNEL, size, O_NONBLOCK, &lib)) < 0 ||
	    (r = region_open(BT_KERNEL, size, O_NONBLOCK, &raw)) < 0)
		goto out;
	if (!(src = malloc(lib.ps))) {
		r = -ENOMEM;
		goto out;
	}
	memset(src, 0x55, lib.ps);
	/* Alternate in blocks so that both see the same machine, and swap
	 * which goes first from one block to the next. */
	for (long i = 0; i < calls; i += 64) {
		long end = i + 64 < calls ? i + 64 : calls;
		for (int pass = 0; pass < 4; pass++) {
			int which = ((i / 64) % 2) ? (pass ^ 1) : pass;
			int lib_side = !(which & 1), wake = which >= 2;
			struct region *g = lib_side ? &lib : &raw;
			uint64_t t0 = bench_now_ns();
			for (long k = i; k < end; k++) {
				struct uffdio_copy c = { .dst = (uintptr_t)g->base + (uint64_t)k * g->ps,
							 .src = (uintptr_t)src, .len = g->ps };
				struct uffdio_range w = { (uintptr_t)g->base, g->ps };
				unsigned long req = wake ? UFFDIO_WAKE : UFFDIO_COPY;
				void *arg = wake ? (void *)&w : (void *)&c;
				if ((lib_side ? uf_ioctl(g->uffd, req, arg) : ioctl(g->uffd, req, arg)) < 0)
					r = -errno;
			}
			t[(wake ? 2 : 0) + !lib_side] += bench_now_ns() - t0;
		}
	}
	for (int i = 0; i < 4; i++)
		ns[i] = (double)t[i] / (double)calls;
out:
	free(src);
	region_close(&lib);
	region_close(&raw);
	return r;
}
