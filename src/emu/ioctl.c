/* SPDX-License-Identifier: MIT */
/*
 * The emulated ioctls, with the kernel's checks in the kernel's order
 * (UFFD-SPEC sections 4 to 8), and the table that describes them (ops.h).
 * COPY, ZEROPAGE and WAKE take no lock and are async-signal-safe: a
 * handler may resolve its own fault.
 */
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include "base/fdreg.h"
#include "base/sys.h"
#include "base/usercopy.h"
#include "emu/area.h"
#include "emu/ops.h"

#ifndef FIGETBSZ
#define FIGETBSZ _IO(0x00, 2)
#endif

static int fail(int err)
{
	errno = err;
	return -1;
}

/* Section 5.1.  async-signal-safe */
static int range_ok(uint64_t start, uint64_t len)
{
	uint64_t ps = caps.page_size;

	if ((start & (ps - 1)) || (len & (ps - 1)) || !len)
		return 0;
	if (start >= caps.task_size || len > caps.task_size - start)
		return 0;
	return 1;
}

/* A refused UFFDIO_API: the struct is zeroed, and if even that cannot be
 * written the answer is EFAULT (the kernel's err_out). */
static int api_refuse(unsigned long arg, int err)
{
	static const struct uffdio_api zero;

	if (usercopy_out((void *)arg, &zero, sizeof zero))
		return fail(EFAULT);
	return fail(err);
}

/* UFFDIO_API's checks and answer (the features and ioctls offered): 0 and
 * *want, the features asked for; or -1 and errno. */
static int api_answer(unsigned long arg, uint64_t *want)
{
	struct uffdio_api api;

	if (usercopy_in(&api, (void *)arg, sizeof api))
		return fail(EFAULT);
	*want = api.features;
	/* Asynchronous protection protects unpopulated pages too. */
	if (*want & UFFD_FEATURE_WP_ASYNC)
		*want |= UFFD_FEATURE_WP_UNPOPULATED;
	if (api.api != UFFD_API || (*want & ~(uint64_t)EMU_FEATURES))
		return api_refuse(arg, EINVAL);
	api.features = EMU_FEATURES;
	api.ioctls = UFFD_API_IOCTLS;
	if (usercopy_out((void *)arg, &api, sizeof api))
		return fail(EFAULT);
	return 0;
}

int ioctl_api_gone(unsigned long arg, _Atomic int *fresh)
{
	uint64_t want;
	int expected = 1;

	if (api_answer(arg, &want) < 0)
		return -1;
	/* Once, as on a live uffd. */
	if (!atomic_compare_exchange_strong(fresh, &expected, 0))
		return api_refuse(arg, EINVAL);
	return 0;
}

static int do_api(struct ctx *c, unsigned long arg)
{
	uint64_t want;
	int expected = CTX_NEW, busy = 0;

	if (api_answer(arg, &want) < 0)
		return -1;
	/* Only once per uffd; the answer already written is wiped.  The
	 * features change only with the state, as the kernel sets both with
	 * one cmpxchg: a refused call (or the loser of two at once) leaves
	 * them alone. */
	if (!atomic_compare_exchange_strong(&c->api_busy, &busy, 1))
		return api_refuse(arg, EINVAL);
	if (atomic_load(&c->state) != CTX_NEW) {
		atomic_store(&c->api_busy, 0);
		return api_refuse(arg, EINVAL);
	}
	atomic_store(&c->features, want);
	if (!atomic_compare_exchange_strong(&c->state, &expected, CTX_RUNNING)) {
		atomic_store(&c->api_busy, 0);
		return api_refuse(arg, EINVAL);
	}
	atomic_store(&c->api_busy, 0);
	return 0;
}

/* async-signal-safe */
static int register_check(const void *arg)
{
	const struct uffdio_register *reg = arg;

	if (!reg->mode || (reg->mode & ~(uint64_t)UFFD_API_REGISTER_MODES))
		return EINVAL;
	/* (WP needs guard markers, MINOR shared memory or hugetlb: the area
	 * layer checks) */
	return range_ok(reg->range.start, reg->range.len) ? 0 : EINVAL;
}

