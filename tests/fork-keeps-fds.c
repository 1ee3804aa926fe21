/* SPDX-License-Identifier: MIT */
/* fork() of a program that has a uffd but registered nothing: the child
 * keeps every descriptor it inherited, stdin included, and can write to
 * them (the emulation once closed descriptor 0 in such a child, freeing
 * the memfd slots it had never used). */
#include "t.h"

#include <sys/wait.h>

int main(void)
{
	int fd, pipefd[2], st, nul;
	pid_t pid;

	t_start(30);
	/* Descriptor 0 must be open for the check to mean anything. */
	nul = open("/dev/null", O_RDONLY);
	T_REQUIRE(nul >= 0);
	if (fcntl(0, F_GETFD) < 0)
		T_REQUIRE(dup2(nul, 0) == 0);
	T_REQUIRE(pipe(pipefd) == 0);
	fd = t_uffd(0);
	pid = fork();
	T_REQUIRE(pid >= 0);
	if (pid == 0) {
		int bad = 0;
		t_child_watchdog(10);
		for (int i = 0; i <= pipefd[1]; i++)
			if (i != pipefd[0] && fcntl(i, F_GETFD) < 0)
				bad = i ? i : 100;
		_exit(write(pipefd[1], &bad, sizeof bad) == (ssize_t)sizeof bad ? 0 : 1);
	}
	{
		int bad = -1;
		CHECK_EQ(read(pipefd[0], &bad, sizeof bad), (ssize_t)sizeof bad);
		CHECK_EQ(bad, 0);	/* 100: descriptor 0 was closed */
	}
	T_REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_EQ(fcntl(0, F_GETFD) >= 0, 1);
	uf_close(fd);
	return t_done();
}
