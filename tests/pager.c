/* SPDX-License-Identifier: MIT */
/* The in-thread pager (uf_pager_open and friends), on the current back-end:
 *  - the callback runs once per missing page, in the faulting thread, with
 *    f->uffd the pager, f->page the page, f->address the exact byte and
 *    f->flags WRITE for a store and 0 for a load; the page it installs with
 *    uf_pager_copy() is what the access sees; errno survives the fault;
 *  - uf_pager_copy()/uf_pager_zero() outside the callback, and their
 *    -EEXIST, -EAGAIN (a later page present), -ENOENT, -ENOTTY, errno
 *    untouched;
 *  - four threads on distinct pages, on overlapping pages, and all four in
 *    the callback for one page at once: one copy wins, three get -EEXIST;
 *  - uf_pager_zero(): the page reads as zeros (and takes a store);
 *  - a negative return: SIGBUS, BUS_ADRERR at the exact address, to the
 *    program's own handler in the faulting thread (siglongjmp recovers);
 *    with SIG_DFL, the process dies of SIGBUS;
 *  - return 0 without installing: the access faults again;
 *  - uf_pager_unregister() of a part: ordinary memory there (installed
 *    pages kept, missing ones read zero, no callback); the rest is still
 *    served; uf_pager_close() then leaves ordinary memory everywhere;
 *  - errors: -EINVAL for no callback and for unaligned ranges (which change
 *    nothing), -EBADF for a descriptor that is not a pager;
 *  - two pagers side by side each get their own faults and argument;
 *  - a SIGBUS that is not the pager's (a file mapping past EOF) reaches the
 *    program's handler installed before uf_pager_open, and then the one
 *    installed after it; sigaction() reports the program's handler. */
#include "t.h"

#include <sched.h>
#include <setjmp.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define MAXP 64		/* pages of a region, at most */
#define NTH 4		/* faulting threads */

/* What the callback does. */
enum { M_COPY, M_ZERO, M_FAIL, M_RETRY, M_BARRIER };

struct pg {
	char *base;		/* the registered region */
	size_t npages;
	int fd;			/* what uf_pager_open returned */
	int mode;
	int clobber;		/* set errno in the callback */
	int calls[MAXP];
	int installed[MAXP];	/* uf_pager_copy/zero gave 0 */
	int eexist[MAXP];	/* ... gave -EEXIST */
	int tid[MAXP];		/* thread of the last call */
	uintptr_t addr[MAXP], page[MAXP];
	unsigned flags[MAXP];
	int uffd[MAXP];
	int bad;		/* calls off the region, other errors */
	int last_err;
	int arrivals;		/* M_BARRIER */
	int order[NTH];		/* M_BARRIER: tids by arrival */
};

static char *g_src;		/* MAXP pages: what page i must hold */

#define LD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define INC(x) __atomic_add_fetch(&(x), 1, __ATOMIC_SEQ_CST)

static uint64_t word_of(size_t page, size_t w)
{
	return 0x5041474500000000ull ^ ((uint64_t)page << 20) ^ (uint64_t)w;
}

static void fill_src(void)
{
	size_t words = (size_t)t_ps / 8;

	g_src = t_map(MAXP);
	for (size_t i = 0; i < MAXP; i++)
		for (size_t w = 0; w < words; w++)
			((uint64_t *)(g_src + i * (size_t)t_ps))[w] = word_of(i, w);
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);	/* async-signal-safe */
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The callback.  async-signal-safe: atomics, gettid, clock_gettime,
 * sched_yield and uf_pager_copy/uf_pager_zero. */
static int pager_cb(const struct uf_pager_fault *f, void *arg)
{
	struct pg *g = arg;
	uintptr_t page = (uintptr_t)f->page, base = (uintptr_t)g->base;
	size_t i;
	int n, r;

	if (page < base || page >= base + g->npages * (size_t)t_ps) {
		INC(g->bad);
		return -1;
	}
	i = (page - base) / (size_t)t_ps;
	n = INC(g->calls[i]);
	ST(g->tid[i], t_gettid());
	ST(g->addr[i], (uintptr_t)f->address);
	ST(g->page[i], page);
	ST(g->flags[i], f->flags);
	ST(g->uffd[i], f->uffd);
	if (g->clobber)
		errno = EDOM;
	switch (LD(g->mode)) {
	case M_FAIL:
		return -EIO;
	case M_RETRY:
		if (n == 1)
			return 0;	/* not installed: the access faults again */
		break;
	case M_BARRIER: {
		/* Wait until all NTH threads are in here for this page. */
		int k = INC(g->arrivals) - 1;
		int64_t end = mono_ns() + 10 * 1000000000LL;

		if (k < NTH)
			ST(g->order[k], t_gettid());
		while (LD(g->arrivals) < NTH) {
			if (mono_ns() > end) {
				INC(g->bad);
				break;
			}
			sched_yield();
		}
		break;
	}
	}
	if (LD(g->mode) == M_ZERO)
		r = uf_pager_zero(f->uffd, f->page, (size_t)t_ps);
	else
		r = uf_pager_copy(f->uffd, f->page, g_src + i * (size_t)t_ps, (size_t)t_ps);
	if (r == 0) {
		INC(g->installed[i]);
	} else if (r == -EEXIST) {
		INC(g->eexist[i]);	/* another thread was first: fine */
	} else {
		ST(g->last_err, r);
		INC(g->bad);
		return r;
	}
	return 0;
}

