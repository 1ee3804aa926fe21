/* SPDX-License-Identifier: MIT */
/* A thread blocked on a userfault still takes signals: its handler runs while
 * the page is unresolved, and after that the access completes once the page
 * is installed, with the installed data.  (The kernel re-queues the fault
 * after the handler returns; the number of messages is not asserted.) */
#include "t.h"

static int handled;
static volatile pid_t handler_tid;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	handler_tid = t_gettid();
	__atomic_add_fetch(&handled, 1, __ATOMIC_SEQ_CST);
}

int main(void)
{
	int fd;
	char *p;
	struct t_touch t;
	struct uffd_msg m;

	t_start(20);
	t_sigaction(SIGUSR1, on_usr1, 0);
	fd = t_uffd(0);
	p = t_map_reg(fd, 2);

	for (int round = 0; round < 2; round++) {
		char *addr = p + round * t_ps + 17;

		__atomic_store_n(&handled, 0, __ATOMIC_SEQ_CST);
		t_touch_start(&t, addr, round, 0x70);
		if (T_MSG(fd, &m, 2000))
			CHECK_FAULT(&m, p + round * t_ps,
				    round ? UFFD_PAGEFAULT_FLAG_WRITE : 0);
		/* The signal is handled while the fault is pending. */
		CHECK_EQ(pthread_kill(t.th, SIGUSR1), 0);
		CHECK(t_wait_flag(&handled, 2000));
		CHECK_EQ(handler_tid, t_touch_tid(&t));
		CHECK(!t_touch_wait(&t, 200));
		/* Then COPY completes the access. */
		CHECK_EQ(t_copy_byte(fd, p + round * t_ps, 0x71, 1, 0), 0);
		CHECK(t_touch_wait(&t, 2000));
		if (round)
			CHECK_EQ(p[t_ps + 17], 0x70);
		else
			CHECK_EQ(t.val, 0x71);
		CHECK_EQ(__atomic_load_n(&handled, __ATOMIC_SEQ_CST), 1);
		/* Drain what the retry may have queued (stale after the COPY). */
		while (t_read_msg(fd, &m, 50) == 1)
			CHECK_FAULT(&m, p + round * t_ps,
				    round ? UFFD_PAGEFAULT_FLAG_WRITE : 0);
	}
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
