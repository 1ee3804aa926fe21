/* SPDX-License-Identifier: MIT */
/* Writes racing with REGISTER/UNREGISTER: writer threads increment counters
 * (read-modify-write, so a lost store shows in the final count) all over
 * their pages of a populated range while the main thread registers and
 * unregisters it (whole, halves, single pages) over and over.  No increment
 * may be lost, and pages that are present never produce a message. */
#include "t.h"

#define WRITERS 4
#define PAGES_EACH 4
#define RUN_MS 2000

struct writer {
	volatile uint64_t *base;	/* PAGES_EACH pages */
	uint64_t writes;
	int *stop;
	pthread_t th;
};

static void *writer_fn(void *arg)
{
	struct writer *w = arg;
	size_t slots = PAGES_EACH * (size_t)t_ps / sizeof(uint64_t);
	uint64_t k = 0;

	while (!__atomic_load_n(w->stop, __ATOMIC_RELAXED)) {
		/* Stride through all pages quickly: slot k * 67 mod slots. */
		for (int j = 0; j < 256; j++, k++)
			w->base[(k * 67) % slots]++;
	}
	w->writes = k;
	return NULL;
}

int main(void)
{
	size_t pages = (size_t)WRITERS * PAGES_EACH, len, slots;
	struct writer w[WRITERS];
	struct t_handler h;
	int fd, stop = 0;
	char *p;
	long rounds = 0;
	int64_t end;

	/* The watchdog catches a hang.  Under valgrind (tools/analyze.sh) one
	 * thread runs at a time and the four writers take most of the turns:
	 * a run takes 13 to 42 s there (before and after the write-protect
	 * work alike), so it gets more. */
	t_start(getenv("USERFAULT_TEST_VALGRIND") ? 150 : 40);
	len = pages * (size_t)t_ps;
	slots = PAGES_EACH * (size_t)t_ps / sizeof(uint64_t);
	fd = t_uffd(0);
	p = t_map(pages);
	memset(p, 0, len);		/* all present */
	t_handler_start(&h, fd, 0);
	for (int i = 0; i < WRITERS; i++) {
		w[i].base = (volatile uint64_t *)(p + (size_t)i * PAGES_EACH * t_ps);
		w[i].stop = &stop;
		w[i].th = t_thread(writer_fn, &w[i]);
	}

	end = t_now_ms() + RUN_MS;
	while (t_now_ms() < end) {
		size_t half = len / 2, pg = (size_t)(rounds % (long)pages) * (size_t)t_ps;
		int r1, r2, r3, r4;

		r1 = t_register(fd, p, len);
		r2 = t_unregister(fd, p, len);
		r3 = t_register(fd, p + (rounds & 1 ? half : 0), half);
		r4 = t_register(fd, p + pg, (size_t)t_ps);
		if (r1 || r2 || r3 || r4) {
			CHECK_EQ(r1 | r2 | r3 | r4, 0);
			break;
		}
		if (t_unregister(fd, p + pg, (size_t)t_ps) ||
		    t_unregister(fd, p, len)) {
			CHECK(!"UNREGISTER failed");
			break;
		}
		rounds++;
	}
	/* Finish registered: the writers go on a little on a registered range. */
	CHECK_EQ(t_register(fd, p, len), 0);
	t_msleep(50);
	__atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < WRITERS; i++)
		t_join(w[i].th);
	CHECK_EQ(t_handler_stop(&h), 0);
	CHECK_EQ(h.errors, 0);
	fprintf(stderr, "%ld register rounds\n", rounds);
	/* Under valgrind (tools/analyze.sh) one thread runs at a time, and each
	 * REGISTER parses /proc/self/maps in instrumented code: no rate there. */
	CHECK(rounds > (getenv("USERFAULT_TEST_VALGRIND") ? 0 : 10));

	/* Check the counts: slot (k * 67) % slots was incremented once per k;
	 * 67 is odd and slots a power of two, so each run of `slots` writes
	 * touches every slot once. */
	for (int i = 0; i < WRITERS; i++) {
		uint64_t *expect = calloc(slots, sizeof *expect);
		size_t bad = 0;

		T_REQUIRE(expect);
		for (size_t s = 0; s < slots; s++)
			expect[s] = w[i].writes / slots;
		for (uint64_t k = 0; k < w[i].writes % slots; k++)
			expect[(k * 67) % slots]++;
		for (size_t s = 0; s < slots; s++)
			if (w[i].base[s] != expect[s] && bad++ < 5)
				fprintf(stderr, "  writer %d slot %zu: expected %llu, got %llu\n",
					i, s, (unsigned long long)expect[s],
					(unsigned long long)w[i].base[s]);
		CHECK_EQ(bad, 0);
		CHECK(w[i].writes > 0);
		free(expect);
	}
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
