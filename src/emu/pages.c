/* SPDX-License-Identifier: MIT */
/*
 * Pages of an area: which are present (one bit each), how a missing page is
 * made to fault, and the atomic installation of COPY and ZEROPAGE.
 *
 * A missing page must fault on any access.  Two ways, chosen once by
 * caps.guard_markers:
 *
 *  - guard markers (Linux 6.15+ on shared memory): MADV_GUARD_INSTALL on the
 *    page-table entry.  The mapping is never split: one mapping per area,
 *    whatever the number of pages.
 *  - protection: the missing pages are PROT_NONE.  Every run of installed
 *    pages between missing ones is a mapping of its own, so the number of
 *    mappings grows with the pattern of installs, up to vm.max_map_count;
 *    past it an install fails cleanly with ENOMEM and nothing changes.
 *
 * In both, the content is written into the memfd first and the page is
 * made accessible afterwards, in one step: nobody sees it half-written.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include "base/stats.h"
#include "base/sys.h"
#include "base/usercopy.h"
#include "emu/pages.h"

static const char g_zeros[UF_PAGE_SIZE_MAX];

/* ---- presence bits (async-signal-safe) ---- */

SIG_SAFE int pg_bit_claim(_Atomic uint64_t *bits, uint64_t pg)
{
	uint64_t m = 1ULL << (pg & 63);
	return !(atomic_fetch_or(&bits[pg >> 6], m) & m);
}

SIG_SAFE void pg_bit_clear(_Atomic uint64_t *bits, uint64_t pg)
{
	atomic_fetch_and(&bits[pg >> 6], ~(1ULL << (pg & 63)));
}

SIG_SAFE void pg_bit_set(_Atomic uint64_t *bits, uint64_t pg)
{
	atomic_fetch_or(&bits[pg >> 6], 1ULL << (pg & 63));
}

/* Bits [pg, pg + n) set (on) or cleared.  a-s-s */
SIG_SAFE static void bits_put(_Atomic uint64_t *bits, uint64_t pg, size_t n, int on)
{
	for (size_t i = 0; i < n; i++)
		if (on)
			pg_bit_set(bits, pg + i);
		else
			pg_bit_clear(bits, pg + i);
}

SIG_SAFE int pg_bit_get(_Atomic uint64_t *bits, uint64_t pg)
{
	return (atomic_load(&bits[pg >> 6]) >> (pg & 63)) & 1;
}

SIG_SAFE static int bit_get(_Atomic uint64_t *bits, uint64_t pg)
{
	return (atomic_load(&bits[pg >> 6]) >> (pg & 63)) & 1;
}

/* ---- file stores: presence is the file's ---- */

struct cachestat_range_ {
	uint64_t off, len;
};
struct cachestat_ {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};
#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif

/* The pages of [pg, pg + n) of file fd in its page cache (or swapped out),
 * or -1.  async-signal-safe */
SIG_SAFE static long file_present(int fd, uint64_t pg, size_t n)
{
	struct cachestat_range_ r = { pg << caps.page_shift, (uint64_t)n << caps.page_shift };
	struct cachestat_ cs = { 0, 0, 0, 0, 0 };

	if (sys_call4(SYS_cachestat, fd, (long)&r, (long)&cs, 0) < 0)
		return -1;
	return (long)(cs.nr_cache + cs.nr_evicted);
}

static _Atomic uint32_t g_inflight, g_paused;
static enum pg_fault_state huge_fault_state(const struct pg_span *v, uintptr_t addr, unsigned shift);
static enum pg_fault_state private_fault_state(const struct pg_span *v, uintptr_t addr);
static long install_private(const struct pg_span *v, uintptr_t dst, const void *src, int zeros,
			    size_t len, int populate);
static long install_huge(const struct pg_span *v, uintptr_t dst, const void *src, int zeros,
			 size_t len, unsigned shift);

SIG_SAFE bool pg_present(const struct pg_span *s, uintptr_t addr)
{
	uint64_t pg = (s->off + (addr - s->start)) >> caps.page_shift;

	if (store_huge_shift(s->store))
		return bit_get(store_bits(s->store),
			       (s->off + (addr - s->start)) >> store_huge_shift(s->store));
	if (store_kind(s->store) == STORE_SHMEM_PRIVATE)
		return bit_get(store_bits(s->store), pg) ||
		       file_present(store_fd(s->store), (store_file_off(s->store) >> caps.page_shift) + pg, 1) > 0;

	if (!store_is_file(s->store))
		return bit_get(store_bits(s->store), pg);
	return file_present(store_fd(s->store), pg, 1) > 0;
}

/* A faulting page of a file store that the file has is opened in this
 * mapping (its marker goes: a page another mapping, process or write()
 * created, or one installed through another mapping of the file).  One
 * that only our bit calls present is being installed by a thread of ours,
 * unless none is in flight: then the bit is stale (a hole punched by
 * another process) and the page is missing.  async-signal-safe */
SIG_SAFE enum pg_fault_state pg_fault_state(const struct pg_span *s, uintptr_t addr)
{
	uint64_t pg = (s->off + (addr - s->start)) >> caps.page_shift;
	_Atomic uint64_t *bits = store_bits(s->store);
	bool in_bits = pg < store_bits_pages(s->store);

	if (store_huge_shift(s->store))
		return huge_fault_state(s, addr, (unsigned)store_huge_shift(s->store));
	if (store_kind(s->store) == STORE_SHMEM_PRIVATE)
		return private_fault_state(s, addr);
	if (!store_is_file(s->store))
		return bit_get(bits, pg) ? PG_INSTALLING : PG_MISSING;
	if (s->minor) {
		/* Registered for MINOR: what matters is whether the page is
		 * mapped here (its map bit), then whether the file has it. */
		_Atomic uint64_t *mp = store_map_bits(s->store);
		uintptr_t page = addr & ~(uintptr_t)(caps.page_size - 1);
		if (in_bits && bit_get(mp, pg)) {
			if (atomic_load(&g_inflight))
				return PG_INSTALLING;	/* a CONTINUE opening it */
			sys_madvise((void *)page, caps.page_size, MADV_GUARD_REMOVE);
			return PG_OPENED;
		}
		if (file_present(store_fd(s->store), pg, 1) > 0)
			/* (one of ours may be installing it: wait for it) */
			return atomic_load(&g_inflight) ? PG_INSTALLING : PG_MINOR;
		if (!s->armed && in_bits) {
			/* MINOR alone: a page the file lacks is made silently. */
			pg_bit_set(mp, pg);
			sys_madvise((void *)page, caps.page_size, MADV_GUARD_REMOVE);
			return PG_OPENED;
		}
	}
	if (file_present(store_fd(s->store), pg, 1) > 0) {
		uintptr_t page = addr & ~(uintptr_t)(caps.page_size - 1);
		if (in_bits)
			pg_bit_set(bits, pg);
		sys_madvise((void *)page, caps.page_size, MADV_GUARD_REMOVE);
		return PG_OPENED;
	}
	if (in_bits && bit_get(bits, pg)) {
		if (atomic_load(&g_inflight))
			return PG_INSTALLING;
		pg_bit_clear(bits, pg);
	}
	return PG_MISSING;
}

/* The next run, at or after page *i of n (bit pg0 + page), of pages whose
 * bit equals `present`: 1 with *i its first page and *len its length, or 0. */
int pg_next_run(_Atomic uint64_t *bits, uint64_t pg0, size_t n, size_t *i, int present, size_t *len)
{
	size_t k = *i, j;
	uint64_t skip = present ? 0 : ~0ULL;	/* a word with no page of the kind */

	while (k < n) {
		uint64_t pg = pg0 + k;
		if ((pg & 63) == 0 && atomic_load(&bits[pg >> 6]) == skip) {
			k += 64;
			continue;
		}
		if (bit_get(bits, pg) == present)
			break;
		k++;
	}
	if (k >= n)
		return 0;
	j = k + 1;
	while (j < n) {
		uint64_t pg = pg0 + j;
		if ((pg & 63) == 0 && atomic_load(&bits[pg >> 6]) == ~skip) {
			j += 64;
			continue;
		}
		if (bit_get(bits, pg) != present)
			break;
		j++;
	}
	*i = k;
	*len = (j < n ? j : n) - k;
	return 1;
}

/* ---- making pages fault, or not ---- */

/* Apply `advice` or `prot` (markers or protection mode) to every run of
 * [addr, addr + npages) whose bit equals `present`. */
static int each_run_shift(uintptr_t addr, size_t npages, _Atomic uint64_t *bits, uint64_t pg0,
			  int present, int advice, int prot, unsigned shift)
{
	size_t ps = (size_t)1 << shift, i = 0, len;

	while (pg_next_run(bits, pg0, npages, &i, present, &len)) {
		void *at = (void *)(addr + i * ps);
		int r = advice ? sys_madvise(at, len * ps, advice) : sys_mprotect(at, len * ps, prot);
		if (r < 0)
			return -errno;
		i += len;
	}
	return 0;
}

