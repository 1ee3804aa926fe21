/* SPDX-License-Identifier: MIT */
/* UFFD_FEATURE_SIGBUS with a handler whose sa_mask blocks every signal
 * (SIGSEGV included): inside it, the handler reads a missing page of a
 * second uffd (no SIGBUS feature), which a handler thread serves, then
 * resolves its own page and returns.  On the kernel the second fault is an
 * ordinary userfault, whatever the mask; the emulation must not let the
 * handler's mask block the SIGSEGV it serves faults with (it would be
 * forced and kill the process).  The handler sees the mask its sa_mask
 * says, SIGSEGV included. */
#include "t.h"

static int g_fd;
static char *g_other;
static volatile uint64_t seen;
static volatile int segv_blocked;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	static char buf[65536];
	uintptr_t page = (uintptr_t)si->si_addr & ~(uintptr_t)(t_ps - 1);
	struct uffdio_copy c = { .dst = page, .src = (uintptr_t)buf, .len = (uint64_t)t_ps };
	sigset_t now;

	(void)sig;
	(void)uc;
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	segv_blocked = sigismember(&now, SIGSEGV);
	seen = *(volatile uint64_t *)g_other;	/* a fault served by another uffd */
	memset(buf, 0x77, (size_t)t_ps);
	if (uf_ioctl(g_fd, UFFDIO_COPY, &c))
		_exit(3);
}

int main(void)
{
	struct sigaction sa;
	struct t_handler h;
	int other;
	char *p;

	t_start(20);
	g_fd = t_uffd(UFFD_FEATURE_SIGBUS);
	p = t_map_reg(g_fd, 1);
	other = t_uffd(0);
	g_other = t_map_reg(other, 1);
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask);
	T_REQUIRE(sigaction(SIGBUS, &sa, NULL) == 0);
	t_handler_start(&h, other, 1);

	CHECK_EQ(*(volatile char *)(p + 9), 0x77);	/* SIGBUS, resolved */
	CHECK_EQ(seen, (uint64_t)(uintptr_t)g_other);	/* served inside it */
	CHECK_EQ(segv_blocked, 1);			/* as its sa_mask says */
	t_handler_stop(&h);
	CHECK_EQ(h.errors, 0);
	CHECK_EQ(h.msgs, 1);
	CHECK_OK(uf_close(other));
	CHECK_OK(uf_close(g_fd));
	return t_done();
}
