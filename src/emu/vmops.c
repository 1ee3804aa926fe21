/* SPDX-License-Identifier: MIT */
/*
 * The program's own memory calls over emulated areas.  The kernel's
 * registration lives in the mapping, and the program's munmap, mmap
 * (MAP_FIXED), mremap, mprotect and madvise act on it; an area is our
 * memfd mapping standing for private memory, so these calls are
 * interposed (src/interpose/memory.c, which calls the functions here with
 * the C library's function as `real`) to keep the kernel's behaviour:
 *
 *   munmap, mmap(MAP_FIXED) over an area  the registration goes
 *   mremap, moved                          the data moves, the new place is
 *                                          registered only with EVENT_REMAP
 *   mremap, grown in place                 the tail is registered, missing
 *   mprotect                               access rights change, the
 *                                          registration stays
 *   MADV_DONTNEED / FREE                   the pages are dropped: missing
 *                                          again if registered, zero if not
 *   MADV_REMOVE                            EINVAL, as on private memory;
 *                                          on shared memory the pages
 *                                          leave the file: missing again
 *
 * and with the uffd's UFFD_FEATURE_EVENT_UNMAP / REMAP / REMOVE, the events
 * the kernel sends (events.c).  A call that meets no area goes straight to
 * the C library (vm_meets says so).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "base/maps.h"
#include "emu/area.h"
#include "emu/process.h"

#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif

/* The memory interposers call vm_meets before a sanitizer's runtime may be
 * up: what it runs first is not instrumented. */
#define NOSAN __attribute__((no_sanitize("thread", "address", "undefined")))

NOSAN static int page_ok(uintptr_t addr, size_t len)
{
	size_t ps = caps.page_size ? caps.page_size : 4096;
	return !(addr & (ps - 1)) && len && addr + len > addr;
}

NOSAN static uintptr_t round_up(size_t len)
{
	size_t ps = caps.page_size ? caps.page_size : 4096;
	return (len + ps - 1) & ~(ps - 1);
}

NOSAN int vm_meets(const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;
	return area_any() && page_ok(a, len) && area_meet(a, a + round_up(len));
}

/* The UNMAP events of [a, a+len) (area lock held): see events.c. */
static int unmap_events_locked(uintptr_t a, size_t len, struct ev *ev)
{
	return ev_collect_locked(EV_UNMAP, a, a + len, ev, EV_MAX);
}

/* Tell each uffd of ev[] (after the operation, if it succeeded), waiting
 * until each has read; then COPY works again. */
static void send_events(enum ev_kind kind, const struct ev *ev, int n, int ok, uintptr_t to)
{
	int e = errno;

	for (int i = 0; i < n && ok; i++)
		ev_send(kind, &ev[i], to);
	ev_done(ev, n);
	errno = e;
}

int vm_munmap(void *addr, size_t len, int (*real)(void *, size_t))
{
	struct ev ev[EV_MAX];
	uintptr_t a = (uintptr_t)addr;
	int n, r;

	area_lock();
	n = unmap_events_locked(a, round_up(len), ev);
	area_forget_locked(a, a + round_up(len));
	area_unlock();
	r = real(addr, len);
	send_events(EV_UNMAP, ev, n, r == 0, 0);
	return r;
}

/* mmap(MAP_FIXED) over areas: they go, and the uffds that asked are told
 * (UNMAP, the whole range) once the new mapping is in place. */
void *vm_mmap_fixed(void *addr, size_t len, int prot, int flags, int fd, off_t off,
		    void *(*real)(void *, size_t, int, int, int, off_t))
{
	struct ev ev[EV_MAX];
	uintptr_t a = (uintptr_t)addr;
	int n;
	void *r;

	area_lock();
	n = unmap_events_locked(a, round_up(len), ev);
	area_forget_locked(a, a + round_up(len));
	area_unlock();
	r = real(addr, len, prot, flags, fd, off);
	send_events(EV_UNMAP, ev, n, r != MAP_FAILED, 0);
	return r;
}

