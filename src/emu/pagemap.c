/* SPDX-License-Identifier: MIT */
/*
 * The PAGEMAP_SCAN ioctl of /proc/self/pagemap (Linux 6.7), answered for the
 * memory the emulation manages.  The kernel does not know our areas for
 * what they are (to it, a private anonymous area is a shared mapping of a
 * memfd, write-protected pages are read-only, missing ones carry guard
 * markers), so a scan that meets one is done here: the pages of our areas
 * get their categories from the store (present, write-protected), the rest
 * of the range from the kernel's own scan of it, and both go through one
 * output stage written after the kernel's (fs/proc/task_mmu.c): the same
 * filtering, merging of neighbours, max_pages and vec_len limits, walk_end,
 * order of errors, and PM_SCAN_WP_MATCHING / PM_SCAN_CHECK_WPASYNC.
 *
 * Categories of a page of ours: WPALLOWED if its area is registered for WP
 * on a uffd with UFFD_FEATURE_WP_ASYNC; WRITTEN unless write-protected;
 * PRESENT if the store has it (SWAPPED instead for a protected missing page:
 * the kernel's marker is a swap entry); FILE and HUGE for shared memory and
 * hugetlb as the page tables say; SOFT_DIRTY as the page tables say.
 * PFNZERO for a page placed by ZEROPAGE that still reads as zeros (the
 * kernel's zero page is replaced at the first write: a write of zeros is
 * the one case told apart wrongly).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include "base/caps.h"
#include "base/sys.h"
#include "base/usercopy.h"
#include "userfault/pagemap.h"
#include "emu/area.h"
#include "emu/ctx.h"
#include "emu/process.h"
#include "emu/pages.h"

#define PM_SCAN_FLAGS_ALL	(PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC)
/* The categories this kernel knows (6.18: up to PAGE_IS_GUARD). */
#define PM_SCAN_CATS_ALL	((uint64_t)PAGE_IS_WPALLOWED | PAGE_IS_WRITTEN | PAGE_IS_FILE | \
				 PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_PFNZERO | PAGE_IS_HUGE | \
				 PAGE_IS_SOFT_DIRTY | PAGE_IS_GUARD)
/* The kernel's bounce buffer: at most this many regions between flushes. */
#define SCAN_BUF		512
/* The highest user address plus one (x86-64 and arm64, 4-level tables). */
#define USER_LIMIT		((uint64_t)1 << 47)

/* pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst) */
#define PM_PRESENT	((uint64_t)1 << 63)
#define PM_SWAP		((uint64_t)1 << 62)
#define PM_FILE		((uint64_t)1 << 61)
#define PM_GUARD	((uint64_t)1 << 58)
#define PM_SOFT_DIRTY	((uint64_t)1 << 55)

struct scan {
	struct pm_scan_arg arg;
	uint64_t interest;		/* every category some mask names */
	uint64_t found;			/* pages output */
	struct page_region buf[SCAN_BUF];
	size_t buf_len, buf_idx;	/* 0: no output at all (vec_len 0) */
	uintptr_t out;			/* where the next flush writes */
	int pmfd;			/* the program's pagemap descriptor */
};

static int interesting(const struct scan *p, uint64_t cats)
{
	cats ^= p->arg.category_inverted;
	if ((cats & p->arg.category_mask) != p->arg.category_mask)
		return 0;
	return !p->arg.category_anyof_mask || (cats & p->arg.category_anyof_mask);
}

/* Append [addr, end) to the buffer, merged with the last region when they
 * touch and match.  0 when the buffer is full. */
static int push(struct scan *p, uint64_t cats, uint64_t addr, uint64_t end)
{
	struct page_region *cur = &p->buf[p->buf_idx];

	if (addr == cur->end && cats == cur->categories) {
		cur->end = end;
		return 1;
	}
	if (cur->end) {
		if (p->buf_idx >= p->buf_len - 1)
			return 0;
		cur = &p->buf[++p->buf_idx];
	}
	cur->start = addr;
	cur->end = end;
	cur->categories = cats;
	return 1;
}

/* Output the interesting run [addr, *end): *end comes back lower if
 * max_pages or the buffer stops the walk there (-ENOSPC, walk_end set). */
