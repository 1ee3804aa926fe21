/* SPDX-License-Identifier: MIT */
/*
 * Sharing SIGSEGV with the program.  Once the emulation has installed its
 * handler, the program's sigaction()/signal() calls for SIGSEGV are
 * recorded instead of replacing ours, and every fault that is not ours is
 * handed to the handler the program believes it has (installed before or
 * after us), with its flags honoured.  Other signals pass straight through.
 *
 * We define sigaction() and signal() here; they take precedence over the C
 * library's for the whole program (shared library, static library and the
 * drop-in alike), and reach the real ones through __sigaction.
 */
#include <pthread.h>
#include <string.h>
#include "emu/emu.h"

extern int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);

int uf_real_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	return __sigaction(sig, act, old);
}

/* The program's SIGSEGV disposition, published for the handler: writers
 * fill the next slot of a small ring, then publish its index. */
#define RING 8
static struct sigaction g_prev[RING];
static _Atomic int g_prev_idx = -1;		/* -1: not installed yet */
static pthread_mutex_t g_prev_lock = PTHREAD_MUTEX_INITIALIZER;

static void prev_publish(const struct sigaction *sa)
{
	int i = atomic_load(&g_prev_idx);
	int n = (i < 0 ? 0 : i + 1) % RING;
	g_prev[n] = *sa;
	atomic_store(&g_prev_idx, n);
}

void uf_sigchain_installed(const struct sigaction *prev)
{
	pthread_mutex_lock(&g_prev_lock);
	prev_publish(prev);
	pthread_mutex_unlock(&g_prev_lock);
}

/* Hand a fault that is not ours to the program.  a-s-s */
void uf_chain_segv(int sig, siginfo_t *si, void *uctx)
{
	int i = atomic_load(&g_prev_idx);
	struct sigaction sa;
	sigset_t old;

	if (i < 0) {
		sa.sa_handler = SIG_DFL;
		sa.sa_flags = 0;
		sigemptyset(&sa.sa_mask);
	} else {
		sa = g_prev[i];
	}
	if (!(sa.sa_flags & SA_SIGINFO) && (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)) {
		/* The default action for a fault: reset and return, so that the
		 * access faults again and the kernel acts (core dump, exit status)
		 * exactly as it would have without us. */
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		__sigaction(sig, &dfl, NULL);
		return;
	}
	if (sa.sa_flags & SA_RESETHAND) {
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		prev_publish(&dfl);
	}
	pthread_sigmask(SIG_BLOCK, &sa.sa_mask, &old);
	if (sa.sa_flags & SA_SIGINFO)
		sa.sa_sigaction(sig, si, uctx);
	else
		sa.sa_handler(sig);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	int r = 0;

	if (sig != SIGSEGV || atomic_load(&g_prev_idx) < 0)
		return __sigaction(sig, act, old);
	pthread_mutex_lock(&g_prev_lock);
	if (atomic_load(&g_prev_idx) < 0) {
		pthread_mutex_unlock(&g_prev_lock);
		return __sigaction(sig, act, old);
	}
	if (old)
		*old = g_prev[atomic_load(&g_prev_idx)];
	if (act)
		prev_publish(act);
	pthread_mutex_unlock(&g_prev_lock);
	return r;
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