static int each_run(uintptr_t addr, size_t npages, _Atomic uint64_t *bits, uint64_t pg0,
		    int present, int advice, int prot)
{
	return each_run_shift(addr, npages, bits, pg0, present, advice, prot, caps.page_shift);
}

/* ---- the mapping budget (protection mode) ----
 *
 * Each run of pages of one kind is a mapping of its own.  The emulation may
 * use mappings only up to a budget that leaves a reserve below
 * vm.max_map_count (an eighth, at least 4096), so that the program, its
 * allocator and its threads can still map memory when the emulation is at
 * its limit: past it COPY and ZEROPAGE fail with ENOMEM. */
static _Atomic long g_used = 0;		/* mappings beyond one per area */
static long g_budget = -1;

static void budget_init(void)
{
	long max = 65530, lines = 0, reserve;
	char buf[4096] = { 0 };
	int fd;
	ssize_t n;

	if (g_budget >= 0)
		return;
	fd = sys_open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC, 0);
	if (fd >= 0) {
		n = sys_read(fd, buf, sizeof buf - 1);
		if (n > 0) {
			buf[n] = 0;
			max = strtol(buf, NULL, 10);
		}
		sys_close(fd);
	}
	fd = sys_open("/proc/self/maps", O_RDONLY | O_CLOEXEC, 0);
	if (fd >= 0) {
		while ((n = sys_read(fd, buf, sizeof buf)) > 0)
			for (ssize_t i = 0; i < n; i++)
				lines += buf[i] == '\n';
		sys_close(fd);
	}
	reserve = max / 8 > 4096 ? max / 8 : 4096;
	g_budget = max - reserve - lines > 0 ? max - reserve - lines : 0;
}

/* Runs of pages of one kind in [pg0, pg0 + n). */
static long count_runs(_Atomic uint64_t *bits, uint64_t pg0, size_t n)
{
	size_t i = 0, len;
	long runs = 0;

	for (int kind = 0; kind < 2; kind++, i = 0)
		while (pg_next_run(bits, pg0, n, &i, kind, &len)) {
			runs++;
			i += len;
		}
	return runs;
}

/* The mappings an area's pages need beyond one (protection mode). */
long pg_extra_maps(_Atomic uint64_t *bits, uint64_t pg0, size_t n)
{
	long runs = caps.guard_markers ? 1 : count_runs(bits, pg0, n);
	return runs > 1 ? runs - 1 : 0;
}

/* Set what the registered areas use now (the area lock held, after changes). */
void pg_set_used(long extra)
{
	atomic_store(&g_used, extra);
}

/* Take (or give back) d mappings of the budget: 0, or -ENOMEM.  a-s-s */
SIG_SAFE static int budget_take_if(long d, int enforce)
{
	if (d <= 0 || !enforce) {
		atomic_fetch_add(&g_used, d);
		return 0;
	}
	if (atomic_fetch_add(&g_used, d) + d > g_budget) {
		atomic_fetch_sub(&g_used, d);
		return -ENOMEM;
	}
	return 0;
}

void pg_budget_init(void)
{
	budget_init();
}

SIG_SAFE int pg_budget_take(long d)
{
	return budget_take_if(d, 1);
}

static int budget_take(long d)
{
	return budget_take_if(d, !caps.guard_markers);
}

/* How opening [addr, addr+len) of area v changes its number of mappings:
 * each side that touches a present page merges (-1), each side that
 * touches a missing page splits (+1), an edge of the area does neither. */
static long reveal_delta(const struct pg_span *v, uintptr_t addr, size_t len)
{
	_Atomic uint64_t *bits = store_bits(v->store);
	uint64_t pg = (v->off + (addr - v->start)) >> caps.page_shift;
	long d = 0;

	if (addr > v->start)
		d += bit_get(bits, pg - 1) ? -1 : 1;
	if (addr + len < v->end)
		d += bit_get(bits, pg + (len >> caps.page_shift)) ? -1 : 1;
	return d;
}

/*
 * Arm [addr, addr+len): missing pages (bit clear) fault, present ones are
 * accessible with prot.  The range must be mapped with prot (markers) or
 * PROT_NONE (protection) on entry.  0 or a negative errno (ENOMEM when the
 * mapping count runs out).
 */
int pg_arm(uintptr_t addr, size_t len, _Atomic uint64_t *bits, uint64_t pg0, int prot)
{
	size_t n = len >> caps.page_shift;

	long extra;

	if (caps.guard_markers)
		return each_run(addr, n, bits, pg0, 0, MADV_GUARD_INSTALL, 0);
	budget_init();
	extra = pg_extra_maps(bits, pg0, n);
	if (budget_take(extra) < 0)
		return -ENOMEM;
	return each_run(addr, n, bits, pg0, 1, 0, prot);
}

/* The state pg_arm expects on entry, for a range mapped with prot. */
int pg_arm_entry_prot(int prot)
{
	return caps.guard_markers ? prot : PROT_NONE;
}

/* Disarm: every page of [addr, addr+len) accessible with prot (missing
 * ones read as zero).  async-signal-safe */
SIG_SAFE int pg_disarm(uintptr_t addr, size_t len, int prot)
{
	/* (hugetlb has no markers: EINVAL, and its missing pages are
	 * PROT_NONE whatever caps says) */
	if (caps.guard_markers && sys_madvise((void *)addr, len, MADV_GUARD_REMOVE) == 0)
		return 0;
	return sys_mprotect((void *)addr, len, prot) < 0 ? -errno : 0;
}

/* Set the protection of the present pages only (fork freezes and thaws
 * them); with markers, missing pages fault whatever the protection, so
 * the whole range is done in one call. */
int pg_protect_present(uintptr_t addr, size_t len, _Atomic uint64_t *bits, uint64_t pg0, int prot)
{
	if (caps.guard_markers)
		return sys_mprotect((void *)addr, len, prot) < 0 ? -errno : 0;
	return each_run(addr, len >> caps.page_shift, bits, pg0, 1, 0, prot);
}

/* Fill the page table entries of installed pages, which spares the next
 * access an exception.  A read populate is enough, and cheaper: on a shared
 * memfd mapping a read fault maps the page writable where the mapping is
 * (shmem needs no write notification), and maps up to 16 pages per fault.
 * Only a matter of speed: it may fail (a page missing again, a fork's
 * freeze) without harm.  a-s-s */
SIG_SAFE void pg_populate(int prot, uintptr_t addr, size_t len)
{
	if (!caps.populate)
		return;
	if (prot & PROT_READ)
		sys_madvise((void *)addr, len, MADV_POPULATE_READ);
	else if (prot & PROT_WRITE)
		sys_madvise((void *)addr, len, MADV_POPULATE_WRITE);
}

/* Make installed pages accessible: their content is already in the memfd.
 * a-s-s */
static int reveal(const struct pg_span *v, uintptr_t addr, size_t len, int populate)
{
	long d = caps.guard_markers ? 0 : reveal_delta(v, addr, len);
	int r = budget_take(d);

	if (r < 0)
		return r;
	r = pg_disarm(addr, len, v->prot);
	if (r < 0) {
		budget_take(-d);
		return r;
	}
	if (populate)
		pg_populate(v->prot, addr, len);
	return 0;
}

/* ---- write protection (UFFDIO_WRITEPROTECT, COPY's MODE_WP) ----
 *
 * The kernel keeps a uffd-wp bit per page table entry, apart from the
 * VMA's protection; the emulation keeps a bit per page of the store and
 * makes the protected pages read-only with mprotect, so that a write to one
 * raises SIGSEGV (SEGV_ACCERR) and a read does not.  Every run of protected
 * pages among writable ones is a mapping of its own: the runs are counted
 * against the mapping budget, and a change that would pass it fails with
 * ENOMEM, leaving everything as it was.  Guard markers on missing pages
 * stay through mprotect.  All async-signal-safe (an in-thread pager calls
 * WRITEPROTECT from its fault). */

/* The shift of the span's pages: huge pages for hugetlb.  a-s-s */
SIG_SAFE static unsigned span_shift(const struct pg_span *s)
{
	int hs = store_huge_shift(s->store);

	return hs ? (unsigned)hs : caps.page_shift;
}

SIG_SAFE static uint64_t page_of(const struct pg_span *s, uintptr_t addr)
{
	return (s->off + (addr - s->start)) >> span_shift(s);
}

/* hugetlb registered for MISSING: a missing huge page is PROT_NONE, which
 * its protection must not change.  a-s-s */
SIG_SAFE static int keeps_prot_none(const struct pg_span *s, _Atomic uint64_t *bits, uint64_t pg)
{
	if (s->minor && store_huge_shift(s->store))	/* (not mapped here: PROT_NONE) */
		return !pg_bit_get(store_map_bits(s->store), pg);
	return s->armed && store_huge_shift(s->store) && !pg_bit_get(bits, pg);
}

/* mprotect pages [pg, end) (from addr, the address of page `lo`), skipping
 * those keeps_prot_none says.  0 or -errno.  a-s-s */
