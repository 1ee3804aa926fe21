/* SPDX-License-Identifier: MIT */
/* Many threads: N threads faulting on the same page give N messages (one per
 * thread, ptid = each thread's tid) and one COPY wakes them all; N threads on
 * N different pages give N messages, each resolved on its own, in a shuffled
 * order, each thread seeing its own page. */
#include "t.h"

#define N 8

/* Collect exactly N messages (then no more). */
static int collect(int fd, struct uffd_msg *m)
{
	int got = 0;

	while (got < N) {
		int r = t_read_msg(fd, &m[got], 3000);

		if (r != 1)
			break;
		got++;
	}
	CHECK_EQ(got, N);
	T_NO_MSG(fd, 200);
	return got;
}

static void same_page(int fd, char *p)
{
	struct t_touch t[N];
	struct uffd_msg m[N];
	int got, seen[N] = { 0 };

	for (int i = 0; i < N; i++)
		t_touch_start(&t[i], p + 64 * (size_t)i, i & 1, (char)(0x40 + i));
	got = collect(fd, m);
	for (int i = 0; i < got; i++) {
		int who = -1;

		CHECK_EQ(m[i].event, UFFD_EVENT_PAGEFAULT);
		CHECK_EQ(m[i].arg.pagefault.address, (uintptr_t)p);
		for (int j = 0; j < N; j++)
			if (m[i].arg.pagefault.feat.ptid == (uint32_t)t_touch_tid(&t[j]))
				who = j;
		CHECK(who >= 0);
		if (who < 0)
			continue;
		seen[who]++;
		CHECK_EQ(m[i].arg.pagefault.flags,
			 (who & 1) ? UFFD_PAGEFAULT_FLAG_WRITE : 0);
	}
	for (int j = 0; j < N; j++)
		CHECK_EQ(seen[j], 1);
	/* None of them has gone on yet. */
	for (int j = 0; j < N; j++)
		CHECK(!__atomic_load_n(&t[j].done, __ATOMIC_SEQ_CST));
	CHECK_EQ(t_copy_byte(fd, p, 0x3f, 1, 0), 0);
	for (int j = 0; j < N; j++) {
		CHECK(t_touch_wait(&t[j], 2000));
		if (j & 1)
			CHECK_EQ(p[64 * (size_t)j], 0x40 + j);
		else
			CHECK_EQ(t[j].val, 0x3f);
	}
	T_NO_MSG(fd, 100);
}

static void different_pages(int fd, char *p)
{
	struct t_touch t[N];
	struct uffd_msg m[N];
	int got, page_of[N];
	static const int order[N] = { 5, 2, 7, 0, 3, 6, 1, 4 };

	for (int i = 0; i < N; i++) {
		t_touch_start(&t[i], p + i * t_ps + i, 0, 0);
		page_of[i] = -1;
	}
	got = collect(fd, m);
	for (int i = 0; i < got; i++) {
		uintptr_t a = m[i].arg.pagefault.address;
		int pg = (int)((a - (uintptr_t)p) / (uintptr_t)t_ps);

		CHECK_EQ(m[i].event, UFFD_EVENT_PAGEFAULT);
		CHECK_EQ(m[i].arg.pagefault.flags, 0);
		CHECK(a >= (uintptr_t)p && pg < N && a % (uintptr_t)t_ps == 0);
		if (a < (uintptr_t)p || pg >= N)
			continue;
		CHECK_EQ(m[i].arg.pagefault.feat.ptid, t_touch_tid(&t[pg]));
		CHECK_EQ(page_of[pg], -1);
		page_of[pg] = i;
	}
	for (int k = 0; k < N; k++) {
		int pg = order[k];

		CHECK_EQ(t_copy_byte(fd, p + pg * t_ps, 0x60 + pg, 1, 0), 0);
		CHECK(t_touch_wait(&t[pg], 2000));
		CHECK_EQ(t[pg].val, 0x60 + pg);
		/* The ones not resolved yet are still waiting. */
		if (k + 1 < N)
			CHECK(!__atomic_load_n(&t[order[k + 1]].done, __ATOMIC_SEQ_CST));
	}
	T_NO_MSG(fd, 100);
}

int main(void)
{
	int fd;

	t_start(30);
	fd = t_uffd(UFFD_FEATURE_THREAD_ID);
	same_page(fd, t_map_reg(fd, 1));
	different_pages(fd, t_map_reg(fd, N));
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