static int output(struct scan *p, uint64_t cats, uint64_t addr, uint64_t *end)
{
	uint64_t n = (*end - addr) >> caps.page_shift, total;
	int ret = 0;

	if (!p->buf_len)
		return 0;
	cats &= p->arg.return_mask;
	if (__builtin_add_overflow(p->found, n, &total) || total > p->arg.max_pages) {
		uint64_t over = total - p->arg.max_pages;
		*end -= over << caps.page_shift;
		n -= over;
		ret = -ENOSPC;
	}
	if (!push(p, cats, addr, *end)) {
		*end = addr;
		n = 0;
		ret = -ENOSPC;
	}
	p->found += n;
	if (ret)
		p->arg.walk_end = *end;
	return ret;
}

/* Write the buffer out: the regions written, or -EFAULT. */
static long flush(struct scan *p)
{
	size_t n = p->buf_idx;

	if (!p->buf_len)
		return 0;
	if (p->buf[n].end != p->buf[n].start)
		n++;
	if (!n)
		return 0;
	if (usercopy_out((void *)p->out, p->buf, n * sizeof p->buf[0]))
		return -EFAULT;
	p->arg.vec_len -= n;
	p->out += n * sizeof p->buf[0];
	p->buf_idx = 0;
	if (p->buf_len > p->arg.vec_len)
		p->buf_len = p->arg.vec_len;
	p->buf[0].start = p->buf[0].end = 0;
	return (long)n;
}

/* One run [addr, end) of pages with the same categories, of a mapping whose
 * write protection wp() changes: the kernel's per-page step, for a run. */
static int run(struct scan *p, uint64_t cats, uint64_t addr, uint64_t end,
	       int (*wp)(void *ctx, uint64_t addr, uint64_t end), void *ctx)
{
	int ret, r;

	if (!interesting(p, cats))
		return 0;
	ret = output(p, cats, addr, &end);
	if (end == addr || !(p->arg.flags & PM_SCAN_WP_MATCHING) || !(cats & PAGE_IS_WRITTEN))
		return ret;
	if ((r = wp(ctx, addr, end)) < 0)
		return r;
	return ret;
}

/* ---- the kernel's part: mappings that are not ours ---- */

static int kernel_wp(void *ctx, uint64_t addr, uint64_t end)
{
	struct pm_scan_arg a = { .size = sizeof a, .flags = PM_SCAN_WP_MATCHING, .start = addr,
				 .end = end, .category_mask = PAGE_IS_WRITTEN };

	if (sys_ioctl(*(int *)ctx, PAGEMAP_SCAN, (unsigned long)&a) < 0)
		return -errno;
	return 0;
}

/* [addr, end) holds no area of ours: the kernel says what each page is
 * (every category, nothing filtered), and the runs go through our output. */
static int walk_kernel(struct scan *p, uint64_t addr, uint64_t end)
{
	struct page_region v[64] = { { 0, 0, 0 } };

	while (addr < end) {
		struct pm_scan_arg a = { .size = sizeof a, .start = addr, .end = end,
					 .vec = (uintptr_t)v, .vec_len = 64,
					 .return_mask = PM_SCAN_CATS_ALL };
		int n = sys_ioctl(p->pmfd, PAGEMAP_SCAN, (unsigned long)&a);

		if (n < 0)
			return -errno;
		for (int i = 0; i < n && i < 64; i++) {
			uint64_t cats = v[i].categories;
			int r;

			if (!(cats & PAGE_IS_WPALLOWED)) {
				if (p->arg.flags & PM_SCAN_CHECK_WPASYNC)
					return -EPERM;
				if (p->arg.flags & PM_SCAN_WP_MATCHING)
					continue;
			}
			if ((r = run(p, cats, v[i].start, v[i].end, kernel_wp, &p->pmfd)))
				return r;
		}
		if (a.walk_end <= addr)
			break;
		addr = a.walk_end;
	}
	return 0;
}

/* ---- our areas ---- */

struct ours {
	struct pg_span sp;
	int all;		/* protect missing pages too (pg_wp_all) */
};

static int ours_wp(void *ctx, uint64_t addr, uint64_t end)
{
	struct ours *o = ctx;

	return pg_wp_protect(&o->sp, (uintptr_t)addr, (size_t)(end - addr), 1, o->all);
}

/* The store's page number of addr. */
static uint64_t page_no(const struct pg_span *s, uint64_t addr)
{
	return (s->off + (addr - s->start)) >> caps.page_shift;
}

/* Does the page of addr (placed by ZEROPAGE) still hold only zeros?  The
 * kernel's zero page is replaced at the first write. */
