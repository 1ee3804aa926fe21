/* SPDX-License-Identifier: MIT */
/* UFFD_FEATURE_WP_ASYNC and the PAGEMAP_SCAN ioctl of /proc/self/pagemap,
 * on private anonymous memory: a write to a protected page goes on at once,
 * with no message, and the page reads as written; the categories of
 * registered, unregistered and MISSING-registered pages, as the kernel
 * reports them (regions merged across mappings; PFNZERO after ZEROPAGE); PM_SCAN_WP_MATCHING
 * re-arms what it reports; PM_SCAN_CHECK_WPASYNC's EPERM; max_pages,
 * vec_len and walk_end; the argument errors; MISSING faults stay
 * synchronous on an asynchronous uffd; writers on other threads while the
 * scans re-arm lose no write. */
#include "t.h"
#include <stdatomic.h>
#include <sys/ioctl.h>

/* Every category but SOFT_DIRTY (which depends on the history of the
 * mapping). */
#define ALL (PAGE_IS_WPALLOWED | PAGE_IS_WRITTEN | PAGE_IS_FILE | PAGE_IS_PRESENT | \
	     PAGE_IS_SWAPPED | PAGE_IS_PFNZERO | PAGE_IS_HUGE | PAGE_IS_GUARD)
#define WA PAGE_IS_WPALLOWED
#define WR PAGE_IS_WRITTEN
#define PR PAGE_IS_PRESENT
#define SW PAGE_IS_SWAPPED

static size_t ps;
static int pm;
static char *base;	/* page numbers in expectations count from here */

struct scan {
	uint64_t flags, mask, anyof, inverted, ret, max_pages;
	size_t vec_len;
};

/* Scan pages [from, to) of base; expect "[a,b)cats ..." (page numbers,
 * categories in hex) and walk_end at page `we`. */
#define SCAN(from, to, sc, want, we) scan_(__LINE__, (from), (to), (sc), (want), (we))
static void scan_(int line, long from, long to, struct scan sc, const char *want, long we)
{
	struct page_region v[32] = { { 0, 0, 0 } };
	struct pm_scan_arg a = {
		.size = sizeof a, .flags = sc.flags, .start = (uintptr_t)(base + from * ps),
		.end = (uintptr_t)(base + to * ps), .vec = (uintptr_t)v,
		.vec_len = sc.vec_len ? sc.vec_len : 32, .max_pages = sc.max_pages,
		.category_inverted = sc.inverted, .category_mask = sc.mask,
		.category_anyof_mask = sc.anyof, .return_mask = sc.ret ? sc.ret : ALL,
	};
	char got[512] = "";
	size_t o = 0;
	int n = uf_ioctl(pm, PAGEMAP_SCAN, &a);

	t_count();
	if (n < 0) {
		t_fail(__FILE__, line, "PAGEMAP_SCAN: %s", t_errname(errno));
		return;
	}
	for (int i = 0; i < n && o < sizeof got - 40; i++)
		o += (size_t)snprintf(got + o, sizeof got - o, "%s[%ld,%ld)%llx", i ? " " : "",
				      (long)((v[i].start - (uintptr_t)base) / ps),
				      (long)((v[i].end - (uintptr_t)base) / ps),
				      (unsigned long long)v[i].categories);
	if (strcmp(got, want) != 0)
		t_fail(__FILE__, line, "PAGEMAP_SCAN [%ld,%ld): got \"%s\", want \"%s\"", from, to, got, want);
	t_count();
	if ((long)((a.walk_end - (uintptr_t)base) / ps) != we || (a.walk_end - (uintptr_t)base) % ps)
		t_fail(__FILE__, line, "walk_end: page %ld, want %ld",
		       (long)(((long)a.walk_end - (long)(uintptr_t)base) / (long)ps), we);
}