SIG_SAFE static int wp_mprotect(const struct pg_span *s, uintptr_t addr, uint64_t lo, uint64_t pg,
				uint64_t end, int prot)
{
	_Atomic uint64_t *bits = store_bits(s->store);
	unsigned sh = span_shift(s);

	while (pg < end) {
		uint64_t e = pg;
		if (keeps_prot_none(s, bits, pg)) {
			pg++;
			continue;
		}
		while (e < end && !keeps_prot_none(s, bits, e))
			e++;
		if (sys_mprotect((void *)(addr + ((pg - lo) << sh)), (size_t)(e - pg) << sh, prot) < 0)
			return -errno;
		pg = e;
	}
	return 0;
}

/* async-signal-safe */
SIG_SAFE bool pg_wp_get(const struct pg_span *s, uintptr_t addr)
{
	uint64_t pg = page_of(s, addr);

	return pg < store_bits_pages(s->store) && pg_bit_get(store_wp_bits(s->store), pg);
}

/* The protection page pg would have after the change: wp of [lo, hi)
 * turned on (present pages) or off.  async-signal-safe */
SIG_SAFE static int after(_Atomic uint64_t *wp, _Atomic uint64_t *bits, uint64_t pg, uint64_t lo,
			  uint64_t hi, int on)
{
	if (pg < lo || pg >= hi)
		return pg_bit_get(wp, pg);
	if (!on)
		return 0;
	return on > 1 || pg_bit_get(bits, pg) || pg_bit_get(wp, pg);
}

/* One change of write protection at a time, in the whole process: a
 * change reads the bits, then sets bits and protections run by run, and
 * two at once (a WRITEPROTECT clearing a page inside a run another one is
 * protecting) would leave a page read-only with its bit clear.  The kernel
 * serialises them with its page table locks.  The holder is a thread id,
 * so that a signal handler that runs while its own thread holds it (an
 * in-thread pager) goes on.  a-s-s */
static _Atomic pid_t g_wp_owner;

SIG_SAFE static int wp_lock(void)
{
	pid_t me = sys_gettid(), free_ = 0;

	if (atomic_load(&g_wp_owner) == me)
		return 0;
	while (!atomic_compare_exchange_weak(&g_wp_owner, &free_, me)) {
		free_ = 0;
		sched_yield();
	}
	return 1;
}

/* Bumped after every change: a fault that met a protection a change has
 * lifted since is retried, not taken for the program's.  a-s-s */
static _Atomic uint32_t g_wp_gen;

SIG_SAFE uint32_t pg_wp_gen(void)
{
	return atomic_load(&g_wp_gen);
}

SIG_SAFE static void wp_unlock(int took)
{
	atomic_fetch_add(&g_wp_gen, 1);
	if (took)
		atomic_store(&g_wp_owner, 0);
}

SIG_SAFE static int wp_set_locked(const struct pg_span *s, uintptr_t addr, size_t len, int on);

/* async-signal-safe */
SIG_SAFE int pg_wp_set(const struct pg_span *s, uintptr_t addr, size_t len, int on, int all)
{
	/* (on == 2 below: every page of the range) */
	int took = wp_lock(), r = wp_set_locked(s, addr, len, on ? (all ? 2 : 1) : 0);

	wp_unlock(took);
	return r;
}

SIG_SAFE static int wp_set_locked(const struct pg_span *s, uintptr_t addr, size_t len, int on)
{
	_Atomic uint64_t *wp = store_wp_bits(s->store), *bits = store_bits(s->store);
	unsigned sh = span_shift(s);
	uint64_t lo = page_of(s, addr), hi = lo + (len >> sh);
	uint64_t first = s->off >> sh, last = page_of(s, s->end);	/* [first, last) */
	uint64_t wlo = lo > first ? lo - 1 : lo, whi = hi < last ? hi + 1 : hi;
	long before = 0, now = 0;
	int r;
	int prot = on ? s->prot & ~PROT_WRITE : s->prot;

	/* The mappings the window [wlo, whi) needs now and after. */
	for (uint64_t pg = wlo + 1; pg < whi; pg++) {
		before += pg_bit_get(wp, pg) != pg_bit_get(wp, pg - 1);
		now += after(wp, bits, pg, lo, hi, on) != after(wp, bits, pg - 1, lo, hi, on);
	}
	if (pg_budget_take(now - before) < 0)
		return -ENOMEM;
	for (uint64_t pg = lo; pg < hi;) {
		uint64_t end = pg;
		/* a run of pages that change */
		while (end < hi && after(wp, bits, end, lo, hi, on) != pg_bit_get(wp, end))
			end++;
		if (end == pg) {
			pg++;
			continue;
		}
		for (uint64_t k = pg; k < end; k++)
			if (on)
				pg_bit_set(wp, k);
		if ((r = wp_mprotect(s, addr, lo, pg, end, prot)) < 0) {
			/* (Only ENOMEM, the count being kept under the limit.) */
			for (uint64_t k = pg; k < end; k++)
				if (on)
					pg_bit_clear(wp, k);
			return r;
		}
		for (uint64_t k = pg; k < end; k++)
			if (!on)
				pg_bit_clear(wp, k);
		pg = end;
	}
	return 0;
}

/* async-signal-safe */
SIG_SAFE int pg_wp_reapply(const struct pg_span *s)
{
	_Atomic uint64_t *wp = store_wp_bits(s->store);
	unsigned sh = span_shift(s);
	size_t n = (s->end - s->start) >> sh, i = 0, len;
	uint64_t pg0 = s->off >> sh;

	int took, r = 0;

	if (!(s->prot & PROT_WRITE))
		return 0;
	took = wp_lock();
	while (pg_next_run(wp, pg0, n, &i, 1, &len)) {
		if ((r = wp_mprotect(s, s->start, pg0, pg0 + i, pg0 + i + len, s->prot & ~PROT_WRITE)) < 0)
			break;
		i += len;
	}
	wp_unlock(took);
	return r;
}

/* The 64 bits from page pg on (the bitmaps have room past every store's
 * pages: see slot_new).  a-s-s */
SIG_SAFE static uint64_t bits64(_Atomic uint64_t *bits, uint64_t pg)
{
	uint64_t lo = atomic_load(&bits[pg >> 6]), sh = pg & 63;

	return sh ? lo >> sh | atomic_load(&bits[(pg >> 6) + 1]) << (64 - sh) : lo;
}

/* (Each change between neighbours is one more mapping: counted a word at a
 * time, as the memory calls recount whole areas.) */
long pg_wp_extra_maps(_Atomic uint64_t *wp, uint64_t pg0, size_t n)
{
	long t = 0;

	for (size_t i = 1; i < n; i += 64) {
		uint64_t diff = bits64(wp, pg0 + i) ^ bits64(wp, pg0 + i - 1);
		if (n - i < 64)		/* (the last word: n - i pages of it) */
			diff &= (1ULL << (n - i)) - 1;
		t += __builtin_popcountll(diff);
	}
	return t;
}

/* async-signal-safe */
SIG_SAFE void pg_refresh(const struct pg_span *s, uintptr_t addr, size_t len)
{
	_Atomic uint64_t *bits = store_bits(s->store);
	size_t ps = caps.page_size;
	uint64_t lo = page_of(s, addr), hi = lo + (len >> caps.page_shift);
	off_t pos = (off_t)(lo * ps), end = (off_t)(hi * ps);

	for (uint64_t pg = lo; pg < hi; pg++)
		pg_bit_clear(bits, pg);
	for (off_t d; (d = store_next_data(store_fd(s->store), &pos, end)) >= 0;)
		for (off_t p = d; p < pos; p += (off_t)ps)
			pg_bit_set(bits, (uint64_t)p / ps);
}

static void install_enter(void);
static void install_leave(void);

/* ---- MINOR mode and UFFDIO_CONTINUE ----
 * A MINOR span arms the pages not mapped in it (map bits clear); a fault
 * there on a page the file has is a minor fault (pg_fault_state), and
 * CONTINUE maps it: the marker goes (hugetlb: its protection opens). */

static int huge_file_has(const struct pg_span *v, uint64_t hp, unsigned shift, int claimed);
static int huge_reveal(const struct pg_span *v, uintptr_t addr, size_t len, unsigned shift);

/* The bits saying which pages are mapped in a MINOR span: the map bits; on
 * a private mapping of shared memory its own bits, which say just that (a
 * page of the file opened there, or its private copy).  a-s-s */
SIG_SAFE static _Atomic uint64_t *minor_bits(const struct pg_span *s)
{
	return store_kind(s->store) == STORE_SHMEM_PRIVATE ? store_bits(s->store) : store_map_bits(s->store);
}

/* async-signal-safe */
SIG_SAFE bool pg_mapped(const struct pg_span *s, uintptr_t addr)
{
	return bit_get(minor_bits(s), page_of(s, addr));
}

/* Does the file of span s have the page (huge page) pg of the store?
 * async-signal-safe */
