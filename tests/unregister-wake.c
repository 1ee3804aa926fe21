/* SPDX-License-Identifier: MIT */
/* UNREGISTER with threads waiting in the range: they resume (read messages
 * and unread ones alike), reads see zero, writes land; faulters outside the
 * unregistered part keep waiting; the memory is ordinary afterwards. */
#include "t.h"

int main(void)
{
	int fd;
	char *p;
	struct t_touch t[4];
	struct uffd_msg m;

	t_start(20);
	fd = t_uffd(0);
	p = t_map_reg(fd, 4);

	t_touch_start(&t[0], p + 10, 0, 0x55);
	t_touch_start(&t[1], p + t_ps + 20, 1, 0x56);
	t_touch_start(&t[2], p + t_ps + 30, 0, 0x57);
	t_touch_start(&t[3], p + 3 * t_ps, 0, 0x58);
	/* Read two of the four messages, leave the others queued. */
	CHECK(T_MSG(fd, &m, 2000));
	CHECK(T_MSG(fd, &m, 2000));
	t_msleep(100);
	for (int i = 0; i < 4; i++)
		CHECK(!__atomic_load_n(&t[i].done, __ATOMIC_SEQ_CST));

	/* Unregister pages 0..2: t[0..2] resume, t[3] keeps waiting. */
	CHECK_EQ(t_unregister(fd, p, 3 * (size_t)t_ps), 0);
	for (int i = 0; i < 3; i++)
		CHECK(t_touch_wait(&t[i], 2000));
	CHECK_EQ(t[0].val, 0);
	CHECK_EQ(p[t_ps + 20], 0x56);
	CHECK_EQ(t[2].val, 0);
	CHECK_EQ(p[t_ps + 30], 0);
	CHECK(!t_touch_wait(&t[3], 300));

	/* Messages of the woken threads that were still queued are gone;
	 * only t[3]'s may be left (if it was not among the two read). */
	while (t_read_msg(fd, &m, 100) == 1)
		CHECK_FAULT(&m, p + 3 * t_ps, 0);
	/* The unregistered pages are ordinary memory now. */
	T_EXPECT_NO_FAULT(fd, p + 2 * t_ps, 0, 0);
	T_EXPECT_NO_FAULT(fd, p + 2 * t_ps + 1, 1, 0x59);
	CHECK_EQ(p[2 * t_ps + 1], 0x59);

	CHECK_EQ(t_copy_byte(fd, p + 3 * t_ps, 0x5a, 1, 0), 0);
	CHECK(t_touch_wait(&t[3], 2000));
	CHECK_EQ(t[3].val, 0x5a);

	/* Unregister the rest with nobody waiting; nothing more comes. */
	CHECK_EQ(t_unregister(fd, p, 4 * (size_t)t_ps), 0);
	T_NO_MSG(fd, 100);
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