static int do_register(struct ctx *c, int fd, unsigned long arg)
{
	struct uffdio_register reg;
	uint64_t ioctls = UFFD_API_RANGE_IOCTLS;
	int r;

	(void)fd;

	if (usercopy_in(&reg, (void *)arg, offsetof(struct uffdio_register, ioctls)))
		return fail(EFAULT);
	if ((r = register_check(&reg)))
		return fail(r);
	area_lock();
	r = area_register_locked(atomic_load(&c->q.id), reg.range.start,
				 reg.range.start + reg.range.len, reg.mode);
	area_unlock();
	/* The range may belong to a uffd closed a moment ago (its last copy in
	 * a child that has just exited), which the watcher thread has not
	 * released yet, or is releasing right now: the kernel's would be gone.
	 * Release what is closed (waiting for a release under way: it holds
	 * the area lock), and try once more. */
	if (r == -EBUSY) {
		ctx_release_closed();
		area_lock();
		r = area_register_locked(atomic_load(&c->q.id), reg.range.start,
					 reg.range.start + reg.range.len, reg.mode);
		area_unlock();
	}
	/* Out of descriptors (a memfd, /proc/self/maps): the kernel's needs
	 * none, and says ENOMEM when it cannot allocate. */
	if (r == -EMFILE || r == -ENFILE)
		r = -ENOMEM;
	if (r < 0)
		return fail(-r);
	if (r == 1)		/* hugetlb: the kernel's "basic" ioctls */
		ioctls = UFFD_API_RANGE_IOCTLS_BASIC;
	if (!(reg.mode & UFFDIO_REGISTER_MODE_WP))
		ioctls &= ~((uint64_t)1 << _UFFDIO_WRITEPROTECT);
	if (!(reg.mode & UFFDIO_REGISTER_MODE_MINOR))
		ioctls &= ~((uint64_t)1 << _UFFDIO_CONTINUE);
	if (usercopy_out((char *)arg + offsetof(struct uffdio_register, ioctls), &ioctls, sizeof ioctls))
		return fail(EFAULT);
	return 0;
}

/* UNREGISTER and WAKE.  async-signal-safe */
static int range_check(const void *arg)
{
	const struct uffdio_range *rg = arg;

	return range_ok(rg->start, rg->len) ? 0 : EINVAL;
}

/* The pieces of [start, end) that one uffd has registered (for UNREGISTER's
 * wake): as many as fit, else the whole range. */
#define UNREG_SPANS 64
struct unreg_spans {
	uint32_t ctx;
	int n, overflow;
	uintptr_t s[UNREG_SPANS], e[UNREG_SPANS];
};

static void unreg_collect(void *arg, uint32_t ctx, uintptr_t s, uintptr_t e)
{
	struct unreg_spans *u = arg;

	if (ctx != u->ctx)
		return;
	if (u->n == UNREG_SPANS) {
		u->overflow = 1;
		return;
	}
	u->s[u->n] = s;
	u->e[u->n++] = e;
}

static int do_unregister(struct ctx *c, int fd, unsigned long arg)
{
	struct uffdio_range rg;
	struct unreg_spans u;
	int r;

	if (usercopy_in(&rg, (void *)arg, sizeof rg))
		return fail(EFAULT);
	if ((r = range_check(&rg)))
		return fail(r);
	u.ctx = atomic_load(&c->q.id);
	u.n = u.overflow = 0;
	area_lock();
	/* As the kernel: only the waiters of what this uffd had registered
	 * wake (a thread waiting on a page whose mapping was replaced since
	 * stays asleep). */
	area_each_owned_locked(rg.start, rg.start + rg.len, unreg_collect, &u);
	r = area_unregister_locked(u.ctx, rg.start, rg.start + rg.len);
	if (r == 0 && u.overflow)
		wq_wake_range(&c->q, rg.start, rg.start + rg.len, NULL);
	else if (r == 0)
		for (int i = 0; i < u.n; i++)
			wq_wake_range(&c->q, u.s[i], u.e[i], NULL);
	area_unlock();
	if (r < 0)
		return fail(-r);
	/* The waiters it woke took their unread messages with them: poll
	 * must not find the uffd readable for those any more. */
	ctx_sync_ready(c, fd);
	return 0;
}

