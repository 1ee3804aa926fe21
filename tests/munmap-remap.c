/* SPDX-License-Identifier: MIT */
/* Unmapping a registered range drops its registration (the kernel's VMA is
 * gone): after munmap + a new mmap at the same address, or an mmap(MAP_FIXED)
 * straight over it, the new memory is ordinary (no fault, zero), COPY and
 * ZEROPAGE into it are ENOENT, UNREGISTER of it is a no-op, and another uffd
 * may register it, after which its pages are missing.  Unmapping one page in
 * the middle leaves the rest registered. */
#include "t.h"

/* p: a fresh unregistered mapping of `pages` pages where a registered one
 * with installed pages used to be. */
static void check_fresh(int fd, char *p, size_t pages)
{
	int64_t out;
	int fd2;

	CHECK_ERRNO(t_copy_byte(fd, p, 0x66, 1, 0), ENOENT);
	CHECK_ERRNO(t_copy_byte(fd, p + (pages - 1) * t_ps, 0x66, 1, 0), ENOENT);
	CHECK_ERRNO(t_zeropage(fd, p + t_ps, (size_t)t_ps, 0, &out), ENOENT);
	CHECK_EQ(out, -ENOENT);
	T_EXPECT_NO_FAULT(fd, p + 3, 0, 0);
	T_EXPECT_NO_FAULT(fd, p + (pages - 1) * t_ps + 5, 0, 0);
	T_EXPECT_NO_FAULT(fd, p + t_ps + 7, 1, 0x67);
	CHECK_EQ(p[t_ps + 7], 0x67);
	CHECK_EQ(t_unregister(fd, p, pages * (size_t)t_ps), 0);

	/* Another uffd takes it: pages never touched since are missing. */
	fd2 = t_uffd(0);
	CHECK_EQ(t_register(fd2, p, pages * (size_t)t_ps), 0);
	T_EXPECT_FAULT(fd2, p + 2 * t_ps + 9, 0, 0x68);
	T_EXPECT_NO_FAULT(fd2, p + t_ps + 7, 0, 0x67);
	T_NO_MSG(fd, 0);
	CHECK_EQ(uf_close(fd2), 0);
}

int main(void)
{
	int fd;
	char *p, *q;

	t_start(30);
	fd = t_uffd(0);

	/* munmap, then a new mapping at the same place. */
	p = t_map_reg(fd, 4);
	CHECK_EQ(t_copy_byte(fd, p, 0x61, 4, 0), 0);
	CHECK_EQ(munmap(p, 4 * (size_t)t_ps), 0);
	q = mmap(p, 4 * (size_t)t_ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	T_REQUIRE(q == p);
	check_fresh(fd, q, 4);
	munmap(q, 4 * (size_t)t_ps);

	/* mmap(MAP_FIXED) over a registered range. */
	p = t_map_reg(fd, 4);
	CHECK_EQ(t_copy_byte(fd, p, 0x62, 2, 0), 0);
	/* cppcheck-suppress leakReturnValNotUsed ; MAP_FIXED over p */
	T_REQUIRE(mmap(p, 4 * (size_t)t_ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p);
	check_fresh(fd, p, 4);
	munmap(p, 4 * (size_t)t_ps);

	/* One page in the middle: unmapped, then mapped again; the others
	 * stay registered and keep their pages. */
	p = t_map_reg(fd, 3);
	CHECK_EQ(t_copy_byte(fd, p, 0x63, 1, 0), 0);
	CHECK_EQ(t_copy_byte(fd, p + t_ps, 0x64, 1, 0), 0);
	CHECK_EQ(munmap(p + t_ps, (size_t)t_ps), 0);
	/* cppcheck-suppress leakReturnValNotUsed ; MAP_FIXED_NOREPLACE into p's hole */
	T_REQUIRE(mmap(p + t_ps, (size_t)t_ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == p + t_ps);
	CHECK_ERRNO(t_copy_byte(fd, p + t_ps, 0x65, 1, 0), ENOENT);
	T_EXPECT_NO_FAULT(fd, p + t_ps + 1, 0, 0);
	CHECK_EQ(p[0], 0x63);
	T_EXPECT_FAULT(fd, p + 2 * t_ps, 1, 0x69);
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
