/* SPDX-License-Identifier: MIT */
/* MADV_DONTNEED on a registered range (no EVENT_REMOVE requested) drops its
 * pages: they are missing again, so the next read or write faults and COPY
 * installs new content (no EEXIST); pages outside the advised range keep
 * theirs; ZEROPAGE-resolved pages are dropped the same way. */
#include "t.h"

int main(void)
{
	int fd;
	char *p;

	t_start(20);
	fd = t_uffd(0);
	p = t_map_reg(fd, 4);
	CHECK_EQ(t_copy_byte(fd, p, 0x51, 3, 0), 0);
	CHECK_EQ(t_zeropage(fd, p + 3 * t_ps, (size_t)t_ps, 0, NULL), 0);
	p[3 * t_ps + 1] = 0x54;			/* COW of the zero page */
	CHECK_EQ(p[t_ps], 0x51);

	/* Pages 1 and 3 go; 0 and 2 stay. */
	CHECK_EQ(madvise(p + t_ps, (size_t)t_ps, MADV_DONTNEED), 0);
	CHECK_EQ(madvise(p + 3 * t_ps, (size_t)t_ps, MADV_DONTNEED), 0);
	T_EXPECT_FAULT(fd, p + t_ps + 4, 0, 0x52);
	T_EXPECT_FAULT(fd, p + 3 * t_ps + 1, 1, 0x53);
	CHECK_EQ(p[3 * t_ps + 1], 0x53);
	CHECK_EQ(p[3 * t_ps], 0x53);
	CHECK_EQ(p[0], 0x51);
	CHECK_EQ(p[2 * t_ps + 9], 0x51);
	T_NO_MSG(fd, 0);

	/* The whole range, then COPY without a fault: no EEXIST. */
	CHECK_EQ(madvise(p, 4 * (size_t)t_ps, MADV_DONTNEED), 0);
	CHECK_EQ(t_copy_byte(fd, p, 0x55, 2, 0), 0);
	CHECK_EQ(p[t_ps + 1], 0x55);
	T_EXPECT_FAULT(fd, p + 2 * t_ps, 1, 0x56);
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
