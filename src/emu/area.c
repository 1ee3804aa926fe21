/* SPDX-License-Identifier: MIT */
/*
 * The area table (see area.h): lookup without locks, splits and merges,
 * and the "busy" state that makes faults and COPY wait while an area is
 * converted or frozen.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "base/sys.h"
#include "userfault/uapi.h"
#include "emu/area-impl.h"

struct area g_areas[AREA_MAX];
_Atomic int g_areas_hw;
static _Atomic uint32_t g_busy_gen;	/* futex: bumped when busy changes */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

/* Bumped around every change of any area (always under the lock): a lookup
 * that found nothing while it moved must look again, since an area being
 * split may have been missed between its two halves. */
static struct seqlock g_table_seq;

void area_lock(void)
{
	pthread_mutex_lock(&g_lock);
}

void area_unlock(void)
{
	pthread_mutex_unlock(&g_lock);
}

void area_lock_reset_after_fork(void)
{
	pthread_mutex_init(&g_lock, NULL);
}

void area_begin(struct area *a)
{
	seq_write_begin(&g_table_seq);
	seq_write_begin(&a->seq);
}

void area_end(struct area *a)
{
	seq_write_end(&a->seq);
	seq_write_end(&g_table_seq);
}

/* async-signal-safe */
SIG_SAFE static int area_read(struct area *a, struct area_view *v)
{
	uint32_t s;
	int live;

	do {
		s = seq_read_begin(&a->seq);
		live = atomic_load(&a->live);
		v->start = UF_LD(a->start);
		v->end = UF_LD(a->end);
		v->store = UF_LD(a->store);
		v->off = UF_LD(a->off);
		v->prot = UF_LD(a->prot);
		v->ctx = UF_LD(a->ctx);
		v->mode = UF_LD(a->mode);
		v->busy = atomic_load(&a->busy);
	} while (seq_read_retry(&a->seq, s));
	return live;
}

/* async-signal-safe */
SIG_SAFE int area_find(uintptr_t addr, struct area_view *v)
{
	for (;;) {
		uint32_t t = seq_read_begin(&g_table_seq);
		int hw = atomic_load(&g_areas_hw);

		for (int i = 0; i < hw; i++) {
			struct area *a = &g_areas[i];
			if (!atomic_load(&a->live))
				continue;
			if (addr < UF_LD(a->start) || addr >= UF_LD(a->end))
				continue;
			if (area_read(a, v) && addr >= v->start && addr < v->end) {
				v->idx = i;
				return 1;
			}
		}
		if (!seq_read_retry(&g_table_seq, t))
			return 0;
	}
}

/* The area with the lowest start in (addr, end): 1 and *v, or 0.
 * async-signal-safe */
SIG_SAFE int area_next_after(uintptr_t addr, uintptr_t end, struct area_view *v)
{
	for (;;) {
		uint32_t t = seq_read_begin(&g_table_seq);
		int hw = atomic_load(&g_areas_hw);
		uintptr_t best = end;

		for (int i = 0; i < hw; i++) {
			struct area *a = &g_areas[i];
			uintptr_t st = UF_LD(a->start);
			if (atomic_load(&a->live) && st > addr && st < best)
				best = st;
		}
		if (best < end && area_find(best, v))
			return 1;
		if (!seq_read_retry(&g_table_seq, t))
			return 0;
	}
}

/* Has the area changed since v was read?  async-signal-safe */
SIG_SAFE int area_still(const struct area_view *v)
{
	struct area_view now;

	if (!area_read(&g_areas[v->idx], &now))
		return 0;
	return now.start == v->start && now.end == v->end && now.ctx == v->ctx &&
	       now.busy == v->busy && now.mode == v->mode;
}

/* async-signal-safe */
SIG_SAFE uint32_t area_busy_gen(void)
{
	return atomic_load(&g_busy_gen);
}

/* async-signal-safe */
SIG_SAFE void area_wait_busy(uint32_t gen)
{
	struct timespec ts = { 0, 50L * 1000 * 1000 };
	sys_futex_wait(&g_busy_gen, gen, &ts);
}

void area_busy_bump(void)
{
	atomic_fetch_add(&g_busy_gen, 1);
}