/* async-signal-safe */
static int do_wake(struct ctx *c, int fd, unsigned long arg)
{
	struct uffdio_range rg;

	if (usercopy_in(&rg, (void *)arg, sizeof rg))
		return fail(EFAULT);
	if (range_check(&rg))
		return fail(EINVAL);
	if (wq_wake_range(&c->q, rg.start, rg.start + rg.len, NULL))
		ctx_sync_ready(c, fd);
	return 0;
}

/* The area that goes on from v at v->end as the same kernel VMA: one
 * registered by the same uffd with the same modes and protection.  The
 * kernel merges adjacent VMAs whose flags are equal, so two registrations
 * side by side make one VMA; the emulation keeps an area (a memfd) per
 * registration, and COPY/ZEROPAGE treat such a run of areas as one.  1 if
 * there is one (in *n).  async-signal-safe */
static int area_next(const struct area_view *v, struct area_view *n)
{
	return area_find(v->end, n) && n->start == v->end && n->ctx == v->ctx &&
	       n->mode == v->mode && n->prot == v->prot;
}

/* The piece of area v that [dst, dst+len) is installed into: write-
 * protected if wp (COPY's MODE_WP).  Registered for WP alone, the area's
 * holes are filled by the kernel without asking: its presence bits are
 * read from the memfd first.  async-signal-safe */
static struct pg_span install_span(const struct area_view *v, uint64_t dst, uint64_t len, int wp)
{
	struct pg_span sp = area_span(v);

	sp.wp_install = wp;
	if (!(v->mode & UFFDIO_REGISTER_MODE_MISSING) && store_kind(v->store) == STORE_MEMFD)
		pg_refresh(&sp, dst, len);
	return sp;
}

/* What resolve() puts in the pages. */
enum fill { FILL_COPY, FILL_ZEROS, FILL_POISON, FILL_CONTINUE };

/* One area's piece.  async-signal-safe */
static long fill_span(const struct area_view *v, uint64_t dst, const void *src, enum fill f, uint64_t len,
		      int wp, int populate)
{
	struct pg_span sp = install_span(v, dst, len, wp);

	if (f == FILL_POISON)
		return pg_poison(&sp, dst, len);
	if (f == FILL_CONTINUE)
		return pg_continue(&sp, dst, len, wp);
	return pg_install(&sp, dst, src, f == FILL_ZEROS, len, populate);
}

/*
 * COPY (from src), ZEROPAGE (zeros; src unused) and POISON: section 5.2,
 * without the wake.  Returns the result to store in the output field (bytes or
 * -errno); *v gets the area of dst.  The destination must lie in one
 * registered VMA (ENOENT), which may be several areas (area_next); each
 * page still appears at once.  wp: COPY's MODE_WP, refused once the
 * destination is found, as the kernel checks it against the VMA it has
 * looked up.  populate: fill the page table entries right away (when
 * nobody is to be woken).  async-signal-safe
 */
static long resolve(struct ctx *c, uint64_t dst, const void *src, enum fill f, uint64_t len, int wp, int populate,
		    struct area_view *v)
{
	struct area_view cur, next;
	uint64_t end = dst + len, done = 0;