static int reads_zero(const struct pg_span *s, uint64_t addr)
{
	uint64_t buf[512] = { 0 };
	size_t n = caps.page_size < sizeof buf ? caps.page_size : sizeof buf;

	for (size_t off = 0; off < caps.page_size; off += n) {
		if (sys_pread(store_fd(s->store), buf, n, (off_t)((page_no(s, addr) << caps.page_shift) + off)) !=
		    (ssize_t)n)
			return 0;
		for (size_t i = 0; i < n / 8; i++)
			if (buf[i])
				return 0;
	}
	return 1;
}

/* The pages [addr, end) of area v. */
static int walk_area(struct scan *p, const struct area_view *v, uint64_t addr, uint64_t end)
{
	struct ctx *c = v->ctx ? ctx_by_id(v->ctx) : NULL;
	uint64_t feats = c ? atomic_load(&c->features) : 0;
	int memfd = store_kind(v->store) == STORE_MEMFD, huge = store_huge_shift(v->store) != 0;
	int wp_allowed = c && (v->mode & UFFDIO_REGISTER_MODE_WP) && (feats & UFFD_FEATURE_WP_ASYNC);
	int need_pm = !memfd || (p->interest & PAGE_IS_SOFT_DIRTY);
	struct ours o = { area_span(v), pg_wp_all(v->store, !!(feats & UFFD_FEATURE_WP_UNPOPULATED)) };
	uint64_t vma_cats = wp_allowed ? PAGE_IS_WPALLOWED : 0;
	uint64_t ents[64], run_start = addr, run_cats = 0;
	size_t ps = caps.page_size;

	if (!wp_allowed) {
		if (p->arg.flags & PM_SCAN_CHECK_WPASYNC)
			return -EPERM;
		if (p->arg.flags & PM_SCAN_WP_MATCHING)
			return 0;
	}
	/* (WP alone: no markers, the kernel fills holes without asking) */
	if (memfd && !(v->mode & UFFDIO_REGISTER_MODE_MISSING))
		pg_refresh(&o.sp, (uintptr_t)addr, (size_t)(end - addr));
	for (uint64_t a = addr; a < end; a += ps) {
		size_t i = (size_t)((a - addr) >> caps.page_shift) % 64;
		uint64_t pm = 0, cats = vma_cats;
		int r;

		if (need_pm && i == 0) {
			size_t n = (size_t)((end - a) >> caps.page_shift);
			n = n < 64 ? n : 64;
			memset(ents, 0, sizeof ents);
			if (sys_pread(p->pmfd, ents, n * 8, (off_t)((a >> caps.page_shift) * 8)) < 0)
				return -errno;
		}
		if (need_pm)
			pm = ents[i];
		if (pm & PM_SOFT_DIRTY)
			cats |= PAGE_IS_SOFT_DIRTY;
		if (memfd) {
			int present = pg_present(&o.sp, (uintptr_t)a), wp = pg_wp_get(&o.sp, (uintptr_t)a);
			if (present && (p->interest & PAGE_IS_PFNZERO) &&
			    pg_bit_get(store_zero_bits(v->store), page_no(&o.sp, a)) && reads_zero(&o.sp, a))
				cats |= PAGE_IS_PFNZERO;
			if (present)
				cats |= PAGE_IS_PRESENT;
			else if (wp)
				cats |= PAGE_IS_SWAPPED;
			if (!wp)
				cats |= PAGE_IS_WRITTEN;
		} else {
			/* (shared memory: protected pages as for ours, the
			 * others as the page tables say) */
			int wp = store_has_wp(v->store) && pg_wp_get(&o.sp, (uintptr_t)a);
			if (!wp)
				cats |= PAGE_IS_WRITTEN;
			if (pm & PM_PRESENT)
				cats |= PAGE_IS_PRESENT | ((pm & PM_FILE) ? PAGE_IS_FILE : 0) |
					(huge ? PAGE_IS_HUGE : 0);
			else if (wp || ((pm & PM_SWAP) && !(pm & PM_GUARD)))
				cats |= PAGE_IS_SWAPPED;
		}
		if (a == addr) {
			run_cats = cats;
			continue;
		}
		if (cats == run_cats)
			continue;
		if ((r = run(p, run_cats, run_start, a, ours_wp, &o)))
			return r;
		run_start = a;
		run_cats = cats;
	}
	return run(p, run_cats, run_start, end, ours_wp, &o);
}

/* One walk of [start, end): 0, -ENOSPC (stopped early, walk_end set), or
 * another -errno. */