static int scan_err(long from, long to, uint64_t flags)
{
	struct page_region v[32] = { { 0, 0, 0 } };
	struct pm_scan_arg a = { .size = sizeof a, .flags = flags, .start = (uintptr_t)(base + from * ps),
				 .end = (uintptr_t)(base + to * ps), .vec = (uintptr_t)v, .vec_len = 32,
				 .return_mask = ALL };

	return uf_ioctl(pm, PAGEMAP_SCAN, &a);
}

static void rd(long page)
{
	(void)*(volatile char *)(base + page * ps);
}

/* Plain pages [0,4) written; [4,20) registered for WP on an asynchronous
 * uffd ([4,8) written before, 12 read before, 13 read after); [20,24)
 * plain, never touched. */
static void scans(void)
{
	int fd = t_uffd(UFFD_FEATURE_WP_ASYNC);
	char *p;
	uint64_t ioctls = 0;

	base = t_map(24);
	p = base + 4 * ps;
	for (int i = 0; i < 8; i++)
		base[i * ps] = (char)(1 + i);
	rd(12);
	CHECK_OK(t_register_mode(fd, p, 16 * ps, UFFDIO_REGISTER_MODE_WP, &ioctls));
	CHECK(ioctls & ((uint64_t)1 << _UFFDIO_WRITEPROTECT));
	SCAN(0, 24, (struct scan){ 0 }, "[0,4)a [4,8)b [8,12)3 [12,13)b [13,20)3 [20,24)2", 24);
	rd(13);
	SCAN(0, 24, (struct scan){ 0 }, "[0,4)a [4,8)b [8,12)3 [12,14)b [14,20)3 [20,24)2", 24);

	/* Protected: present pages lose WRITTEN; the others get a marker (a
	 * swap entry to the kernel, WP_UNPOPULATED being implied). */
	CHECK_OK(t_wprotect(fd, p, 16 * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	SCAN(0, 24, (struct scan){ 0 }, "[0,4)a [4,8)9 [8,12)11 [12,14)9 [14,20)11 [20,24)2", 24);

	/* Writes go on with no message; a read changes nothing.  (A page
	 * never populated is left alone: under valgrind a read of it does
	 * not populate it, on either back-end.) */
	rd(13);
	p[0] = 'a';
	p[3 * ps] = 'b';
	p[11 * ps] = 'c';
	T_NO_MSG(fd, 10);
	CHECK_EQ(p[0], 'a');
	CHECK_EQ(p[3 * ps], 'b');
	CHECK_EQ(p[11 * ps], 'c');
	CHECK_EQ(p[ps], 6);
	SCAN(0, 24, (struct scan){ 0 },
	     "[0,4)a [4,5)b [5,7)9 [7,8)b [8,12)11 [12,14)9 [14,15)11 [15,16)b [16,20)11 [20,24)2", 24);
	SCAN(0, 24, ((struct scan){ .mask = WR, .ret = WR }), "[0,5)2 [7,8)2 [15,16)2 [20,24)2", 24);

	/* WP_MATCHING: report and re-arm; a rescan finds nothing. */
	SCAN(4, 20, ((struct scan){ .flags = PM_SCAN_WP_MATCHING, .mask = WR, .ret = WR }),
	     "[4,5)2 [7,8)2 [15,16)2", 20);
	SCAN(4, 20, ((struct scan){ .mask = WR, .ret = WR }), "", 20);
	p[5 * ps] = 'd';
	SCAN(4, 20, ((struct scan){ .mask = WR, .ret = WR }), "[9,10)2", 20);

	/* CHECK_WPASYNC: EPERM at a mapping not registered so; WP_MATCHING
	 * alone passes over it. */
	CHECK_ERRNO(scan_err(0, 24, PM_SCAN_CHECK_WPASYNC), EPERM);
	SCAN(4, 20, ((struct scan){ .flags = PM_SCAN_CHECK_WPASYNC }),
	     "[4,8)9 [8,9)11 [9,10)b [10,12)11 [12,14)9 [14,15)11 [15,16)9 [16,20)11", 20);
	SCAN(0, 24, ((struct scan){ .flags = PM_SCAN_WP_MATCHING }),
	     "[4,8)9 [8,9)11 [9,10)b [10,12)11 [12,14)9 [14,15)11 [15,16)9 [16,20)11", 24);
	SCAN(4, 20, ((struct scan){ .mask = WR }), "", 20);

	/* MADV_DONTNEED drops a page and its protection. */
	CHECK_OK(madvise(p + 2 * ps, ps, MADV_DONTNEED));
	SCAN(0, 24, (struct scan){ 0 }, "[0,4)a [4,6)9 [6,7)3 [7,8)9 [8,9)11 [9,10)9 [10,12)11 [12,14)9 [14,15)11 [15,16)9 [16,20)11 [20,24)2", 24);
	CHECK_EQ(p[2 * ps], 0);

	/* A page written since is WRITTEN; WRITEPROTECT off makes all so. */
	CHECK_OK(t_wprotect(fd, p, 16 * ps, 0));
	SCAN(4, 20, ((struct scan){ .mask = WR, .ret = WR }), "[4,20)2", 20);
	T_NO_MSG(fd, 10);
	CHECK_OK(t_unregister(fd, p, 16 * ps));
	SCAN(0, 24, (struct scan){ 0 }, "[0,8)a [8,9)2 [9,10)a [10,12)2 [12,14)a [14,15)2 [15,16)a [16,24)2", 24);
	uf_close(fd);
	CHECK_OK(munmap(base, 24 * ps));
}

/* A MISSING-registered area between plain pages, on a synchronous uffd:
 * its pages read as the kernel's (a missing one is WRITTEN, not present),
 * merged with the plain neighbours'; max_pages, vec_len and walk_end. */
static void missing_area(void)
{
	int fd = t_uffd(0);
	char buf[4096];

	base = t_map(16);
	for (int i = 0; i < 16; i += 2)
		base[i * ps] = 3;
	CHECK_OK(t_register(fd, base + 4 * ps, 8 * ps));
	memset(buf, 7, sizeof buf);
	CHECK_OK(t_copy(fd, base + 7 * ps, buf, ps, 0, NULL));
	SCAN(0, 16, (struct scan){ 0 },
	     "[0,1)a [1,2)2 [2,3)a [3,4)2 [4,5)a [5,6)2 [6,9)a [9,10)2 [10,11)a [11,12)2 "
	     "[12,13)a [13,14)2 [14,15)a [15,16)2", 16);
	SCAN(0, 16, ((struct scan){ .mask = PR }), "[0,1)a [2,3)a [4,5)a [6,9)a [10,11)a [12,13)a [14,15)a", 16);
	SCAN(0, 16, ((struct scan){ .mask = PR, .inverted = PR, .ret = WR }),
	     "[1,2)2 [3,4)2 [5,6)2 [9,10)2 [11,12)2 [13,14)2 [15,16)2", 16);
	SCAN(0, 16, ((struct scan){ .anyof = PR | SW, .ret = PR }), "[0,1)8 [2,3)8 [4,5)8 [6,9)8 [10,11)8 [12,13)8 [14,15)8", 16);
	/* No uffd with WP_ASYNC here: WP_MATCHING has nothing to do. */
	SCAN(0, 16, ((struct scan){ .flags = PM_SCAN_WP_MATCHING }), "", 16);
	CHECK_ERRNO(scan_err(4, 12, PM_SCAN_CHECK_WPASYNC), EPERM);
	/* Limits: the buffer (walk_end where the next region would start),
	 * max_pages (walk_end after the last page counted, or at the next
	 * interesting page once the count is reached). */
	SCAN(0, 16, ((struct scan){ .vec_len = 2 }), "[0,1)a [1,2)2", 2);
	SCAN(0, 16, ((struct scan){ .mask = PR, .vec_len = 4, .max_pages = 5 }),
	     "[0,1)a [2,3)a [4,5)a [6,8)a", 8);
	SCAN(0, 16, ((struct scan){ .mask = PR, .max_pages = 6 }), "[0,1)a [2,3)a [4,5)a [6,9)a", 10);
	SCAN(5, 16, ((struct scan){ .mask = PR, .max_pages = 3 }), "[6,9)a", 10);
	/* ZEROPAGE places the zero page (PFNZERO) until the first write. */
	CHECK_OK(t_zeropage(fd, base + 9 * ps, ps, 0, NULL));
	SCAN(8, 11, (struct scan){ 0 }, "[8,9)a [9,10)2a [10,11)a", 11);
	SCAN(0, 16, ((struct scan){ .mask = PAGE_IS_PFNZERO, .ret = PAGE_IS_PFNZERO }), "[9,10)20", 16);
	base[9 * ps + 100] = 1;
	SCAN(8, 11, (struct scan){ 0 }, "[8,11)a", 11);
	CHECK_OK(t_unregister(fd, base + 4 * ps, 8 * ps));
	uf_close(fd);
	CHECK_OK(munmap(base, 16 * ps));
}

/* The kernel's argument checks, in its order. */
static void errors(void)
{
	int fd = t_uffd(UFFD_FEATURE_WP_ASYNC);
	struct page_region v[4] = { { 0, 0, 0 } };
	struct pm_scan_arg a;

	base = t_map(8);
	base[0] = 1;
	/* (an area of the emulation's in the process, so that it answers) */
	CHECK_OK(t_register_mode(fd, base, 8 * ps, UFFDIO_REGISTER_MODE_WP, NULL));
#define RESET() (a = (struct pm_scan_arg){ .size = sizeof a, .start = (uintptr_t)base,		\
		  .end = (uintptr_t)(base + 8 * ps), .vec = (uintptr_t)v, .vec_len = 4,		\
		  .return_mask = ALL })
	RESET();
	CHECK_EQ(uf_ioctl(pm, PAGEMAP_SCAN, &a), 2);
	CHECK_EQ(v[0].end, (uintptr_t)(base + ps));
	CHECK_EQ(a.walk_end, (uintptr_t)(base + 8 * ps));
	RESET(); a.size = 88;
	CHECK_ERRNO(uf_ioctl(pm, PAGEMAP_SCAN, &a), EINVAL);
	RESET(); a.flags = 4;
	CHECK_ERRNO(uf_ioctl(pm, PAGEMAP_SCAN, &a), EINVAL);
	RESET(); a.return_mask = 1 << 9;
	CHECK_ERRNO(uf_ioctl(pm, PAGEMAP_SCAN, &a), EINVAL);
	RESET(); a.category_anyof_mask = 1 << 12;
	CHECK_ERRNO(uf_ioctl(pm, PAGEMAP_SCAN, &a), EINVAL);
	RESET(); a.start += 1;
	CHECK_ERRNO(uf_ioctl(pm, PAGEMAP_SCAN, &a), EINVAL);
	RESET(); a.vec = 0;
	CHECK_ERRNO(uf_ioctl(pm, PAGEMAP_SCAN, &a), EINVAL);
	RESET(); a.end = a.start - ps;
	a.walk_end = 1;
	CHECK_ERRNO(uf_ioctl(pm, PAGEMAP_SCAN, &a), EFAULT);
	CHECK_EQ(a.walk_end, 1);		/* (not written back) */
	/* An unwritable vector: EFAULT after the walk, walk_end written. */
	RESET(); a.vec = 8;
	a.walk_end = 1;
	CHECK_ERRNO(uf_ioctl(pm, PAGEMAP_SCAN, &a), EFAULT);
	CHECK_EQ(a.walk_end, (uintptr_t)(base + 8 * ps));
	/* An empty range: nothing, walk_end = end. */
	RESET(); a.end = a.start;
	CHECK_EQ(uf_ioctl(pm, PAGEMAP_SCAN, &a), 0);
	CHECK_EQ(a.walk_end, a.start);
	/* The end is rounded up to a page. */
	RESET(); a.end -= 100;
	CHECK_EQ(uf_ioctl(pm, PAGEMAP_SCAN, &a), 2);
	CHECK_EQ(a.walk_end, (uintptr_t)(base + 8 * ps));
	/* No vector: the count is 0, and WP_MATCHING still protects. */
	RESET(); a.vec = 0; a.vec_len = 0; a.flags = PM_SCAN_WP_MATCHING; a.max_pages = 1;
	CHECK_EQ(uf_ioctl(pm, PAGEMAP_SCAN, &a), 0);
	RESET(); a.category_mask = WR;
	CHECK_EQ(uf_ioctl(pm, PAGEMAP_SCAN, &a), 0);
	CHECK_ERRNO(uf_ioctl(pm, PAGEMAP_SCAN, NULL), EFAULT);
#undef RESET
	uf_close(fd);
	CHECK_OK(munmap(base, 8 * ps));
}