	/* An event is on its way to the reader: the layout it describes may
	 * not be the one we would install into (the kernel's mmap_changing). */
	if (atomic_load(&c->changing))
		return -EAGAIN;
	/* A busy area is being converted (REGISTER) or frozen (fork): wait,
	 * as the kernel's COPY waits for the mmap lock, then look again. */
	for (;;) {
		uint32_t gen;

		if (!area_find(dst, v) || !v->ctx)
			return -ENOENT;
		cur = *v;
		while (!cur.busy && end > cur.end) {
			if (!area_next(&cur, &next))
				return -ENOENT;
			cur = next;
		}
		if (!cur.busy)
			break;
		gen = area_busy_gen();
		if (area_still(&cur))
			area_wait_busy(gen);
	}
	if (wp && !(v->mode & UFFDIO_REGISTER_MODE_WP))
		return -EINVAL;		/* MODE_WP where the VMA has no WP mode */
	if (f == FILL_CONTINUE && store_kind(v->store) == STORE_MEMFD)
		return -EINVAL;		/* CONTINUE: shared memory and hugetlb only */
	if (store_huge_shift(v->store)) {
		/* hugetlb: no ZEROPAGE; whole huge pages only. */
		uint64_t hmask = ((uint64_t)1 << store_huge_shift(v->store)) - 1;
		if (f == FILL_ZEROS || (dst & hmask) || (len & hmask))
			return -EINVAL;
	}
	if (end <= v->end)		/* one area: the usual case */
		return fill_span(v, dst, src, f, len, wp, populate);
	/* Area by area; the first that stops short ends the operation, as a
	 * page that stops the kernel's loop does. */
	for (cur = *v;;) {
		uint64_t at = dst + done, n = (end < cur.end ? end : cur.end) - at;
		long r = fill_span(&cur, at, (const void *)((uintptr_t)src + done), f, n, wp, populate);

		if (r < 0)
			return done ? (long)done : r;
		done += (uint64_t)r;
		if ((uint64_t)r < n || at + n == end || !area_next(&cur, &next))
			return (long)done;
		cur = next;
	}
}

/* The wake after a COPY or ZEROPAGE that installed r bytes at dst (in area
 * v), once the result is written: the kernel returns EFAULT without waking
 * when it cannot write it.  async-signal-safe */
static void resolved_wake(struct ctx *c, int fd, const struct area_view *v, uint64_t dst,
			  long r)
{
	long woken = 0;

	if (wq_wake_range(&c->q, dst, dst + (uint64_t)r, &woken))
		ctx_sync_ready(c, fd);
	/* Fill the page table entries after the wake, so that the woken
	 * threads run meanwhile; a thread woken for a single page fills its
	 * own (wait_fault), off this thread's path.  (The areas of one
	 * resolve() have the same protection, all that pg_populate uses.) */
	if (!woken || (uint64_t)r != caps.page_size)
		pg_populate(v->prot, dst, (size_t)r);
}

/* An event is on its way to the reader (the kernel's mmap_changing): COPY
 * and ZEROPAGE say EAGAIN in their output field before they even read
 * their argument, as the kernel's.  1 if so (errno set).  a-s-s */
static int changing(struct ctx *c, unsigned long arg, size_t out_off)
{
	int64_t e = -EAGAIN;

	if (!atomic_load(&c->changing))
		return 0;
	errno = usercopy_out((char *)arg + out_off, &e, sizeof e) ? EFAULT : EAGAIN;
	return 1;
}

/* The checks COPY makes before it looks at any memory.  a-s-s */
static int copy_check(const void *arg)
{
	const struct uffdio_copy *cp = arg;

	if (!range_ok(cp->dst, cp->len))
		return EINVAL;
	if (cp->src >= caps.task_size || cp->len > caps.task_size - cp->src)
		return EINVAL;
	if (cp->mode & ~(UFFDIO_COPY_MODE_DONTWAKE | UFFDIO_COPY_MODE_WP))
		return EINVAL;
	return 0;
}

/* async-signal-safe */
static int do_copy(struct ctx *c, int fd, unsigned long arg)
{
	struct uffdio_copy cp;
	struct area_view v;
	long r;
	int64_t out;
	int wake, e;

	if (changing(c, arg, offsetof(struct uffdio_copy, copy)))
		return -1;
	if (usercopy_in(&cp, (void *)arg, offsetof(struct uffdio_copy, copy)))
		return fail(EFAULT);
	if ((e = copy_check(&cp)))
		return fail(e);
	wake = !(cp.mode & UFFDIO_COPY_MODE_DONTWAKE);
	r = resolve(c, cp.dst, (const void *)(uintptr_t)cp.src, FILL_COPY, cp.len,
		    !!(cp.mode & UFFDIO_COPY_MODE_WP), !wake, &v);
	out = r;
	if (usercopy_out((char *)arg + offsetof(struct uffdio_copy, copy), &out, sizeof out))
		return fail(EFAULT);
	if (r < 0)
		return fail((int)-r);
	if (wake)
		resolved_wake(c, fd, &v, cp.dst, r);
	return (uint64_t)r == cp.len ? 0 : fail(EAGAIN);
}

