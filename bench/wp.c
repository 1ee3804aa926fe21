/* SPDX-License-Identifier: MIT */
/*
 * wp.c - write protection: the round trip of a write to a protected page
 * (a WP message read by a handler thread, UFFDIO_WRITEPROTECT clearing the
 * page and waking the writer), the cost of a write resolved at once with
 * UFFD_FEATURE_WP_ASYNC, and a PAGEMAP_SCAN that finds the written pages
 * and protects them again (PM_SCAN_WP_MATCHING), per page.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <userfault.h>
#include "bench.h"

struct wp_rt {
	int uffd;
	char *region;
	size_t ps;
	_Atomic int done, err;
};

/* The handler: each WP message is answered by clearing its page. */
static void *wp_handler(void *arg)
{
	struct wp_rt *w = arg;

	while (!atomic_load(&w->done)) {
		struct pollfd p = { .fd = w->uffd, .events = POLLIN };
		struct uffd_msg m;

		if (poll(&p, 1, 100) <= 0)
			continue;
		if (uf_read(w->uffd, &m, sizeof m) != (ssize_t)sizeof m)
			continue;
		if (m.event != UFFD_EVENT_PAGEFAULT || !(m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
			atomic_store(&w->err, EPROTO);
			continue;
		}
		struct uffdio_writeprotect c = {
			{ m.arg.pagefault.address & ~(uint64_t)(w->ps - 1), w->ps }, 0 };
		if (uf_ioctl(w->uffd, UFFDIO_WRITEPROTECT, &c) < 0)
			atomic_store(&w->err, errno);
	}
	return NULL;
}

static int wp_setup(int target, uint64_t features, long pages, char **region, int *uffd)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), len = (size_t)pages * ps;
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_WP };
	struct uffdio_writeprotect wp = { .mode = UFFDIO_WRITEPROTECT_MODE_WP };
	int r;

	*uffd = -1;
	*region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*region == MAP_FAILED)
		return -errno;
	for (long i = 0; i < pages; i++)
		(*region)[(size_t)i * ps] = 1;	/* present: no missing pages */
	if ((r = uf_set_backend((enum uf_backend)target)) < 0)
		return r;
	if ((*uffd = uf_userfaultfd(O_CLOEXEC | O_NONBLOCK)) < 0)
		return -errno;
	reg.range.start = wp.range.start = (uintptr_t)*region;
	reg.range.len = wp.range.len = len;
	if (uf_ioctl(*uffd, UFFDIO_API, &api) < 0 || uf_ioctl(*uffd, UFFDIO_REGISTER, &reg) < 0 ||
	    uf_ioctl(*uffd, UFFDIO_WRITEPROTECT, &wp) < 0)
		return -errno;
	return 0;
}

static void wp_teardown(char *region, int uffd, long pages)
{
	if (uffd >= 0)
		uf_close(uffd);
	if (region != MAP_FAILED)
		munmap(region, (size_t)pages * (size_t)sysconf(_SC_PAGESIZE));
}

static int wp_roundtrip(int target, long pages, double *ns)
{
	struct wp_rt w = { .ps = (size_t)sysconf(_SC_PAGESIZE) };
	pthread_t th;
	uint64_t t0, t1;
	int r = wp_setup(target, UFFD_FEATURE_PAGEFAULT_FLAG_WP, pages, &w.region, &w.uffd);

	if (r == 0 && (r = -pthread_create(&th, NULL, wp_handler, &w)) == 0) {
		t0 = bench_now_ns();
		for (long i = 0; i < pages; i++)
			w.region[(size_t)i * w.ps + 1] = 2;
		t1 = bench_now_ns();
		atomic_store(&w.done, 1);
		pthread_join(th, NULL);
		*ns = (double)(t1 - t0) / (double)pages;
		if (atomic_load(&w.err))
			r = -atomic_load(&w.err);
	}
	wp_teardown(w.region, w.uffd, pages);
	return r;
}

/* One PAGEMAP_SCAN of [*at, end): written pages, protected again; *at
 * moves to where the walk stopped. */
static int wp_scan(int pm, uintptr_t *at, uintptr_t end, struct page_region *v, size_t nv)
{
	struct pm_scan_arg a = {
		.size = sizeof a, .flags = PM_SCAN_WP_MATCHING, .start = *at, .end = end,
		.vec = (uintptr_t)v, .vec_len = nv,
		.category_mask = PAGE_IS_WRITTEN, .return_mask = PAGE_IS_WRITTEN,
	};

	if (uf_ioctl(pm, PAGEMAP_SCAN, &a) < 0)
		return -errno;
	*at = a.walk_end;
	return 0;
}

static int wp_async(int target, int how, long pages, double *ns)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), len = (size_t)pages * ps;
	struct page_region v[64] = { { 0, 0, 0 } };
	char *region = MAP_FAILED;
	int uffd = -1, pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t t0, t1;
	int r;

	if (pm < 0)
		return -errno;
	r = wp_setup(target, UFFD_FEATURE_WP_ASYNC, pages, &region, &uffd);
	/* Every other page written: as many regions as pages written. */
	long written = (pages + 1) / 2;
	for (int round = 0; r == 0 && round < 2; round++) {
		t0 = bench_now_ns();
		for (long i = 0; i < pages; i += 2)
			region[(size_t)i * ps + 1] = (char)round;
		t1 = bench_now_ns();
		if (how == WPB_ASYNC_WRITE)
			*ns = (double)(t1 - t0) / (double)written;
		t0 = bench_now_ns();
		for (uintptr_t at = (uintptr_t)region; r == 0 && at < (uintptr_t)region + len;)
			r = wp_scan(pm, &at, (uintptr_t)region + len, v, 64);
		t1 = bench_now_ns();
		if (how == WPB_SCAN)
			*ns = (double)(t1 - t0) / (double)written;
	}
	wp_teardown(region, uffd, pages);
	close(pm);
	return r;
}

int bench_wp(int target, int how, long pages, double *ns)
{
	if (how == WPB_ROUNDTRIP)
		return wp_roundtrip(target, pages, ns);
	return wp_async(target, how, pages, ns);
}
