/* SPDX-License-Identifier: MIT */
/*
 * copy-during-fork: UFFDIO_COPY issued while another thread forks.  On the
 * kernel a COPY waits for the fork (mmap lock) and then succeeds; it never
 * fails because a fork is in progress.  Every page is installed exactly
 * once, with its bytes, and each fork child sees every page whole or
 * missing (zero), never anything else.
 */
#include "t.h"
#include <sys/wait.h>

#define PAGES 2048
#define FORKS 40

static int g_fd;
static char *g_reg;
static char *g_src;
static int g_copy_err;		/* first errno other than EEXIST */
static int g_copied;
static int g_done;

static void *copier(void *arg)
{
	(void)arg;
	for (int i = 0; i < PAGES; i++) {
		if (t_copy(g_fd, g_reg + (size_t)i * t_ps, g_src + (size_t)i * t_ps, t_ps, 0, NULL) == 0)
			__atomic_add_fetch(&g_copied, 1, __ATOMIC_SEQ_CST);
		else if (errno != EEXIST && !__atomic_load_n(&g_copy_err, __ATOMIC_SEQ_CST))
			__atomic_store_n(&g_copy_err, errno, __ATOMIC_SEQ_CST);
	}
	__atomic_store_n(&g_done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* In the child: each page is all its byte or all zero. */
static int child_check(void)
{
	int bad = 0;
	for (int i = 0; i < PAGES; i++) {
		const volatile char *p = g_reg + (size_t)i * t_ps;
		char want = (char)(1 + i % 251), first = p[0];
		if (first != 0 && first != want)
			bad++;
		else
			for (long k = 1; k < t_ps; k++)
				if (p[k] != first) {
					bad++;
					break;
				}
	}
	return bad > 100 ? 100 : bad;
}

int main(void)
{
	pthread_t th;
	int forks = 0;

	t_start(60);
	g_fd = t_uffd(0);
	g_reg = t_map_reg(g_fd, PAGES);
	g_src = t_map(PAGES);
	for (int i = 0; i < PAGES; i++)
		memset(g_src + (size_t)i * t_ps, 1 + i % 251, t_ps);
	th = t_thread(copier, NULL);
	while (!__atomic_load_n(&g_done, __ATOMIC_SEQ_CST) && forks < FORKS) {
		int st;
		pid_t pid = fork();
		T_REQUIRE(pid >= 0);
		if (pid == 0)
			_exit(child_check());
		T_REQUIRE(waitpid(pid, &st, 0) == pid);
		CHECK(WIFEXITED(st));
		if (WIFEXITED(st))
			CHECK_EQ(WEXITSTATUS(st), 0);
		forks++;
	}
	t_join(th);
	CHECK_EQ(g_copy_err, 0);
	CHECK_EQ(g_copied, PAGES);
	T_REQUIRE(g_copied == PAGES);	/* else reading the pages would hang */
	for (int i = 0; i < PAGES; i++)
		CHECK_EQ(memcmp(g_reg + (size_t)i * t_ps, g_src + (size_t)i * t_ps, t_ps), 0);
	fprintf(stderr, "%d forks during %d copies\n", forks, PAGES);
	CHECK(forks > 0);
	t_unmap_reg(g_fd, g_reg, PAGES);
	uf_close(g_fd);
	return t_done();
}