static int walk(struct scan *p, uint64_t start, uint64_t end)
{
	uint64_t at = start;

	while (at < end) {
		struct area_view v;
		uint64_t to;
		int r;

		if (!area_at_or_after((uintptr_t)at, (uintptr_t)end, &v))
			return walk_kernel(p, at, end);
		if (v.busy) {
			uint32_t gen = area_busy_gen();
			if (area_still(&v))
				area_wait_busy(gen);
			continue;
		}
		if (v.start > at) {
			if ((r = walk_kernel(p, at, v.start)))
				return r;
			at = v.start;
		}
		to = v.end < end ? v.end : end;
		if ((r = walk_area(p, &v, at, to)))
			return r;
		at = to;
	}
	return 0;
}

/* The number at *s followed by '/': its value (and *s past the '/'), or
 * -1. */
static long number_dir(const char **s)
{
	char *end;
	long v;

	if (**s < '0' || **s > '9')
		return -1;
	errno = 0;
	v = strtol(*s, &end, 10);
	if (errno || *end != '/')
		return -1;
	*s = end + 1;
	return v;
}

/* Is fd /proc/PID/pagemap (or /proc/PID/task/TID/pagemap) of this
 * process? */
int pagemap_is_self(int fd)
{
	char link[64], path[64];
	const char *s = link;
	long n;

	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	n = sys_call4(SYS_readlinkat, AT_FDCWD, (long)path, (long)link, sizeof link - 1);
	if (n <= 0)
		return 0;
	link[n] = 0;
	if (strncmp(s, "/proc/", 6) != 0)
		return 0;
	s += 6;
	if (number_dir(&s) != sys_call1(SYS_getpid, 0))
		return 0;
	if (strncmp(s, "task/", 5) == 0) {
		s += 5;
		if (number_dir(&s) < 0)
			return 0;
	}
	return strcmp(s, "pagemap") == 0;
}

/* Check and fix up the arguments as pagemap_scan_get_args does. */
static int get_args(struct pm_scan_arg *a, unsigned long uarg)
{
	uint64_t len, sum, vbytes;

	if (usercopy_in(a, (void *)uarg, sizeof *a))
		return -EFAULT;
	if (a->size != sizeof *a)
		return -EINVAL;
	if (a->flags & ~(uint64_t)PM_SCAN_FLAGS_ALL)
		return -EINVAL;
	if ((a->category_inverted | a->category_mask | a->category_anyof_mask | a->return_mask) &
	    ~PM_SCAN_CATS_ALL)
		return -EINVAL;
	if (a->start & (caps.page_size - 1))
		return -EINVAL;
	len = a->end - a->start;
	if (__builtin_add_overflow(a->start, len, &sum) || sum > USER_LIMIT)
		return -EFAULT;
	if (!a->vec && a->vec_len)
		return -EINVAL;
	if (__builtin_mul_overflow(a->vec_len, (uint64_t)sizeof(struct page_region), &vbytes))
		vbytes = UINT64_MAX;
	if (a->vec && (__builtin_add_overflow(a->vec, vbytes, &sum) || sum > USER_LIMIT))
		return -EFAULT;
	a->end = (a->end + caps.page_size - 1) & ~(uint64_t)(caps.page_size - 1);
	a->walk_end = 0;
	if (!a->max_pages)
		a->max_pages = UINT64_MAX;
	return 0;
}