/*
 * mremap() of an area.  The events, in the kernel's order, all after the
 * call: UNMAP of what a MREMAP_FIXED destination replaced, REMAP (the area
 * moved; with UFFD_FEATURE_EVENT_REMAP its registration follows it), UNMAP
 * of the old range after a move, or of the tail a shrink in place cut.
 */
void *vm_mremap(void *old, size_t oldlen, size_t newlen, int flags, void *want,
		void *(*real)(void *, size_t, size_t, int, ...))
{
	struct ev dst_ev[EV_MAX], old_ev[EV_MAX], remap_ev;
	int ndst = 0, nold = 0, remap = 0, keep = 0;
	uintptr_t o = (uintptr_t)old;
	struct area *a;
	void *r;

	area_lock();
	oldlen = round_up(oldlen);
	newlen = round_up(newlen);
	if (flags & MREMAP_FIXED) {
		ndst = unmap_events_locked((uintptr_t)want, newlen, dst_ev);
		area_forget_locked((uintptr_t)want, (uintptr_t)want + newlen);
	}
	a = (flags & MREMAP_DONTUNMAP) ? NULL : area_exact_locked(o, o + oldlen);
	if (a) {
		uint32_t id = area_owner(a);
		struct ctx *c = ctx_by_id(id);
		int e = area_move_begin_locked(a, newlen);
		if (e < 0) {
			ev_done(dst_ev, ndst);
			area_unlock();
			errno = -e;
			return MAP_FAILED;
		}
		if (c && atomic_load(&c->state) == CTX_RUNNING) {
			uint64_t f = atomic_load(&c->features);
			keep = !!(f & UFFD_FEATURE_EVENT_REMAP);
			if (keep) {
				remap_ev.ctx = id;
				remap_ev.start = o;
				remap_ev.end = o + oldlen;
				atomic_fetch_add(&c->changing, 1);
				remap = 1;
			}
		}
		/* Whatever happens, the old range or its cut tail is
		 * unmapped: the uffds that asked hear of it. */
		if (newlen < oldlen && !(flags & MREMAP_FIXED))
			nold = unmap_events_locked(o + newlen, oldlen - newlen, old_ev);
		else
			nold = unmap_events_locked(o, oldlen, old_ev);
	}
	r = real(old, oldlen, newlen, flags, want);
	if (a) {
		int e = errno;
		area_move_end_locked(a, r, newlen, keep);
		errno = e;
	} else if (r != MAP_FAILED) {
		/* Not one whole area (the kernel would have refused a range
		 * across mappings), or the old range stays: what moved is no
		 * area of ours any more. */
		area_forget_locked(o, o + oldlen);
	}
	area_unlock();

	send_events(EV_UNMAP, dst_ev, ndst, r != MAP_FAILED, 0);
	if (r != MAP_FAILED && (uintptr_t)r != o) {
		/* Moved: REMAP, then UNMAP of the old range. */
		send_events(EV_REMAP, &remap_ev, remap, 1, (uintptr_t)r);
		send_events(EV_UNMAP, old_ev, nold, 1, 0);
	} else {
		if (remap)
			ev_done(&remap_ev, 1);
		/* In place: a shrink cut the tail. */
		send_events(EV_UNMAP, old_ev, nold, r != MAP_FAILED && newlen < oldlen, 0);
	}
	return r;
}

/* Call real on the pieces of [a, end) that are no area (the areas are the
 * caller's); a hole is ENOMEM, as from the kernel.  Area lock held. */