void area_busy_clear(struct area *a)
{
	area_begin(a);
	atomic_store(&a->busy, 0);
	area_end(a);
	atomic_fetch_add(&g_busy_gen, 1);
	sys_futex_wake(&g_busy_gen, 0x7fffffff);
}

void area_busy_set(struct area *a)
{
	area_begin(a);
	atomic_store(&a->busy, 1);
	area_end(a);
	atomic_fetch_add(&g_busy_gen, 1);
}

struct area *area_new(void)
{
	for (int i = 0; i < AREA_MAX; i++) {
		struct area *a = &g_areas[i];
		if (atomic_load(&a->live))
			continue;
		if (i + 1 > atomic_load(&g_areas_hw))
			atomic_store(&g_areas_hw, i + 1);
		return a;
	}
	return NULL;
}

void area_publish(struct area *a, uintptr_t start, uintptr_t end, int store,
			 uint64_t off, int prot, uint32_t ctx, uint64_t mode, int busy)
{
	area_begin(a);
	UF_ST(a->start, start);
	UF_ST(a->end, end);
	UF_ST(a->store, store);
	UF_ST(a->off, off);
	UF_ST(a->prot, prot);
	UF_ST(a->ctx, ctx);
	UF_ST(a->mode, mode);
	atomic_store(&a->busy, busy);
	atomic_store(&a->wipe, 0);
	atomic_store(&a->live, 1);
	area_end(a);
	store_ref(store);
}

void area_drop(struct area *a)
{
	int b = UF_LD(a->store);

	area_begin(a);
	atomic_store(&a->live, 0);
	area_end(a);
	store_put(b);
}

/* Split a at addr (strictly inside): a keeps [start, addr).  0 or -ENOMEM. */
static int area_split(struct area *a, uintptr_t addr)
{
	struct area *n = area_new();
	uintptr_t start = UF_LD(a->start), end = UF_LD(a->end);

	if (!n)
		return -ENOMEM;
	area_publish(n, addr, end, UF_LD(a->store), UF_LD(a->off) + (addr - start),
		     UF_LD(a->prot), UF_LD(a->ctx), UF_LD(a->mode), 0);
	atomic_store(&n->wipe, atomic_load(&a->wipe));
	area_begin(a);
	UF_ST(a->end, addr);
	area_end(a);
	return 0;
}

/* The mappings of [start, end), ours (areas' memfds) told apart. */
int area_vmas_in(uintptr_t start, uintptr_t end, struct vma **out)
{
	int n = maps_in(start, end, out), other = 0;

	for (int i = 0; i < n; i++) {
		if ((*out)[i].shared && (*out)[i].ino && store_by_ino((*out)[i].ino) >= 0)
			(*out)[i].kind = VMA_OURS;
		other |= (*out)[i].kind == VMA_SHMEM || (*out)[i].kind == VMA_OTHER;
	}
	/* An area of ours may be several mappings (write-protected runs,
	 * protected missing pages): one entry each, as the kernel has one
	 * VMA. */
	for (int i = 1, k = 1; i <= n; i++) {
		struct vma *o = *out;
		if (i == n) {
			n = n ? k : 0;
			break;
		}
		if (o[i].kind == VMA_OURS && o[k - 1].kind == VMA_OURS && o[k - 1].end == o[i].start &&
		    o[k - 1].ino == o[i].ino && o[k - 1].off + (o[k - 1].end - o[k - 1].start) == o[i].off)
			o[k - 1].end = o[i].end;
		else
			o[k++] = o[i];
	}
	/* hugetlb shows as a file in /proc/self/maps: smaps tells. */
	if (other && maps_page_sizes(*out, n) < 0) {
		free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	return n;
}

/* Is the area still mapped as we made it?  (The program may have unmapped
 * or replaced it: without events we are not told.) */
static int area_mapped(struct area *a)
{
	struct vma *v;
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end), at = s;
	unsigned long ino = store_ino(UF_LD(a->store));
	int n = area_vmas_in(s, e, &v), ok = n > 0;

	for (int i = 0; ok && i < n; i++) {
		if (v[i].start > at || v[i].ino != ino)
			ok = 0;
		at = v[i].end;
	}
	free(v);
	return ok && at >= e;
}

