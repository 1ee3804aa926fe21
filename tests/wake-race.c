/* SPDX-License-Identifier: MIT */
/* Wake-ups are never lost, whatever the order of read() and COPY between
 * several handler threads: 4 threads fault on the same pages at once (so a
 * page has several messages), 2 handler threads each read one message at
 * a time and COPY its page, ignoring EEXIST and never calling WAKE, as the
 * kernel's selftests do.  The first COPY of a page must wake every thread
 * waiting on it, including one whose message another handler is reading at
 * that very moment.  A lost wake-up leaves a faulting thread asleep on an
 * installed page: the round does not end, and the watchdog fails the
 * test. */
#include "t.h"

#include <stdatomic.h>

#define PAGES 64
#define TOUCHERS 4
#define HANDLERS 2

static int g_fd;
static _Atomic(char *) g_area;
static char *g_src;
static _Atomic int g_stop;
static _Atomic long g_eexist, g_copies;

static void *toucher(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;
	volatile char *area = atomic_load(&g_area);
	int bad = 0;

	for (int i = 0; i < PAGES; i++) {
		int p = (int)((seed = seed * 1103515245u + 12345u) >> 8) % PAGES;
		if (area[(size_t)p * (size_t)t_ps] != (char)(p + 1))
			bad++;
	}
	for (int p = 0; p < PAGES; p++)
		if (area[(size_t)p * (size_t)t_ps] != (char)(p + 1))
			bad++;
	return (void *)(uintptr_t)bad;
}

static void *handler(void *arg)
{
	(void)arg;
	while (!atomic_load(&g_stop)) {
		struct pollfd pfd = { .fd = g_fd, .events = POLLIN };
		struct uffd_msg m;
		struct uffdio_copy c;
		uintptr_t page;

		if (poll(&pfd, 1, 20) <= 0)
			continue;
		if (uf_read(g_fd, &m, sizeof m) != (ssize_t)sizeof m)
			continue;
		if (m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		page = (uintptr_t)m.arg.pagefault.address & ~(uintptr_t)(t_ps - 1);
		c.dst = page;
		/* A stale message of the last round may name a page outside
		 * this one's range: the source is only read, any page will do. */
		c.src = (uintptr_t)g_src + (page - (uintptr_t)atomic_load(&g_area)) % ((uintptr_t)PAGES * (uintptr_t)t_ps);
		c.len = (uint64_t)t_ps;
		c.mode = 0;
		c.copy = 0;
		if (uf_ioctl(g_fd, UFFDIO_COPY, &c) < 0) {
			/* EEXIST: no WAKE, the first COPY woke everybody.  ENOENT:
			 * another handler's COPY let the round end, and the range
			 * is gone; the message was stale (kernel too). */
			if (errno == EEXIST)
				atomic_fetch_add(&g_eexist, 1);
			else if (errno != ENOENT)
				T_BAIL("COPY: %s", t_errname(errno));
		} else {
			atomic_fetch_add(&g_copies, 1);
		}
	}
	return NULL;
}

int main(void)
{
	pthread_t h[HANDLERS], t[TOUCHERS];
	int64_t end;
	int rounds = 0;

	t_start(60);
	g_fd = t_uffd_flags(O_CLOEXEC | O_NONBLOCK, 0);
	g_src = malloc((size_t)PAGES * (size_t)t_ps);
	T_REQUIRE(g_src);
	for (int p = 0; p < PAGES; p++)
		memset(g_src + (size_t)p * (size_t)t_ps, p + 1, (size_t)t_ps);
	for (int i = 0; i < HANDLERS; i++)
		h[i] = t_thread(handler, NULL);
	end = t_now_ms() + 3000;
	while (t_now_ms() < end || rounds < 20) {
		long bad = 0;

		char *area = mmap(NULL, (size_t)PAGES * (size_t)t_ps, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		T_REQUIRE(area != MAP_FAILED);
		atomic_store(&g_area, area);
		T_REQUIRE(t_register(g_fd, area, (size_t)PAGES * (size_t)t_ps) == 0);
		for (int i = 0; i < TOUCHERS; i++)
			t[i] = t_thread(toucher, (void *)(uintptr_t)(rounds * TOUCHERS + i + 1));
		for (int i = 0; i < TOUCHERS; i++) {
			void *r;
			T_REQUIRE(pthread_join(t[i], &r) == 0);
			bad += (long)(uintptr_t)r;
		}
		CHECK_EQ(bad, 0);
		T_REQUIRE(t_unregister(g_fd, area, (size_t)PAGES * (size_t)t_ps) == 0);
		T_REQUIRE(munmap(area, (size_t)PAGES * (size_t)t_ps) == 0);
		rounds++;
	}
	atomic_store(&g_stop, 1);
	for (int i = 0; i < HANDLERS; i++)
		t_join(h[i]);
	fprintf(stderr, "%d rounds, %ld copies, %ld EEXIST\n", rounds, atomic_load(&g_copies),
		atomic_load(&g_eexist));
	CHECK(atomic_load(&g_copies) >= (long)PAGES * rounds);
	uf_close(g_fd);
	free(g_src);
	return t_done();
}