/* async-signal-safe */
static int zeropage_check(const void *arg)
{
	const struct uffdio_zeropage *zp = arg;

	if (!range_ok(zp->range.start, zp->range.len))
		return EINVAL;
	return (zp->mode & ~UFFDIO_ZEROPAGE_MODE_DONTWAKE) ? EINVAL : 0;
}

/* async-signal-safe */
static int do_zeropage(struct ctx *c, int fd, unsigned long arg)
{
	struct uffdio_zeropage zp;
	struct area_view v;
	long r;
	int64_t out;
	int wake, e;

	if (changing(c, arg, offsetof(struct uffdio_zeropage, zeropage)))
		return -1;
	if (usercopy_in(&zp, (void *)arg, offsetof(struct uffdio_zeropage, zeropage)))
		return fail(EFAULT);
	if ((e = zeropage_check(&zp)))
		return fail(e);
	wake = !(zp.mode & UFFDIO_ZEROPAGE_MODE_DONTWAKE);
	r = resolve(c, zp.range.start, NULL, FILL_ZEROS, zp.range.len, 0, !wake, &v);
	out = r;
	if (usercopy_out((char *)arg + offsetof(struct uffdio_zeropage, zeropage), &out, sizeof out))
		return fail(EFAULT);
	if (r < 0)
		return fail((int)-r);
	if (wake)
		resolved_wake(c, fd, &v, zp.range.start, r);
	return (uint64_t)r == zp.range.len ? 0 : fail(EAGAIN);
}

/* async-signal-safe */
static int poison_check(const void *arg)
{
	const struct uffdio_poison *po = arg;

	if (!range_ok(po->range.start, po->range.len))
		return EINVAL;
	return (po->mode & ~UFFDIO_POISON_MODE_DONTWAKE) ? EINVAL : 0;
}

/* UFFDIO_POISON (section 8.4): the missing pages of the range become
 * poisoned, and the threads waiting on them wake to SIGBUS.
 * async-signal-safe */
static int do_poison(struct ctx *c, int fd, unsigned long arg)
{
	struct uffdio_poison po;
	struct area_view v;
	long r;
	int64_t out;
	int e;

	if (changing(c, arg, offsetof(struct uffdio_poison, updated)))
		return -1;
	if (usercopy_in(&po, (void *)arg, offsetof(struct uffdio_poison, updated)))
		return fail(EFAULT);
	if ((e = poison_check(&po)))
		return fail(e);
	r = resolve(c, po.range.start, NULL, FILL_POISON, po.range.len, 0, 0, &v);
	out = r;
	if (usercopy_out((char *)arg + offsetof(struct uffdio_poison, updated), &out, sizeof out))
		return fail(EFAULT);
	if (r < 0)
		return fail((int)-r);
	if (!(po.mode & UFFDIO_POISON_MODE_DONTWAKE) &&
	    wq_wake_range(&c->q, po.range.start, po.range.start + (uint64_t)r, NULL))
		ctx_sync_ready(c, fd);
	return (uint64_t)r == po.range.len ? 0 : fail(EAGAIN);
}

/* async-signal-safe */
static int move_check(const void *arg)
{
	const struct uffdio_move *mv = arg;

	if (!range_ok(mv->dst, mv->len) || !range_ok(mv->src, mv->len))
		return EINVAL;
	if (mv->mode & ~(uint64_t)(UFFDIO_MOVE_MODE_DONTWAKE | UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES))
		return EINVAL;
	return 0;
}

