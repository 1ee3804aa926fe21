/* SPDX-License-Identifier: MIT */
/* fork() after registration, without UFFD_FEATURE_EVENT_FORK: the child sees
 * the pages installed before the fork, its missing pages read zero (no fault,
 * no message), parent and child do not see each other's later writes, and the
 * parent's registration keeps working afterwards.  (The child does not use the
 * inherited descriptor: out of scope on emulated.) */
#include "t.h"

#include <sys/wait.h>

static void sync_send(int fd)
{
	char c = 1;

	T_REQUIRE(write(fd, &c, 1) == 1);
}

static void sync_wait(int fd)
{
	char c;

	T_REQUIRE(read(fd, &c, 1) == 1);
}

static int child(char *p, int from_parent, int to_parent)
{
	t_child_watchdog(10);
	/* Pre-fork data. */
	CHECK_EQ(p[0], (char)0xA1);
	CHECK_EQ(p[t_ps + 5], (char)0xA2);
	/* Missing pages: zero, at once. */
	CHECK_EQ(p[2 * t_ps + 6], 0);
	CHECK_EQ(p[4 * t_ps], 0);
	/* Writes, to a present page and to a missing one. */
	p[0] = (char)0xC1;
	p[3 * t_ps] = (char)0xC3;
	p[4 * t_ps + 1] = (char)0xC4;
	CHECK_EQ(p[0], (char)0xC1);
	CHECK_EQ(p[3 * t_ps], (char)0xC3);
	sync_send(to_parent);
	/* The parent writes now. */
	sync_wait(from_parent);
	CHECK_EQ(p[0], (char)0xC1);
	CHECK_EQ(p[t_ps + 5], (char)0xA2);
	CHECK_EQ(p[3 * t_ps], (char)0xC3);
	CHECK_EQ(p[4 * t_ps + 1], (char)0xC4);
	return t_done();
}

int main(void)
{
	int fd, to_child[2], to_parent[2], st;
	char *p;
	pid_t pid;

	t_start(30);
	fd = t_uffd(0);
	p = t_map_reg(fd, 5);
	CHECK_EQ(t_copy_byte(fd, p, 0xA1, 1, 0), 0);
	CHECK_EQ(t_copy_byte(fd, p + t_ps, 0xA2, 1, 0), 0);
	T_REQUIRE(pipe(to_child) == 0 && pipe(to_parent) == 0);

	fflush(NULL);
	pid = fork();
	T_REQUIRE(pid >= 0);
	if (pid == 0)
		_exit(child(p, to_child[0], to_parent[1]));

	sync_wait(to_parent[0]);
	/* The child's accesses made no message, its writes are its own. */
	T_NO_MSG(fd, 100);
	CHECK_EQ(p[0], (char)0xA1);
	CHECK_EQ(p[t_ps + 5], (char)0xA2);
	p[0] = (char)0xB1;
	p[t_ps + 5] = (char)0xB2;
	/* Page 4, written by the child, is still missing here. */
	T_EXPECT_FAULT(fd, p + 4 * t_ps + 1, 0, 0xB4);
	sync_send(to_child[1]);
	T_REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st));
	if (WIFSIGNALED(st))
		fprintf(stderr, "  child killed by signal %d\n", WTERMSIG(st));
	CHECK_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);

	/* The parent's registration still works, its data is intact. */
	T_EXPECT_FAULT(fd, p + 2 * t_ps, 1, 0xB5);
	T_EXPECT_FAULT(fd, p + 3 * t_ps + 7, 0, 0xB6);
	CHECK_EQ(p[0], (char)0xB1);
	CHECK_EQ(p[t_ps + 5], (char)0xB2);
	CHECK_EQ(p[4 * t_ps], (char)0xB4);
	T_NO_MSG(fd, 0);
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