/* A pager with a region of n pages registered on it. */
static void pg_open(struct pg *g, size_t n, int mode)
{
	int r;

	memset(g, 0, sizeof *g);
	g->mode = mode;
	g->npages = n;
	g->fd = uf_pager_open(pager_cb, g);
	if (g->fd < 0)
		T_BAIL("uf_pager_open: %s", t_errname(-g->fd));
	g->base = t_map(n);
	r = uf_pager_register(g->fd, g->base, n * (size_t)t_ps);
	if (r)
		T_BAIL("uf_pager_register %zu pages: %s", n, t_errname(-r));
}

static void pg_close(struct pg *g)
{
	CHECK_EQ(uf_pager_close(g->fd), 0);
	CHECK_EQ(LD(g->bad), 0);
	if (LD(g->bad))
		fprintf(stderr, "  last error in the callback: %s\n",
			t_errname(-LD(g->last_err)));
	munmap(g->base, g->npages * (size_t)t_ps);
}

/* Page i of g's region must hold page i of g_src (zeros if zero), except
 * for one byte at `at` (NULL: none) which must be `val`.  Returns 1 if so. */
#define CHECK_PAGE(g, i, zero, at, val)					\
	check_page_(__LINE__, (g)->base + (size_t)(i) * (size_t)t_ps, (i), (zero), (at), (val))
static int check_page_(int line, const char *p, size_t i, int zero,
		       const char *at, char val)
{
	const char *want = g_src + i * (size_t)t_ps;

	t_count();
	for (size_t o = 0; o < (size_t)t_ps; o++) {
		char w = p + o == at ? val : zero ? 0 : want[o];

		/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): p is mmap's, never 0 */
		if (p[o] != w) {
			t_fail(__FILE__, line, "page %zu byte %#zx: expected %#x, got %#x",
			       i, o, (unsigned char)w, (unsigned char)p[o]);
			return 0;
		}
	}
	return 1;
}

/* The last callback for page i of g was this access. */
#define CHECK_CALL(g, i, at, write, who)				\
	do {								\
		CHECK_EQ(LD((g)->addr[i]), (uintptr_t)(at));		\
		CHECK_EQ(LD((g)->page[i]),				\
			 (uintptr_t)(g)->base + (size_t)(i) * (size_t)t_ps); \
		CHECK_EQ(LD((g)->flags[i]),				\
			 (write) ? UFFD_PAGEFAULT_FLAG_WRITE : 0);	\
		CHECK_EQ(LD((g)->uffd[i]), (g)->fd);			\
		CHECK_EQ(LD((g)->tid[i]), (who));			\
	} while (0)

/* ---------------------------------------------------------------------- */
/* The program's SIGBUS handlers.                                            */
/* ---------------------------------------------------------------------- */

struct bus_rec {
	int hits, code, tid;
	int blocked;		/* SIGBUS blocked while the handler ran */
	void *addr;
};
static struct bus_rec g_bus1, g_bus2;	/* installed before / after the pager */
static __thread sigjmp_buf *tls_jb;

static void bus_record(struct bus_rec *r, const siginfo_t *si)
{
	sigset_t cur;

	/* As from the kernel: the handler (no SA_NODEFER) runs with SIGBUS
	 * blocked, whichever back-end and whoever calls it. */
	sigprocmask(SIG_BLOCK, NULL, &cur);
	ST(r->blocked, sigismember(&cur, SIGBUS));
	ST(r->code, si->si_code);
	ST(r->addr, si->si_addr);
	ST(r->tid, t_gettid());
	INC(r->hits);
	if (!tls_jb) {
		/* A SIGBUS where none was expected: say where, and stop. */
		char msg[] = "FAIL: unexpected SIGBUS at 0x0000000000000000\n";
		uintptr_t a = (uintptr_t)si->si_addr;
		char *d = msg + sizeof msg - 2;	/* the newline */

		for (int k = 0; k < 16; k++, a >>= 4)
			*--d = "0123456789abcdef"[a & 15];
		if (write(2, msg, sizeof msg - 1) < 0)
			_exit(2);
		_exit(1);
	}
	siglongjmp(*tls_jb, 1);
}

