/* SPDX-License-Identifier: MIT */
/* mremap() of a registered range, no event features: moved elsewhere, the
 * data goes with it and the new place is not registered (missing pages read
 * zero with no message, COPY there is ENOENT) while the old address is
 * unmapped (SIGSEGV, SEGV_MAPERR); grown in place, the added pages inherit
 * the registration (they fault). */
#include "t.h"

int main(void)
{
	int fd;
	char *p, *dst, *r;

	t_start(20);
	fd = t_uffd(0);

	/* Move. */
	p = t_map_reg(fd, 3);
	CHECK_EQ(t_copy_byte(fd, p, 0x41, 1, 0), 0);
	CHECK_EQ(t_copy_byte(fd, p + t_ps, 0x42, 1, 0), 0);
	dst = t_map(3);
	r = mremap(p, 3 * (size_t)t_ps, 3 * (size_t)t_ps,
		   MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	T_REQUIRE(r == dst);
	CHECK_EQ(r[0], 0x41);
	CHECK_EQ(r[t_ps + 1], 0x42);
	T_EXPECT_NO_FAULT(fd, r + 2 * t_ps + 3, 0, 0);
	CHECK_ERRNO(t_copy_byte(fd, r + 2 * t_ps, 0x43, 1, 0), ENOENT);
	r[5] = 0x44;
	CHECK_EQ(r[5], 0x44);
	CHECK_SEGV(p + 6, 0, SEGV_MAPERR);
	CHECK_SEGV(p + 2 * t_ps, 1, SEGV_MAPERR);
	T_NO_MSG(fd, 0);
	munmap(r, 3 * (size_t)t_ps);

	/* Grow in place (the page after it is made free first). */
	p = t_map(3);
	munmap(p + 2 * t_ps, (size_t)t_ps);
	CHECK_EQ(t_register(fd, p, 2 * (size_t)t_ps), 0);
	CHECK_EQ(t_copy_byte(fd, p, 0x45, 1, 0), 0);
	r = mremap(p, 2 * (size_t)t_ps, 3 * (size_t)t_ps, 0);
	T_REQUIRE(r == p);
	CHECK_EQ(p[0], 0x45);
	T_EXPECT_FAULT(fd, p + t_ps, 0, 0x46);
	T_EXPECT_FAULT(fd, p + 2 * t_ps + 7, 1, 0x47);
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
