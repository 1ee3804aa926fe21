/* SPDX-License-Identifier: MIT */
/*
 * roundtrip.c - the cross-thread round trip, as userfaultfd is mostly used:
 * faulting threads touch missing pages; handler threads wait in poll() (or
 * block in read()), read the messages and answer each with UFFDIO_COPY or
 * UFFDIO_ZEROPAGE of the unit that holds the address.  The same code runs
 * on either back-end, and with BT_PLAIN on plain memory; the region is
 * private anonymous memory, shared memory or huge pages (rt_params.memory).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <userfault.h>
#include "bench.h"

struct rt {
	const struct rt_params *p;
	char *region;
	int uffd, stopfd;
	char *src;
	_Atomic long served;
	_Atomic int err;
	_Atomic int go;		/* 1: start, -1: give up */
};

struct faulter {
	struct rt *rt;
	long first, count;
};

static void note_err(struct rt *rt, int e)
{
	int z = 0;
	atomic_compare_exchange_strong(&rt->err, &z, e);
}

static void serve(struct rt *rt, const struct uffd_msg *m)
{
	const struct rt_params *p = rt->p;
	uintptr_t base = (uintptr_t)rt->region;
	uintptr_t dst = base + ((m->arg.pagefault.address - base) & ~(uintptr_t)(p->unit - 1));
	int r;

	if (m->event != UFFD_EVENT_PAGEFAULT) {
		note_err(rt, EPROTO);
		return;
	}
	if (p->zeropage) {
		struct uffdio_zeropage z = { .range = { dst, p->unit } };
		r = uf_ioctl(rt->uffd, UFFDIO_ZEROPAGE, &z);
	} else {
		struct uffdio_copy c = { .dst = dst, .src = (uintptr_t)rt->src, .len = p->unit };
		r = uf_ioctl(rt->uffd, UFFDIO_COPY, &c);
	}
	if (r == 0)
		atomic_fetch_add(&rt->served, 1);
	else if (errno != EEXIST)
		note_err(rt, errno);
}

static void *handler_main(void *arg)
{
	struct rt *rt = arg;
	struct uffd_msg msgs[16];
	struct pollfd pf[2] = { { rt->uffd, POLLIN, 0 }, { rt->stopfd, POLLIN, 0 } };

	for (;;) {
		ssize_t n;

		if (rt->p->blocking) {
			if (atomic_load(&rt->served) >= rt->p->faults)
				break;
		} else {
			if (poll(pf, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				note_err(rt, errno);
				break;
			}
			if (pf[1].revents)
				break;
			if (!(pf[0].revents & POLLIN))
				continue;
		}
		n = uf_read(rt->uffd, msgs, sizeof msgs);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			note_err(rt, errno);
			break;
		}
		for (ssize_t i = 0; i < n / (ssize_t)sizeof msgs[0]; i++)
			serve(rt, &msgs[i]);
	}
	return NULL;
}

static void *faulter_main(void *arg)
{
	struct faulter *f = arg;
	struct rt *rt = f->rt;
	const struct rt_params *p = rt->p;

	while (atomic_load(&rt->go) == 0)
		sched_yield();
	if (atomic_load(&rt->go) < 0)
		return NULL;
	for (long i = f->first; i < f->first + f->count; i++) {
		volatile char *a = rt->region + (size_t)i * p->unit;
		uint64_t t0 = p->lat_ns ? bench_now_ns() : 0;
		if (p->write)
			*a = 1;
		else
			(void)*a;
		/* A unit of several pages: use all of it, as a program would,
		 * so that whatever mapping work an install left undone is paid
		 * here. */
		for (size_t off = 4096; off < p->unit; off += 4096)
			(void)a[off];
		if (p->lat_ns)
			p->lat_ns[i] = (double)(bench_now_ns() - t0);
	}
	return NULL;
}