static void on_bus1(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	bus_record(&g_bus1, si);
}

static void on_bus2(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	bus_record(&g_bus2, si);
}

/* One access: 1 if a SIGBUS handler caught it (and jumped back). */
static int access_bus(volatile char *addr, int write)
{
	sigjmp_buf jb;
	int caught = 0;

	tls_jb = &jb;
	if (sigsetjmp(jb, 1) == 0) {
		if (write)
			*addr = 0x5a;
		else
			(void)*addr;
	} else {
		caught = 1;
	}
	tls_jb = NULL;
	return caught;
}

/* The access must raise SIGBUS, BUS_ADRERR at exactly addr, in this
 * thread, caught by the handler that records into *r (and not the other). */
#define EXPECT_BUS(addr, write, r) expect_bus_(__LINE__, (addr), (write), (r))
static void expect_bus_(int line, volatile char *addr, int write, struct bus_rec *r)
{
	struct bus_rec *other = r == &g_bus1 ? &g_bus2 : &g_bus1;
	int h = LD(r->hits), o = LD(other->hits), before = t_failures;

	t_count();
	if (!access_bus(addr, write))
		t_fail(__FILE__, line, "%s of %p: no SIGBUS", write ? "write" : "read",
		       (void *)addr);
	CHECK_EQ(LD(r->hits), h + 1);
	CHECK_EQ(LD(other->hits), o);
	CHECK_EQ(LD(r->code), BUS_ADRERR);
	CHECK_EQ((uintptr_t)LD(r->addr), (uintptr_t)addr);
	CHECK_EQ(LD(r->tid), t_gettid());
	if (t_failures != before)
		fprintf(stderr, "  (from line %d)\n", line);
}