/* UFFDIO_MOVE (section 8.5; the work is in move.c).  Not async-signal-safe. */
static int do_move(struct ctx *c, int fd, unsigned long arg)
{
	struct uffdio_move mv;
	long r;
	int64_t out;
	int e;

	if (changing(c, arg, offsetof(struct uffdio_move, move)))
		return -1;
	if (usercopy_in(&mv, (void *)arg, offsetof(struct uffdio_move, move)))
		return fail(EFAULT);
	if (fd < 0)
		return fail(EINVAL);	/* from another process: not its mm */
	if ((e = move_check(&mv)))
		return fail(e);
	r = move_do(c, mv.dst, mv.src, mv.len, mv.mode);
	out = r;
	if (usercopy_out((char *)arg + offsetof(struct uffdio_move, move), &out, sizeof out))
		return fail(EFAULT);
	if (r < 0)
		return fail((int)-r);
	if (!(mv.mode & UFFDIO_MOVE_MODE_DONTWAKE) && wq_wake_range(&c->q, mv.dst, mv.dst + (uint64_t)r, NULL))
		ctx_sync_ready(c, fd);
	return (uint64_t)r == mv.len ? 0 : fail(EAGAIN);
}

/* async-signal-safe */
static int continue_check(const void *arg)
{
	const struct uffdio_continue *co = arg;

	if (!range_ok(co->range.start, co->range.len))
		return EINVAL;
	return (co->mode & ~(uint64_t)(UFFDIO_CONTINUE_MODE_DONTWAKE | UFFDIO_CONTINUE_MODE_WP)) ? EINVAL : 0;
}

/* UFFDIO_CONTINUE (section 8.3): the pages the file has are mapped in the
 * range, and the threads waiting on them wake.  async-signal-safe */
static int do_continue(struct ctx *c, int fd, unsigned long arg)
{
	struct uffdio_continue co;
	struct area_view v;
	long r;
	int64_t out;
	int e;

	if (changing(c, arg, offsetof(struct uffdio_continue, mapped)))
		return -1;
	if (usercopy_in(&co, (void *)arg, offsetof(struct uffdio_continue, mapped)))
		return fail(EFAULT);
	if ((e = continue_check(&co)))
		return fail(e);
	r = resolve(c, co.range.start, NULL, FILL_CONTINUE, co.range.len, !!(co.mode & UFFDIO_CONTINUE_MODE_WP), 0,
		    &v);
	out = r;
	if (usercopy_out((char *)arg + offsetof(struct uffdio_continue, mapped), &out, sizeof out))
		return fail(EFAULT);
	if (r < 0)
		return fail((int)-r);
	if (!(co.mode & UFFDIO_CONTINUE_MODE_DONTWAKE) &&
	    wq_wake_range(&c->q, co.range.start, co.range.start + (uint64_t)r, NULL))
		ctx_sync_ready(c, fd);
	return (uint64_t)r == co.range.len ? 0 : fail(EAGAIN);
}

/* async-signal-safe */
static int writeprotect_check(const void *arg)
{
	const struct uffdio_writeprotect *wp = arg;

	if (!range_ok(wp->range.start, wp->range.len))
		return EINVAL;
	if (wp->mode & ~(uint64_t)(UFFDIO_WRITEPROTECT_MODE_WP | UFFDIO_WRITEPROTECT_MODE_DONTWAKE))
		return EINVAL;
	if ((wp->mode & UFFDIO_WRITEPROTECT_MODE_WP) && (wp->mode & UFFDIO_WRITEPROTECT_MODE_DONTWAKE))
		return EINVAL;
	return 0;
}

/* Is [s, e), between areas, a hole (no mapping at all)?  mincore says
 * ENOMEM where a page is not mapped.  (A gap mapped only in part counts as
 * a hole.)  async-signal-safe */
static int gap_is_hole(uintptr_t s, uintptr_t e)
{
	unsigned char vec[1];

	for (uintptr_t a = s; a < e; a += caps.page_size)
		if (sys_call4(SYS_mincore, (long)a, (long)caps.page_size, (long)vec, 0) == 0)
			return 0;
	return 1;
}

