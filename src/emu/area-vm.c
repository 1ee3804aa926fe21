/* SPDX-License-Identifier: MIT */
/*
 * The program's own memory calls over areas (src/interpose/memory.c and
 * emu/vmops.c drive these, with the area lock held): an area is a shared
 * mapping standing for private memory, and keeps the kernel's behaviour.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "base/sys.h"
#include "userfault/uapi.h"
#include "emu/area-impl.h"

/* The areas inside [start, end), after splitting at its bounds: calls fn on
 * each.  0 or the first error. */
static int each_inside(uintptr_t start, uintptr_t end, int (*fn)(struct area *, void *), void *arg)
{
	int hw, r = area_split_at_bounds(start, end);

	if (r)
		return r;
	hw = atomic_load(&g_areas_hw);
	for (int k = 0; k < hw && !r; k++) {
		struct area *a = &g_areas[k];
		if (atomic_load(&a->live) && UF_LD(a->start) >= start && UF_LD(a->end) <= end)
			r = fn(a, arg);
	}
	return r;
}

static int forget_one(struct area *a, void *arg)
{
	(void)arg;
	area_drop(a);
	return 0;
}

/* [start, end) is about to be unmapped or replaced: its areas go (their
 * waiters stay asleep until a wake, as in the kernel). */
void area_forget_locked(uintptr_t start, uintptr_t end)
{
	each_inside(start, end, forget_one, NULL);
	area_merge_adjacent();
}

struct prot_arg { int prot; };

static int protect_one(struct area *a, void *arg)
{
	int prot = ((struct prot_arg *)arg)->prot;

	area_begin(a);
	UF_ST(a->prot, prot);
	area_end(a);
	area_protect_present(a, prot);
	return 0;
}

/* mprotect() over areas: the area keeps its registration and takes the new
 * protection; only its present pages become accessible.  The caller does
 * the parts of the range that are not areas. */
int area_protect_locked(uintptr_t start, uintptr_t end, int prot)
{
	struct prot_arg pa = { prot };
	int r = each_inside(start, end, protect_one, &pa);

	area_merge_adjacent();
	return r;
}

static int wipe_one(struct area *a, void *arg)
{
	atomic_store(&a->wipe, *(int *)arg);
	return 0;
}

/* MADV_WIPEONFORK (on 1) and MADV_KEEPONFORK (0) over areas: recorded, for
 * the fork (area-fork.c). */
int area_wipe_locked(uintptr_t start, uintptr_t end, int on)
{
	int r = each_inside(start, end, wipe_one, &on);

	area_merge_adjacent();
	return r;
}

/* Pages [from, to) (byte offsets, whole pages of the store) left the file
 * of shared store sb (shared memory or shared hugetlb): missing again in its
 * registered areas, behind a marker (a protection on hugetlb). */
static void file_punched(int sb, uint64_t from, uint64_t to)
{
	int hs = store_huge_shift(sb), hw = atomic_load(&g_areas_hw);
	unsigned shift = hs ? (unsigned)hs : caps.page_shift;

	for (uint64_t i = from >> shift; i < to >> shift && i < store_bits_pages(sb); i++) {
		pg_bit_clear(store_bits(sb), i);
		pg_bit_clear(store_map_bits(sb), i);	/* (MINOR areas: not mapped) */
	}
	for (int k = 0; k < hw; k++) {
		struct area *a = &g_areas[k];
		uint64_t off = UF_LD(a->off), aend, f, t;
		uintptr_t s = UF_LD(a->start);

		/* (registered for WP alone: nothing is missing; MINOR alone: the
		 * page is made again at its access, unless it is armed) */
		if (!atomic_load(&a->live) || UF_LD(a->store) != sb || !UF_LD(a->ctx) ||
		    !(UF_LD(a->mode) & (UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR)))
			continue;
		aend = off + (UF_LD(a->end) - s);
		if (aend <= from || off >= to)
			continue;
		f = from > off ? from : off;
		t = to < aend ? to : aend;
		if (hs)
			sys_mprotect((void *)(s + (f - off)), t - f, PROT_NONE);
		else
			sys_madvise((void *)(s + (f - off)), t - f, MADV_GUARD_INSTALL);
	}
}