SIG_SAFE static int continue_has(const struct pg_span *s, uint64_t pg, unsigned sh)
{
	switch (store_kind(s->store)) {
	case STORE_SHMEM:
		return file_present(store_fd(s->store), pg, 1) > 0;
	case STORE_SHMEM_PRIVATE:
		return file_present(store_fd(s->store), (store_file_off(s->store) >> caps.page_shift) + pg, 1) > 0;
	case STORE_HUGE_SHARED:
		return bit_get(store_bits(s->store), pg) || huge_file_has(s, pg, sh, 0);
	default:		/* private hugetlb: its file's page cache */
		return huge_file_has(s, pg, sh, 0);
	}
}

/* async-signal-safe */
SIG_SAFE long pg_continue(const struct pg_span *s, uintptr_t addr, size_t len, int wp)
{
	unsigned sh = span_shift(s);
	size_t unit = (size_t)1 << sh, done = 0;
	int kind = store_kind(s->store);
	_Atomic uint64_t *mp = minor_bits(s);
	struct stat st;
	long err = 0;

	memset(&st, 0, sizeof st);
	if (store_file_fd(s->store) < 0 || sys_call4(SYS_fstat, store_file_fd(s->store), (long)&st, 0, 0) < 0)
		return -EFAULT;
	install_enter();
	/* What the caller wrote to the page through another mapping is seen
	 * once it is mapped here. */
	atomic_thread_fence(memory_order_seq_cst);
	for (; done < len; done += unit) {
		uintptr_t a = addr + done;
		uint64_t pg = page_of(s, a);
		uint64_t foff = s->off + (a - s->start) +
				(kind == STORE_SHMEM_PRIVATE || kind == STORE_HUGE_PRIVATE ? store_file_off(s->store) : 0);

		if (foff >= (uint64_t)st.st_size) {
			err = -EINVAL;		/* past the end of the file */
			break;
		}
		if (!continue_has(s, pg, sh)) {
			err = -EFAULT;
			break;
		}
		/* Mapped here already (or where minor faults are not raised,
		 * as the page it has is): EEXIST. */
		if (!s->minor || !pg_bit_claim(mp, pg)) {
			err = -EEXIST;
			break;
		}
		if (wp && pg_wp_set(s, a, unit, 1, 1) < 0) {
			pg_bit_clear(mp, pg);
			err = -ENOMEM;
			break;
		}
		if (sh != caps.page_shift) {
			if (kind == STORE_HUGE_SHARED)
				pg_bit_set(store_bits(s->store), pg);	/* the file has it */
			if (huge_reveal(s, a, unit, sh) < 0) {
				pg_bit_clear(mp, pg);
				err = -ENOMEM;
				break;
			}
		} else {
			if (pg < store_bits_pages(s->store))
				pg_bit_set(store_bits(s->store), pg);
			sys_madvise((void *)a, unit, MADV_GUARD_REMOVE);
		}
	}
	/* (the kernel's CONTINUE replaces a poison marker too) */
	if (done)
		pg_poison_clear(s, addr, done);
	install_leave();
	return done ? (long)done : err;
}

int pg_minor_arm(const struct pg_span *s, uintptr_t addr, size_t len)
{
	unsigned sh = span_shift(s);
	uint64_t pg0 = page_of(s, addr);
	size_t n = len >> sh;
	_Atomic uint64_t *mp = minor_bits(s);

	if (sh != caps.page_shift) {
		/* hugetlb: mincore reads its page tables */
		unsigned char vec[1] = { 0 };
		for (size_t i = 0; i < n; i++) {
			int on = sys_call4(SYS_mincore, (long)(addr + (i << sh)), (long)caps.page_size, (long)vec,
					   0) == 0 && (vec[0] & 1);
			bits_put(mp, pg0 + i, 1, on);
		}
		return pg_huge_arm(addr, len, mp, pg0, sh, s->prot);
	}
	{
		int pm = sys_open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC, 0);
		uint64_t ent[512] = { 0 };

		if (pm < 0)
			return -errno;
		for (size_t i = 0; i < n;) {
			size_t k = n - i < 512 ? n - i : 512;
			ssize_t got = sys_pread(pm, ent, k * 8, (off_t)(((addr >> caps.page_shift) + i) * 8));
			if (got <= 0)
				break;
			k = (size_t)got / 8;
			for (size_t j = 0; j < k; j++)	/* present or swapped */
				bits_put(mp, pg0 + i + j, 1, !!(ent[j] >> 62));
			i += k;
		}
		sys_close(pm);
	}
	return pg_arm(addr, len, mp, pg0, s->prot);
}

void pg_minor_unmap(const struct pg_span *s, uintptr_t addr, size_t len)
{
	unsigned sh = span_shift(s);

	bits_put(store_map_bits(s->store), page_of(s, addr), len >> sh, 0);
	if (sh != caps.page_shift)
		sys_mprotect((void *)addr, len, PROT_NONE);
	else
		sys_madvise((void *)addr, len, MADV_GUARD_INSTALL);
}


/* ---- poison (UFFDIO_POISON) ----
 * A bit per page of the store (per huge page for hugetlb); the page itself
 * stays missing, so that its access faults, and the fault path raises
 * SIGBUS where the bit is set. */

/* async-signal-safe */
SIG_SAFE bool pg_poisoned(const struct pg_span *s, uintptr_t addr)
{
	return bit_get(store_poison_bits(s->store), page_of(s, addr));
}

/* async-signal-safe */
SIG_SAFE void pg_poison_clear(const struct pg_span *s, uintptr_t addr, size_t len)
{
	uint64_t pg = page_of(s, addr);

	bits_put(store_poison_bits(s->store), pg, len >> span_shift(s), 0);
}

/* Does a missing page of s fault without a poison mark: registered for
 * MISSING, or for MINOR where minor faults are raised?  a-s-s */
SIG_SAFE static bool poison_needs_mark(const struct pg_span *s)
{
	return !s->armed && !s->minor;
}

/* Mark (on) or unmark (off) the poisoned page at a of a span whose missing
 * pages do not fault by themselves: a guard marker, or no access (hugetlb,
 * and a kernel without markers).  async-signal-safe */
SIG_SAFE static void poison_mark_one(const struct pg_span *s, uintptr_t a, size_t unit, int on)
{
	if (caps.guard_markers && !store_huge_shift(s->store))
		sys_madvise((void *)a, unit, on ? MADV_GUARD_INSTALL : MADV_GUARD_REMOVE);
	else
		sys_mprotect((void *)a, unit, on ? PROT_NONE : s->prot);
}

/* async-signal-safe */
SIG_SAFE void pg_poison_mark(const struct pg_span *s, uintptr_t addr, size_t len)
{
	_Atomic uint64_t *pz = store_poison_bits(s->store);
	size_t unit = (size_t)1 << span_shift(s);

	if (!poison_needs_mark(s))
		return;
	for (size_t done = 0; done < len; done += unit)
		if (bit_get(pz, page_of(s, addr + done)))
			poison_mark_one(s, addr + done, unit, 1);
}

/* async-signal-safe */
SIG_SAFE void pg_poison_drop(const struct pg_span *s, uintptr_t addr, size_t len)
{
	_Atomic uint64_t *pz = store_poison_bits(s->store);
	size_t unit = (size_t)1 << span_shift(s);

	for (size_t done = 0; done < len; done += unit) {
		uint64_t pg = page_of(s, addr + done);
		if (!bit_get(pz, pg))
			continue;
		pg_bit_clear(pz, pg);
		if (poison_needs_mark(s))
			poison_mark_one(s, addr + done, unit, 0);
	}
}

/* async-signal-safe */
SIG_SAFE bool pg_poison_any(const struct pg_span *s, uintptr_t addr, size_t len)
{
	_Atomic uint64_t *pz = store_poison_bits(s->store);
	size_t unit = (size_t)1 << span_shift(s);

	for (size_t done = 0; done < len; done += unit)
		if (bit_get(pz, page_of(s, addr + done)))
			return true;
	return false;
}

/* Has this process no page table entry for the page at a (neither present
 * nor swapped, in /proc/self/pagemap, opened in *pm on first use)?  a-s-s */
SIG_SAFE static bool unmapped_here(int *pm, uintptr_t a)
{
	uint64_t ent = 0;

	if (*pm < 0)
		*pm = sys_open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC, 0);
	if (*pm < 0 || sys_pread(*pm, &ent, sizeof ent, (off_t)((a >> caps.page_shift) * sizeof ent)) !=
			       (ssize_t)sizeof ent)
		return false;
	return !(ent >> 62);
}

