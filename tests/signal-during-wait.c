/* SPDX-License-Identifier: MIT */
/* A signal handler that runs while a thread waits for a page: the wait is
 * abandoned as the kernel abandons it.  (1) The handler returns (with and
 * without SA_RESTART): the access faults again, a second message, whether
 * the first was read or not (an unread one is withdrawn).  (2) The
 * handler leaves with siglongjmp, 1,500 times (more than the emulation's
 * 1,024 waiter slots): nothing is left behind, no message stays queued,
 * and a fault afterwards is served. */
#include "t.h"

#include <stdatomic.h>

static int g_fd;
static char *g_p;
static _Atomic int g_handled, g_jumped, g_done, g_touching;
static sigjmp_buf g_jb;

static void on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&g_handled, 1);
}

static void on_usr2(int sig)
{
	(void)sig;
	siglongjmp(g_jb, 1);
}

static void *toucher(void *arg)
{
	volatile char *p = arg;

	(void)*p;
	atomic_store(&g_done, 1);
	return NULL;
}

static void expect_refault(int restart, int read_first)
{
	struct uffd_msg m;
	struct sigaction sa;
	pthread_t t;
	char *page = g_p + (size_t)(restart * 2 + read_first) * (size_t)t_ps;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	T_REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0);
	atomic_store(&g_handled, 0);
	atomic_store(&g_done, 0);
	fprintf(stderr, "case: %s, message %s\n", restart ? "SA_RESTART" : "no SA_RESTART",
		read_first ? "read before the signal" : "unread");
	t = t_thread(toucher, page);
	if (read_first) {
		if (T_MSG(g_fd, &m, 5000))
			CHECK_FAULT(&m, page, 0);
	} else {
		/* The fault is queued: the descriptor turns readable. */
		struct pollfd p = { .fd = g_fd, .events = POLLIN };
		CHECK_EQ(poll(&p, 1, 5000), 1);
	}
	t_msleep(50);		/* asleep in its wait by now */
	T_REQUIRE(pthread_kill(t, SIGUSR1) == 0);
	for (int64_t end = t_now_ms() + 5000; !atomic_load(&g_handled) && t_now_ms() < end;)
		t_msleep(1);
	CHECK_EQ(atomic_load(&g_handled), 1);
	/* The handler ran, the access faulted again: one message now (the
	 * unread first one was withdrawn when the signal came). */
	if (T_MSG(g_fd, &m, 5000))
		CHECK_FAULT(&m, page, 0);
	CHECK_EQ(atomic_load(&g_done), 0);
	T_NO_MSG(g_fd, 100);
	CHECK_EQ(t_zeropage(g_fd, page, (size_t)t_ps, 0, NULL), 0);
	t_join(t);
	CHECK_EQ(atomic_load(&g_done), 1);
}

/* One access left by the handler's siglongjmp. */
static __attribute__((noinline)) void touch_and_jump(volatile char *p)
{
	if (sigsetjmp(g_jb, 1) == 0) {
		atomic_store(&g_touching, 1);
		(void)*p;	/* waits until the signal */
		atomic_store(&g_done, 1);	/* not reached */
	}
	atomic_store(&g_touching, 0);
}

static void *jumper(void *arg)
{
	int n = (int)(intptr_t)arg;

	for (int i = 0; i < n; i++) {
		touch_and_jump((volatile char *)g_p + 4 * t_ps);
		atomic_fetch_add(&g_jumped, 1);
	}
	return NULL;
}

int main(void)
{
	struct sigaction sa;
	struct uffd_msg m;
	pthread_t t;
	const int n = 1500;

	t_start(120);
	g_fd = t_uffd(0);
	g_p = t_map_reg(g_fd, 8);
	for (int restart = 0; restart < 2; restart++)
		for (int read_first = 0; read_first < 2; read_first++)
			expect_refault(restart, read_first);

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr2;
	sigemptyset(&sa.sa_mask);
	T_REQUIRE(sigaction(SIGUSR2, &sa, NULL) == 0);
	atomic_store(&g_done, 0);
	t = t_thread(jumper, (void *)(intptr_t)n);
	for (int i = 0; i < n; i++) {
		int64_t end = t_now_ms() + 5000;
		/* Every other time the message is read first; else it is still
		 * queued when the handler leaves, and must go with the wait. */
		if (i % 2 == 0) {
			if (!T_MSG(g_fd, &m, 5000))
				break;
		} else {
			struct pollfd p = { .fd = g_fd, .events = POLLIN };
			int r = poll(&p, 1, 5000);
			CHECK_EQ(r, 1);
			if (r != 1)
				break;
		}
		while (!atomic_load(&g_touching) && t_now_ms() < end)
			t_msleep(1);
		t_msleep(1);
		T_REQUIRE(pthread_kill(t, SIGUSR2) == 0);
		while (atomic_load(&g_jumped) != i + 1 && t_now_ms() < end)
			t_msleep(1);
		CHECK_EQ(atomic_load(&g_jumped), i + 1);
		if (atomic_load(&g_jumped) != i + 1)
			break;
	}
	t_join(t);
	CHECK_EQ(atomic_load(&g_done), 0);
	/* Nothing left queued, and a fault is still served. */
	T_NO_MSG(g_fd, 100);
	atomic_store(&g_done, 0);
	t = t_thread(toucher, g_p + 5 * t_ps);
	if (T_MSG(g_fd, &m, 5000))
		CHECK_FAULT(&m, g_p + 5 * t_ps, 0);
	CHECK_EQ(t_zeropage(g_fd, g_p + 5 * t_ps, (size_t)t_ps, 0, NULL), 0);
	t_join(t);
	CHECK_EQ(atomic_load(&g_done), 1);
	uf_close(g_fd);
	return t_done();
}