static int discard_one(struct area *a, void *arg)
{
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
	int sb = UF_LD(a->store);
	uint64_t off = UF_LD(a->off), pg0 = off >> caps.page_shift;
	size_t n = (e - s) >> caps.page_shift;

	/* The poison goes with the page table entries: missing again. */
	{
		struct pg_span sp = area_span_of(a);
		pg_poison_drop(&sp, s, e - s);
	}
	if (store_is_file(sb) || store_kind(sb) == STORE_HUGE_SHARED) {
		/* Shared memory, shared hugetlb: MADV_DONTNEED leaves the pages
		 * in the file (present: no fault follows, but a MINOR area's
		 * pages are not mapped any more: minor faults); MADV_REMOVE
		 * (arg) punched them out of it: every registered area of the
		 * file finds them missing again. */
		if (UF_LD(a->ctx) && area_minor(UF_LD(a->mode), sb)) {
			struct pg_span sp = area_span_of(a);
			pg_minor_unmap(&sp, s, e - s);
		}
		if (arg)
			file_punched(sb, off, off + (e - s));
		return 0;
	}
	if (store_kind(sb) == STORE_HUGE_PRIVATE) {
		/* Private hugetlb: MADV_DONTNEED drops the pages, missing again. */
		int hs = store_huge_shift(sb);
		if (UF_LD(a->ctx) && area_minor(UF_LD(a->mode), sb)) {
			/* (MINOR: not mapped any more; the file keeps its pages) */
			struct pg_span sp = area_span_of(a);
			pg_minor_unmap(&sp, s, e - s);
		}
		if (UF_LD(a->ctx) && (UF_LD(a->mode) & UFFDIO_REGISTER_MODE_MISSING)) {
			sys_mprotect((void *)s, e - s, PROT_NONE);
			for (uint64_t i = off >> hs; i < (off + (e - s)) >> hs; i++)
				pg_bit_clear(store_bits(sb), i);
		}
		return 0;
	}
	if (store_kind(sb) == STORE_SHMEM_PRIVATE) {
		/* A private mapping of shared memory: the private copies are
		 * gone; what the file has reads through, the rest is missing.
		 * (No private copy is left to drop: markers are safe.) */
		if (UF_LD(a->ctx)) {
			/* (registered for WP alone: nothing is missing; for
			 * MINOR, the pages are not mapped any more) */
			if (UF_LD(a->mode) & (UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR))
				sys_madvise((void *)s, e - s, MADV_GUARD_INSTALL);
			for (size_t i = 0; i < n && pg0 + i < store_bits_pages(sb); i++)
				pg_bit_clear(store_bits(sb), pg0 + i);
		}
		return 0;
	}
	if (UF_LD(a->ctx)) {
		/* Registered: the pages fault again from now on.  Hide them
		 * first (a fault on a page whose bit is still set retries), then
		 * drop the content, then the bits. */
		uint64_t mode = UF_LD(a->mode);
		if (!(mode & UFFDIO_REGISTER_MODE_MISSING)) {
			/* WP alone: nothing is missing, the pages read as zero
			 * again, and their write protection goes with them (the
			 * kernel's page table entries go). */
			sys_fallocate(store_fd(sb), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
				      (off_t)(e - s));
			area_wp_clear(a);
			return 0;
		}
		if (caps.guard_markers)
			sys_madvise((void *)s, e - s, MADV_GUARD_INSTALL);
		else
			sys_mprotect((void *)s, e - s, PROT_NONE);
		sys_fallocate(store_fd(sb), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)(e - s));
		for (size_t i = 0; i < n; i++)
			pg_bit_clear(store_bits(sb), pg0 + i);
		if (mode & UFFDIO_REGISTER_MODE_WP)
			area_wp_clear(a);	/* (the markers stay) */
	} else {
		/* Unregistered: read as zero from now on, as private memory. */
		sys_fallocate(store_fd(sb), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)(e - s));
	}
	return 0;
}

/* MADV_DONTNEED / FREE over areas: the content goes, as it would from
 * private memory; on shared memory the file keeps it, unless `removed`
 * (MADV_REMOVE punched it out). */
int area_discard_locked(uintptr_t start, uintptr_t end, int removed)
{
	int r;

	pg_install_pause();
	r = each_inside(start, end, discard_one, removed ? &r : NULL);
	pg_install_resume();
	area_merge_adjacent();
	return r;
}

void area_punched_locked(unsigned long ino, uint64_t from, uint64_t to)
{
	int sb = store_file_by_ino(ino);
	uint64_t m;

	if (sb < 0)
		return;
	/* Only whole pages leave the file (a huge page for hugetlb). */
	m = ((uint64_t)1 << (store_huge_shift(sb) ? (unsigned)store_huge_shift(sb) : caps.page_shift)) - 1;
	from = (from + m) & ~m;
	to &= ~m;
	if (from < to)
		file_punched(sb, from, to);
}

/* The single area that is exactly [start, end) after splitting, or NULL. */
struct area *area_exact_locked(uintptr_t start, uintptr_t end)
{
	int hw;

	if (area_split_at_bounds(start, end))
		return NULL;
	hw = atomic_load(&g_areas_hw);
	for (int k = 0; k < hw; k++) {
		struct area *a = &g_areas[k];
		if (atomic_load(&a->live) && UF_LD(a->start) == start && UF_LD(a->end) == end)
			return a;
	}
	return NULL;
}

/* Before mremap() of area a to newlen bytes: the memfd and the bitmap must
 * be big enough for a growth; with protection, the area becomes one
 * inaccessible mapping (mremap moves one mapping only; faults wait for us
 * meanwhile).  0 or a negative errno. */