/* async-signal-safe */
SIG_SAFE long pg_poison(const struct pg_span *s, uintptr_t addr, size_t len)
{
	_Atomic uint64_t *pz = store_poison_bits(s->store);
	size_t unit = (size_t)1 << span_shift(s), done = 0;
	uintptr_t from = addr;

	int pm = -1;

	install_enter();
	for (; done < len; done += unit) {
		uintptr_t a = addr + done;
		uint64_t pg = page_of(s, a);

		/* Only an empty entry takes it: not a page, a poison, or the
		 * marker of a write-protected missing page. */
		if (store_has_wp(s->store) && pg_wp_get(s, a))
			break;
		if (pg_present(s, a)) {
			/* A page of a shared memory file that this mapping has
			 * not mapped (no page table entry) is an empty entry for
			 * the kernel: poisoned, behind a marker of its own.  (Not
			 * on a private mapping, where the marker could drop a
			 * private copy made meanwhile.) */
			if (store_kind(s->store) == STORE_SHMEM_PRIVATE) {
				/* A private mapping's page of the file that it has
				 * not opened sits behind a marker where the mapping
				 * is armed (MISSING, MINOR).  A fault opening it
				 * meanwhile claims its bit, then looks for the
				 * poison: one of the two backs off. */
				_Atomic uint64_t *ob = store_bits(s->store);
				if (!(s->armed || s->minor) || bit_get(ob, pg) || !pg_bit_claim(pz, pg))
					break;
				if (bit_get(ob, pg)) {
					pg_bit_clear(pz, pg);
					break;
				}
				continue;
			}
			if (store_kind(s->store) != STORE_SHMEM || !caps.guard_markers ||
			    (s->minor ? pg_mapped(s, a) : !unmapped_here(&pm, a)) || !pg_bit_claim(pz, pg))
				break;
			if (!s->minor)	/* (MINOR: unmapped pages have one) */
				sys_madvise((void *)a, unit, MADV_GUARD_INSTALL);
			continue;
		}
		if (!pg_bit_claim(pz, pg))
			break;
		if (pg_present(s, a)) {		/* installed meanwhile */
			pg_bit_clear(pz, pg);
			break;
		}
	}
	if (pm >= 0)
		sys_close(pm);
	/* Where missing pages do not fault (registered for WP alone), the
	 * poisoned ones must: a mark. */
	pg_poison_mark(s, from, done);
	install_leave();
	return done ? (long)done : -EEXIST;
}

/* ---- COPY and ZEROPAGE ---- */

/* Write len bytes at off of the memfd from src, or zeros (src is then not
 * used).  Returns the bytes written; stops short at an unreadable source.
 * async-signal-safe */
static size_t fill(int fd, const char *src, int zeros, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t w;
		if (!zeros) {
			/* Address arithmetic on integers: src may be 0 (a COPY from
			 * address 0 must fail as the kernel's, with EFAULT). */
			w = sys_pwrite(fd, (const void *)((uintptr_t)src + done), len - done,
				       (off_t)(off + done));
		} else {
			struct iovec iov[64];
			size_t left = len - done, n = 0, ps = sizeof g_zeros;
			while (left && n < 64) {
				size_t k = left < ps ? left : ps;
				iov[n].iov_base = (void *)g_zeros;
				iov[n++].iov_len = k;
				left -= k;
			}
			w = sys_pwritev(fd, iov, (int)n, (off_t)(off + done));
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	return done;
}

/* Can the caller read [src, src+len)?  async-signal-safe */
static int src_readable(const char *src, size_t len)
{
	char buf[256];

	for (size_t i = 0; i < len; i += sizeof buf)
		if (usercopy_in(buf, (const void *)((uintptr_t)src + i),
			       len - i < sizeof buf ? len - i : sizeof buf))
			return 0;
	return 1;
}

/* Give back pages [from, to) of a claimed run: the bits, and what the memfd
 * may hold of them, so that they still read as missing.  a-s-s */
/* Has any of pages [pg, pg + n) of store its write-protect bit?  a-s-s */
SIG_SAFE static int wp_any(int store, uint64_t pg, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (pg_bit_get(store_wp_bits(store), pg + i))
			return 1;
	return 0;
}

static void unclaim(int store, uint64_t pg, size_t from, size_t to)
{
	size_t ps = caps.page_size;
	_Atomic uint64_t *bits = store_bits(store);

	if (to <= from)
		return;
	sys_fallocate(store_fd(store), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)((pg + from) * ps),
		  (off_t)((to - from) * ps));
	for (size_t i = from; i < to; i++)
		pg_bit_clear(bits, pg + i);
}

/* Installs in flight (g_inflight, g_paused above), and a fork that waits
 * for them: the child must copy pages whole, and a page claimed but not yet
 * written must not be opened by the fork's change of protection. */

void pg_install_pause(void)
{
	atomic_store(&g_paused, 1);
	for (uint32_t n; (n = atomic_load(&g_inflight)) != 0;)
		sys_futex_wait(&g_inflight, n, NULL);
}

void pg_install_resume(void)
{
	atomic_store(&g_paused, 0);
	sys_futex_wake(&g_paused, 0x7fffffff);
}

/* async-signal-safe */
SIG_SAFE static void install_enter(void)
{
	for (;;) {
		atomic_fetch_add(&g_inflight, 1);
		if (!atomic_load(&g_paused))
			return;
		if (atomic_fetch_sub(&g_inflight, 1) == 1)
			sys_futex_wake(&g_inflight, 1);
		sys_futex_wait(&g_paused, 1, NULL);
	}
}

/* async-signal-safe */
SIG_SAFE static void install_leave(void)
{
	if (atomic_fetch_sub(&g_inflight, 1) == 1 && atomic_load(&g_paused))
		sys_futex_wake(&g_inflight, 1);
}

/* UFFDIO_WRITEPROTECT on one span: pg_wp_set, as an operation a fork
 * waits for.  async-signal-safe */
SIG_SAFE int pg_wp_protect(const struct pg_span *s, uintptr_t addr, size_t len, int on, int all)
{
	int r;

	install_enter();
	r = pg_wp_set(s, addr, len, on, all);
	install_leave();
	return r;
}

/* UFFD_FEATURE_WP_ASYNC: the page of addr, written, loses its protection
 * at once.  Past the mapping budget the whole protected run around it does
 * (which needs no new mapping): more pages then read as written than were,
 * never fewer.  async-signal-safe */
SIG_SAFE int pg_wp_async(const struct pg_span *s, uintptr_t addr)
{
	_Atomic uint64_t *wp = store_wp_bits(s->store);
	unsigned sh = span_shift(s);
	uint64_t pg = page_of(s, addr), first = s->off >> sh, last = page_of(s, s->end);
	uint64_t lo = pg, hi = pg + 1;
	size_t ps = (size_t)1 << sh;
	uintptr_t page = addr & ~(uintptr_t)(ps - 1);
	int r;

	install_enter();
	r = pg_wp_set(s, page, ps, 0, 0);
	if (r == -ENOMEM) {
		int took = wp_lock();
		while (lo > first && pg_bit_get(wp, lo - 1))
			lo--;
		while (hi < last && pg_bit_get(wp, hi))
			hi++;
		r = wp_set_locked(s, page - (pg - lo) * ps, (hi - lo) * ps, 0);
		wp_unlock(took);
	}
	install_leave();
	return r;
}

static long install(const struct pg_span *v, uintptr_t dst, const void *src, int zeros, size_t len,
		    int populate);
static long install_file(const struct pg_span *v, uintptr_t dst, const void *src, int zeros,
			 size_t len, int populate);

/* Install [dst, dst+len) of one area: bytes installed, or -errno if none.
 * async-signal-safe */
long pg_install(const struct pg_span *v, uintptr_t dst, const void *src, int zeros,
		size_t len, int populate)
{
	long r;

	install_enter();
	if (store_huge_shift(v->store))
		r = install_huge(v, dst, src, zeros, len, (unsigned)store_huge_shift(v->store));
	else if (store_kind(v->store) == STORE_SHMEM_PRIVATE)
		r = install_private(v, dst, src, zeros, len, populate);
	else if (store_is_file(v->store))
		r = install_file(v, dst, src, zeros, len, populate);
	else
		r = install(v, dst, src, zeros, len, populate);
	/* What was installed replaces its poison (a thread that faulted on it
	 * before it appeared got SIGBUS, as before the kernel's COPY). */
	if (r > 0) {
		pg_poison_clear(v, dst, (size_t)r);
		bits_put(store_map_bits(v->store), page_of(v, dst), (size_t)r >> span_shift(v), 1);
	}
	install_leave();
	return r;
}

/* ---- UFFDIO_MOVE ----
 * A source being moved is read-only for the moment of the move; a write to
 * it faults, and the fault path waits for the move to end (pg_moving), so
 * that no write lands between the copy and the source's removal, and the
 * write happens after, to the missing (or zero) page, as after the
 * kernel's move. */
#define MOVING_MAX 16
static _Atomic uintptr_t g_mv_start[MOVING_MAX], g_mv_end[MOVING_MAX];
static _Atomic int g_mv_used;

/* A slot for [s, e): its index.  (Claimed by end: 0 free, 1 being set.)
 * async-signal-safe */
SIG_SAFE static int moving_add(uintptr_t s, uintptr_t e)
{
	for (;;) {
		for (int i = 0; i < MOVING_MAX; i++) {
			uintptr_t free_ = 0;
			if (atomic_compare_exchange_strong(&g_mv_end[i], &free_, 1)) {
				atomic_fetch_add(&g_mv_used, 1);
				atomic_store(&g_mv_start[i], s);
				atomic_store(&g_mv_end[i], e);
				return i;
			}
		}
		sched_yield();		/* MOVING_MAX moves at once: wait */
	}
}

