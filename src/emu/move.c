/* SPDX-License-Identifier: MIT */
/*
 * UFFDIO_MOVE on the emulation (UFFD-SPEC section 8.5): the checks of the
 * two mappings, then page by page what the kernel looks at (a destination
 * page present: EEXIST; a source hole: ENOENT, or moved as a hole with
 * ALLOW_SRC_HOLES; a source page shared with another process: EBUSY), and
 * runs of movable pages handed to pg_move, which copies them and takes
 * them from the source at once.  The source may be private anonymous
 * memory (its pages as /proc/self/pagemap tells them) or an area of ours
 * (its presence bits).
 *
 * Not async-signal-safe: a private source is looked up in /proc/self/maps.
 * MOVEs from private memory are serialised: one makes its source run
 * read-only for a moment (a mapping of its own in /proc/self/maps), which
 * another's look-up must not take for the program's.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "base/maps.h"
#include "base/sys.h"
#include "emu/area.h"
#include "emu/ops.h"

#define PM_PRESENT	((uint64_t)1 << 63)
#define PM_SWAP		((uint64_t)1 << 62)
#define PM_EXCLUSIVE	((uint64_t)1 << 56)
#define PM_PFN		(((uint64_t)1 << 55) - 1)
#define KPF_ZERO_PAGE	((uint64_t)1 << 24)	/* /proc/kpageflags */
#define RUN_MAX		512		/* pages looked at per read of pagemap */

/* Is anything mapped at the page of a?  (mincore: ENOMEM where not.) */
static int mapped(uintptr_t a)
{
	unsigned char vec[1];

	return sys_call4(SYS_mincore, (long)(a & ~(uintptr_t)(caps.page_size - 1)), (long)caps.page_size,
			 (long)vec, 0) == 0;
}

/* Does the page at a read as zeros?  (a-s-s: a plain read of a present
 * page) */
static int reads_zero(uintptr_t a)
{
	const uint64_t *w = (const uint64_t *)a;

	for (size_t i = 0; i < caps.page_size / sizeof *w; i++)
		if (w[i])
			return 0;
	return 1;
}

/* What a source page is. */
enum src_state { SRC_PAGE, SRC_HOLE, SRC_BUSY };

/* The source: private memory (area NULL, pagemap entries in pm), or an
 * area of ours. */
struct src {
	const struct pg_span *area;
	uint64_t pm[RUN_MAX];
	uintptr_t pm_at;	/* address of pm[0] */
	size_t pm_n;
	int pm_fd;
	int kpf_fd;		/* /proc/kpageflags: -2 not opened yet, -1 none */
};

/* Is the page at a, not exclusive to us, the shared zero page (which a
 * read-only fault of private memory maps, and the kernel moves as such, not
 * EBUSY)?  Where pagemap shows page frame numbers (CAP_SYS_ADMIN),
 * /proc/kpageflags says so, the huge zero page included; elsewhere a page
 * that reads as zeros is taken for it. */
static int zero_page(struct src *s, uintptr_t a, uint64_t e)
{
	uint64_t flags = 0;

	if (!(e & PM_PFN))
		return reads_zero(a);
	if (s->kpf_fd == -2) {
		int fd = sys_open("/proc/kpageflags", O_RDONLY | O_CLOEXEC, 0);
		s->kpf_fd = fd < 0 ? -1 : fd;
	}
	if (s->kpf_fd < 0 ||
	    sys_pread(s->kpf_fd, &flags, sizeof flags, (off_t)((e & PM_PFN) * sizeof flags)) != (ssize_t)sizeof flags)
		return reads_zero(a);
	return !!(flags & KPF_ZERO_PAGE);
}

static int src_state(struct src *s, uintptr_t a)
{
	uint64_t e;

	if (s->area)
		return pg_present(s->area, a) ? SRC_PAGE : SRC_HOLE;
	if (a < s->pm_at || a >= s->pm_at + s->pm_n * caps.page_size) {
		ssize_t k = sys_pread(s->pm_fd, s->pm, sizeof s->pm, (off_t)((a >> caps.page_shift) * 8));
		if (k < 8)
			return SRC_HOLE;
		s->pm_at = a;
		s->pm_n = (size_t)k / 8;
	}
	e = s->pm[(a - s->pm_at) >> caps.page_shift];
	if (!(e & (PM_PRESENT | PM_SWAP)))
		return SRC_HOLE;
	if ((e & PM_PRESENT) && !(e & PM_EXCLUSIVE) && !zero_page(s, a, e))
		return SRC_BUSY;	/* shared with a fork child, or merged (KSM) */
	return SRC_PAGE;
}

