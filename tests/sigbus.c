/* SPDX-License-Identifier: MIT */
/* UFFD_FEATURE_SIGBUS: an access to a missing page raises SIGBUS in the
 * faulting thread (si_code BUS_ADRERR, si_addr the exact byte) and queues no
 * message; a SIGBUS handler that resolves the page with UFFDIO_COPY and
 * returns lets the access complete; a system call touching a missing page
 * fails with EFAULT (no signal, no message); SIGBUS at SIG_DFL kills the
 * process, SA_SIGINFO or not. */
#include "t.h"

#include <setjmp.h>
#include <sys/resource.h>
#include <sys/wait.h>

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

/* SIGBUS at SIG_DFL but with SA_SIGINFO in sa_flags (the kernel looks at the
 * handler alone): the access kills the process by SIGBUS.  Forked first
 * thing, while the process has one thread (see pager.c).  Not under valgrind
 * (tools/analyze.sh): it takes the SIGBUS that the emulation queues to the
 * thread, with BUS_ADRERR, for a fault in its own code, and aborts. */
static pid_t default_siginfo_start(void)
{
	pid_t pid;

	if (getenv("USERFAULT_TEST_VALGRIND"))
		return 0;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		struct sigaction sa;
		int fd;
		char *q;

		t_child_watchdog(10);
		setrlimit(RLIMIT_CORE, &no_core);
		t_ps = sysconf(_SC_PAGESIZE);
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_DFL;
		sa.sa_flags = SA_SIGINFO;
		sigaction(SIGBUS, &sa, NULL);
		fd = t_uffd(UFFD_FEATURE_SIGBUS);
		q = t_map_reg(fd, 1);
		(void)((volatile char *)q)[1];
		_exit(0);
	}
	return pid;
}

static void default_siginfo_check(pid_t pid)
{
	int st;

	if (pid == 0) {
		T_NOTE("SIGBUS at SIG_DFL with SA_SIGINFO: not checked under valgrind");
		return;
	}
	T_REQUIRE(pid > 0);
	T_REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(WIFSIGNALED(st));
	if (WIFSIGNALED(st))
		CHECK_EQ(WTERMSIG(st), SIGBUS);
	else
		fprintf(stderr, "child exited with %d\n", WEXITSTATUS(st));
}

int main(void)
{
	char *p;
	int pfd[2];
	void *ret;
	pthread_t th;
	pid_t child = default_siginfo_start();

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
	default_siginfo_check(child);
	return t_done();
}