/* A page of a memfd of size 0: any access is a SIGBUS that no pager owns. */
static char *foreign_page(void)
{
	int mfd = memfd_create("uf-pager-test", MFD_CLOEXEC);
	char *p;

	T_REQUIRE(mfd >= 0);
	T_REQUIRE(ftruncate(mfd, 0) == 0);
	p = mmap(NULL, (size_t)t_ps, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	T_REQUIRE(p != MAP_FAILED);
	close(mfd);
	return p;
}

/* ---------------------------------------------------------------------- */
/* One thread, every page.                                                   */
/* ---------------------------------------------------------------------- */

#define NB 16

static void basic(void)
{
	struct pg g;
	pid_t me = t_gettid();
	struct t_touch t;
	char *p;

	pg_open(&g, NB, M_COPY);
	p = g.base;
	CHECK_EQ(uf_fd_backend(g.fd), t_backend());
	CHECK_EQ(fcntl(g.fd, F_GETFD), FD_CLOEXEC);
	g.clobber = 1;

	/* Pages 0..NB-2 from this thread: even pages loaded, odd ones stored
	 * to, each at an offset inside the page. */
	for (size_t i = 0; i + 1 < NB; i++) {
		size_t off = (i * 331 + 7) % (size_t)t_ps;
		volatile char *a = p + i * (size_t)t_ps + off;
		int write = i & 1;
		char got = 0;

		errno = 4321;
		if (write)
			*a = (char)(0xa0 + i);
		else
			got = *a;
		CHECK_EQ(errno, 4321);
		CHECK_EQ(LD(g.calls[i]), 1);
		CHECK_EQ(LD(g.installed[i]), 1);
		CHECK_CALL(&g, i, a, write, me);
		if (write)
			CHECK_PAGE(&g, i, 0, (const char *)a, (char)(0xa0 + i));
		else
			CHECK_EQ(got, g_src[i * (size_t)t_ps + off]);
	}
	/* The last page from another thread: the callback runs there. */
	t_touch_start(&t, p + (NB - 1) * (size_t)t_ps + t_ps - 1, 0, 0);
	T_REQUIRE(t_touch_wait(&t, 5000));
	CHECK_EQ(t.val, g_src[NB * (size_t)t_ps - 1]);
	CHECK_EQ(LD(g.calls[NB - 1]), 1);
	CHECK_CALL(&g, NB - 1, p + NB * (size_t)t_ps - 1, 0, t_touch_tid(&t));
	CHECK(t_touch_tid(&t) != me);

	/* Every byte, and no more callbacks: the pages are all present. */
	for (size_t i = 0; i < NB; i++) {
		size_t off = (i * 331 + 7) % (size_t)t_ps;

		if ((i & 1) && i + 1 < NB)
			CHECK_PAGE(&g, i, 0, p + i * (size_t)t_ps + off, (char)(0xa0 + i));
		else
			CHECK_PAGE(&g, i, 0, NULL, 0);
	}
	for (size_t i = 0; i < NB; i++) {
		CHECK_EQ(LD(g.calls[i]), 1);
		CHECK_EQ(LD(g.eexist[i]), 0);
	}
	pg_close(&g);
}

/* uf_pager_copy / uf_pager_zero outside the callback, and their errors. */
static void copy_outside(void)
{
	struct pg g;
	char *p, *plain = t_map(1);
	int pfd[2];

	pg_open(&g, 4, M_COPY);
	p = g.base;
	/* Installed ahead of any fault: no callback. */
	CHECK_EQ(uf_pager_copy(g.fd, p, g_src, (size_t)t_ps), 0);
	CHECK_EQ(uf_pager_zero(g.fd, p + t_ps, (size_t)t_ps), 0);
	CHECK_PAGE(&g, 0, 0, NULL, 0);
	CHECK_PAGE(&g, 1, 1, NULL, 0);
	CHECK_EQ(LD(g.calls[0]), 0);
	CHECK_EQ(LD(g.calls[1]), 0);
	/* Present: -EEXIST, content kept. */
	CHECK_EQ(uf_pager_copy(g.fd, p + t_ps, g_src, (size_t)t_ps), -EEXIST);
	CHECK_EQ(uf_pager_zero(g.fd, p, (size_t)t_ps), -EEXIST);
	CHECK_PAGE(&g, 0, 0, NULL, 0);
	CHECK_PAGE(&g, 1, 1, NULL, 0);
	/* Not registered: -ENOENT; not a uffd: -ENOTTY. */
	CHECK_EQ(uf_pager_copy(g.fd, plain, g_src, (size_t)t_ps), -ENOENT);
	CHECK_EQ(uf_pager_zero(g.fd, plain, (size_t)t_ps), -ENOENT);
	T_REQUIRE(pipe(pfd) == 0);
	CHECK_EQ(uf_pager_copy(pfd[0], p + 2 * t_ps, g_src, (size_t)t_ps), -ENOTTY);
	CHECK_EQ(uf_pager_zero(pfd[0], p + 2 * t_ps, (size_t)t_ps), -ENOTTY);
	close(pfd[0]);
	close(pfd[1]);
	/* errno is left alone. */
	errno = 4321;
	CHECK_EQ(uf_pager_copy(g.fd, p, g_src, (size_t)t_ps), -EEXIST);
	CHECK_EQ(errno, 4321);
	/* The other pages still fault into the callback. */
	CHECK_EQ(p[3 * t_ps + 1], g_src[3 * t_ps + 1]);
	CHECK_EQ(LD(g.calls[3]), 1);
	CHECK_EQ(LD(g.calls[2]), 0);
	/* Two pages, the second present: the first is installed, -EAGAIN. */
	CHECK_EQ(uf_pager_copy(g.fd, p + 2 * t_ps, g_src + 2 * t_ps, 2 * (size_t)t_ps),
		 -EAGAIN);
	CHECK_PAGE(&g, 2, 0, NULL, 0);
	CHECK_PAGE(&g, 3, 0, NULL, 0);
	CHECK_EQ(LD(g.calls[2]), 0);
	pg_close(&g);
	munmap(plain, (size_t)t_ps);
}

/* ---------------------------------------------------------------------- */
/* Several threads.                                                          */
/* ---------------------------------------------------------------------- */

struct worker {
	struct pg *g;
	pthread_barrier_t *start;
	size_t first, count;	/* pages first .. first+count-1, mod npages */
	size_t off;		/* byte offset of the access in each page */
	int tid;
	long wrong;		/* bytes not as expected */
	pthread_t th;
};

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	struct pg *g = w->g;

	ST(w->tid, t_gettid());
	pthread_barrier_wait(w->start);
	for (size_t k = 0; k < w->count; k++) {
		size_t i = (w->first + k) % g->npages;
		volatile char *page = g->base + i * (size_t)t_ps;
		const char *want = g_src + i * (size_t)t_ps;

		if (page[w->off] != want[w->off])
			w->wrong++;
		for (size_t o = 0; o < (size_t)t_ps; o++)
			w->wrong += page[o] != want[o];
	}
	return NULL;
}