/*
 * UFFDIO_WRITEPROTECT (section 8.6): the areas of the range in address
 * order, holes skipped; no mapping at all, or one without WP mode, is
 * ENOENT (those before it are changed already, as on the kernel).  Setting
 * never wakes; clearing wakes the range unless DONTWAKE.  async-signal-safe
 */
static int do_writeprotect(struct ctx *c, int fd, unsigned long arg)
{
	struct uffdio_writeprotect wp;
	struct area_view v;
	uintptr_t at, end;
	int on, e, seen = 0;

	if (atomic_load(&c->changing))
		return fail(EAGAIN);
	if (usercopy_in(&wp, (void *)arg, sizeof wp))
		return fail(EFAULT);
	if ((e = writeprotect_check(&wp)))
		return fail(e);
	on = !!(wp.mode & UFFDIO_WRITEPROTECT_MODE_WP);
	end = wp.range.start + wp.range.len;
	for (at = wp.range.start; at < end;) {
		struct pg_span sp;
		uintptr_t to;
		int r;

		if (!area_at_or_after(at, end, &v)) {
			if (!gap_is_hole(at, end))
				return fail(ENOENT);
			break;
		}
		if (v.start > at && !gap_is_hole(at, v.start))
			return fail(ENOENT);	/* an unregistered mapping */
		if (v.busy) {
			uint32_t gen = area_busy_gen();
			if (area_still(&v))
				area_wait_busy(gen);
			continue;
		}
		if (!v.ctx || !(v.mode & UFFDIO_REGISTER_MODE_WP) || !store_has_wp(v.store))
			return fail(ENOENT);
		at = v.start > at ? v.start : at;
		to = v.end < end ? v.end : end;
		/* hugetlb: whole huge pages */
		if (store_huge_shift(v.store) && ((at | to) & (((uintptr_t)1 << store_huge_shift(v.store)) - 1)))
			return fail(EINVAL);
		sp = area_span(&v);
		/* (WP alone: the kernel fills holes without asking) */
		if (on && !(v.mode & UFFDIO_REGISTER_MODE_MISSING) && store_kind(v.store) == STORE_MEMFD)
			pg_refresh(&sp, at, to - at);
		if ((r = pg_wp_protect(&sp, at, to - at, on,
				       pg_wp_all(v.store, !!(atomic_load(&c->features) &
							     UFFD_FEATURE_WP_UNPOPULATED)))) < 0)
			return fail(-r);
		seen = 1;
		at = to;
	}
	if (!seen)
		return fail(ENOENT);
	if (!on && !(wp.mode & UFFDIO_WRITEPROTECT_MODE_DONTWAKE) &&
	    wq_wake_range(&c->q, wp.range.start, end, NULL))
		ctx_sync_ready(c, fd);
	return 0;
}

static int run_api(struct ctx *c, int fd, unsigned long arg)
{
	int r = do_api(c, arg);

	/* (A call from another process: its caller marks the file.) */
	if (r == 0 && fd >= 0)
		fd_mark_uffd(fd, 1);
	return r;
}

