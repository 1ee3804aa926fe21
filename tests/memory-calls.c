/* SPDX-License-Identifier: MIT */
/* Memory calls that populate a registered range: mlock, mlock2,
 * MADV_POPULATE_READ and MADV_POPULATE_WRITE take their faults through the
 * uffd (one message per missing page, with the WRITE flag where the kernel
 * writes) and succeed once they are served; MLOCK_ONFAULT populates
 * nothing.  A range that was locked stays locked through REGISTER (VmLck
 * unchanged). */
#include "t.h"

#include <stdatomic.h>
#include <sys/resource.h>

#define PAGES 20

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
int main(void)
{
	fprintf(stderr, "SKIP: the sanitizers make mlock, mlock2 and mlockall do nothing\n");
	return T_SKIP;
}
#else

static int g_fd;
static char *g_p;
static _Atomic int g_flags[PAGES];	/* 0: no fault; 1 + flags */
static _Atomic int g_stop;

static void *handler(void *arg)
{
	char *page = malloc((size_t)t_ps);

	(void)arg;
	memset(page, 'p', (size_t)t_ps);
	while (!atomic_load(&g_stop)) {
		struct pollfd p = { .fd = g_fd, .events = POLLIN };
		struct uffd_msg m;
		uintptr_t a;

		if (poll(&p, 1, 20) <= 0 || uf_read(g_fd, &m, sizeof m) != (ssize_t)sizeof m)
			continue;
		a = (uintptr_t)m.arg.pagefault.address & ~(uintptr_t)(t_ps - 1);
		if (a >= (uintptr_t)g_p && a < (uintptr_t)g_p + PAGES * (uintptr_t)t_ps)
			atomic_store(&g_flags[(a - (uintptr_t)g_p) / (uintptr_t)t_ps],
				     1 + (int)(m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE));
		t_copy(g_fd, (void *)a, page, (size_t)t_ps, 0, NULL);
	}
	free(page);
	return NULL;
}

static long vmlck_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmLck: %ld", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* Pages [first, first + n) faulted once each, with this WRITE flag. */
static void check_pages(int first, int n, int write)
{
	for (int i = first; i < first + n; i++) {
		CHECK_EQ(atomic_load(&g_flags[i]), 1 + (write ? UFFD_PAGEFAULT_FLAG_WRITE : 0));
		CHECK_EQ(g_p[(size_t)i * (size_t)t_ps + 1], 'p');
	}
}

int main(void)
{
	struct rlimit big = { RLIM_INFINITY, RLIM_INFINITY };
	pthread_t h;
	char *q;
	long before, after;

	t_start(30);
	setrlimit(RLIMIT_MEMLOCK, &big);	/* as root; else the default limit */
	g_fd = t_uffd(0);
	g_p = t_map_reg(g_fd, PAGES);
	h = t_thread(handler, NULL);
	CHECK_EQ(mlock(g_p, 4 * (size_t)t_ps), 0);
	check_pages(0, 4, 1);
	CHECK_EQ(madvise(g_p + 4 * t_ps, 4 * (size_t)t_ps, MADV_POPULATE_READ), 0);
	check_pages(4, 4, 0);
	CHECK_EQ(madvise(g_p + 8 * t_ps, 4 * (size_t)t_ps, MADV_POPULATE_WRITE), 0);
	check_pages(8, 4, 1);
	CHECK_EQ(mlock2(g_p + 12 * t_ps, 4 * (size_t)t_ps, 0), 0);
	check_pages(12, 4, 1);
	/* MLOCK_ONFAULT: locked as they come, nothing populated now. */
	CHECK_EQ(mlock2(g_p + 16 * t_ps, 4 * (size_t)t_ps, MLOCK_ONFAULT), 0);
	for (int i = 16; i < 20; i++)
		CHECK_EQ(atomic_load(&g_flags[i]), 0);
	CHECK_EQ(munlock(g_p, PAGES * (size_t)t_ps), 0);

	/* Locked before REGISTER: still locked after. */
	q = mmap(NULL, 8 * (size_t)t_ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	T_REQUIRE(q != MAP_FAILED);
	if (mlock(q, 8 * (size_t)t_ps) != 0) {
		fprintf(stderr, "mlock refused (%s): the VmLck part is not run\n", t_errname(errno));
	} else {
		q[0] = 1;
		before = vmlck_kb();
		T_REQUIRE(t_register(g_fd, q, 8 * (size_t)t_ps) == 0);
		after = vmlck_kb();
		CHECK(before >= 8 * t_ps / 1024);
		CHECK_EQ(after, before);
		CHECK_EQ(q[0], 1);
		CHECK_EQ(q[3 * t_ps + 2], 0);	/* present: mlock populated it, no fault */
		T_REQUIRE(t_unregister(g_fd, q, 8 * (size_t)t_ps) == 0);
		munlock(q, 8 * (size_t)t_ps);
	}
	atomic_store(&g_stop, 1);
	t_join(h);
	uf_close(g_fd);
	return t_done();
}
#endif