static void run_workers(struct pg *g, struct worker *w, size_t stride,
			size_t count)
{
	pthread_barrier_t start;

	pthread_barrier_init(&start, NULL, NTH);
	for (int k = 0; k < NTH; k++) {
		memset(&w[k], 0, sizeof w[k]);
		w[k].g = g;
		w[k].start = &start;
		w[k].first = (size_t)k * stride;
		w[k].count = count;
		w[k].off = (size_t)(k * 1021 + 3) % (size_t)t_ps;
		w[k].th = t_thread(worker_fn, &w[k]);
	}
	for (int k = 0; k < NTH; k++)
		t_join(w[k].th);
	pthread_barrier_destroy(&start);
	for (int k = 0; k < NTH; k++)
		CHECK_EQ(w[k].wrong, 0);
}

static void threads(void)
{
	struct pg g;
	struct worker w[NTH];
	size_t per = MAXP / NTH;
	int calls = 0;

	/* Distinct pages: thread k takes pages k*per ..; each page is served
	 * once, by the thread that touched it. */
	pg_open(&g, MAXP, M_COPY);
	run_workers(&g, w, per, per);
	for (size_t i = 0; i < MAXP; i++) {
		struct worker *owner = &w[i / per];

		CHECK_EQ(LD(g.calls[i]), 1);
		CHECK_EQ(LD(g.installed[i]), 1);
		CHECK_CALL(&g, i, g.base + i * (size_t)t_ps + owner->off, 0, owner->tid);
	}
	pg_close(&g);

	/* The same pages: every thread reads all of them, starting at
	 * different places.  Each page is installed exactly once; every other
	 * call for it saw -EEXIST. */
	pg_open(&g, MAXP, M_COPY);
	run_workers(&g, w, per, MAXP);
	for (size_t i = 0; i < MAXP; i++) {
		CHECK_EQ(LD(g.installed[i]), 1);
		CHECK_EQ(LD(g.calls[i]), LD(g.installed[i]) + LD(g.eexist[i]));
		calls += LD(g.calls[i]);
	}
	fprintf(stderr, "overlapping pages: %d calls for %d pages\n", calls, MAXP);
	pg_close(&g);

	/* One page, all four threads in the callback at once: one copy
	 * installs, three get -EEXIST, and every thread sees the page. */
	pg_open(&g, 1, M_BARRIER);
	run_workers(&g, w, 0, 1);
	CHECK_EQ(LD(g.arrivals), NTH);
	CHECK_EQ(LD(g.calls[0]), NTH);
	CHECK_EQ(LD(g.installed[0]), 1);
	CHECK_EQ(LD(g.eexist[0]), NTH - 1);
	for (int k = 0; k < NTH; k++) {
		int seen = 0;

		for (int j = 0; j < NTH; j++)
			seen += LD(g.order[j]) == w[k].tid;
		CHECK_EQ(seen, 1);	/* each thread ran it once, itself */
	}
	CHECK_PAGE(&g, 0, 0, NULL, 0);
	pg_close(&g);
}

/* ---------------------------------------------------------------------- */
/* uf_pager_zero, retries, SIGBUS.                                           */
/* ---------------------------------------------------------------------- */

static void zero(void)
{
	struct pg g;
	char *p;

	pg_open(&g, 3, M_ZERO);
	p = g.base;
	CHECK_EQ(((volatile char *)p)[100], 0);
	CHECK_EQ(LD(g.calls[0]), 1);
	CHECK_EQ(LD(g.installed[0]), 1);
	CHECK_CALL(&g, 0, p + 100, 0, t_gettid());
	CHECK_PAGE(&g, 0, 1, NULL, 0);
	/* A zero page takes a store without another callback. */
	p[5] = 0x33;
	CHECK_PAGE(&g, 0, 1, p + 5, 0x33);
	CHECK_EQ(LD(g.calls[0]), 1);
	/* A store into a missing page: zero page, then the store. */
	((volatile char *)p)[t_ps + 9] = 0x44;
	CHECK_EQ(LD(g.calls[1]), 1);
	CHECK_CALL(&g, 1, p + t_ps + 9, 1, t_gettid());
	CHECK_PAGE(&g, 1, 1, p + t_ps + 9, 0x44);
	CHECK_EQ(LD(g.calls[2]), 0);
	pg_close(&g);
}

