/* SPDX-License-Identifier: MIT */
/*
 * Touching missing pages before a system call does.  The kernel cannot take
 * a fault on an emulated missing page for us: a read() into one fails with
 * EFAULT.  So the drop-in's wrappers of the calls that copy to or from user
 * memory first touch, in user mode, every missing registered page of their
 * buffers: the fault goes to the uffd like any other, the monitor serves it,
 * and the call then finds the page present, as with the kernel's uffd.
 *
 * A buffer the kernel will write (read(), recv()) is touched with a write
 * that changes nothing (a locked OR of 0, src/arch/), so the message has the WRITE
 * flag the kernel's would have; a buffer it will read (write(), send()) is
 * touched with a read.  Where the kernel fails such a call with EFAULT, so
 * do we (no touch): a uffd made with UFFD_USER_MODE_ONLY, one with
 * UFFD_FEATURE_SIGBUS (the kernel's access gets EFAULT, not a signal), and
 * an in-thread pager (SIGBUS-based on the kernel back-end); and a poisoned
 * page (UFFDIO_POISON: EFAULT, not SIGBUS, in the kernel).  Present pages
 * are touched too (a read): one being installed right now is not visible
 * yet, and the kernel's access would fail where the kernel's uffd waits.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include "base/arch/fault.h"
#include "emu/area.h"
#include "emu/ctx.h"
#include "emu/emu.h"

static void touch_range(uintptr_t start, uintptr_t end, int kernel_writes)
{
	uintptr_t a = page_down(start);

	for (; a < end; a += caps.page_size) {
		struct area_view v;
		struct ctx *c;

		if (!area_find(a, &v) || !v.ctx || !(v.mode & UFFDIO_REGISTER_MODE_MISSING))
			continue;
		/* A poisoned page: the kernel's access gets EFAULT. */
		if (area_page_poisoned(&v, a))
			continue;
		c = ctx_by_id(v.ctx);
		if (!c || (c->flags & UFFD_USER_MODE_ONLY) ||
		    (atomic_load(&c->features) & UFFD_FEATURE_SIGBUS) || atomic_load(&c->pager_fn))
			continue;
		/* A present page may still be on its way in (claimed, written,
		 * not yet revealed), and a busy area is being converted or frozen
		 * for a fork: a read touches them all the same, and waits in our
		 * handler until the page can be seen. */
		if (kernel_writes && (v.prot & PROT_WRITE) && (v.busy || !area_page_present(&v, a)))
			arch_touch_write((void *)a);
		else if (v.prot & PROT_READ)
			(void)*(volatile char *)a;
	}
}

void emu_pretouch(uintptr_t s, size_t len, int kernel_writes)
{
	uintptr_t e;

	if (!len || !emu_in_use() || __builtin_add_overflow(s, len, &e))
		return;
	if (!area_meet(s, e))
		return;
	touch_range(s, e, kernel_writes);
}

void emu_pretouch_iov(const struct iovec *iov, int n, int kernel_writes)
{
	if (!emu_in_use() || !iov || n <= 0)
		return;
	for (int i = 0; i < n; i++)
		emu_pretouch((uintptr_t)iov[i].iov_base, iov[i].iov_len, kernel_writes);
}

struct ranges {
	uintptr_t s[AREA_MAX], e[AREA_MAX];
	int n;
};

static void collect(void *arg, uint32_t ctx, uintptr_t s, uintptr_t e)
{
	struct ranges *r = arg;

	(void)ctx;
	if (r->n < AREA_MAX) {
		r->s[r->n] = s;
		r->e[r->n++] = e;
	}
}

void emu_pretouch_all(int kernel_writes)
{
	struct ranges *r;

	if (!emu_in_use() || !area_any() || !(r = calloc(1, sizeof *r)))
		return;
	/* Collected under the lock, touched without it: a fault may need a
	 * monitor that is waiting for the lock. */
	area_lock();
	area_each_owned_locked(0, UINTPTR_MAX, collect, r);
	area_unlock();
	for (int i = 0; i < r->n; i++)
		touch_range(r->s[i], r->e[i], kernel_writes);
	free(r);
}
