/* SPDX-License-Identifier: MIT */
/* Threads that block signals touch missing registered pages, as worker
 * pools do (QEMU blocks SIGBUS in its threads; others block everything):
 * the faults are served, as on the kernel, and each thread reads back the
 * mask it set.  Also: a thread started by a fully blocked creator, the
 * main thread with SIGSEGV blocked by sigprocmask, and a handler whose
 * sa_mask is full. */
#include "t.h"

#include <stdatomic.h>

static char *g_p;
static _Atomic int g_in_handler_ok;

static int expect_page(int i)
{
	return *(volatile uint64_t *)(g_p + (size_t)i * (size_t)t_ps) ==
	       (uint64_t)(uintptr_t)(g_p + (size_t)i * (size_t)t_ps);
}

static void *blocked_toucher(void *arg)
{
	sigset_t all, now;
	long ok;

	(void)arg;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	ok = expect_page(0);
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	ok += sigismember(&now, SIGSEGV) == 1 && sigismember(&now, SIGBUS) == 1 &&
	      sigismember(&now, SIGUSR1) == 1;
	return (void *)ok;
}

static void *inherited_toucher(void *arg)
{
	(void)arg;
	return (void *)(long)expect_page(1);
}

static void *blocked_creator(void *arg)
{
	sigset_t all;
	void *r;

	(void)arg;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	T_REQUIRE(pthread_join(t_thread(inherited_toucher, NULL), &r) == 0);
	return r;
}

static void on_usr1(int sig)
{
	(void)sig;
	atomic_store(&g_in_handler_ok, expect_page(3));
}

int main(void)
{
	struct t_handler h;
	struct sigaction sa;
	sigset_t segv, old;
	void *r;
	int fd;

	t_start(30);
	fd = t_uffd(0);
	g_p = t_map_reg(fd, 8);
	t_handler_start(&h, fd, 1);
	T_REQUIRE(pthread_join(t_thread(blocked_toucher, NULL), &r) == 0);
	CHECK_EQ((long)r, 2);
	T_REQUIRE(pthread_join(t_thread(blocked_creator, NULL), &r) == 0);
	CHECK_EQ((long)r, 1);
	/* The main thread, SIGSEGV blocked by sigprocmask. */
	sigemptyset(&segv);
	sigaddset(&segv, SIGSEGV);
	CHECK_EQ(sigprocmask(SIG_BLOCK, &segv, &old), 0);
	CHECK_EQ(sigismember(&old, SIGSEGV), 0);
	CHECK_EQ(expect_page(2), 1);
	CHECK_EQ(sigprocmask(SIG_SETMASK, NULL, &old), 0);
	CHECK_EQ(sigismember(&old, SIGSEGV), 1);
	CHECK_EQ(sigprocmask(SIG_UNBLOCK, &segv, &old), 0);
	CHECK_EQ(sigismember(&old, SIGSEGV), 1);
	CHECK_EQ(sigprocmask(SIG_SETMASK, NULL, &old), 0);
	CHECK_EQ(sigismember(&old, SIGSEGV), 0);
	/* A handler that blocks everything while it runs. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigfillset(&sa.sa_mask);
	T_REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0);
	CHECK_EQ(raise(SIGUSR1), 0);
	CHECK_EQ(atomic_load(&g_in_handler_ok), 1);
	CHECK_EQ(sigaction(SIGUSR1, NULL, &sa), 0);
	CHECK_EQ(sigismember(&sa.sa_mask, SIGSEGV), 1);	/* as the program set it */
	t_handler_stop(&h);
	CHECK_EQ(h.errors, 0);
	uf_close(fd);
	return t_done();
}