static void retry(void)
{
	struct pg g;
	char *p;

	pg_open(&g, 2, M_RETRY);
	p = g.base;
	/* Nothing installed on the first call: the load faults again. */
	CHECK_EQ(((volatile char *)p)[77], g_src[77]);
	CHECK_EQ(LD(g.calls[0]), 2);
	CHECK_EQ(LD(g.installed[0]), 1);
	CHECK_CALL(&g, 0, p + 77, 0, t_gettid());
	CHECK_PAGE(&g, 0, 0, NULL, 0);
	((volatile char *)p)[t_ps + 78] = 0x12;
	CHECK_EQ(LD(g.calls[1]), 2);
	CHECK_EQ(LD(g.installed[1]), 1);
	CHECK_CALL(&g, 1, p + t_ps + 78, 1, t_gettid());
	CHECK_PAGE(&g, 1, 0, p + t_ps + 78, 0x12);
	pg_close(&g);
}

struct bus_thread {
	volatile char *addr;
	int caught, tid;
};

static void *bus_thread_fn(void *arg)
{
	struct bus_thread *b = arg;

	b->tid = t_gettid();
	b->caught = access_bus(b->addr, 0);
	return NULL;
}

/* The callback fails: SIGBUS to the program's handler (*r). */
static void fail_sigbus(struct bus_rec *r)
{
	struct bus_thread bt;
	struct pg g;
	char *p;
	int h;

	pg_open(&g, 3, M_FAIL);
	p = g.base;
	EXPECT_BUS(p + 0x123, 0, r);
	CHECK_EQ(LD(r->blocked), 1);
	CHECK_EQ(LD(g.calls[0]), 1);
	CHECK_CALL(&g, 0, p + 0x123, 0, t_gettid());
	EXPECT_BUS(p + t_ps + 0x45, 1, r);
	CHECK_EQ(LD(g.calls[1]), 1);
	CHECK_CALL(&g, 1, p + t_ps + 0x45, 1, t_gettid());
	/* Still missing: it fails again. */
	EXPECT_BUS(p + 0x124, 1, r);
	CHECK_EQ(LD(g.calls[0]), 2);
	CHECK_CALL(&g, 0, p + 0x124, 1, t_gettid());
	/* In another thread: that thread gets it. */
	h = LD(r->hits);
	bt.addr = p + 2 * t_ps + 0x67;
	t_join(t_thread(bus_thread_fn, &bt));
	CHECK_EQ(bt.caught, 1);
	CHECK_EQ(LD(r->hits), h + 1);
	CHECK_EQ(LD(r->tid), bt.tid);
	CHECK_EQ(LD(r->code), BUS_ADRERR);
	CHECK_EQ((uintptr_t)LD(r->addr), (uintptr_t)(p + 2 * t_ps + 0x67));
	CHECK_CALL(&g, 2, p + 2 * t_ps + 0x67, 0, bt.tid);
	/* Recovered: once the callback installs, the pages work. */
	ST(g.mode, M_COPY);
	CHECK_EQ(((volatile char *)p)[0x125], g_src[0x125]);
	CHECK_EQ(LD(g.calls[0]), 3);
	CHECK_EQ(LD(g.installed[0]), 1);
	CHECK_PAGE(&g, 0, 0, NULL, 0);
	CHECK_EQ(LD(r->hits), h + 1);
	pg_close(&g);
}

/* ---------------------------------------------------------------------- */
/* Unregister, close, errors, two pagers.                                    */
/* ---------------------------------------------------------------------- */

static void unregister_part(void)
{
	struct pg g;
	char *p;
	size_t ps = (size_t)t_ps;

	pg_open(&g, 8, M_COPY);
	p = g.base;
	for (size_t i = 0; i < 4; i++)
		if (i != 1)
			CHECK_EQ(((volatile char *)p)[i * ps + 1], g_src[i * ps + 1]);
	/* Pages 2..5 (2, 3 present; 4, 5 missing) become ordinary memory. */
	CHECK_EQ(uf_pager_unregister(g.fd, p + 2 * ps, 4 * ps), 0);
	CHECK_PAGE(&g, 2, 0, NULL, 0);
	CHECK_PAGE(&g, 3, 0, NULL, 0);
	CHECK_PAGE(&g, 4, 1, NULL, 0);
	((volatile char *)p)[5 * ps + 3] = 0x55;
	CHECK_PAGE(&g, 5, 1, p + 5 * ps + 3, 0x55);
	CHECK_EQ(LD(g.calls[4]), 0);
	CHECK_EQ(LD(g.calls[5]), 0);
	/* Unregistering it again changes nothing. */
	CHECK_EQ(uf_pager_unregister(g.fd, p + 4 * ps, ps), 0);
	CHECK_PAGE(&g, 4, 1, NULL, 0);
	/* Pages 0, 1 and 6, 7, on either side, are still the pager's. */
	CHECK_EQ(((volatile char *)p)[6 * ps + 9], g_src[6 * ps + 9]);
	CHECK_EQ(LD(g.calls[6]), 1);
	CHECK_CALL(&g, 6, p + 6 * ps + 9, 0, t_gettid());
	CHECK_PAGE(&g, 6, 0, NULL, 0);
	((volatile char *)p)[ps + 10] = 0x11;
	CHECK_EQ(LD(g.calls[1]), 1);
	CHECK_CALL(&g, 1, p + ps + 10, 1, t_gettid());
	CHECK_PAGE(&g, 1, 0, p + ps + 10, 0x11);
	CHECK_PAGE(&g, 0, 0, NULL, 0);

	/* Close: page 7 (never installed) is ordinary memory too. */
	CHECK_EQ(uf_pager_close(g.fd), 0);
	CHECK_PAGE(&g, 7, 1, NULL, 0);
	((volatile char *)p)[7 * ps] = 0x77;
	CHECK_PAGE(&g, 7, 1, p + 7 * ps, 0x77);
	CHECK_EQ(LD(g.calls[7]), 0);
	CHECK_PAGE(&g, 6, 0, NULL, 0);
	/* It is gone. */
	CHECK_EQ(uf_pager_close(g.fd), -EBADF);
	CHECK_EQ(uf_pager_register(g.fd, p, ps), -EBADF);
	CHECK_EQ(LD(g.bad), 0);
	munmap(p, 8 * ps);
}

