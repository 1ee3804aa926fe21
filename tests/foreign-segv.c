/* SPDX-License-Identifier: MIT */
/* The program's own SIGSEGV handling coexists with the uffd: a handler
 * installed before the uffd exists and one installed after both get every
 * fault that is not a userfault (write to a PROT_READ page, unmapped address;
 * a write to a PROT_READ registered page and any access to a PROT_NONE
 * registered page are SIGSEGV too, not messages) with the right si_addr and
 * si_code, while userfaults keep arriving as messages and never reach them;
 * sigaction() reports the program's handler; with SIG_DFL the process dies of
 * SIGSEGV. */
#include "t.h"

#include <setjmp.h>
#include <sys/resource.h>
#include <sys/wait.h>

static sigjmp_buf jb;
static volatile int h1_hits, h2_hits, last_code;
static void *volatile last_addr;

static void record(volatile int *hits, const siginfo_t *si)
{
	(*hits)++;
	last_code = si->si_code;
	last_addr = si->si_addr;
	siglongjmp(jb, 1);
}

/* The program's two handlers: one installed before the uffd, one after. */
static void h1(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	record(&h1_hits, si);
}

static void h2(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	record(&h2_hits, si);
}

/* The access must raise SIGSEGV handled by the handler whose counter is
 * *hits, with si_addr = addr and this si_code. */
#define EXPECT_SEGV(addr, write, hits, code)				\
	expect_segv_(__LINE__, (addr), (write), (hits), (code))
static void expect_segv_(int line, volatile char *addr, int write,
			 volatile int *hits, int code)
{
	int b1 = h1_hits, b2 = h2_hits, before = t_failures;

	if (sigsetjmp(jb, 1) == 0) {
		if (write)
			*addr = 1;
		else
			(void)*addr;
		t_fail(__FILE__, line, "access to %p: no SIGSEGV", (void *)addr);
	}
	CHECK_EQ(h1_hits + h2_hits, b1 + b2 + 1);
	CHECK_EQ(*hits, (hits == &h1_hits ? b1 : b2) + 1);
	CHECK_EQ((uintptr_t)last_addr, (uintptr_t)addr);
	CHECK_EQ(last_code, code);
	if (t_failures != before)
		fprintf(stderr, "  (from line %d)\n", line);
}

/* An address where nothing is mapped (any later mmap may reuse it). */
static char *fresh_hole(void)
{
	char *p = t_map(1);

	munmap(p, (size_t)t_ps);
	/* cppcheck-suppress deallocret ; the address, not the memory, is wanted */
	return p;
}

static void round_of_checks(int fd, char *ro, char *rreg, char *nreg,
			    char *reg, volatile int *hits)
{
	int b1, b2;

	EXPECT_SEGV(ro + 0x31, 1, hits, SEGV_ACCERR);
	EXPECT_SEGV(fresh_hole() + 0x10, 0, hits, SEGV_MAPERR);
	EXPECT_SEGV(fresh_hole() + t_ps - 1, 1, hits, SEGV_MAPERR);
	/* Registered but not accessible that way: SIGSEGV, no message. */
	EXPECT_SEGV(rreg + 0x22, 1, hits, SEGV_ACCERR);
	EXPECT_SEGV(nreg + 0x23, 0, hits, SEGV_ACCERR);
	EXPECT_SEGV(nreg + 0x24, 1, hits, SEGV_ACCERR);
	T_NO_MSG(fd, 50);
	/* Userfaults still come as messages and reach no handler. */
	b1 = h1_hits;
	b2 = h2_hits;
	T_EXPECT_FAULT(fd, reg, 1, 0x6c);
	CHECK_EQ(h1_hits, b1);
	CHECK_EQ(h2_hits, b2);
	/* Reading a present PROT_READ page is fine. */
	CHECK_EQ(ro[5], 0);
}

int main(void)
{
	int fd, st;
	char *ro, *rreg, *nreg, *reg;
	struct sigaction cur;
	pid_t pid;

	t_start(20);
	/* Before the uffd exists. */
	t_sigaction(SIGSEGV, h1, 0);
	ro = t_map_prot(1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);

	fd = t_uffd(0);
	reg = t_map_reg(fd, 2);
	rreg = t_map_prot(1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
	nreg = t_map_prot(1, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
	CHECK_EQ(t_register(fd, rreg, (size_t)t_ps), 0);
	CHECK_EQ(t_register(fd, nreg, (size_t)t_ps), 0);

	round_of_checks(fd, ro, rreg, nreg, reg, &h1_hits);
	CHECK_EQ(sigaction(SIGSEGV, NULL, &cur), 0);
	CHECK(cur.sa_sigaction == h1);
	CHECK(cur.sa_flags & SA_SIGINFO);

	/* After the uffd exists. */
	t_sigaction(SIGSEGV, h2, 0);
	CHECK_EQ(sigaction(SIGSEGV, NULL, &cur), 0);
	CHECK(cur.sa_sigaction == h2);
	round_of_checks(fd, ro, rreg, nreg, reg + t_ps, &h2_hits);
	CHECK_EQ(h1_hits, 6);
	CHECK_EQ(h2_hits, 6);

	/* SIG_DFL: the process dies of SIGSEGV (no hang, no message). */
	fflush(NULL);
	pid = fork();
	T_REQUIRE(pid >= 0);
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };

		t_child_watchdog(10);
		setrlimit(RLIMIT_CORE, &no_core);
		signal(SIGSEGV, SIG_DFL);
		((volatile char *)ro)[0] = 1;
		_exit(0);
	}
	T_REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(WIFSIGNALED(st));
	CHECK_EQ(WIFSIGNALED(st) ? WTERMSIG(st) : -1, SIGSEGV);
	T_NO_MSG(fd, 0);
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
