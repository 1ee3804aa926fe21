/* SPDX-License-Identifier: MIT */
/* UFFDIO_ZEROPAGE: wakes the faulter, the page reads zero and a later write
 * does not fault; DONTWAKE + WAKE; EEXIST (zeropage = -17) on a present page;
 * partial → EAGAIN with zeropage = bytes done; ENOENT outside a registered
 * VMA; many pages at once. */
#include "t.h"

int main(void)
{
	int fd;
	char *p;
	struct t_touch t;
	struct uffd_msg m;
	int64_t out;

	t_start(20);
	fd = t_uffd(0);
	p = t_map_reg(fd, 24);

	/* Resolve a read fault with a zero page. */
	t_touch_start(&t, p + 3, 0, 0x7f);
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, p, 0);
	CHECK_EQ(t_zeropage(fd, p, (size_t)t_ps, 0, &out), 0);
	CHECK_EQ(out, t_ps);
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(t.val, 0);
	/* Later writes are not userfaults. */
	T_EXPECT_NO_FAULT(fd, p + 5, 1, 0x33);
	CHECK_EQ(p[5], 0x33);
	CHECK_EQ(p[3], 0);
	p[t_ps - 1] = 0x34;
	CHECK_EQ(p[t_ps - 1], 0x34);

	/* Present now: EEXIST, content kept. */
	CHECK_ERRNO(t_zeropage(fd, p, (size_t)t_ps, 0, &out), EEXIST);
	CHECK_EQ(out, -EEXIST);
	CHECK_EQ(p[5], 0x33);
	CHECK_EQ(t_copy_byte(fd, p + t_ps, 0x44, 1, 0), 0);
	CHECK_ERRNO(t_zeropage(fd, p + t_ps, (size_t)t_ps, 0, &out), EEXIST);
	CHECK_EQ(out, -EEXIST);
	CHECK_EQ(p[t_ps], 0x44);

	/* Partial: page 2 empty, page 3 present. */
	CHECK_EQ(t_copy_byte(fd, p + 3 * t_ps, 0x45, 1, 0), 0);
	CHECK_ERRNO(t_zeropage(fd, p + 2 * t_ps, 2 * (size_t)t_ps, 0, &out), EAGAIN);
	CHECK_EQ(out, t_ps);
	CHECK_EQ(p[2 * t_ps], 0);
	CHECK_EQ(p[3 * t_ps], 0x45);

	/* DONTWAKE, then WAKE. */
	t_touch_start(&t, p + 4 * t_ps + 1, 1, 0x46);
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, p + 4 * t_ps, UFFD_PAGEFAULT_FLAG_WRITE);
	CHECK_EQ(t_zeropage(fd, p + 4 * t_ps, (size_t)t_ps,
			    UFFDIO_ZEROPAGE_MODE_DONTWAKE, &out), 0);
	CHECK_EQ(out, t_ps);
	CHECK(!t_touch_wait(&t, 300));
	CHECK_EQ(t_wake(fd, p + 4 * t_ps, (size_t)t_ps), 0);
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(p[4 * t_ps + 1], 0x46);
	CHECK_EQ(p[4 * t_ps], 0);

	/* Many pages at once, all zero, none faults afterwards. */
	CHECK_EQ(t_zeropage(fd, p + 8 * t_ps, 16 * (size_t)t_ps, 0, &out), 0);
	CHECK_EQ(out, 16 * t_ps);
	for (int i = 8; i < 24; i++) {
		CHECK_EQ(p[i * t_ps + i], 0);
		p[i * t_ps] = (char)i;
	}
	for (int i = 8; i < 24; i++)
		CHECK_EQ(p[i * t_ps], i);
	T_NO_MSG(fd, 0);

	/* Outside a registered VMA. */
	{
		char *q = t_map(1);

		CHECK_ERRNO(t_zeropage(fd, q, (size_t)t_ps, 0, &out), ENOENT);
		CHECK_EQ(out, -ENOENT);
		munmap(q, (size_t)t_ps);
		CHECK_ERRNO(t_zeropage(fd, q, (size_t)t_ps, 0, &out), ENOENT);
		CHECK_EQ(out, -ENOENT);
	}
	/* Pages 5..7 were never touched: they still fault. */
	T_EXPECT_FAULT(fd, p + 6 * t_ps, 0, 0x47);
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