static _Atomic uint32_t g_mv_gen;

SIG_SAFE static void moving_del(int i)
{
	atomic_store(&g_mv_end[i], 0);
	atomic_fetch_add(&g_mv_gen, 1);
	atomic_fetch_sub(&g_mv_used, 1);
}

/* async-signal-safe */
SIG_SAFE uint32_t pg_move_gen(void)
{
	return atomic_load(&g_mv_gen);
}

/* async-signal-safe */
SIG_SAFE bool pg_moving(uintptr_t addr)
{
	if (!atomic_load(&g_mv_used))
		return false;
	for (int i = 0; i < MOVING_MAX; i++) {
		uintptr_t e = atomic_load(&g_mv_end[i]);
		if (e > 1 && addr < e && addr >= atomic_load(&g_mv_start[i]))
			return true;
	}
	return false;
}

/* async-signal-safe */
SIG_SAFE long pg_move(const struct pg_span *d, uintptr_t dst, uintptr_t src, size_t len, int src_prot,
		      const struct pg_span *s)
{
	int slot;
	long r;

	install_enter();	/* (a fork waits for the move) */
	slot = moving_add(src, src + len);
	if (sys_mprotect((void *)src, len, src_prot & ~PROT_WRITE) < 0) {
		r = -errno;
		goto out;
	}
	r = install(d, dst, (const void *)src, 0, len, 0);
	if (r > 0) {
		pg_poison_clear(d, dst, (size_t)r);
		if (!s) {
			/* Private memory: an empty entry, a zero page if read. */
			sys_madvise((void *)src, (size_t)r, MADV_DONTNEED);
		} else {
			/* An area of ours: missing (faulting, if registered for
			 * MISSING), not protected. */
			uint64_t pg = (s->off + (src - s->start)) >> caps.page_shift;
			if (s->armed && caps.guard_markers)
				sys_madvise((void *)src, (size_t)r, MADV_GUARD_INSTALL);
			sys_fallocate(store_fd(s->store), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)(s->off + (src - s->start)), (off_t)r);
			bits_put(store_bits(s->store), pg, (size_t)r >> caps.page_shift, 0);
			bits_put(store_wp_bits(s->store), pg, (size_t)r >> caps.page_shift, 0);
			bits_put(store_zero_bits(s->store), pg, (size_t)r >> caps.page_shift, 0);
		}
	}
	{
		/* (protection mode: a missing page of an armed area is PROT_NONE) */
		size_t moved = r > 0 ? (size_t)r : 0;
		if (moved)
			sys_mprotect((void *)src, moved,
				     s && s->armed && !caps.guard_markers ? PROT_NONE : src_prot);
		if (moved < len)
			sys_mprotect((void *)(src + moved), len - moved, src_prot);
		if (s && moved < len)
			pg_wp_reapply(s);	/* what stays protected */
	}
out:
	moving_del(slot);
	install_leave();
	return r;
}

static long install(const struct pg_span *v, uintptr_t dst, const void *src, int zeros,
		    size_t len, int populate)
{
	_Atomic uint64_t *bits = store_bits(v->store);
	int fd = store_fd(v->store);
	size_t ps = caps.page_size, npages = len >> caps.page_shift, done = 0;
	uint64_t pg0 = (v->off + (dst - v->start)) >> caps.page_shift;
	long err = -EEXIST;

	while (done < npages) {
		size_t run = 0, full;
		uint64_t pg = pg0 + done;
		int r;

		/* (ZEROPAGE refuses a write-protected missing page, as the
		 * kernel refuses its marker: WP_UNPOPULATED) */
		while (done + run < npages && !(zeros && pg_bit_get(store_wp_bits(v->store), pg + run)) &&
		       pg_bit_claim(bits, pg + run))
			run++;
		if (run == 0) {
			/* Present.  The kernel reads the source before it looks
			 * at the destination: an unreadable source is EFAULT. */
			if (!zeros && !src_readable((const char *)((uintptr_t)src + done * ps), ps))
				err = -EFAULT;
			break;
		}
		full = fill(fd, (const char *)((uintptr_t)src + done * ps), zeros, run * ps,
			    pg * ps) / ps;
		if (full < run) {
			unclaim(v->store, pg, full, run);	/* unreadable source */
			err = -EFAULT;
		}
		bits_put(store_zero_bits(v->store), pg, full, zeros);
		/* COPY's MODE_WP: the pages are read-only before they appear;
		 * without it, a protected missing page (WP_UNPOPULATED) is not
		 * protected once installed, as the kernel's COPY replaces its
		 * marker. */
		if (full && (v->wp_install || wp_any(v->store, pg, full)) &&
		    (r = pg_wp_set(v, dst + done * ps, full * ps, v->wp_install, 1)) < 0) {
			unclaim(v->store, pg, 0, full);
			err = r;
			break;
		}
		if (full && (r = reveal(v, dst + done * ps, full * ps, populate)) < 0) {
			if (v->wp_install)
				pg_wp_set(v, dst + done * ps, full * ps, 0, 0);
			/* Out of mappings (protection mode): hide the run again
			 * (merging back never needs a new mapping) and forget it. */
			sys_mprotect((void *)(dst + done * ps), full * ps, PROT_NONE);
			unclaim(v->store, pg, 0, full);
			err = r;
			break;
		}
		done += full;
		if (full < run)
			break;
	}
	STATS_ADD(pages_installed, done);
	return done ? (long)(done * ps) : err;
}

/*
 * Install into a file store (shared memory): the pages go into the
 * program's file, where every mapping of it, in every process, finds them.
 * A page the file already has is EEXIST, whoever made it.  Our bit claims a
 * page against the other threads of this process; each page is written by
 * one pwrite into a page the file did not have, which a reader through any
 * mapping sees whole (its fault waits for the new page's lock).  Then the
 * markers of this mapping go; other mappings open theirs on their next
 * access (pg_fault_state).  async-signal-safe
 */
static long install_file(const struct pg_span *v, uintptr_t dst, const void *src, int zeros,
			 size_t len, int populate)
{
	_Atomic uint64_t *bits = store_bits(v->store);
	int fd = store_fd(v->store);
	size_t ps = caps.page_size, npages = len >> caps.page_shift, done = 0;
	size_t cap = store_bits_pages(v->store);
	uint64_t pg0 = (v->off + (dst - v->start)) >> caps.page_shift;
	long err = -EEXIST;

	if (pg0 + npages > cap)
		return -ENOMEM;
	while (done < npages) {
		size_t run = 0, full;
		uint64_t pg = pg0 + done;
		long have;
		int r;

		while (done + run < npages && run < 512) {
			if (!pg_bit_claim(bits, pg + run)) {
				/* Claimed by another install of ours, or known
				 * present; a stale bit (a hole punched elsewhere)
				 * is taken over when no other install runs. */
				if (atomic_load(&g_inflight) > 1 || file_present(fd, pg + run, 1) != 0)
					break;
			}
			run++;
		}
		/* The file decides: stop before its first present page. */
		while (run && (have = file_present(fd, pg, run)) != 0) {
			size_t keep = run / 2;
			if (have < 0) {
				keep = 0;
				err = -EFAULT;
			}
			for (size_t i = keep; i < run; i++)
				if (have < 0 || file_present(fd, pg + i, 1) == 0)
					pg_bit_clear(bits, pg + i);
			run = keep;
		}
		if (run == 0) {
			if (err == -EEXIST && !zeros &&
			    !src_readable((const char *)((uintptr_t)src + done * ps), ps))
				err = -EFAULT;
			break;
		}
		full = fill(fd, (const char *)((uintptr_t)src + done * ps), zeros, run * ps,
			    pg * ps) / ps;
		if (full < run) {
			unclaim(v->store, pg, full, run);	/* unreadable source */
			err = -EFAULT;
		}
		/* Write protection, as install() does it: MODE_WP pages are
		 * read-only before their markers go; without it a protected
		 * page (the kernel's marker) is installed writable. */
		if (full && (v->wp_install || wp_any(v->store, pg, full)) &&
		    (r = pg_wp_set(v, dst + done * ps, full * ps, v->wp_install, 1)) < 0) {
			unclaim(v->store, pg, 0, full);	/* out of mappings */
			err = r;
			break;
		}
		if (full) {
			pg_disarm(dst + done * ps, full * ps, v->prot);
			if (populate)
				pg_populate(v->prot, dst + done * ps, full * ps);
		}
		done += full;
		if (full < run)
			break;
	}
	STATS_ADD(pages_installed, done);
	return done ? (long)(done * ps) : err;
}

/* ---------------------------------------------------------------------- */
/* hugetlb: no markers (MADV_GUARD_INSTALL is EINVAL there), so a missing  */
/* huge page is PROT_NONE, and every run of installed pages between       */
/* missing ones is a mapping of its own (at most one per huge page),      */
/* counted against the same budget as the protection mode.  The bits are  */
/* per huge page.                                                          */
/* ---------------------------------------------------------------------- */

