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
#include <string.h>
#include "base/sigchain.h"
#include "interpose/real.h"

UF_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (sigchain_program_set(sig, act, old))
		return 0;
	return sigchain_real_sigaction(sig, act, old);
}

UF_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	struct sigaction sa, old;

	if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP) {
		errno = EINVAL;
		return SIG_ERR;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, sig);
	sa.sa_flags = SA_RESTART;	/* BSD semantics, as glibc's signal() */
	if (sigaction(sig, &sa, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}