long pagemap_scan(int fd, unsigned long uarg)
{
	struct scan *p;
	long n_out = 0;
	int ret;

	/* (12 KiB, zeroed: not on a thread's stack) */
	p = sys_mmap(NULL, sizeof *p, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	p->pmfd = fd;
	if ((ret = get_args(&p->arg, uarg)))
		goto out;
	p->interest = p->arg.category_mask | p->arg.category_anyof_mask | p->arg.return_mask;
	if (p->arg.vec_len) {
		p->buf_len = p->arg.vec_len < SCAN_BUF ? (size_t)p->arg.vec_len : SCAN_BUF;
		p->out = (uintptr_t)p->arg.vec;
	}
	for (uint64_t at = p->arg.start; at < p->arg.end; at = p->arg.walk_end) {
		long n;

		ret = walk(p, at, p->arg.end);
		n = flush(p);
		if (n < 0)
			ret = (int)n;
		else
			n_out += n;
		if (ret != -ENOSPC)
			break;
		if (p->arg.vec_len == 0 || p->found == p->arg.max_pages)
			break;
	}
	if (!ret || ret == -ENOSPC)
		ret = 0;
	if (!p->arg.walk_end)
		p->arg.walk_end = p->arg.end;
	if (usercopy_out((void *)(uarg + offsetof(struct pm_scan_arg, walk_end)), &p->arg.walk_end,
			 sizeof p->arg.walk_end))
		ret = -EFAULT;
out:
	sys_munmap(p, sizeof *p);
	return ret < 0 ? ret : n_out;
}

/* ---- read() of pagemap entries ---- */

/* Entries of a page of ours, as the kernel's for private anonymous memory:
 * a present page is anonymous (not "file or shared"), a missing one is an
 * empty entry (no guard marker), a protected one has the uffd-wp bit, and
 * a protected missing one is the kernel's marker (a swap entry). */
#define PM_UFFD_WP		((uint64_t)1 << 57)
#define PM_WP_MARKER		(PM_SWAP | PM_UFFD_WP | 0x3f)

/* Make the present pages of our areas in [va, va_end) present in the page
 * tables too (an installed page may not be mapped yet), so that the
 * kernel's entries carry them. */
static void populate(uint64_t va, uint64_t va_end)
{
	struct area_view v;

	for (uint64_t at = va; at < va_end && area_at_or_after((uintptr_t)at, (uintptr_t)va_end, &v);) {
		uint64_t from = v.start > at ? v.start : at, to = v.end < va_end ? v.end : va_end;
		struct pg_span sp = area_span(&v);
		uint64_t pg0 = page_no(&sp, from);
		size_t n = (size_t)((to - from) >> caps.page_shift), i = 0, len;

		if (store_kind(v.store) == STORE_MEMFD && (v.prot & PROT_READ)) {
			if (!(v.mode & UFFDIO_REGISTER_MODE_MISSING))
				pg_refresh(&sp, (uintptr_t)from, (size_t)(to - from));
			while (pg_next_run(store_bits(v.store), pg0, n, &i, 1, &len)) {
				sys_madvise((void *)(uintptr_t)(from + (i << caps.page_shift)), len << caps.page_shift,
					    MADV_POPULATE_READ);
				i += len;
			}
		}
		at = to;
	}
}

/* Rewrite the entries buf holds (the first at file offset off) for the
 * pages of our areas. */
static void fix_entries(uint64_t *ents, size_t n, uint64_t off)
{
	uint64_t va = (off / 8) << caps.page_shift, va_end = va + ((uint64_t)n << caps.page_shift);
	struct area_view v;

	for (uint64_t at = va; at < va_end && area_at_or_after((uintptr_t)at, (uintptr_t)va_end, &v);) {
		uint64_t from = v.start > at ? v.start : at, to = v.end < va_end ? v.end : va_end;
		struct pg_span sp = area_span(&v);

		if (store_kind(v.store) == STORE_MEMFD) {
			for (uint64_t a = from; a < to; a += caps.page_size) {
				uint64_t *e = &ents[(a - va) >> caps.page_shift];
				int wp = pg_wp_get(&sp, (uintptr_t)a);

				if (pg_present(&sp, (uintptr_t)a) && (*e & PM_PRESENT))
					*e = (*e & ~(PM_FILE | PM_GUARD)) | (wp ? PM_UFFD_WP : 0);
				else
					*e = (*e & PM_SOFT_DIRTY) | (wp ? PM_WP_MARKER : 0);
			}
		} else if (store_has_wp(v.store)) {
			/* shared memory: the page tables' entries, without our
			 * markers, with the write protection */
			for (uint64_t a = from; a < to; a += caps.page_size) {
				uint64_t *e = &ents[(a - va) >> caps.page_shift];
				int wp = pg_wp_get(&sp, (uintptr_t)a);

				if (*e & PM_PRESENT)
					*e |= wp ? PM_UFFD_WP : 0;
				else if (*e & PM_GUARD || wp)
					*e = (*e & PM_SOFT_DIRTY) | (wp ? PM_WP_MARKER : 0);
			}
		}
		at = to;
	}
}

ssize_t pagemap_pread(int fd, void *buf, size_t n, uint64_t off)
{
	ssize_t r;

	if (!(off % 8) && !(n % 8) && n)
		populate((off / 8) << caps.page_shift, ((off + n) / 8) << caps.page_shift);
	r = sys_pread(fd, buf, n, (off_t)off);
	if (r > 0)
		fix_entries(buf, (size_t)r / 8, off);
	return r;
}