/* The pages known present (bits set) among the n huge pages from pg0. */
SIG_SAFE static long bits_count(_Atomic uint64_t *bits, uint64_t pg0, size_t n)
{
	long c = 0;

	for (size_t i = 0; i < n; i++)
		c += bit_get(bits, pg0 + i);
	return c;
}

/*
 * Does the shared hugetlb file fd have huge page hp?  hugetlbfs has no
 * cachestat, no SEEK_DATA, and mincore and pagemap tell a mapping's page
 * tables, not the file.  Two ways, the cheap one first:
 *  - the file's block count (st_blocks) says how many pages it holds: if
 *    that is the number of pages our bits know (not counting hp, whose bit
 *    is clear or `claimed` by the caller), hp is absent;
 *  - otherwise a private read-only mapping of the page is populated: a page
 *    the file has is mapped as a file page (pagemap's "file" bit), an absent
 *    one gets a private zero page that goes with the mapping.  The file is
 *    never changed.
 * 1 present, 0 absent.  async-signal-safe
 */
SIG_SAFE static int huge_file_has(const struct pg_span *v, uint64_t hp, unsigned shift, int claimed)
{
	int fd = store_file_fd(v->store), pm, r = 0;
	int priv = store_kind(v->store) == STORE_HUGE_PRIVATE;
	size_t hs = (size_t)1 << shift;
	struct stat st;
	uint64_t ent = 0, npages;

	memset(&st, 0, sizeof st);
	void *m;

	/* (private: our bits are the mapping's private copies, and hp counts
	 * from the file offset of the store's start) */
	if (priv)
		hp += store_file_off(v->store) >> shift;
	if (fd < 0 || sys_call4(SYS_fstat, fd, (long)&st, 0, 0) < 0)
		return 0;
	npages = ((uint64_t)st.st_size + hs - 1) >> shift;
	if (hp >= npages)
		return 0;
	/* Our bits know every page the file has: then hp (whose bit is
	 * clear, or set by our own claim) is absent.  A claim in flight
	 * elsewhere makes the counts differ: then the probe decides. */
	if (!priv && npages <= store_bits_pages(v->store) &&
	    (uint64_t)st.st_blocks * 512 ==
		    (uint64_t)(bits_count(store_bits(v->store), 0, npages) - claimed) << shift)
		return 0;
	m = sys_mmap(NULL, hs, PROT_READ, MAP_PRIVATE | MAP_NORESERVE, fd, (off_t)(hp << shift));
	if (m == MAP_FAILED)
		return 0;
	if (sys_madvise(m, hs, MADV_POPULATE_READ) == 0) {
		pm = sys_open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC, 0);
		if (pm >= 0) {
			if (sys_pread(pm, &ent, sizeof ent, (off_t)(((uintptr_t)m >> caps.page_shift) * 8)) ==
			    (ssize_t)sizeof ent)
				r = (ent >> 63) & 1 && (ent >> 61) & 1;	/* present, file page */
			sys_call1(SYS_close, pm);	/* (raw: opened raw, in a handler) */
		}
	}
	sys_munmap(m, hs);
	return r;
}

SIG_SAFE static uint64_t huge_index(const struct pg_span *v, uintptr_t addr, unsigned shift)
{
	return (v->off + (addr - v->start)) >> shift;
}

int pg_huge_arm(uintptr_t addr, size_t len, _Atomic uint64_t *bits, uint64_t pg0, unsigned shift,
		int prot)
{
	size_t n = len >> shift;
	long runs = 0;
	size_t i = 0, rl;

	budget_init();
	for (int kind = 0; kind < 2; kind++, i = 0)
		while (pg_next_run(bits, pg0, n, &i, kind, &rl)) {
			runs++;
			i += rl;
		}
	if (budget_take_if(runs > 1 ? runs - 1 : 0, 1) < 0)
		return -ENOMEM;
	if (sys_mprotect((void *)addr, len, PROT_NONE) < 0)
		return -errno;
	return each_run_shift(addr, n, bits, pg0, 1, 0, prot, shift);
}

long pg_huge_extra_maps(_Atomic uint64_t *bits, uint64_t pg0, size_t n)
{
	size_t i = 0, rl;
	long runs = 0;

	for (int kind = 0; kind < 2; kind++, i = 0)
		while (pg_next_run(bits, pg0, n, &i, kind, &rl)) {
			runs++;
			i += rl;
		}
	return runs > 1 ? runs - 1 : 0;
}

int pg_huge_protect_present(uintptr_t addr, size_t len, _Atomic uint64_t *bits, uint64_t pg0,
			    unsigned shift, int prot)
{
	return each_run_shift(addr, len >> shift, bits, pg0, 1, 0, prot, shift);
}

/* Open huge pages [addr, addr+len) of v (present now) with its protection,
 * within the mapping budget.  a-s-s */
SIG_SAFE static int huge_reveal(const struct pg_span *v, uintptr_t addr, size_t len, unsigned shift)
{
	/* (MINOR: the pages not mapped here are the PROT_NONE ones) */
	_Atomic uint64_t *bits = v->minor ? store_map_bits(v->store) : store_bits(v->store);
	uint64_t hp = huge_index(v, addr, shift);
	long d = 0;
	int took, r;

	if (addr > v->start)
		d += bit_get(bits, hp - 1) ? -1 : 1;
	if (addr + len < v->end)
		d += bit_get(bits, hp + (len >> shift)) ? -1 : 1;
	if (budget_take_if(d, 1) < 0)
		return -ENOMEM;
	/* (a write-protected huge page opens read-only: one at a time here;
	 * its bit read and the protection set with no WRITEPROTECT between,
	 * which could leave it read-only with its bit clear) */
	took = store_has_wp(v->store) ? wp_lock() : -1;
	r = sys_mprotect((void *)addr, len,
			 len == ((size_t)1 << shift) && bit_get(store_wp_bits(v->store), hp) ?
			 v->prot & ~PROT_WRITE : v->prot) < 0 ? -errno : 0;
	if (took >= 0)
		wp_unlock(took);
	if (r < 0)
		budget_take_if(-d, 1);
	return r;
}

SIG_SAFE static enum pg_fault_state huge_fault_state(const struct pg_span *v, uintptr_t addr,
						     unsigned shift)
{
	_Atomic uint64_t *bits = store_bits(v->store);
	uint64_t hp = huge_index(v, addr, shift);
	uintptr_t page = addr & ~(((uintptr_t)1 << shift) - 1);
	int shared = store_kind(v->store) == STORE_HUGE_SHARED;

	if (hp >= store_bits_pages(v->store))
		return PG_MISSING;
	if (v->minor) {
		_Atomic uint64_t *mp = store_map_bits(v->store);
		if (bit_get(mp, hp)) {
			if (atomic_load(&g_inflight))
				return PG_INSTALLING;
			return huge_reveal(v, page, (size_t)1 << shift, shift) < 0 ? PG_INSTALLING : PG_OPENED;
		}
		if (bit_get(bits, hp) || huge_file_has(v, hp, shift, 0))
			return atomic_load(&g_inflight) ? PG_INSTALLING : PG_MINOR;
		if (!v->armed) {
			if (!pg_bit_claim(mp, hp))
				return PG_INSTALLING;
			if (huge_reveal(v, page, (size_t)1 << shift, shift) < 0) {
				pg_bit_clear(mp, hp);
				return PG_INSTALLING;
			}
			return PG_OPENED;
		}
		return PG_MISSING;
	}
	if (bit_get(bits, hp)) {
		if (atomic_load(&g_inflight))
			return PG_INSTALLING;
		/* Present, installed through another mapping of the file:
		 * open it here too. */
		if (shared)
			return huge_reveal(v, page, (size_t)1 << shift, shift) < 0 ? PG_INSTALLING : PG_OPENED;
		return PG_INSTALLING;
	}
	if (shared && huge_file_has(v, hp, shift, 0)) {
		/* Made elsewhere, or by an install of ours that claimed it
		 * meanwhile and is still filling it: only the first may open. */
		if (!pg_bit_claim(bits, hp))
			return PG_INSTALLING;
		if (huge_reveal(v, page, (size_t)1 << shift, shift) < 0) {
			pg_bit_clear(bits, hp);
			return PG_INSTALLING;
		}
		return PG_OPENED;
	}
	return PG_MISSING;
}

/* Install whole huge pages into a hugetlb area.  Private: written while the
 * page is PROT_NONE, through /proc/self/mem (the store's descriptor), which
 * makes the private copy; nobody sees it before it opens.  Shared: the file
 * gets the page (fallocate), then the bytes through a mapping of ours, while
 * the program's mappings here keep it PROT_NONE.  a-s-s */
