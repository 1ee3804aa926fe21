/* SPDX-License-Identifier: MIT */
/* Closing the last descriptor releases the uffd: every waiting thread resumes
 * (reads see zero pages, writes land), the ranges are unregistered (no more
 * faults; another uffd may register them).  Closing a descriptor while a dup
 * is open does nothing.  The kernel releases at once, the emulation within a
 * short time: waits are bounded by 2 s. */
#include "t.h"

#define N 4

int main(void)
{
	int fd, d, fd2 = -1;
	char *p;
	struct t_touch t[N];
	struct uffd_msg m;
	int64_t end;

	t_start(30);
	fd = t_uffd(0);
	p = t_map_reg(fd, N + 2);
	d = dup(fd);
	T_REQUIRE(d >= 0);

	t_touch_start(&t[0], p + 1, 0, 0x11);
	t_touch_start(&t[1], p + t_ps + 2, 1, 0x12);
	t_touch_start(&t[2], p + 2 * t_ps + 3, 0, 0x13);
	t_touch_start(&t[3], p + 2 * t_ps + 4, 1, 0x14);
	/* Read some messages; leave the rest queued. */
	CHECK(T_MSG(fd, &m, 2000));
	CHECK(T_MSG(d, &m, 2000));
	t_msleep(100);

	/* Not the last descriptor: nothing happens. */
	CHECK_EQ(uf_close(fd), 0);
	for (int i = 0; i < N; i++)
		CHECK(!t_touch_wait(&t[i], i ? 0 : 300));
	/* The dup still delivers the queued messages. */
	T_MSG(d, &m, 2000);

	/* The last one: all resume. */
	CHECK_EQ(uf_close(d), 0);
	for (int i = 0; i < N; i++)
		CHECK(t_touch_wait(&t[i], 2000));
	CHECK_EQ(t[0].val, 0);
	CHECK_EQ(p[t_ps + 2], 0x12);
	CHECK_EQ(p[2 * t_ps + 4], 0x14);
	CHECK_EQ(p[2 * t_ps + 3], 0);
	CHECK_EQ(t[2].val, 0);

	/* Unregistered: untouched pages are ordinary memory. */
	fd2 = t_uffd(0);
	T_EXPECT_NO_FAULT(fd2, p + (N + 1) * t_ps, 0, 0);
	T_EXPECT_NO_FAULT(fd2, p + N * t_ps + 5, 1, 0x15);
	CHECK_EQ(p[N * t_ps + 5], 0x15);

	/* Another uffd can take the range over (no EBUSY). */
	munmap(p, (N + 2) * (size_t)t_ps);
	{
		int fd3 = t_uffd(0), r;
		char *q = t_map_reg(fd3, 2);

		T_EXPECT_FAULT(fd3, q, 0, 0x16);
		CHECK_EQ(uf_close(fd3), 0);
		end = t_now_ms() + 2000;
		while ((r = t_register(fd2, q, 2 * (size_t)t_ps)) == -1 &&
		       errno == EBUSY && t_now_ms() < end)
			t_msleep(5);
		CHECK_EQ(r, 0);
		T_EXPECT_FAULT(fd2, q + t_ps, 1, 0x17);
		CHECK_EQ(q[0], 0x16);
	}
	CHECK_EQ(uf_close(fd2), 0);
	return t_done();
}
