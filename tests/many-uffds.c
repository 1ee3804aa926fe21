/* SPDX-License-Identifier: MIT */
/* Many uffds at once: N uffds, each registering one page of a common mapping;
 * a thread faulting on each page; each message arrives on its own uffd and
 * on no other; each is resolved through its uffd; closing them all releases
 * everything (the remaining waiter resumes, the pages become ordinary). */
#include "t.h"

#define N 64

int main(void)
{
	int fd[N];
	struct t_touch t[N];
	struct uffd_msg m;
	char *p;

	t_start(30);
	p = t_map(N);
	for (int i = 0; i < N; i++) {
		fd[i] = t_uffd(i & 1 ? UFFD_FEATURE_THREAD_ID : 0);
		CHECK_EQ(t_register(fd[i], p + i * t_ps, (size_t)t_ps), 0);
	}
	/* Neighbours belong to other uffds. */
	CHECK_ERRNO(t_register(fd[0], p, 2 * (size_t)t_ps), EBUSY);

	for (int i = 0; i < N; i++)
		t_touch_start(&t[i], p + i * t_ps + i, i & 2, (char)i);
	for (int i = 0; i < N; i++) {
		if (!T_MSG(fd[i], &m, 3000))
			continue;
		CHECK_FAULT(&m, p + i * t_ps, i & 2 ? UFFD_PAGEFAULT_FLAG_WRITE : 0);
		CHECK_EQ(m.arg.pagefault.feat.ptid, i & 1 ? t_touch_tid(&t[i]) : 0);
	}
	for (int i = 0; i < N; i++)
		T_NO_MSG(fd[i], 0);
	/* Resolve all but the last through their own uffds. */
	for (int i = 0; i < N - 1; i++) {
		CHECK_EQ(t_copy_byte(fd[i], p + i * t_ps, 0x80 + i, 1, 0), 0);
		CHECK(t_touch_wait(&t[i], 2000));
		if (i & 2)
			CHECK_EQ(p[i * t_ps + i], (char)i);
		else
			CHECK_EQ(t[i].val, (char)(0x80 + i));
	}
	CHECK(!t_touch_wait(&t[N - 1], 100));
	for (int i = 0; i < N; i++)
		CHECK_EQ(uf_close(fd[i]), 0);
	/* The last waiter resumes with a zero page once its uffd is gone. */
	CHECK(t_touch_wait(&t[N - 1], 2000));
	CHECK_EQ(p[(N - 1) * t_ps + N - 1], (N - 1) & 2 ? (char)(N - 1) : 0);
	{
		int fd2 = t_uffd(0);

		T_EXPECT_NO_FAULT(fd2, p + (N - 1) * t_ps, 0, 0);
		CHECK_EQ(p[0], (char)0x80);
		CHECK_EQ(uf_close(fd2), 0);
	}
	return t_done();
}
