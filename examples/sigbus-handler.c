/* sigbus-handler: with UFFD_FEATURE_SIGBUS the program's own SIGBUS handler fills missing pages with UFFDIO_COPY, and its SIGSEGV handler still gets a genuine fault. */
/*
 * SPDX-License-Identifier: MIT
 *
 * Raw kernel ABI only: syscall(__NR_userfaultfd), ioctl, read, sigaction.
 *
 * With UFFD_FEATURE_SIGBUS a fault in a registered range queues no message:
 * the faulting thread gets SIGBUS (BUS_ADRERR, si_addr = the byte accessed)
 * and a system call that touches the page fails with EFAULT.  Here the
 * SIGBUS handler resolves the fault itself with UFFDIO_COPY and returns; the
 * access is then retried and succeeds.  A write to a PROT_READ page outside
 * the registered range must still reach the program's SIGSEGV handler, which
 * jumps back out of the fault.
 *
 * The signal handlers only record what they saw (and call ioctl); main
 * prints.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <userfault/uapi.h>	/* our copy of <linux/userfaultfd.h> */

#define NPAGES 3

static size_t page_size;
static char *region;		/* NPAGES registered pages */
static char *sources;		/* NPAGES pages: what to copy into each */
static char *read_only;		/* a PROT_READ page, not registered */
static int uffd;

/* Recorded by the handlers. */
static volatile sig_atomic_t sigbus_count, copies, sigsegv_count;
static volatile sig_atomic_t last_code;
static void *volatile last_addr;
static sigjmp_buf segv_return;

static void die(const char *what)
{
	fprintf(stderr, "sigbus-handler: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A handler cannot use stdio: write(2) and _exit(2). */
static void handler_fail(const char *msg)
{
	ssize_t ignored = write(STDERR_FILENO, msg, strlen(msg));

	(void)ignored;
	_exit(1);
}

static void on_sigbus(int sig, siginfo_t *si, void *ucontext)
{
	int saved_errno = errno;
	uintptr_t addr = (uintptr_t)si->si_addr;
	uintptr_t start = (uintptr_t)region;
	struct uffdio_copy copy;
	size_t page;

	(void)sig;
	(void)ucontext;
	sigbus_count++;
	last_code = si->si_code;
	last_addr = si->si_addr;
	if (addr < start || addr >= start + NPAGES * page_size)
		handler_fail("sigbus-handler: SIGBUS outside the registered range\n");

	page = (addr - start) / page_size;
	memset(&copy, 0, sizeof copy);
	copy.dst = start + page * page_size;
	copy.src = (uintptr_t)(sources + page * page_size);
	copy.len = page_size;
	copy.mode = 0;
	if (ioctl(uffd, UFFDIO_COPY, &copy) < 0)
		handler_fail("sigbus-handler: UFFDIO_COPY failed in the SIGBUS handler\n");
	copies++;
	errno = saved_errno;
}

static void on_sigsegv(int sig, siginfo_t *si, void *ucontext)
{
	(void)sig;
	(void)ucontext;
	sigsegv_count++;
	last_code = si->si_code;
	last_addr = si->si_addr;
	siglongjmp(segv_return, 1);
}

static const char *code_name(int sig, int code)
{
	if (sig == SIGBUS && code == BUS_ADRERR)
		return "BUS_ADRERR";
	if (sig == SIGSEGV && code == SEGV_ACCERR)
		return "SEGV_ACCERR";
	if (sig == SIGSEGV && code == SEGV_MAPERR)
		return "SEGV_MAPERR";
	return "another si_code";
}

static int failures;

/* Count (and show) a check that failed. */
static void check(int ok, const char *what)
{
	if (!ok) {
		printf("  FAILED: %s\n", what);
		failures++;
	}
}

/* The same action?  (The handler and whether it takes a siginfo.) */
static int same_action(const struct sigaction *a, const struct sigaction *b)
{
	if ((a->sa_flags & SA_SIGINFO) != (b->sa_flags & SA_SIGINFO))
		return 0;
	if (a->sa_flags & SA_SIGINFO)
		return a->sa_sigaction == b->sa_sigaction;
	return a->sa_handler == b->sa_handler;
}

/* Install fn for sig.  The previous action must be the one the program
 * started with (initial): creating and registering a userfaultfd does not
 * change the program's signal actions.  (Not "SIG_DFL": a sanitizer runtime
 * has its own handlers from the start.) */
static void install(int sig, void (*fn)(int, siginfo_t *, void *), const char *name,
		    const struct sigaction *initial)
{
	struct sigaction sa, old;

	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = fn;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, &old) < 0)
		die("sigaction");
	printf("sigaction(%s): installed; the previous action %s the one at start-up\n",
	       name, same_action(&old, initial) ? "was" : "was NOT");
	check(same_action(&old, initial), "previous action unchanged");
}

