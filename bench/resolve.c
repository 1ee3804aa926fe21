/* SPDX-License-Identifier: MIT */
/*
 * resolve.c - the other ways to resolve a fault, in one harness: a read of
 * a missing page of private anonymous memory answered with UFFDIO_COPY or
 * with UFFDIO_MOVE (from another private region, page by page), and a read
 * of a shared-memory page that the file has but the registered mapping has
 * not (a minor fault) answered with UFFDIO_CONTINUE.  Per fault: the
 * faulting read, the message read by a handler thread, the resolution and
 * the wake.
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

struct rs {
	int uffd, how;
	char *dst, *src;	/* src: MOVE's and COPY's source, MINOR's alias */
	size_t ps;
	_Atomic int done, err;
};

static void *rs_handler(void *arg)
{
	struct rs *w = arg;

	while (!atomic_load(&w->done)) {
		struct pollfd p = { .fd = w->uffd, .events = POLLIN };
		struct uffd_msg m;
		uint64_t page;
		int r;

		if (poll(&p, 1, 100) <= 0)
			continue;
		if (uf_read(w->uffd, &m, sizeof m) != (ssize_t)sizeof m)
			continue;
		if (m.event != UFFD_EVENT_PAGEFAULT ||
		    !!(m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR) != (w->how == RSB_MINOR)) {
			atomic_store(&w->err, EPROTO);
			continue;
		}
		page = m.arg.pagefault.address & ~(uint64_t)(w->ps - 1);
		if (w->how == RSB_MOVE) {
			struct uffdio_move mv = { page, (uintptr_t)w->src + (page - (uintptr_t)w->dst), w->ps, 0, 0 };
			r = uf_ioctl(w->uffd, UFFDIO_MOVE, &mv);
		} else if (w->how == RSB_COPY) {
			struct uffdio_copy c = { page, (uintptr_t)w->src + (page - (uintptr_t)w->dst), w->ps, 0, 0 };
			r = uf_ioctl(w->uffd, UFFDIO_COPY, &c);
		} else {
			struct uffdio_continue c = { { page, w->ps }, 0, 0 };
			r = uf_ioctl(w->uffd, UFFDIO_CONTINUE, &c);
		}
		if (r < 0)
			atomic_store(&w->err, errno);
	}
	return NULL;
}

int bench_resolve(int target, int how, long pages, double *ns)
{
	struct rs w = { .uffd = -1, .how = how, .dst = MAP_FAILED, .src = MAP_FAILED };
	size_t len;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = how == RSB_MINOR ? UFFDIO_REGISTER_MODE_MINOR
							       : UFFDIO_REGISTER_MODE_MISSING };
	pthread_t th;
	uint64_t t0, t1;
	int r, mfd = -1;

	w.ps = (size_t)sysconf(_SC_PAGESIZE);
	len = (size_t)pages * w.ps;
	if ((r = uf_set_backend((enum uf_backend)target)) < 0)
		return r;
	if (how == RSB_MINOR) {
		/* A memfd mapped twice: the alias fills the file. */
		mfd = memfd_create("userfault-bench", MFD_CLOEXEC);
		if (mfd < 0 || ftruncate(mfd, (off_t)len) < 0) {
			r = -errno;
			goto out;
		}
		w.dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
		w.src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	} else {
		w.dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		w.src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	if (w.dst == MAP_FAILED || w.src == MAP_FAILED) {
		r = -errno;
		goto out;
	}
	for (long i = 0; i < pages; i++)
		memset(w.src + (size_t)i * w.ps, (int)(i | 1), w.ps);
	if ((w.uffd = uf_userfaultfd(O_CLOEXEC | O_NONBLOCK)) < 0) {
		r = -errno;
		goto out;
	}
	reg.range.start = (uintptr_t)w.dst;
	reg.range.len = len;
	if (uf_ioctl(w.uffd, UFFDIO_API, &api) < 0) {
		r = -errno;
		goto out;
	}
	/* (the emulation without guard markers on shared memory: no MINOR) */
	if (how == RSB_MINOR && !(api.features & UFFD_FEATURE_MINOR_SHMEM)) {
		r = -EOPNOTSUPP;
		goto out;
	}
	if (uf_ioctl(w.uffd, UFFDIO_REGISTER, &reg) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = -pthread_create(&th, NULL, rs_handler, &w)) != 0)
		goto out;
	t0 = bench_now_ns();
	for (long i = 0; i < pages; i++)
		if (*(volatile char *)(w.dst + (size_t)i * w.ps + 7) != (char)(i | 1))
			atomic_store(&w.err, EIO);
	t1 = bench_now_ns();
	atomic_store(&w.done, 1);
	pthread_join(th, NULL);
	*ns = (double)(t1 - t0) / (double)pages;
	if (atomic_load(&w.err))
		r = -atomic_load(&w.err);
out:
	if (w.uffd >= 0)
		uf_close(w.uffd);
	if (w.dst != MAP_FAILED)
		munmap(w.dst, len);
	if (w.src != MAP_FAILED)
		munmap(w.src, len);
	if (mfd >= 0)
		close(mfd);
	return r;
}