/* Forget the areas in [start, end) that are no longer mapped. */
void area_drop_stale(uintptr_t start, uintptr_t end)
{
	int hw = atomic_load(&g_areas_hw);

	for (int i = 0; i < hw; i++) {
		struct area *a = &g_areas[i];
		if (!atomic_load(&a->live) || UF_LD(a->end) <= start || UF_LD(a->start) >= end)
			continue;
		if (!area_mapped(a)) {
			pg_disarm(UF_LD(a->start), UF_LD(a->end) - UF_LD(a->start), UF_LD(a->prot));
			area_drop(a);
		}
	}
}

/* Split areas so that none straddles start or end. */
static int split_at(uintptr_t addr)
{
	int hw = atomic_load(&g_areas_hw);

	for (int i = 0; i < hw; i++) {
		struct area *a = &g_areas[i];
		if (atomic_load(&a->live) && UF_LD(a->start) < addr && UF_LD(a->end) > addr)
			return area_split(a, addr);	/* areas do not overlap: one at most */
	}
	return 0;
}

/* Join neighbours that the kernel would see as one mapping (same memfd at
 * contiguous offsets, same owner, modes and protection), so that splits
 * made for a sub-range do not outlive it: COPY may span them again. */
void area_merge_adjacent(void)
{
	int hw = atomic_load(&g_areas_hw);
	long extra = 0;

	for (int i = 0; i < hw; i++) {
		struct area *a = &g_areas[i];
		int again = 1;
		if (!atomic_load(&a->live) || atomic_load(&a->busy))
			continue;
		while (again) {
			again = 0;
			for (int k = 0; k < hw; k++) {
				struct area *b = &g_areas[k];
				if (b == a || !atomic_load(&b->live) || atomic_load(&b->busy) ||
				    UF_LD(b->start) != UF_LD(a->end) ||
				    UF_LD(b->store) != UF_LD(a->store) ||
				    UF_LD(b->off) != UF_LD(a->off) + (UF_LD(a->end) - UF_LD(a->start)) ||
				    UF_LD(b->ctx) != UF_LD(a->ctx) || UF_LD(b->mode) != UF_LD(a->mode) ||
				    UF_LD(b->prot) != UF_LD(a->prot) ||
				    atomic_load(&b->wipe) != atomic_load(&a->wipe))
					continue;
				area_begin(a);
				UF_ST(a->end, UF_LD(b->end));
				area_end(a);
				area_drop(b);
				again = 1;
			}
		}
	}
	/* Protection mode and hugetlb: recount the mappings the registered
	 * areas use. */
	for (int i = 0; i < hw; i++) {
		struct area *a = &g_areas[i];
		int sb = UF_LD(a->store), hs = store_huge_shift(sb);
		if (!atomic_load(&a->live) || !UF_LD(a->ctx))
			continue;
		if (hs)
			extra += pg_huge_extra_maps(store_bits(sb), UF_LD(a->off) >> hs,
						    (UF_LD(a->end) - UF_LD(a->start)) >> hs);
		else if (!caps.guard_markers)
			extra += pg_extra_maps(store_bits(sb), UF_LD(a->off) >> caps.page_shift,
					       (UF_LD(a->end) - UF_LD(a->start)) >> caps.page_shift);
		if (UF_LD(a->mode) & UFFDIO_REGISTER_MODE_WP) {
			unsigned sh = hs ? (unsigned)hs : caps.page_shift;
			extra += pg_wp_extra_maps(store_wp_bits(sb), UF_LD(a->off) >> sh,
						  (UF_LD(a->end) - UF_LD(a->start)) >> sh);
		}
	}
	pg_set_used(extra);
}

int area_split_at_bounds(uintptr_t start, uintptr_t end)
{
	int r = split_at(start);
	return r ? r : split_at(end);
}

/* ---------------------------------------------------------------------- */
/* fork(): the child gets private copies (fork.c drives this).             */
/* ---------------------------------------------------------------------- */

/* Parent, before fork: no area may change until the child has its copy. */
/* The protection of an area's present pages (the missing ones keep
 * faulting whatever it is). */