static void errors(void)
{
	struct pg g;
	char *p;
	size_t ps = (size_t)t_ps;
	int pfd[2], ufd;

	CHECK_EQ(uf_pager_open(NULL, NULL), -EINVAL);
	CHECK_EQ(uf_pager_open(NULL, &g), -EINVAL);

	/* A pipe, a plain uffd, a closed number: not pagers.  Nothing is
	 * done to them. */
	p = t_map(2);
	T_REQUIRE(pipe(pfd) == 0);
	CHECK_EQ(uf_pager_register(pfd[0], p, ps), -EBADF);
	CHECK_EQ(uf_pager_unregister(pfd[0], p, ps), -EBADF);
	CHECK_EQ(uf_pager_close(pfd[0]), -EBADF);
	CHECK_EQ(fcntl(pfd[0], F_GETFD), 0);
	CHECK_EQ(write(pfd[1], "x", 1), 1);
	ufd = t_uffd(0);
	CHECK_EQ(uf_pager_register(ufd, p, ps), -EBADF);
	CHECK_EQ(uf_pager_unregister(ufd, p, ps), -EBADF);
	CHECK_EQ(uf_pager_close(ufd), -EBADF);
	CHECK_EQ(uf_fd_backend(ufd), t_backend());
	CHECK_EQ(uf_close(ufd), 0);
	CHECK_EQ(uf_pager_register(-1, p, ps), -EBADF);
	CHECK_EQ(uf_pager_unregister(-1, p, ps), -EBADF);
	CHECK_EQ(uf_pager_close(-1), -EBADF);
	close(pfd[0]);
	close(pfd[1]);
	CHECK_EQ(uf_pager_close(pfd[0]), -EBADF);
	munmap(p, 2 * ps);

	/* Unaligned: -EINVAL, and nothing changes. */
	pg_open(&g, 4, M_COPY);
	p = g.base;
	CHECK_EQ(uf_pager_unregister(g.fd, p + 1, ps), -EINVAL);
	CHECK_EQ(uf_pager_unregister(g.fd, p, ps + 1), -EINVAL);
	CHECK_EQ(((volatile char *)p)[0x10], g_src[0x10]);
	CHECK_EQ(LD(g.calls[0]), 1);
	CHECK_EQ(((volatile char *)p)[ps + 0x10], g_src[ps + 0x10]);
	CHECK_EQ(LD(g.calls[1]), 1);
	/* Register: a new region, unaligned start or length. */
	{
		char *q = t_map(2);

		CHECK_EQ(uf_pager_register(g.fd, q + 1, ps), -EINVAL);
		CHECK_EQ(uf_pager_register(g.fd, q + ps / 2, ps), -EINVAL);
		CHECK_EQ(uf_pager_register(g.fd, q, ps + 1), -EINVAL);
		CHECK_EQ(uf_pager_register(g.fd, q, 0), -EINVAL);
		/* Not registered: ordinary memory, no callback. */
		CHECK_EQ(((volatile char *)q)[3], 0);
		CHECK_EQ(((volatile char *)q)[ps + 3], 0);
		CHECK_EQ(LD(g.bad), 0);
		munmap(q, 2 * ps);
	}
	pg_close(&g);
}

