/* SPDX-License-Identifier: MIT */
/* WRITEPROTECT racing with COPY_MODE_WP and with the clears of WP faults,
 * as the kernel's uffd-stress does: on private and shared hugetlb, a
 * private mapping of shared memory and private anonymous memory, writers
 * add to their own word of random pages of a range registered for
 * MISSING|WP; a handler answers MISSING faults with COPY_MODE_WP (zeros)
 * and WP faults by clearing the page's protection; another thread
 * write-protects the whole range again and again and installs pages ahead
 * of the faults.  No write may be lost
 * (a page opened while it was being installed, then overwritten), and no
 * writer may die of a page left read-only with its protection bit clear. */
#include "t.h"
#include <poll.h>
#include <stdatomic.h>

#define HPS ((size_t)2 << 20)
#define NU 8			/* units (pages, huge pages) */
#define WRITERS 2
#define RUN_MS 1500

enum kind { ANON, SHMEM_PRIVATE, HUGE_PRIVATE, HUGE_SHARED };
static const char *const names[] = { "anon", "shmem-private", "hugetlb-private", "hugetlb-shared" };

struct race {
	int fd;
	char *p;
	size_t unit;
	char *zeros;
	_Atomic int stop, stop_protector, stop_handler;
	long adds[WRITERS];
	_Atomic long copies, wps, protects;
};

struct writer {
	struct race *r;
	int id;
};

static void *writer_fn(void *arg)
{
	struct writer *w = arg;
	struct race *r = w->r;
	unsigned seed = 12345u + (unsigned)w->id;
	long n = 0;

	while (!atomic_load(&r->stop)) {
		size_t u = (size_t)(rand_r(&seed) % NU);
		_Atomic long *word = (_Atomic long *)(r->p + u * r->unit + (size_t)w->id * 64);
		atomic_fetch_add(word, 1);
		n++;
	}
	r->adds[w->id] = n;
	return NULL;
}

/* Write-protects the whole range again and again, and installs pages
 * ahead of the writers' faults (COPY_MODE_WP of zeros, EEXIST where
 * present), as uffd-stress's background threads do. */
static void *protector_fn(void *arg)
{
	struct race *r = arg;
	unsigned seed = 777;

	while (!atomic_load(&r->stop_protector)) {
		size_t u = (size_t)(rand_r(&seed) % NU);
		if (t_wprotect(r->fd, r->p, NU * r->unit, UFFDIO_WRITEPROTECT_MODE_WP) == 0)
			atomic_fetch_add(&r->protects, 1);
		if (t_copy(r->fd, r->p + u * r->unit, r->zeros, r->unit, UFFDIO_COPY_MODE_WP, NULL) == 0)
			atomic_fetch_add(&r->copies, 1);
	}
	return NULL;
}

