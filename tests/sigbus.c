/* SPDX-License-Identifier: MIT */
/* UFFD_FEATURE_SIGBUS: an access to a missing page raises SIGBUS in the
 * faulting thread (si_code BUS_ADRERR, si_addr the exact byte) and queues no
 * message; a SIGBUS handler that resolves the page with UFFDIO_COPY and
 * returns lets the access complete; a system call touching a missing page
 * fails with EFAULT (no signal, no message). */
#include "t.h"

#include <setjmp.h>

static sigjmp_buf jb;
static int g_fd;
static volatile int resolve;		/* handler: 1 = COPY and return */
static volatile int hits, last_code;
static void *volatile last_addr;
static volatile pid_t last_tid;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	hits++;
	last_code = si->si_code;
	last_addr = si->si_addr;
	last_tid = t_gettid();
	if (resolve) {
		uintptr_t page = (uintptr_t)si->si_addr & ~(uintptr_t)(t_ps - 1);
		static char buf[65536];
		struct uffdio_copy c = {
			.dst = page, .src = (uintptr_t)buf, .len = (uint64_t)t_ps,
		};

		memset(buf, 0x77, (size_t)t_ps);
		if (uf_ioctl(g_fd, UFFDIO_COPY, &c))
			_exit(3);
		return;
	}
	siglongjmp(jb, 1);
}

/* One access expected to raise SIGBUS at exactly addr. */
static void expect_sigbus(volatile char *addr, int write)
{
	int before = hits;

	if (sigsetjmp(jb, 1) == 0) {
		if (write)
			*addr = 1;
		else
			(void)*addr;
		t_fail(__FILE__, __LINE__, "access to %p: no SIGBUS", (void *)addr);
	}
	CHECK_EQ(hits, before + 1);
	CHECK_EQ(last_code, BUS_ADRERR);
	CHECK_EQ((uintptr_t)last_addr, (uintptr_t)addr);
	CHECK_EQ(last_tid, t_gettid());
}

static void *thread_access(void *arg)
{
	char *addr = arg;

	/* resolve == 1: the handler installs the page and we go on. */
	return (void *)(intptr_t)(unsigned char)addr[0];
}

int main(void)
{
	char *p;
	int pfd[2];
	void *ret;
	pthread_t th;

	t_start(20);
	T_REQUIRE(t_ps <= 65536);
	g_fd = t_uffd(UFFD_FEATURE_SIGBUS);
	p = t_map_reg(g_fd, 6);
	t_sigaction(SIGBUS, on_sigbus, 0);

	/* Signal, no message, page still missing (signals again). */
	expect_sigbus(p + 0x123, 0);
	expect_sigbus(p + t_ps + 0x45, 1);
	expect_sigbus(p + 0x124, 1);
	T_NO_MSG(g_fd, 100);

	/* The handler resolves: the access completes. */
	resolve = 1;
	hits = 0;
	CHECK_EQ(((volatile char *)p)[2 * t_ps + 7], 0x77);
	CHECK_EQ(hits, 1);
	CHECK_EQ((uintptr_t)last_addr, (uintptr_t)p + 2 * t_ps + 7);
	((volatile char *)p)[3 * t_ps + 9] = 0x31;
	CHECK_EQ(hits, 2);
	CHECK_EQ(p[3 * t_ps + 9], 0x31);
	CHECK_EQ(p[3 * t_ps + 8], 0x77);
	/* In another thread: the signal goes to that thread. */
	th = t_thread(thread_access, p + 4 * t_ps + 11);
	pthread_join(th, &ret);
	CHECK_EQ((intptr_t)ret, 0x77);
	CHECK_EQ(hits, 3);
	CHECK(last_tid != t_gettid());
	CHECK_EQ((uintptr_t)last_addr, (uintptr_t)p + 4 * t_ps + 11);
	T_NO_MSG(g_fd, 0);

	/* A system call: EFAULT, no signal, no message. */
	T_REQUIRE(pipe(pfd) == 0);
	CHECK_ERRNO(write(pfd[1], p + 5 * t_ps, 16), EFAULT);
	CHECK_EQ(hits, 3);
	T_NO_MSG(g_fd, 0);
	/* Resolved pages are ordinary. */
	CHECK_EQ(write(pfd[1], p + 2 * t_ps, 16), 16);
	CHECK_EQ(hits, 3);
	/* COPY without any fault works and needs no signal. */
	CHECK_EQ(t_copy_byte(g_fd, p + t_ps, 0x42, 1, 0), 0);
	CHECK_EQ(p[t_ps + 0x45], 0x42);
	CHECK_EQ(hits, 3);
	CHECK_EQ(uf_close(g_fd), 0);
	return t_done();
}