void area_protect_present(struct area *a, int prot)
{
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);

	int sb = UF_LD(a->store), hs = store_huge_shift(sb);

	if (!UF_LD(a->ctx))	/* unregistered: every page is accessible */
		sys_mprotect((void *)s, e - s, prot);
	else if (hs)
		pg_huge_protect_present(s, e - s, store_bits(sb), UF_LD(a->off) >> hs, (unsigned)hs, prot);
	else
		pg_protect_present(s, e - s, store_bits(UF_LD(a->store)), UF_LD(a->off) >> caps.page_shift, prot);
	/* Write-protected pages stay read-only whatever the program's
	 * protection (the kernel keeps uffd-wp apart from the VMA's). */
	if (UF_LD(a->ctx) && (UF_LD(a->mode) & UFFDIO_REGISTER_MODE_WP)) {
		struct pg_span sp = area_span_of(a);
		sp.prot = prot;
		pg_wp_reapply(&sp);
	}
}

struct pg_span area_span_of(const struct area *a)
{
	struct pg_span s = { UF_LD(a->start), UF_LD(a->end), UF_LD(a->store), UF_LD(a->off),
			     UF_LD(a->prot), 0, !!(UF_LD(a->mode) & UFFDIO_REGISTER_MODE_MISSING),
			     area_minor(UF_LD(a->mode), UF_LD(a->store)) };
	return s;
}

/* Every page of a writable again, no write-protect bit left (UNREGISTER,
 * a move without EVENT_REMAP). */
void area_wp_clear(struct area *a)
{
	struct pg_span sp = area_span_of(a);

	if (store_has_wp(sp.store))
		pg_wp_set(&sp, sp.start, sp.end - sp.start, 0, 0);
}

/* Does [start, end) meet an area?  Lock-free.  async-signal-safe */
int area_meet(uintptr_t start, uintptr_t end)
{
	int hw = atomic_load(&g_areas_hw);

	for (int k = 0; k < hw; k++) {
		struct area *a = &g_areas[k];
		if (atomic_load(&a->live) && UF_LD(a->start) < end && UF_LD(a->end) > start)
			return 1;
	}
	return 0;
}

/* Not instrumented: see area.h. */
__attribute__((no_sanitize("thread", "address", "undefined"))) int area_any(void)
{
	return atomic_load_explicit(&g_areas_hw, memory_order_relaxed) != 0;
}

void area_stats(uint64_t *areas, uint64_t *bytes)
{
	int hw = atomic_load(&g_areas_hw);

	*areas = *bytes = 0;
	for (int i = 0; i < hw; i++) {
		struct area *a = &g_areas[i];
		if (!atomic_load(&a->live))
			continue;
		++*areas;
		if (UF_LD(a->ctx))
			*bytes += UF_LD(a->end) - UF_LD(a->start);
	}
}

void area_each_owned_locked(uintptr_t start, uintptr_t end,
			    void (*fn)(void *arg, uint32_t ctx, uintptr_t s, uintptr_t e), void *arg)
{
	int hw = atomic_load(&g_areas_hw);

	for (int k = 0; k < hw; k++) {
		struct area *a = &g_areas[k];
		uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
		uint32_t id = UF_LD(a->ctx);

		if (!atomic_load(&a->live) || !id || s >= end || e <= start)
			continue;
		fn(arg, id, s > start ? s : start, e < end ? e : end);
	}
}

int area_meets_file_locked(uintptr_t start, uintptr_t end)
{
	int hw = atomic_load(&g_areas_hw);

	for (int k = 0; k < hw; k++) {
		struct area *a = &g_areas[k];
		if (atomic_load(&a->live) && UF_LD(a->start) < end && UF_LD(a->end) > start &&
		    store_kind(UF_LD(a->store)) != STORE_MEMFD)
			return 1;
	}
	return 0;
}

int area_owned_by_locked(uint32_t ctx)
{
	int hw = atomic_load(&g_areas_hw);

	for (int k = 0; k < hw; k++)
		if (atomic_load(&g_areas[k].live) && UF_LD(g_areas[k].ctx) == ctx)
			return 1;
	return 0;
}
