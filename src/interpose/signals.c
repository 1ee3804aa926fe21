/* SPDX-License-Identifier: MIT */
/*
 * sigaction() and signal(): for SIGSEGV (and SIGBUS once the kernel
 * back-end's pager has its handler), the program's disposition is recorded
 * (src/base/sigchain.c) instead of replacing our handler, which hands it
 * every fault that is not ours.  Every other signal goes straight to the C
 * library.  Defined in the library itself, so they take precedence over the
 * C library's for the whole program: shared library, static library and the
 * drop-in alike.
 */
#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <string.h>
#include "base/altstack.h"
#include "base/sigchain.h"
#include "base/sys.h"
#include "interpose/real.h"

UF_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	int r = sigchain_program_set(sig, act, old);

	if (r)
		return r > 0 ? 0 : -1;
	return sigchain_real_sigaction(sig, act, old);
}

/* signal() and the C library's other ways of setting a disposition reach
 * its own sigaction directly, not ours: each is redone here, with its
 * semantics, through ours. */
static sighandler_t set_handler(int sig, sighandler_t handler, int flags, int mask_sig)
{
	struct sigaction sa, old;

	if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP) {
		errno = EINVAL;
		return SIG_ERR;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	if (mask_sig)
		sigaddset(&sa.sa_mask, sig);
	sa.sa_flags = flags;
	if (sigaction(sig, &sa, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

UF_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	return set_handler(sig, handler, SA_RESTART, 1);	/* BSD semantics, as glibc's */
}

/* Not declared by <signal.h> with _GNU_SOURCE (dropped by POSIX 2008). */
sighandler_t bsd_signal(int sig, sighandler_t handler);

/* BSD semantics, as signal(). */
UF_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler)
{
	return set_handler(sig, handler, SA_RESTART, 1);
}

UF_EXPORT sighandler_t ssignal(int sig, sighandler_t handler)
{
	return set_handler(sig, handler, SA_RESTART, 1);
}

/* System V semantics: reset to the default when delivered, not blocked
 * while it runs. */
UF_EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler)
{
	return set_handler(sig, handler, SA_RESETHAND | SA_NODEFER, 0);
}

/* NOLINTNEXTLINE(bugprone-reserved-identifier): glibc's exported name */
UF_EXPORT sighandler_t __sysv_signal(int sig, sighandler_t handler)
{
	return sysv_signal(sig, handler);
}

/* System V sigset(): SIG_HOLD blocks the signal; anything else sets the
 * disposition and unblocks it.  Returns SIG_HOLD if it was blocked. */
UF_EXPORT sighandler_t sigset(int sig, sighandler_t disp)
{
	sigset_t one, old;
	struct sigaction prev;
	sighandler_t r;

	if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP) {
		errno = EINVAL;
		return SIG_ERR;
	}
	sigemptyset(&one);
	sigaddset(&one, sig);
	if (disp == SIG_HOLD) {
		if (sigaction(sig, NULL, &prev) < 0 || pthread_sigmask(SIG_BLOCK, &one, &old) != 0)
			return SIG_ERR;
		return sigismember(&old, sig) ? SIG_HOLD : prev.sa_handler;
	}
	r = set_handler(sig, disp, 0, 0);
	if (r == SIG_ERR || pthread_sigmask(SIG_UNBLOCK, &one, &old) != 0)
		return SIG_ERR;
	return sigismember(&old, sig) ? SIG_HOLD : r;
}

/* (These three are called by a sanitizer's runtime while it starts, before
 * instrumented code may run: not instrumented, nor what they call first.) */

/* The signal mask: SIGSEGV (and SIGBUS for the kernel back-end's pager)
 * must stay deliverable once our handler is in place, or a fault on a
 * missing page in a thread that blocks everything (worker pools, QEMU's
 * threads) would kill the process.  The program still reads back the mask
 * it set (src/base/sigchain.c). */
UF_EXPORT UF_UNINSTRUMENTED int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	sigset_t copy;

	if (set) {
		copy = *set;	/* the program's may be anywhere */
		set = &copy;
	}
	return sigchain_sigmask(how, set, old) < 0 ? errno : 0;
}

UF_EXPORT UF_UNINSTRUMENTED int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	sigset_t copy;

	if (set) {
		copy = *set;
		set = &copy;
	}
	return sigchain_sigmask(how, set, old);
}

/* The alternate signal stack: ours stays in place for our handler (the
 * program's may lie in a registered range); the program reads back its
 * own (src/base/altstack.c). */
UF_EXPORT UF_UNINSTRUMENTED int sigaltstack(const stack_t *ss, stack_t *old)
{
	int r;

	if (altstack_program(ss, old, &r))
		return r;
	return (int)sys_call4(SYS_sigaltstack, (long)ss, (long)old, 0, 0);
}
