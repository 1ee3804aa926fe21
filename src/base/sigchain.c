/* SPDX-License-Identifier: MIT */
/*
 * Sharing fault signals with the program.  Once the library has installed
 * its handler for SIGSEGV (the emulation) or SIGBUS (the in-thread pager on
 * the kernel back-end), the program's sigaction()/signal() calls for that
 * signal are recorded instead of replacing ours, and every fault that is not
 * ours is handed to the handler the program believes it has (installed
 * before or after us), with its flags honoured.  Other signals pass straight
 * through.
 *
 * We define sigaction() and signal() here; they take precedence over the C
 * library's for the whole program (shared library, static library and the
 * drop-in alike), and reach the real ones through __sigaction.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include "internal.h"

/* NOLINTNEXTLINE(bugprone-reserved-identifier): glibc's own name for it */
extern int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);

int sigchain_real_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	return __sigaction(sig, act, old);
}

/* The program's disposition for each signal we share, published for the
 * handlers: writers fill the next slot of a small ring, then publish its
 * index. */
#define RING 8
struct chain {
	struct sigaction prev[RING];
	_Atomic int idx;		/* -1: not installed yet */
};
static struct chain g_chain[2] = { { .idx = -1 }, { .idx = -1 } };
static pthread_mutex_t g_prev_lock = PTHREAD_MUTEX_INITIALIZER;

static struct chain *chain_of(int sig)
{
	return sig == SIGSEGV ? &g_chain[0] : sig == SIGBUS ? &g_chain[1] : NULL;
}

static void prev_publish(struct chain *ch, const struct sigaction *sa)
{
	int i = atomic_load(&ch->idx);
	int n = (i < 0 ? 0 : i + 1) % RING;
	ch->prev[n] = *sa;
	atomic_store(&ch->idx, n);
}

int sigchain_install(int sig, const struct sigaction *ours)
{
	struct chain *ch = chain_of(sig);
	struct sigaction prev;
	int r = 0;

	pthread_mutex_lock(&g_prev_lock);
	if (atomic_load(&ch->idx) < 0) {
		if (__sigaction(sig, ours, &prev) < 0)
			r = -errno;
		else
			prev_publish(ch, &prev);
	}
	pthread_mutex_unlock(&g_prev_lock);
	return r;
}

/* async-signal-safe */
void sigchain_program(int sig, struct sigaction *out)
{
	struct chain *ch = chain_of(sig);
	int i = ch ? atomic_load(&ch->idx) : -1;

	if (i >= 0) {
		*out = ch->prev[i];
		return;
	}
	if (__sigaction(sig, NULL, out) < 0) {
		memset(out, 0, sizeof *out);
		out->sa_handler = SIG_DFL;
	}
}

/* Hand a fault that is not ours to the program.  a-s-s */
void sigchain_forward(int sig, siginfo_t *si, void *uctx)
{
	struct chain *ch = chain_of(sig);
	struct sigaction sa;
	sigset_t old;

	sigchain_program(sig, &sa);
	/* SIG_DFL and SIG_IGN whatever SA_SIGINFO says: sa_handler and
	 * sa_sigaction share their storage, and the kernel reads it so. */
	if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN) {
		/* The default action for a fault: reset and return, so that the
		 * access faults again and the kernel acts (core dump, exit status)
		 * exactly as it would have without us. */
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		__sigaction(sig, &dfl, NULL);
		return;
	}
	if ((sa.sa_flags & SA_RESETHAND) && ch) {
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		prev_publish(ch, &dfl);
	}
	/* The mask the kernel would give the handler: sa_mask, plus the
	 * signal itself unless SA_NODEFER (ours is NODEFER, so add it). */
	if (!(sa.sa_flags & SA_NODEFER))
		sigaddset(&sa.sa_mask, sig);
	pthread_sigmask(SIG_BLOCK, &sa.sa_mask, &old);
	if (sa.sa_flags & SA_SIGINFO)
		sa.sa_sigaction(sig, si, uctx);
	else
		sa.sa_handler(sig);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	struct chain *ch = chain_of(sig);

	if (!ch || atomic_load(&ch->idx) < 0)
		return __sigaction(sig, act, old);
	pthread_mutex_lock(&g_prev_lock);
	if (old)
		*old = ch->prev[atomic_load(&ch->idx)];
	if (act)
		prev_publish(ch, act);
	pthread_mutex_unlock(&g_prev_lock);
	return 0;
}

sighandler_t signal(int sig, sighandler_t handler)
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
