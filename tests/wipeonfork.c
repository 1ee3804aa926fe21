/* SPDX-License-Identifier: MIT */
/* MADV_WIPEONFORK on a registered range: a fork child reads zeros where
 * the parent has data (and the parent keeps it); MADV_KEEPONFORK undoes it;
 * a range marked before REGISTER keeps the mark.  As the kernel. */
#include "t.h"

#include <sys/wait.h>

/* The child's view of byte `at` of p: its value, through the exit status. */
static int child_reads(const char *p, size_t at)
{
	int st;
	pid_t pid = fork();

	T_REQUIRE(pid >= 0);
	if (pid == 0)
		_exit((unsigned char)p[at]);
	T_REQUIRE(waitpid(pid, &st, 0) == pid);
	T_REQUIRE(WIFEXITED(st));
	return WEXITSTATUS(st);
}

int main(void)
{
	char *p, *q;
	int fd;

	t_start(30);
	fd = t_uffd(0);
	p = t_map_reg(fd, 4);
	CHECK_EQ(t_copy_byte(fd, p, 0x41, 2, 0), 0);
	CHECK_EQ(madvise(p, 4 * (size_t)t_ps, MADV_WIPEONFORK), 0);
	CHECK_EQ(child_reads(p, 5), 0);
	CHECK_EQ(child_reads(p, (size_t)t_ps + 5), 0);
	CHECK_EQ(p[5], 0x41);
	CHECK_EQ(madvise(p, 4 * (size_t)t_ps, MADV_KEEPONFORK), 0);
	CHECK_EQ(child_reads(p, (size_t)t_ps + 5), 0x41);
	/* Marked before REGISTER. */
	q = mmap(NULL, 2 * (size_t)t_ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	T_REQUIRE(q != MAP_FAILED);
	q[0] = 0x42;
	CHECK_EQ(madvise(q, 2 * (size_t)t_ps, MADV_WIPEONFORK), 0);
	T_REQUIRE(t_register(fd, q, 2 * (size_t)t_ps) == 0);
	CHECK_EQ(child_reads(q, 0), 0);
	CHECK_EQ(q[0], 0x42);
	uf_close(fd);
	return t_done();
}