SIG_SAFE static long install_huge(const struct pg_span *v, uintptr_t dst, const void *src, int zeros,
				  size_t len, unsigned shift)
{
	_Atomic uint64_t *bits = store_bits(v->store);
	size_t hs = (size_t)1 << shift, n = len >> shift, done = 0;
	int fd = store_fd(v->store), shared = store_kind(v->store) == STORE_HUGE_SHARED;
	long err = -EEXIST;
	/* A WRITEPROTECT meanwhile would open the page being written (its bit
	 * is claimed: present), or clear the protection the reveal then puts
	 * back from the bit it read: changes of protection wait for us. */
	int took = store_has_wp(v->store) ? wp_lock() : -1;

	(void)zeros;		/* (ZEROPAGE is EINVAL on hugetlb, before this) */
	for (; done < n; done++) {
		uint64_t hp = huge_index(v, dst + done * hs, shift);
		uintptr_t at = dst + done * hs;
		const char *from = (const char *)((uintptr_t)src + done * hs);
		int ok;

		if (hp >= store_bits_pages(v->store)) {
			err = -ENOMEM;
			break;
		}
		if (!pg_bit_claim(bits, hp)) {
			if (!src_readable(from, hs))
				err = -EFAULT;
			break;
		}
		if (shared) {
			off_t off = (off_t)(hp << shift);
			void *m;
			if (huge_file_has(v, hp, shift, 1)) {
				/* Made by another mapping: present (bit stays). */
				if (!src_readable(from, hs))
					err = -EFAULT;
				break;
			}
			if (sys_fallocate(fd, FALLOC_FL_KEEP_SIZE, off, (off_t)hs) < 0) {
				pg_bit_clear(bits, hp);
				err = -ENOMEM;
				break;
			}
			m = sys_mmap(NULL, hs, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
			ok = m != MAP_FAILED && usercopy_in(m, from, hs) == 0;
			if (m != MAP_FAILED)
				sys_munmap(m, hs);
			if (!ok) {
				sys_fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, (off_t)hs);
				pg_bit_clear(bits, hp);
				err = m == MAP_FAILED ? -ENOMEM : -EFAULT;
				break;
			}
		} else {
			ssize_t w = sys_pwrite(fd, from, hs, (off_t)at);
			ok = w == (ssize_t)hs;
			if (!ok) {
				/* (/proc/self/mem says EIO when no huge page is
				 * left for the private copy: the kernel's COPY
				 * says ENOMEM) */
				int e = w < 0 && (errno == EIO || errno == ENOMEM) ? ENOMEM : EFAULT;
				sys_madvise((void *)at, hs, MADV_DONTNEED);	/* a partial copy */
				pg_bit_clear(bits, hp);
				err = -e;
				break;
			}
		}
		/* COPY_MODE_WP: the page opens protected; without it, a
		 * protected missing page (the kernel's marker) opens writable. */
		bits_put(store_wp_bits(v->store), hp, 1, v->wp_install);
		/* (The budget counts from the neighbours' bits, not this one's.) */
		if ((ok = huge_reveal(v, at, hs, shift)) < 0) {
			if (!shared) {
				sys_madvise((void *)at, hs, MADV_DONTNEED);
				pg_bit_clear(bits, hp);
			}	/* (shared: in the file now, whatever) */
			err = ok;
			break;
		}
	}
	if (took >= 0)
		wp_unlock(took);
	STATS_ADD(pages_installed, done << (shift - caps.page_shift));
	return done ? (long)(done * hs) : err;
}

/* ---------------------------------------------------------------------- */
/* MAP_PRIVATE mappings of shared memory files: a page is missing when the  */
/* mapping has no private copy of it and the file does not have it.  Pages  */
/* with neither carry a guard marker (installing one would drop a private   */
/* copy: never on a page whose bit is set).                                 */
/* ---------------------------------------------------------------------- */

/* Open page pg (at page) of a private mapping at its fault: its bit
 * claimed, then its marker removed, unless a POISON got there first (it
 * sets the poison, then looks at this bit: see pg_poison).  a-s-s */
SIG_SAFE static enum pg_fault_state private_open(const struct pg_span *v, uint64_t pg, uintptr_t page)
{
	_Atomic uint64_t *bits = store_bits(v->store);

	if (!pg_bit_claim(bits, pg))
		return PG_INSTALLING;
	if (bit_get(store_poison_bits(v->store), pg)) {
		pg_bit_clear(bits, pg);
		return PG_INSTALLING;	/* (the retry raises SIGBUS) */
	}
	sys_madvise((void *)page, caps.page_size, MADV_GUARD_REMOVE);
	return PG_OPENED;
}

SIG_SAFE static enum pg_fault_state private_fault_state(const struct pg_span *v, uintptr_t addr)
{
	uint64_t pg = (v->off + (addr - v->start)) >> caps.page_shift;
	_Atomic uint64_t *bits = store_bits(v->store);
	uintptr_t page = addr & ~(uintptr_t)(caps.page_size - 1);

	if (pg >= store_bits_pages(v->store))
		return PG_MISSING;
	if (bit_get(bits, pg))
		return atomic_load(&g_inflight) ? PG_INSTALLING : PG_OPENED;
	if (file_present(store_fd(v->store), (store_file_off(v->store) >> caps.page_shift) + pg, 1) > 0) {
		/* The file has it: a minor fault where registered for MINOR
		 * (CONTINUE opens it; one of ours may be opening it: wait);
		 * otherwise this mapping reads it (copy on write). */
		if (v->minor)
			return atomic_load(&g_inflight) ? PG_INSTALLING : PG_MINOR;
		return private_open(v, pg, page);
	}
	if (v->minor && !v->armed)	/* MINOR alone: a page the file lacks is made silently */
		return private_open(v, pg, page);
	return PG_MISSING;
}

/* COPY and ZEROPAGE into a private mapping of a shared memory file: a
 * private page, whatever the file has (as the kernel's).  The run is made
 * inaccessible, its markers removed, the bytes written through
 * /proc/self/mem (which makes the private copies), then it opens: nobody
 * sees a page half written.  (Writing there makes the file allocate the
 * page it would copy from: a zero page in the file's cache where it had
 * none.)  async-signal-safe */
SIG_SAFE static long install_private(const struct pg_span *v, uintptr_t dst, const void *src, int zeros,
				     size_t len, int populate)
{
	_Atomic uint64_t *bits = store_bits(v->store);
	size_t ps = caps.page_size, npages = len >> caps.page_shift, done = 0;
	uint64_t pg0 = (v->off + (dst - v->start)) >> caps.page_shift;
	long err = -EEXIST;
	/* (Opened for this COPY: a descriptor kept for good would have to
	 * follow forks and the program's dup2.) */
	int mem, took;

	if (pg0 + npages > store_bits_pages(v->store))
		return -ENOMEM;
	mem = sys_open("/proc/self/mem", O_RDWR | O_CLOEXEC, 0);
	if (mem < 0)
		return -ENOMEM;
	/* (a WRITEPROTECT meanwhile would open the run being written, or
	 * undo the protection set below: changes of protection wait) */
	took = store_has_wp(v->store) ? wp_lock() : -1;
	while (done < npages) {
		size_t run = 0, full;
		uintptr_t at = dst + done * ps;

		/* (ZEROPAGE refuses a protected missing page, as the kernel's
		 * anonymous zero page path refuses its marker) */
		while (done + run < npages && run < 512 &&
		       !(zeros && pg_bit_get(store_wp_bits(v->store), pg0 + done + run)) &&
		       pg_bit_claim(bits, pg0 + done + run))
			run++;
		if (run == 0) {
			if (!zeros && !src_readable((const char *)((uintptr_t)src + done * ps), ps))
				err = -EFAULT;
			break;
		}
		sys_mprotect((void *)at, run * ps, PROT_NONE);
		sys_madvise((void *)at, run * ps, MADV_GUARD_REMOVE);
		full = fill(mem, (const char *)((uintptr_t)src + done * ps), zeros, run * ps, (uint64_t)at) / ps;
		if (full < run) {
			/* An unreadable source: the pages not written whole go
			 * back to missing (no private copy, a marker). */
			uintptr_t bad = at + full * ps;
			sys_madvise((void *)bad, (run - full) * ps, MADV_DONTNEED);
			sys_madvise((void *)bad, (run - full) * ps, MADV_GUARD_INSTALL);
			for (size_t i = full; i < run; i++)
				pg_bit_clear(bits, pg0 + done + i);
			err = -EFAULT;
		}
		/* COPY_MODE_WP: the pages open read-only, protected; without
		 * it, a protected missing page (the marker) opens writable. */
		bits_put(store_wp_bits(v->store), pg0 + done, full, v->wp_install);
		sys_mprotect((void *)at, full * ps, v->wp_install ? v->prot & ~PROT_WRITE : v->prot);
		if (full < run)
			sys_mprotect((void *)(at + full * ps), (run - full) * ps,
				     wp_any(v->store, pg0 + done + full, run - full) ? v->prot & ~PROT_WRITE : v->prot);
		if (full && populate)
			pg_populate(v->wp_install ? v->prot & ~PROT_WRITE : v->prot, at, full * ps);
		done += full;
		if (full < run)
			break;
	}
	if (took >= 0)
		wp_unlock(took);
	sys_call1(SYS_close, mem);	/* (raw: opened raw, in a handler) */
	STATS_ADD(pages_installed, done);
	return done ? (long)(done * ps) : err;
}