/* Report the signal that the last access raised, if any. */
static void report_signal(int sig, int before, int count, const void *expected_addr)
{
	if (count == before) {
		printf("  no signal\n");
		return;
	}
	printf("  %s: %s, si_addr %s\n", sig == SIGBUS ? "SIGBUS" : "SIGSEGV",
	       code_name(sig, last_code),
	       last_addr == expected_addr ? "= the byte accessed" : "is ANOTHER address");
	check(count == before + 1, "exactly one signal");
	check(last_addr == expected_addr, "si_addr is the byte accessed");
}

int main(void)
{
	volatile char *r;
	struct uffdio_api api;
	struct uffdio_register reg;
	struct uffd_msg msg;
	struct sigaction initial_bus, initial_segv;
	int before, pipefd[2], err;
	ssize_t n;
	char c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	if (sigaction(SIGBUS, NULL, &initial_bus) < 0 ||
	    sigaction(SIGSEGV, NULL, &initial_segv) < 0)
		die("sigaction");

	uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		die("userfaultfd");
	memset(&api, 0, sizeof api);
	api.api = UFFD_API;
	api.features = UFFD_FEATURE_SIGBUS;
	if (ioctl(uffd, UFFDIO_API, &api) < 0)
		die("UFFDIO_API");
	printf("UFFDIO_API: SIGBUS enabled\n");

	region = mmap(NULL, NPAGES * page_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sources = mmap(NULL, NPAGES * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	read_only = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED || sources == MAP_FAILED || read_only == MAP_FAILED)
		die("mmap");
	for (int p = 0; p < NPAGES; p++)
		memset(sources + p * page_size, 'X' + p, page_size);

	memset(&reg, 0, sizeof reg);
	reg.range.start = (uintptr_t)region;
	reg.range.len = NPAGES * page_size;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		die("UFFDIO_REGISTER");
	printf("UFFDIO_REGISTER: %d pages at %p\n", NPAGES, (void *)region);

	/* The program's handlers come after the userfaultfd. */
	install(SIGBUS, on_sigbus, "SIGBUS", &initial_bus);
	install(SIGSEGV, on_sigsegv, "SIGSEGV", &initial_segv);
	r = region;

	printf("read page 0 at +123:\n");
	before = sigbus_count;
	c = r[123];
	report_signal(SIGBUS, before, sigbus_count, region + 123);
	printf("  read '%c'\n", c);
	check(c == 'X', "page 0 holds 'X'");

	printf("write '!' to page 1 at +456:\n");
	before = sigbus_count;
	r[page_size + 456] = '!';
	report_signal(SIGBUS, before, sigbus_count, region + page_size + 456);
	printf("  page 1 holds '%c' at +0 and '%c' at +456\n", r[page_size],
	       r[page_size + 456]);
	check(r[page_size] == 'Y' && r[page_size + 456] == '!', "page 1 content");

	printf("read page 0 again at +4000:\n");
	before = sigbus_count;
	c = r[4000 % page_size];
	report_signal(SIGBUS, before, sigbus_count, region + 4000 % page_size);
	printf("  read '%c'\n", c);
	check(sigbus_count == before, "no signal for a present page");

	printf("write(2) to a pipe from page 2, not yet present:\n");
	if (pipe(pipefd) < 0)
		die("pipe");
	before = sigbus_count;
	n = write(pipefd[1], region + 2 * page_size, 16);
	err = n < 0 ? errno : 0;
	if (n < 0)
		printf("  write: %s\n", err == EFAULT ? "EFAULT" : strerror(err));
	else
		printf("  write: %zd bytes\n", n);
	report_signal(SIGBUS, before, sigbus_count, region + 2 * page_size);
	check(err == EFAULT && sigbus_count == before,
	      "EFAULT from the system call, without a signal");
	close(pipefd[0]);
	close(pipefd[1]);

	printf("read page 2 at +7:\n");
	before = sigbus_count;
	c = r[2 * page_size + 7];
	report_signal(SIGBUS, before, sigbus_count, region + 2 * page_size + 7);
	printf("  read '%c'\n", c);
	check(c == 'Z', "page 2 holds 'Z'");

	printf("read(2) of the userfaultfd:\n");
	n = read(uffd, &msg, sizeof msg);
	err = n < 0 ? errno : 0;
	if (n < 0)
		printf("  %s: no fault messages with UFFD_FEATURE_SIGBUS\n",
		       err == EAGAIN ? "EAGAIN" : strerror(err));
	else
		printf("  %zd bytes: event %d\n", n, msg.event);
	check(err == EAGAIN, "no messages");

	printf("write to a PROT_READ page outside the range:\n");
	before = sigsegv_count;
	if (sigsetjmp(segv_return, 1) == 0) {
		*(volatile char *)(read_only + 9) = '?';
		printf("  the write went through\n");
	}
	report_signal(SIGSEGV, before, sigsegv_count, read_only + 9);
	check(sigsegv_count == before + 1 && last_code == SEGV_ACCERR,
	      "SIGSEGV with SEGV_ACCERR");

	printf("summary: %d SIGBUS, %d pages copied by the SIGBUS handler, %d SIGSEGV: %s\n",
	       (int)sigbus_count, (int)copies, (int)sigsegv_count,
	       failures ? "FAILED" : "ok");
	close(uffd);
	return failures ? 1 : 0;
}
