/* SPDX-License-Identifier: MIT */
/* UFFDIO_WAKE without resolving: the faulter retries and a second, identical
 * message arrives; WAKE of an unrelated or unregistered range returns 0 and
 * wakes nobody; COPY afterwards resolves it. */
#include "t.h"

int main(void)
{
	int fd;
	char *p, *other;
	struct t_touch t;
	struct uffd_msg m1, m2;

	t_start(20);
	fd = t_uffd(UFFD_FEATURE_THREAD_ID);
	p = t_map_reg(fd, 4);
	other = t_map(1);

	t_touch_start(&t, p + t_ps + 0x10, 1, 0x5c);
	if (T_MSG(fd, &m1, 2000))
		CHECK_FAULT(&m1, p + t_ps, UFFD_PAGEFAULT_FLAG_WRITE);

	/* Unrelated ranges: 0, nobody wakes, nothing new. */
	CHECK_EQ(t_wake(fd, p, (size_t)t_ps), 0);
	CHECK_EQ(t_wake(fd, p + 2 * t_ps, 2 * (size_t)t_ps), 0);
	CHECK_EQ(t_wake(fd, other, (size_t)t_ps), 0);
	munmap(other, (size_t)t_ps);
	CHECK_EQ(t_wake(fd, other, (size_t)t_ps), 0);
	CHECK(!t_touch_wait(&t, 200));
	T_NO_MSG(fd, 0);

	/* WAKE without resolving: the same fault again. */
	CHECK_EQ(t_wake(fd, p + t_ps, (size_t)t_ps), 0);
	if (T_MSG(fd, &m2, 2000)) {
		/* NOLINTNEXTLINE(bugprone-suspicious-memory-comparison): all 32 bytes, as read() gave them */
		CHECK_EQ(memcmp(&m1, &m2, sizeof m1), 0);
		CHECK_FAULT(&m2, p + t_ps, UFFD_PAGEFAULT_FLAG_WRITE);
		CHECK_EQ(m2.arg.pagefault.feat.ptid, t_touch_tid(&t));
	}
	CHECK(!t_touch_wait(&t, 100));

	/* A wide WAKE covering the page works too. */
	CHECK_EQ(t_wake(fd, p, 4 * (size_t)t_ps), 0);
	if (T_MSG(fd, &m2, 2000))
		/* NOLINTNEXTLINE(bugprone-suspicious-memory-comparison): as above */
		CHECK_EQ(memcmp(&m1, &m2, sizeof m1), 0);

	CHECK_EQ(t_copy_byte(fd, p + t_ps, 0x11, 1, 0), 0);
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(p[t_ps + 0x10], 0x5c);
	CHECK_EQ(p[t_ps], 0x11);
	T_NO_MSG(fd, 100);
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