static void *handler_fn(void *arg)
{
	struct race *r = arg;
	struct pollfd pfd = { .fd = r->fd, .events = POLLIN };

	while (!atomic_load(&r->stop_handler)) {
		struct uffd_msg m;
		char *page;

		if (poll(&pfd, 1, 50) <= 0 || uf_read(r->fd, &m, sizeof m) != (ssize_t)sizeof m)
			continue;
		if (m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		page = (char *)(uintptr_t)(m.arg.pagefault.address & ~(uint64_t)(r->unit - 1));
		if (m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
			/* (ENOENT-free: the range stays registered) */
			if (t_wprotect(r->fd, page, r->unit, 0) == 0)
				atomic_fetch_add(&r->wps, 1);
		} else if (t_copy(r->fd, page, r->zeros, r->unit, UFFDIO_COPY_MODE_WP, NULL) == 0) {
			atomic_fetch_add(&r->copies, 1);
		} else if (errno == EEXIST) {
			(void)t_wake(r->fd, page, r->unit);
		} else {
			t_fail(__FILE__, __LINE__, "COPY at %p: %s", (void *)page, t_errname(errno));
		}
	}
	return NULL;
}

static char *map_kind(enum kind k, size_t len)
{
	int mfd = -1, flags = MAP_PRIVATE | MAP_ANONYMOUS;
	char *p;

	if (k == SHMEM_PRIVATE || k == HUGE_SHARED) {
		mfd = memfd_create("uf-wp-race", MFD_CLOEXEC | (k == HUGE_SHARED ? MFD_HUGETLB : 0));
		T_REQUIRE(mfd >= 0 && ftruncate(mfd, (off_t)len) == 0);
		flags = k == HUGE_SHARED ? MAP_SHARED : MAP_PRIVATE;
	} else if (k == HUGE_PRIVATE) {
		flags |= MAP_HUGETLB;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, mfd, 0);
	T_REQUIRE(p != MAP_FAILED);
	t_close_mapped_file(mfd);
	return p;
}

static void one(enum kind k)
{
	struct race r;
	struct writer w[WRITERS];
	pthread_t wt[WRITERS], pt, ht;
	int huge = k == HUGE_PRIVATE || k == HUGE_SHARED, rounds = 0;
	int64_t end;

	memset(&r, 0, sizeof r);
	r.unit = huge ? HPS : (size_t)t_ps;
	r.fd = t_uffd(0);
	r.p = map_kind(k, NU * r.unit);
	r.zeros = calloc(1, r.unit);
	T_REQUIRE(r.zeros != NULL);
	CHECK_OK(t_register_mode(r.fd, r.p, NU * r.unit,
				 UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP, NULL));
	ht = t_thread(handler_fn, &r);
	pt = t_thread(protector_fn, &r);
	/* Rounds: the writers run a moment, every addition is checked (a
	 * read of a page never written faults, and reads the COPY's zeros),
	 * then the pages go (missing again: installed anew next round). */
	end = t_now_ms() + RUN_MS;
	while (t_now_ms() < end) {
		atomic_store(&r.stop, 0);
		for (int i = 0; i < WRITERS; i++) {
			w[i].r = &r;
			w[i].id = i;
			wt[i] = t_thread(writer_fn, &w[i]);
		}
		t_msleep(10);
		atomic_store(&r.stop, 1);
		for (int i = 0; i < WRITERS; i++)
			t_join(wt[i]);
		for (int i = 0; i < WRITERS; i++) {
			long sum = 0;
			for (size_t u = 0; u < NU; u++)
				sum += *(volatile long *)(r.p + u * r.unit + (size_t)i * 64);
			if (sum != r.adds[i]) {
				CHECK_EQ(sum, r.adds[i]);
				break;
			}
		}
		if (__atomic_load_n(&t_failures, __ATOMIC_SEQ_CST))
			break;
		CHECK_OK(madvise(r.p, NU * r.unit, k == HUGE_SHARED ? MADV_REMOVE : MADV_DONTNEED));
		rounds++;
	}
	atomic_store(&r.stop_protector, 1);
	t_join(pt);
	atomic_store(&r.stop_handler, 1);
	t_join(ht);
	T_NOTE("%s: %d rounds, %ld copies, %ld WP faults, %ld WRITEPROTECTs", names[k], rounds,
	       atomic_load(&r.copies), atomic_load(&r.wps), atomic_load(&r.protects));
	CHECK(rounds > 0);
	CHECK(atomic_load(&r.copies) > 0);
	CHECK(atomic_load(&r.wps) > 0);
	CHECK(atomic_load(&r.protects) > 0);
	CHECK_EQ(uf_close(r.fd), 0);
	munmap(r.p, NU * r.unit);
	free(r.zeros);
}

int main(void)
{
	uint64_t f;

	t_start(60);
	/* TSan performs the writers' atomics inside its runtime, where a
	 * fault (a missing or protected page) is taken for its own crash. */
	if (T_UNDER_TSAN)
		T_SKIP_TEST("TSan: the writers' atomics on registered memory fault inside its runtime");
	f = t_features();
	if (!(f & UFFD_FEATURE_PAGEFAULT_FLAG_WP))
		T_SKIP_TEST("UFFD_FEATURE_PAGEFAULT_FLAG_WP not advertised%s",
			    t_emulated() ? " (the emulation needs guard markers)" : "");
	one(ANON);
	if ((f & UFFD_FEATURE_WP_HUGETLBFS_SHMEM) && (f & UFFD_FEATURE_MISSING_SHMEM))
		one(SHMEM_PRIVATE);
	else
		T_NOTE("shared memory: WP_HUGETLBFS_SHMEM or MISSING_SHMEM missing on this back-end");
	if (f & UFFD_FEATURE_WP_HUGETLBFS_SHMEM) {
		t_need_hugepages(2 * NU + 2);
		one(HUGE_PRIVATE);
		one(HUGE_SHARED);
	} else {
		T_NOTE("hugetlb: WP_HUGETLBFS_SHMEM missing on this back-end");
	}
	return t_done();
}