/* Every uffd ioctl the emulation has. */
static const struct ioctl_desc g_ioctls[] = {
	{ UFFDIO_API, "API", sizeof(struct uffdio_api), sizeof(struct uffdio_api),
	  0, EINVAL, NULL, run_api },
	{ UFFDIO_REGISTER, "REGISTER", sizeof(struct uffdio_register),
	  offsetof(struct uffdio_register, ioctls), offsetof(struct uffdio_register, ioctls),
	  ENOMEM, register_check, do_register },
	{ UFFDIO_UNREGISTER, "UNREGISTER", sizeof(struct uffdio_range), sizeof(struct uffdio_range),
	  0, ENOMEM, range_check, do_unregister },
	{ UFFDIO_WAKE, "WAKE", sizeof(struct uffdio_range), sizeof(struct uffdio_range),
	  0, 0, range_check, do_wake },
	{ UFFDIO_COPY, "COPY", sizeof(struct uffdio_copy), offsetof(struct uffdio_copy, copy),
	  offsetof(struct uffdio_copy, copy), ESRCH, copy_check, do_copy },
	{ UFFDIO_ZEROPAGE, "ZEROPAGE", sizeof(struct uffdio_zeropage),
	  offsetof(struct uffdio_zeropage, zeropage), offsetof(struct uffdio_zeropage, zeropage),
	  ESRCH, zeropage_check, do_zeropage },
	{ UFFDIO_WRITEPROTECT, "WRITEPROTECT", sizeof(struct uffdio_writeprotect),
	  sizeof(struct uffdio_writeprotect), 0, ESRCH, writeprotect_check, do_writeprotect },
	{ UFFDIO_MOVE, "MOVE", sizeof(struct uffdio_move), offsetof(struct uffdio_move, move),
	  offsetof(struct uffdio_move, move), EINVAL, move_check, do_move },	/* (gone: not its mm) */
	{ UFFDIO_CONTINUE, "CONTINUE", sizeof(struct uffdio_continue),
	  offsetof(struct uffdio_continue, mapped), offsetof(struct uffdio_continue, mapped), ESRCH,
	  continue_check, do_continue },
	{ UFFDIO_POISON, "POISON", sizeof(struct uffdio_poison), offsetof(struct uffdio_poison, updated),
	  offsetof(struct uffdio_poison, updated), ESRCH, poison_check, do_poison },
};
_Static_assert(offsetof(struct uffdio_copy, copy) == 32 &&
	       offsetof(struct uffdio_zeropage, zeropage) == 24 &&
	       offsetof(struct uffdio_register, ioctls) == 24,
	       "the output fields where the kernel has them");

/* async-signal-safe */
const struct ioctl_desc *ioctl_find(unsigned long req)
{
	for (size_t i = 0; i < sizeof g_ioctls / sizeof g_ioctls[0]; i++)
		if (g_ioctls[i].req == (unsigned)req)
			return &g_ioctls[i];
	return NULL;
}

/*
 * The commands the kernel's VFS answers itself, for any file, before the
 * file's own ioctl (fs/ioctl.c, do_vfs_ioctl): the same on a uffd and on
 * /dev/userfaultfd, in any state.  1 if req is one, with the result in *ret.
 * async-signal-safe
 */
int ioctl_vfs(int fd, unsigned long req, unsigned long arg, int *ret)
{
	int on;

	switch ((unsigned)req) {
	case FIOCLEX: case FIONCLEX: case FIONBIO: case FIGETBSZ:
		/* Done by the VFS to our pipe just the same (close-on-exec,
		 * O_NONBLOCK, EFAULT for a bad argument, the page-sized block
		 * of a pseudo file system).  A raw call: the drop-in's ioctl()
		 * would bring it back here. */
		*ret = sys_ioctl(fd, req, arg);
		return 1;
	case FIOASYNC:
		/* Neither file has a fasync method: asking for FASYNC is
		 * ENOTTY, clearing it (never set) is 0. */
		if (usercopy_in(&on, (const void *)arg, sizeof on))
			*ret = fail(EFAULT);
		else
			*ret = on ? fail(ENOTTY) : 0;
		return 1;
	case FIOQSIZE:			/* not a file, directory or link */
		*ret = fail(ENOTTY);
		return 1;
	default:
		return 0;
	}
}

int ioctl_gone(unsigned long req)
{
	const struct ioctl_desc *d = ioctl_find(req);

	if (!d)
		return fail(EINVAL);
	return d->gone_errno ? fail(d->gone_errno) : 0;
}

int ioctl_local(struct ctx *c, int fd, unsigned long req, unsigned long arg)
{
	const struct ioctl_desc *d = ioctl_find(req);

	switch (atomic_load(&c->state)) {
	case CTX_NEW:
		/* Nothing but UFFDIO_API before UFFDIO_API. */
		if (d && d->req == UFFDIO_API)
			return d->run(c, fd, arg);
		return fail(EINVAL);
	case CTX_ORPHAN:
		/* A fork child's copy of a uffd whose process is gone (or
		 * cannot be reached): as the kernel's uffd of a dead mm. */
		return ioctl_gone(req);
	default:
		return d ? d->run(c, fd, arg) : fail(EINVAL);
	}
}