/* Two pagers at once: each callback sees its own faults and argument. */
static void two_pagers(void)
{
	struct pg a, b;

	pg_open(&a, 2, M_COPY);
	pg_open(&b, 2, M_ZERO);
	CHECK(a.fd != b.fd);
	CHECK_EQ(((volatile char *)b.base)[t_ps + 1], 0);
	CHECK_EQ(((volatile char *)a.base)[t_ps + 1], g_src[t_ps + 1]);
	CHECK_EQ(LD(a.calls[1]), 1);
	CHECK_EQ(LD(b.calls[1]), 1);
	CHECK_CALL(&a, 1, a.base + t_ps + 1, 0, t_gettid());
	CHECK_CALL(&b, 1, b.base + t_ps + 1, 0, t_gettid());
	CHECK_EQ(LD(a.calls[0]), 0);
	CHECK_EQ(LD(b.calls[0]), 0);
	pg_close(&a);
	/* b survives a's close. */
	CHECK_EQ(((volatile char *)b.base)[2], 0);
	CHECK_EQ(LD(b.calls[0]), 1);
	CHECK_CALL(&b, 0, b.base + 2, 0, t_gettid());
	pg_close(&b);
}

/* With SIGBUS at SIG_DFL, a failing callback kills the process by SIGBUS.
 * The child is forked first thing, while the process has one thread, so
 * that it may start threads of its own (the emulation's watcher) even
 * under TSan.  Not under valgrind (tools/analyze.sh): it takes the SIGBUS
 * that the emulation queues to the thread, with BUS_ADRERR, for a fault in
 * its own code, and aborts. */
static pid_t default_action_start(void)
{
	pid_t pid;

	if (getenv("USERFAULT_TEST_VALGRIND"))
		return 0;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		struct pg g;

		t_child_watchdog(10);
		setrlimit(RLIMIT_CORE, &no_core);
		signal(SIGBUS, SIG_DFL);
		t_ps = sysconf(_SC_PAGESIZE);
		pg_open(&g, 1, M_FAIL);
		(void)((volatile char *)g.base)[1];
		_exit(0);
	}
	return pid;
}

static void default_action_check(pid_t pid)
{
	int st;

	if (pid == 0) {
		T_NOTE("SIGBUS at SIG_DFL: not checked under valgrind");
		return;
	}
	T_REQUIRE(pid > 0);
	T_REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(WIFSIGNALED(st));
	if (WIFSIGNALED(st))
		CHECK_EQ(WTERMSIG(st), SIGBUS);
	else
		fprintf(stderr, "child exited with %d\n", WEXITSTATUS(st));
}

int main(void)
{
	struct sigaction cur, old, sa;
	pid_t child = default_action_start();
	char *foreign;

	t_start(60);
	T_REQUIRE(t_ps >= 4096 && t_ps % 1024 == 0);
	fill_src();
	foreign = foreign_page();

	/* The program's SIGBUS handler, before any pager exists. */
	t_sigaction(SIGBUS, on_bus1, 0);
	EXPECT_BUS(foreign + 0x10, 0, &g_bus1);

	basic();
	/* A SIGBUS that is not the pager's still reaches that handler. */
	EXPECT_BUS(foreign + 0x11, 0, &g_bus1);
	CHECK_EQ(LD(g_bus1.blocked), 1);
	EXPECT_BUS(foreign + t_ps - 1, 1, &g_bus1);
	CHECK_EQ(sigaction(SIGBUS, NULL, &cur), 0);
	CHECK(cur.sa_sigaction == on_bus1);
	CHECK(cur.sa_flags & SA_SIGINFO);

	copy_outside();
	threads();
	zero();
	retry();
	fail_sigbus(&g_bus1);

	/* A handler installed after the pager exists takes over. */
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_bus2;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	CHECK_EQ(sigaction(SIGBUS, &sa, &old), 0);
	CHECK(old.sa_sigaction == on_bus1);
	CHECK_EQ(sigaction(SIGBUS, NULL, &cur), 0);
	CHECK(cur.sa_sigaction == on_bus2);
	EXPECT_BUS(foreign + 0x12, 0, &g_bus2);
	fail_sigbus(&g_bus2);
	EXPECT_BUS(foreign + 0x13, 1, &g_bus2);

	unregister_part();
	errors();
	two_pagers();
	EXPECT_BUS(foreign + 0x14, 0, &g_bus2);
	default_action_check(child);

	CHECK_EQ(g_bus1.hits, 7);
	CHECK_EQ(g_bus2.hits, 7);
	munmap(foreign, (size_t)t_ps);
	munmap(g_src, MAXP * (size_t)t_ps);
	return t_done();
}
