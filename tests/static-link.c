/* SPDX-License-Identifier: MIT */
/* A program linked fully statically against libuserfault.a (the Makefile
 * builds this test with -static): creation, faults served by a handler
 * thread, a fork whose child sees the pages, and the memory calls the
 * library interposes (mmap, mprotect, mremap, madvise, munmap), which in a
 * static program find no C library function by name.  It once jumped to
 * address 0 at its first mmap. */
#include "t.h"

#include <sys/wait.h>

#ifndef UF_TEST_STATIC
int main(void)
{
	fprintf(stderr, "SKIP: not linked statically (sanitizers need a dynamic link)\n");
	return T_SKIP;
}
#else
int main(void)
{
	struct t_handler h;
	char *p, *q;
	pid_t pid;
	int fd, st;

	t_start(30);
	fd = t_uffd(0);
	p = mmap(NULL, 8 * (size_t)t_ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	T_REQUIRE(p != MAP_FAILED);
	T_REQUIRE(t_register(fd, p, 8 * (size_t)t_ps) == 0);
	t_handler_start(&h, fd, 0);	/* zero pages */
	for (int i = 0; i < 8; i++)
		p[(size_t)i * (size_t)t_ps] = (char)(i + 1);
	CHECK_EQ(p[3 * t_ps], 4);
	pid = fork();
	T_REQUIRE(pid >= 0);
	if (pid == 0)
		_exit(p[5 * t_ps] == 6 ? 0 : 1);
	T_REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_EQ(mprotect(p, 8 * (size_t)t_ps, PROT_READ), 0);
	CHECK_EQ(p[7 * t_ps], 8);
	CHECK_EQ(mprotect(p, 8 * (size_t)t_ps, PROT_READ | PROT_WRITE), 0);
	CHECK_EQ(madvise(p + 2 * t_ps, (size_t)t_ps, MADV_DONTNEED), 0);
	CHECK_EQ(p[2 * t_ps + 1], 0);	/* faulted again, served by a zero page */
	q = mremap(p, 8 * (size_t)t_ps, 16 * (size_t)t_ps, MREMAP_MAYMOVE);
	T_REQUIRE(q != MAP_FAILED);
	CHECK_EQ(q[6 * t_ps], 7);
	t_handler_stop(&h);
	CHECK_EQ(munmap(q, 16 * (size_t)t_ps), 0);
	uf_close(fd);
	return t_done();
}
#endif