static pthread_mutex_t g_private_lock = PTHREAD_MUTEX_INITIALIZER;

static long move_locked(struct ctx *c, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode,
			int *private_);

long move_do(struct ctx *c, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode)
{
	int private_ = 0;
	long r = move_locked(c, dst, src, len, mode, &private_);

	if (private_)
		pthread_mutex_unlock(&g_private_lock);
	return r;
}

/* (*private_ set: g_private_lock taken, for the caller to release) */
static long move_locked(struct ctx *c, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode,
			int *private_)
{
	struct area_view dv, sv;
	struct pg_span dsp, ssp;
	struct src s;
	struct vma *vm = NULL;
	int have_src_area, src_prot = 0, src_ok = 1;
	size_t ps = caps.page_size;
	uint64_t done = 0;
	long err = 0;

	/* The mappings: none at dst or src is ENOENT; then every other
	 * mismatch is EINVAL. */
	for (;;) {
		if (!area_find(dst, &dv))
			return mapped(dst) ? -EINVAL : -ENOENT;
		if (!dv.busy)
			break;
		{
			uint32_t gen = area_busy_gen();
			if (area_still(&dv))
				area_wait_busy(gen);
		}
	}
	/* (a source area being frozen for a fork waits as well) */
	while ((have_src_area = area_find(src, &sv)) && sv.busy) {
		uint32_t gen = area_busy_gen();
		if (area_still(&sv))
			area_wait_busy(gen);
	}
	memset(&s, 0, sizeof s);
	if (have_src_area) {
		ssp = area_span(&sv);
		s.area = &ssp;
		src_prot = sv.prot;
		src_ok = src + len <= sv.end && store_kind(sv.store) == STORE_MEMFD;
	} else {
		int n;
		pthread_mutex_lock(&g_private_lock);
		*private_ = 1;
		n = maps_in(src, src + len, &vm);
		if (n < 0)
			return n;
		if (n == 0 || vm[0].start > src) {
			free(vm);
			return -ENOENT;
		}
		src_prot = vm[0].prot;
		src_ok = vm[0].end >= src + len && !vm[0].shared &&
			 (vm[0].kind == VMA_ANON || vm[0].kind == VMA_STACK);
		free(vm);
	}
	if (!src_ok || dst + len > dv.end || store_kind(dv.store) != STORE_MEMFD ||
	    dv.ctx != atomic_load(&c->q.id) || !(dv.prot & PROT_WRITE) || src_prot != dv.prot)
		return -EINVAL;

	dsp = area_span(&dv);
	s.pm_fd = s.area ? -1 : sys_open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC, 0);
	s.kpf_fd = -2;
	if (!s.area && s.pm_fd < 0)
		return -ENOMEM;
	while (done < len) {
		uint64_t k = 0;
		long r;

		/* The run of pages that can move from here, at most RUN_MAX. */
		while (done + k < len && k < RUN_MAX * ps && !pg_present(&dsp, dst + done + k) &&
		       src_state(&s, src + done + k) == SRC_PAGE)
			k += ps;
		if (k == 0) {
			int st = src_state(&s, src + done);
			if (pg_present(&dsp, dst + done)) {
				err = -EEXIST;
			} else if (st == SRC_HOLE) {
				if (mode & UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES) {
					done += ps;	/* a hole moves as a hole */
					continue;
				}
				err = -ENOENT;
			} else {
				err = -EBUSY;
			}
			break;
		}
		r = pg_move(&dsp, dst + done, src + done, k, src_prot, s.area);
		if (r < 0) {
			err = r;
			break;
		}
		done += (uint64_t)r;
		if ((uint64_t)r < k)
			break;		/* a destination page appeared meanwhile */
	}
	if (s.pm_fd >= 0)
		sys_close(s.pm_fd);
	if (s.kpf_fd >= 0)
		sys_close(s.kpf_fd);
	return done ? (long)done : err;
}
