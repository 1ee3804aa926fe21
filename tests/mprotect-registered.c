/* SPDX-License-Identifier: MIT */
/* mprotect() on a registered range keeps the registration and only changes
 * the access rights: a PROT_NONE range registered, then made read-write,
 * faults on its missing pages; made PROT_READ, present pages read fine,
 * missing pages fault on read, writes are SIGSEGV (SEGV_ACCERR, exact
 * address, no message); made PROT_NONE, every access is SIGSEGV; read-write
 * again, the content is intact and missing pages still fault. */
#include "t.h"

int main(void)
{
	int fd;
	char *p;
	size_t len;

	t_start(20);
	fd = t_uffd(0);
	len = 4 * (size_t)t_ps;
	p = t_map_prot(4, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
	CHECK_EQ(t_register(fd, p, len), 0);

	CHECK_EQ(mprotect(p, len, PROT_READ | PROT_WRITE), 0);
	T_EXPECT_FAULT(fd, p + 1, 1, 0x71);
	CHECK_EQ(p[1], 0x71);

	CHECK_EQ(mprotect(p, len, PROT_READ), 0);
	CHECK_EQ(p[2], 0x71);
	T_EXPECT_FAULT(fd, p + t_ps + 2, 0, 0x72);
	CHECK_SEGV(p + 5, 1, SEGV_ACCERR);
	CHECK_SEGV(p + 2 * t_ps + 6, 1, SEGV_ACCERR);
	T_NO_MSG(fd, 50);

	CHECK_EQ(mprotect(p, len, PROT_NONE), 0);
	CHECK_SEGV(p + 7, 0, SEGV_ACCERR);
	CHECK_SEGV(p + 3 * t_ps + 8, 0, SEGV_ACCERR);
	CHECK_SEGV(p + 3 * t_ps + 9, 1, SEGV_ACCERR);
	T_NO_MSG(fd, 50);

	CHECK_EQ(mprotect(p, len, PROT_READ | PROT_WRITE), 0);
	CHECK_EQ(p[1], 0x71);
	CHECK_EQ(p[t_ps + 2], 0x72);
	p[t_ps + 3] = 0x73;
	CHECK_EQ(p[t_ps + 3], 0x73);
	T_EXPECT_FAULT(fd, p + 2 * t_ps + 6, 1, 0x74);
	T_EXPECT_FAULT(fd, p + 3 * t_ps, 0, 0x75);
	T_NO_MSG(fd, 0);
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
