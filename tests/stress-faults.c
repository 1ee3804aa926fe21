/* SPDX-License-Identifier: MIT */
/* Many concurrent faults: THREADS threads read and write all PAGES pages of
 * one registered range, each in its own shuffled order, while a resolver
 * thread answers every message with COPY of a page stamped with its address.
 * Every access completes and sees the stamp, every write lands (each worker
 * owns one word of every page), each page faults at least once, and no
 * resolution fails (EEXIST for a page already there is answered by WAKE). */
#include "t.h"

#define THREADS 6
#define PAGES 4096

static int go;

struct worker {
	char *base;
	int id;			/* owns word 1 + id of every page */
	unsigned seed;
	long bad;
	pthread_t th;
};

static uint64_t mark(const char *page, int id)
{
	return (uint64_t)(uintptr_t)page * 31 + (uint64_t)id + 1;
}

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	static __thread int order[PAGES];

	for (int i = 0; i < PAGES; i++)
		order[i] = i;
	for (int i = PAGES - 1; i > 0; i--) {
		int j = (int)(rand_r(&w->seed) % (unsigned)(i + 1)), tmp = order[i];

		order[i] = order[j];
		order[j] = tmp;
	}
	t_wait_flag(&go, 5000);
	for (int i = 0; i < PAGES; i++) {
		char *page = w->base + (size_t)order[i] * (size_t)t_ps;
		volatile uint64_t *word = (volatile uint64_t *)page;

		/* Even workers write first, odd ones read first. */
		if (w->id & 1) {
			w->bad += word[0] != (uint64_t)(uintptr_t)page;
			word[1 + w->id] = mark(page, w->id);
		} else {
			word[1 + w->id] = mark(page, w->id);
			w->bad += word[0] != (uint64_t)(uintptr_t)page;
		}
		w->bad += word[1 + w->id] != mark(page, w->id);
	}
	return NULL;
}

int main(void)
{
	struct worker w[THREADS];
	struct t_handler h;
	int fd;
	char *p;
	long msgs;

	t_start(60);
	fd = t_uffd(0);
	p = t_map_reg(fd, PAGES);
	t_handler_start(&h, fd, 1);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .base = p, .id = i, .seed = 1234u + 77u * (unsigned)i };
		w[i].th = t_thread(worker_fn, &w[i]);
	}
	t_msleep(20);
	__atomic_store_n(&go, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < THREADS; i++) {
		t_join(w[i].th);
		CHECK_EQ(w[i].bad, 0);
	}
	msgs = t_handler_stop(&h);
	fprintf(stderr, "%ld messages for %d pages\n", msgs, PAGES);
	CHECK(msgs >= PAGES);
	CHECK_EQ(h.errors, 0);
	/* Every page: the stamp, each worker's word, the stamp after them. */
	for (int i = 0, shown = 0; i < PAGES && shown < 3; i++) {
		char *page = p + (size_t)i * (size_t)t_ps;
		uint64_t *word = (uint64_t *)page;
		int before = t_failures;

		CHECK_EQ(word[0], (uintptr_t)page);
		for (int k = 0; k < THREADS; k++)
			CHECK_EQ(word[1 + k], mark(page, k));
		CHECK_EQ(word[1 + THREADS], (uintptr_t)page);
		if (t_failures != before) {
			fprintf(stderr, "  (page %d)\n", i);
			shown++;
		}
	}
	T_NO_MSG(fd, 0);
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