int area_move_begin_locked(struct area *a, size_t newlen)
{
	int sb = UF_LD(a->store);
	uint64_t need = UF_LD(a->off) + newlen;
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
	struct stat st;

	if ((need >> caps.page_shift) > store_bits_pages(sb))
		return -ENOMEM;
	if (store_is_file(sb) || store_huge_shift(sb) || store_kind(sb) == STORE_SHMEM_PRIVATE)
		return 0;	/* the program's file: as it is (markers need no more) */
	if (fstat(store_fd(sb), &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < need && ftruncate(store_fd(sb), (off_t)need) < 0)
		return -errno;
	if (!caps.guard_markers) {
		area_busy_set(a);
		if (sys_mprotect((void *)s, e - s, PROT_NONE) < 0) {
			int err = -errno;
			area_busy_clear(a);
			return err;
		}
	}
	return 0;
}

/* After mremap() of area a: to is where it is now (MAP_FAILED: it did not
 * move).  In place, it keeps its registration and a grown tail is missing;
 * moved, it keeps it if `keep` (UFFD_FEATURE_EVENT_REMAP), else it is
 * unregistered, as the kernel's moved mapping, and every page is
 * accessible. */
void area_move_end_locked(struct area *a, void *to_, size_t newlen, int keep)
{
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
	uintptr_t to = to_ == MAP_FAILED ? s : (uintptr_t)to_;
	int prot = UF_LD(a->prot);
	int sb = UF_LD(a->store);
	uint64_t pg0 = UF_LD(a->off) >> caps.page_shift;
	size_t oldpages = (e - s) >> caps.page_shift;

	if (to_ == MAP_FAILED)
		newlen = e - s;
	/* A grown tail is new memory: not write-protected. */
	if (store_kind(sb) == STORE_MEMFD)
		for (size_t i = oldpages; i < newlen >> caps.page_shift; i++)
			pg_bit_clear(store_wp_bits(sb), pg0 + i);
	area_begin(a);
	UF_ST(a->start, to);
	UF_ST(a->end, to + newlen);
	if (to != s && !keep) {
		UF_ST(a->ctx, 0);
		UF_ST(a->mode, 0);
	}
	area_end(a);
	/* Moved without EVENT_REMAP: the write protection is dropped, as the
	 * kernel drops it. */
	if (to != s && !keep)
		area_wp_clear(a);
	if (UF_LD(a->ctx) && store_huge_shift(sb)) {
		/* hugetlb: a grown tail of a private area is missing; then the
		 * whole range is armed again where it is now. */
		int hs = store_huge_shift(sb);
		if (store_kind(sb) == STORE_HUGE_PRIVATE)
			for (uint64_t i = (UF_LD(a->off) + (e - s)) >> hs; i < (UF_LD(a->off) + newlen) >> hs; i++)
				pg_bit_clear(store_bits(sb), i);
		pg_huge_arm(to, newlen, store_bits(sb), UF_LD(a->off) >> hs, (unsigned)hs, prot);
	} else if (UF_LD(a->ctx) && store_kind(sb) == STORE_SHMEM_PRIVATE) {
		/* Markers only where the bits say no page (a marker drops a
		 * private copy); a grown tail has none. */
		for (size_t i = oldpages; i < newlen >> caps.page_shift; i++)
			pg_bit_clear(store_bits(sb), pg0 + i);
		pg_arm(to, newlen, store_bits(sb), pg0, prot);
	} else if (UF_LD(a->ctx) && store_is_file(sb)) {
		/* Shared memory: markers on what moved or grew; the pages the
		 * file has open at their first access. */
		if (to != s)
			sys_madvise((void *)to, newlen, MADV_GUARD_INSTALL);
		else if (newlen > e - s)
			sys_madvise((void *)(to + (e - s)), newlen - (e - s), MADV_GUARD_INSTALL);
	} else if (UF_LD(a->ctx) && to != s) {
		/* Moved with UFFD_FEATURE_EVENT_REMAP: the registration follows.
		 * Arm the missing pages at the new place (markers are page
		 * table entries; arming again is harmless). */
		for (size_t i = oldpages; i < newlen >> caps.page_shift; i++)
			pg_bit_clear(store_bits(sb), pg0 + i);
		if (UF_LD(a->mode) & UFFDIO_REGISTER_MODE_MISSING)
			pg_arm(to, newlen, store_bits(sb), pg0, prot);
	} else if (UF_LD(a->ctx) && !(UF_LD(a->mode) & UFFDIO_REGISTER_MODE_MISSING)) {
		/* WP alone: nothing to arm (a grown tail is holes that fill
		 * on access, as new memory). */
	} else if (UF_LD(a->ctx)) {
		/* A grown tail is holes of the memfd: missing.  With markers
		 * the rest kept its markers; with protection everything is
		 * inaccessible now and arming opens the present pages. */
		for (size_t i = oldpages; i < newlen >> caps.page_shift; i++)
			pg_bit_clear(store_bits(sb), pg0 + i);
		if (!caps.guard_markers)
			pg_arm(to, newlen, store_bits(sb), pg0, prot);
		else if (newlen > e - s)
			pg_arm(to + (e - s), newlen - (e - s), store_bits(sb), pg0 + oldpages, prot);
	} else {
		pg_disarm(to, newlen, prot);
	}
	if (!caps.guard_markers)
		area_busy_clear(a);
	area_merge_adjacent();
}

uint32_t area_owner(const struct area *a)
{
	return UF_LD(a->ctx);
}