static int setup_uffd(struct rt *rt, size_t len)
{
	const struct rt_params *p = rt->p;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .range = { (uintptr_t)rt->region, len },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	int r;

	if ((r = uf_set_backend((enum uf_backend)p->target)) < 0)
		return r;
	rt->uffd = uf_userfaultfd(O_CLOEXEC | (p->blocking ? 0 : O_NONBLOCK));
	if (rt->uffd < 0)
		return -errno;
	if (uf_ioctl(rt->uffd, UFFDIO_API, &api) < 0 ||
	    uf_ioctl(rt->uffd, UFFDIO_REGISTER, &reg) < 0)
		return -errno;
	return 0;
}

int bench_roundtrip(const struct rt_params *p, double *ns)
{
	struct rt rt = { .p = p, .uffd = -1, .stopfd = -1 };
	size_t len = (size_t)p->faults * p->unit;
	pthread_t hs[16], fs[64];
	struct faulter fa[64];
	int nh = 0, nf = 0, r = 0;
	char *raw;
	uint64_t t0, t1;
	cpu_set_t old_set;
	int pinned = 0;

	if (p->faulters < 1 || p->faulters > 64 || p->handlers < 0 || p->handlers > 16 ||
	    (p->blocking && p->handlers > 1) || p->faults < p->faulters)
		return -EINVAL;
	/* Align the region on its unit, as a VMM aligns guest memory. */
	static const int flags[] = { [BM_ANON] = MAP_PRIVATE, [BM_SHMEM] = MAP_SHARED,
				     [BM_HUGETLB] = MAP_PRIVATE | MAP_HUGETLB };
	if (p->memory < BM_ANON || p->memory > BM_HUGETLB || (p->memory == BM_HUGETLB && p->unit != (2u << 20)))
		return -EINVAL;
	raw = mmap(NULL, len + p->unit, PROT_READ | PROT_WRITE, flags[p->memory] | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return -errno;
	rt.region = (char *)(((uintptr_t)raw + p->unit - 1) & ~(uintptr_t)(p->unit - 1));
	/* One CPU for every thread made from here on (they inherit the mask):
	 * the one this thread is on. */
	if (p->samecpu) {
		if ((r = bench_pin_here(&old_set)) < 0)
			goto out;
		pinned = 1;
	}
	rt.src = malloc(p->unit);
	if (!rt.src) {
		r = -ENOMEM;
		goto out;
	}
	memset(rt.src, 0x5a, p->unit);
	if (p->target != BT_PLAIN) {
		if ((r = setup_uffd(&rt, len)) < 0)
			goto out_fds;
		rt.stopfd = eventfd(0, EFD_CLOEXEC);
		for (nh = 0; nh < p->handlers; nh++)
			if (pthread_create(&hs[nh], NULL, handler_main, &rt)) {
				r = -EAGAIN;
				goto out_threads;
			}
	}
	for (nf = 0; nf < p->faulters; nf++) {
		fa[nf].rt = &rt;
		fa[nf].first = p->faults * nf / p->faulters;
		fa[nf].count = p->faults * (nf + 1) / p->faulters - fa[nf].first;
		if (pthread_create(&fs[nf], NULL, faulter_main, &fa[nf])) {
			r = -EAGAIN;
			break;
		}
	}
	t0 = bench_now_ns();
	atomic_store(&rt.go, r == 0 ? 1 : -1);
	for (int i = 0; i < nf; i++)
		pthread_join(fs[i], NULL);
	t1 = bench_now_ns();
	*ns = (double)(t1 - t0) / (double)p->faults;
out_threads:
	if (rt.stopfd >= 0) {
		uint64_t one = 1;
		if (write(rt.stopfd, &one, sizeof one) < 0)
			r = r ? r : -errno;
	}
	for (int i = 0; i < nh; i++)
		pthread_join(hs[i], NULL);
	if (r == 0 && atomic_load(&rt.err))
		r = -atomic_load(&rt.err);
out_fds:
	if (rt.stopfd >= 0)
		close(rt.stopfd);
	if (rt.uffd >= 0)
		uf_close(rt.uffd);
out:
	if (pinned) {
		int u = bench_unpin(&old_set);
		r = r ? r : u;
	}
	free(rt.src);
	munmap(raw, len + p->unit);
	return r;
}
