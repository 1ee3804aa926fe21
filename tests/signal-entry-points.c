/* SPDX-License-Identifier: MIT */
/* The program's SIGSEGV disposition, set through any of the C library's
 * entry points (sigaction, signal, bsd_signal, sysv_signal, sigset), leaves
 * the emulation's handler in place: faults on missing registered pages are
 * still served, and a real protection fault reaches the program's handler.
 * A SIGSEGV sent with raise() is ignored under SIG_IGN (and faults are
 * still served afterwards), and kills at once under SIG_DFL, as on the
 * kernel back-end. */
#include "t.h"

#include <sys/resource.h>
#include <sys/wait.h>

/* Not declared with _GNU_SOURCE (dropped by POSIX 2008). */
sighandler_t bsd_signal(int sig, sighandler_t handler);

static sigjmp_buf g_jb;
static volatile sig_atomic_t g_calls;

static void on_segv(int sig)
{
	(void)sig;
	g_calls++;
	siglongjmp(g_jb, 1);
}

static int set_by(int how)
{
	struct sigaction sa;

	switch (how) {
	case 0:
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_segv;
		sigemptyset(&sa.sa_mask);
		return sigaction(SIGSEGV, &sa, NULL);
	case 1: return signal(SIGSEGV, on_segv) == SIG_ERR ? -1 : 0;
	/* cppcheck-suppress bsd_signalCalled ; the entry point under test */
	case 2: return bsd_signal(SIGSEGV, on_segv) == SIG_ERR ? -1 : 0;
	case 3: return sysv_signal(SIGSEGV, on_segv) == SIG_ERR ? -1 : 0;
	default:
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
		return sigset(SIGSEGV, on_segv) == SIG_ERR ? -1 : 0;
#pragma GCC diagnostic pop
	}
}

/* An access to a PROT_NONE page, left by the handler's siglongjmp. */
static __attribute__((noinline)) void prot_fault(volatile char *none)
{
	if (!sigsetjmp(g_jb, 1))
		(void)*none;
}

static const char *const g_names[] = { "sigaction", "signal", "bsd_signal", "sysv_signal", "sigset" };

int main(void)
{
	struct t_handler h;
	char *p, *none;
	int fd, st;
	pid_t pid;

	t_start(30);
	fd = t_uffd(0);
	p = t_map_reg(fd, 8);
	none = mmap(NULL, (size_t)t_ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	T_REQUIRE(none != MAP_FAILED);
	t_handler_start(&h, fd, 0);
	for (int how = 0; how < 5; how++) {
		fprintf(stderr, "via %s\n", g_names[how]);
		g_calls = 0;
		T_REQUIRE(set_by(how) == 0);
		/* A missing registered page: served, the program's handler is not
		 * called. */
		CHECK_EQ(p[(size_t)how * (size_t)t_ps + 7], 0);
		CHECK_EQ(g_calls, 0);
		/* A real protection fault: the program's handler. */
		prot_fault(none);
		CHECK_EQ(g_calls, 1);
	}
	/* raise() under SIG_IGN: ignored; faults are still served. */
	T_REQUIRE(signal(SIGSEGV, SIG_IGN) != SIG_ERR);
	CHECK_EQ(raise(SIGSEGV), 0);
	CHECK_EQ(p[6 * t_ps], 0);
	/* raise() under SIG_DFL: the default action, at once.  (The handler
	 * thread is stopped meanwhile: the child dies with nothing of ours.) */
	t_handler_stop(&h);
	pid = fork();
	T_REQUIRE(pid >= 0);
	if (pid == 0) {
		struct rlimit no = { 0, 0 };
		setrlimit(RLIMIT_CORE, &no);
		signal(SIGSEGV, SIG_DFL);
		kill(getpid(), SIGSEGV);	/* (the child has one thread) */
		_exit(3);	/* not reached */
	}
	T_REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
	t_handler_start(&h, fd, 0);
	CHECK_EQ(p[7 * t_ps], 0);
	t_handler_stop(&h);
	uf_close(fd);
	return t_done();
}
