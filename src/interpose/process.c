/* SPDX-License-Identifier: MIT */
/*
 * clone(3): without CLONE_VM it makes a new process, as fork() does, but
 * runs no pthread_atfork handler.  Once the emulation has installed its fork
 * handlers (src/emu/fork.c), they run around such a clone too: the child's
 * on its way to the function it was given.  A thread (CLONE_VM) goes
 * straight to the C library, as does every clone before the emulation
 * starts.
 */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <unistd.h>
#include "emu/process.h"
#include "interpose/real.h"

/* The C library's own name for clone, for a program linked statically. */
/* NOLINTNEXTLINE(bugprone-reserved-identifier): glibc's name */
extern int __clone(int (*fn)(void *), void *stack, int flags, void *arg, ...) __attribute__((weak));

struct clone_call {
	int (*fn)(void *);
	void *arg;
};

static int clone_child(void *p)
{
	struct clone_call *cc = p;	/* our copy of the parent's */

	fork_child();
	/* The C library's clone ends this thread when fn returns (SYS_exit):
	 * with a watcher thread of ours alive, the process would go on.  End
	 * the process instead, with fn's value, as it would have. */
	_exit(cc->fn(cc->arg));
}

UF_EXPORT int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...)
{
	struct clone_call cc = { fn, arg };
	pid_t *ptid, *ctid;
	void *tls;
	va_list ap;
	int r, e;

	va_start(ap, arg);
	ptid = va_arg(ap, pid_t *);
	tls = va_arg(ap, void *);
	ctid = va_arg(ap, pid_t *);
	va_end(ap);
	UF_REAL_OR(clone, __clone);
	/* A thread or vfork-like child shares the memory: nothing to do, as
	 * for the kernel (no FORK event with CLONE_VM). */
	if ((flags & CLONE_VM) || !fork_active())
		return real_clone(fn, stack, flags, arg, ptid, tls, ctid);
	fork_prepare();
	r = real_clone(clone_child, stack, flags, &cc, ptid, tls, ctid);
	e = errno;
	fork_parent();
	errno = e;
	return r;
}