static int other_pieces_locked(uintptr_t a, uintptr_t end, int arg, int (*real)(void *, size_t, int))
{
	uintptr_t at = a;
	struct vma *v;
	int n, r = 0;

	n = maps_in(a, end, &v);
	for (int i = 0; i < n && !r; i++) {
		uintptr_t s = v[i].start > a ? v[i].start : a;
		uintptr_t e = v[i].end < end ? v[i].end : end;
		if (s > at) {		/* a hole: the kernel says ENOMEM */
			errno = ENOMEM;
			r = -1;
			break;
		}
		if (!area_meet(s, e))
			r = real((void *)s, e - s, arg);
		at = e;
	}
	if (!r && n >= 0 && at < end) {
		errno = ENOMEM;
		r = -1;
	}
	free(v);
	return r;
}

int vm_mprotect(void *addr, size_t len, int prot, int (*real)(void *, size_t, int))
{
	uintptr_t a = (uintptr_t)addr, end = a + round_up(len);
	int r;

	area_lock();
	/* The pieces that are not areas get the call as it is; the areas keep
	 * their missing pages inaccessible. */
	r = other_pieces_locked(a, end, prot, real);
	if (!r) {
		int e = area_protect_locked(a, end, prot);
		if (e < 0) {
			errno = -e;
			r = -1;
		}
	}
	area_unlock();
	return r;
}

/* MADV_WIPEONFORK / KEEPONFORK: private memory may be wiped on fork; an
 * area is shared memory standing for it, so the fork does it
 * (area-fork.c).  The parts that are not areas get the call. */
static int wipe(uintptr_t a, size_t len, int advice, int (*real)(void *, size_t, int))
{
	uintptr_t end = a + round_up(len);
	int r;

	area_lock();
	r = other_pieces_locked(a, end, advice, real);
	if (!r) {
		int e = area_wipe_locked(a, end, advice == MADV_WIPEONFORK);
		if (e < 0) {
			errno = -e;
			r = -1;
		}
	}
	area_unlock();
	return r;
}

int vm_madvise(void *addr, size_t len, int advice, int (*real)(void *, size_t, int))
{
	struct ev ev[EV_MAX];
	uintptr_t a = (uintptr_t)addr;
	int r, n;

	if (advice == MADV_REMOVE) {
		/* Private memory cannot have holes punched; the program's own
		 * mappings (shared memory, hugetlb, private mappings of a file)
		 * get the kernel's answer. */
		area_lock();
		n = area_meets_file_locked(a, a + round_up(len));
		area_unlock();
		if (!n) {
			errno = EINVAL;
			return -1;
		}
	}
	if (advice == MADV_WIPEONFORK || advice == MADV_KEEPONFORK)
		return wipe(a, len, advice, real);
	if (advice != MADV_DONTNEED && advice != MADV_DONTNEED_LOCKED && advice != MADV_FREE &&
	    advice != MADV_REMOVE)
		return real(addr, len, advice);
	/* REMOVE goes before the pages do; the caller waits until each is
	 * read.  The pages then fault again. */
	area_lock();
	n = ev_collect_locked(EV_REMOVE, a, a + round_up(len), ev, EV_MAX);
	area_unlock();
	for (int i = 0; i < n; i++)
		ev_send(EV_REMOVE, &ev[i], 0);
	/* MADV_FREE is for private memory only; an area is a shared mapping
	 * standing for private memory, whose pages go now (MADV_FREE may free
	 * them at any time). */
	r = real(addr, len, advice == MADV_FREE ? MADV_DONTNEED : advice);
	if (r == 0) {
		area_lock();
		r = area_discard_locked(a, a + round_up(len), advice == MADV_REMOVE);
		area_unlock();
		if (r < 0) {
			errno = -r;
			r = -1;
		}
	}
	ev_done(ev, n);
	return r;
}

void vm_punched(int fd, off_t off, off_t len)
{
	struct stat st;
	off_t ps = (off_t)caps.page_size;
	uint64_t from = (uint64_t)((off + ps - 1) & ~(ps - 1)), to = (uint64_t)((off + len) & ~(ps - 1));

	if (!area_any() || off < 0 || len <= 0 || from >= to || fstat(fd, &st) < 0)
		return;
	area_lock();
	area_punched_locked((unsigned long)st.st_ino, from, to);
	area_unlock();
}