/* MISSING|WP on an asynchronous uffd: a missing page is a MISSING fault,
 * answered by COPY; then writes are tracked with no message. */
static void missing_async(void)
{
	int fd = t_uffd(UFFD_FEATURE_WP_ASYNC);
	struct t_touch t;
	struct uffd_msg m;
	char buf[4096];

	base = t_map(4);
	CHECK_OK(t_register_mode(fd, base, 4 * ps, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
				 NULL));
	CHECK_OK(t_wprotect(fd, base, 4 * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	t_touch_start(&t, base + ps, 1, 0x55);
	if (T_MSG(fd, &m, 2000))
		t_check_fault_(__FILE__, __LINE__, &m, (uintptr_t)(base + ps),
			       UFFD_PAGEFAULT_FLAG_WRITE);
	memset(buf, 9, sizeof buf);
	CHECK_OK(t_copy(fd, base + ps, buf, ps, UFFDIO_COPY_MODE_WP, NULL));
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(base[ps], 0x55);
	CHECK_EQ(base[ps + 1], 9);
	T_NO_MSG(fd, 10);
	SCAN(0, 4, ((struct scan){ .mask = WR, .ret = WR | PR }), "[1,2)a", 4);
	uf_close(fd);
	CHECK_OK(munmap(base, 4 * ps));
}

/* Writers on other threads write pages at random while the main thread
 * scans with WP_MATCHING: every write of a round is reported by one of
 * the round's scans (none lost between a scan and the next). */
#define RACE_PAGES 256
#define WRITERS 3
static _Atomic int race_round, race_stop, race_parked;
static _Atomic long race_writes;	/* writes made, all rounds */
static _Atomic unsigned char race_written[RACE_PAGES];

/* race_round < 0: the writers stop; each says so once per pause. */
static void *writer(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;
	int parked_for = 0;

	while (!atomic_load(&race_stop)) {
		int r = atomic_load(&race_round);

		if (r < 0) {
			if (r != parked_for) {
				parked_for = r;
				atomic_fetch_add(&race_parked, 1);
			}
			sched_yield();
			continue;
		}
		seed = seed * 1103515245u + 12345u;
		unsigned pg = (seed >> 8) % RACE_PAGES;
		/* (relaxed atomic: the writers race on purpose) */
		__atomic_store_n(base + pg * ps + (seed & 63), (char)seed, __ATOMIC_RELAXED);
		atomic_store(&race_written[pg], 1);
		atomic_fetch_add(&race_writes, 1);
	}
	return NULL;
}

/* One scan of the race's region, re-arming: the pages written since the
 * last one go into seen.  The regions found, or -1 (a failed check). */
static int scan_rearm(unsigned char *seen)
{
	static struct page_region v[RACE_PAGES];
	struct pm_scan_arg a = { .size = sizeof a, .flags = PM_SCAN_WP_MATCHING,
				 .start = (uintptr_t)base, .end = (uintptr_t)(base + RACE_PAGES * ps),
				 .vec = (uintptr_t)v, .vec_len = RACE_PAGES,
				 .category_mask = WR, .return_mask = WR };
	int n = uf_ioctl(pm, PAGEMAP_SCAN, &a);

	if (n < 0) {
		t_fail(__FILE__, __LINE__, "PAGEMAP_SCAN: %s", t_errname(errno));
		return -1;
	}
	for (int i = 0; i < n; i++)
		for (uintptr_t p = v[i].start; p < v[i].end; p += ps)
			seen[(p - (uintptr_t)base) / ps] = 1;
	return n;
}

static void race(void)
{
	int fd = t_uffd(UFFD_FEATURE_WP_ASYNC);
	static unsigned char seen[RACE_PAGES];
	pthread_t th[WRITERS];
	int lost = 0, rounds = 0, reported = 0;

	base = t_map(RACE_PAGES);
	CHECK_OK(t_register_mode(fd, base, RACE_PAGES * ps, UFFDIO_REGISTER_MODE_WP, NULL));
	CHECK_OK(t_wprotect(fd, base, RACE_PAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	atomic_store(&race_round, 1);
	for (int i = 0; i < WRITERS; i++)
		th[i] = t_thread(writer, (void *)(uintptr_t)(i + 1));
	for (int64_t end = t_now_ms() + 1500; t_now_ms() < end; rounds++) {
		long w0 = atomic_load(&race_writes);
		int64_t now = t_now_ms(), rend = now + 20, cap = now + 2000;

		memset(seen, 0, sizeof seen);
		/* 20 ms of scans, and on until every writer could write (a
		 * scheduler that runs one thread at a time, as valgrind's,
		 * may not have run them yet; bounded) */
		while ((now = t_now_ms()) < rend ||
		       (atomic_load(&race_writes) - w0 < WRITERS && now < cap)) {
			if (scan_rearm(seen) < 0)
				break;
			sched_yield();
		}
		/* stop the writers, and one last scan */
		atomic_store(&race_parked, 0);
		atomic_store(&race_round, -(rounds + 1));
		while (atomic_load(&race_parked) < WRITERS)
			sched_yield();
		scan_rearm(seen);
		for (int i = 0; i < RACE_PAGES; i++) {
			if (atomic_load(&race_written[i]) && !seen[i])
				lost++;
			reported += seen[i];
			atomic_store(&race_written[i], 0);
		}
		atomic_store(&race_round, rounds + 1);
	}
	atomic_store(&race_stop, 1);
	for (int i = 0; i < WRITERS; i++)
		t_join(th[i]);
	T_NO_MSG(fd, 10);
	CHECK_EQ(lost, 0);
	CHECK(reported > 0);
	T_NOTE("%d rounds, %d pages reported written", rounds, reported);
	uf_close(fd);
	CHECK_OK(munmap(base, RACE_PAGES * ps));
}

int main(void)
{
	uint64_t f;

	t_start(60);
	ps = (size_t)t_ps;
	f = t_features();
	if (!(f & UFFD_FEATURE_WP_ASYNC))
		T_SKIP_TEST("UFFD_FEATURE_WP_ASYNC not advertised (the emulation needs guard markers)");
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		T_SKIP_TEST("/proc/self/pagemap: %s", t_errname(errno));
	{
		struct pm_scan_arg a = { .size = sizeof a };
		if (ioctl(pm, PAGEMAP_SCAN, &a) < 0 && errno == ENOTTY)
			T_SKIP_TEST("this kernel has no PAGEMAP_SCAN (Linux 6.7)");
	}
	scans();
	missing_area();
	errors();
	missing_async();
	race();
	close(pm);
	return t_done();
}
