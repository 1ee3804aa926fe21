/* SPDX-License-Identifier: MIT */
/*
 * Sharing fault signals with the program (see sigchain.h).  The program's
 * disposition for each signal we share is kept here, published with the
 * seqlock for the signal handlers that read it; the program's sigaction()
 * and signal() (src/interpose/signals.c) come here first.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include "base/seqlock.h"
#include "base/sigchain.h"
#include "base/sys.h"

/* NOLINTNEXTLINE(bugprone-reserved-identifier): glibc's own name for it */
extern int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);

int sigchain_real_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	return __sigaction(sig, act, old);
}

struct chain {
	struct seqlock lock;
	_Atomic int installed;		/* our handler is in place */
	struct sigaction prog;		/* what the program believes */
};
static struct chain g_chain[2];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;	/* writers */

/* async-signal-safe */
static struct chain *chain_of(int sig)
{
	return sig == SIGSEGV ? &g_chain[0] : sig == SIGBUS ? &g_chain[1] : NULL;
}

/* Publish the program's disposition (g_lock held).  A handler of this
 * thread may read it: signals are blocked meanwhile, and sa is ours (no
 * fault while the counter is odd). */
static void publish_locked(struct chain *ch, const struct sigaction *sa)
{
	sigset_t old;

	seq_write_begin_masked(&ch->lock, &old);
	ch->prog = *sa;
	seq_write_end_masked(&ch->lock, &old);
}

/* async-signal-safe */
static void read_prog(struct chain *ch, struct sigaction *out)
{
	uint32_t s;

	do {
		s = seq_read_begin(&ch->lock);
		memcpy(out, &ch->prog, sizeof *out);
	} while (seq_read_retry(&ch->lock, s));
}

int sigchain_install(int sig, const struct sigaction *ours)
{
	struct chain *ch = chain_of(sig);
	struct sigaction prev;
	int r = 0;

	pthread_mutex_lock(&g_lock);
	if (!atomic_load(&ch->installed)) {
		if (__sigaction(sig, ours, &prev) < 0) {
			r = -errno;
		} else {
			publish_locked(ch, &prev);
			atomic_store(&ch->installed, 1);
		}
	}
	pthread_mutex_unlock(&g_lock);
	return r;
}

int sigchain_program_set(int sig, const struct sigaction *act, struct sigaction *old)
{
	struct chain *ch = chain_of(sig);
	struct sigaction a, o;

	if (!ch || !atomic_load(&ch->installed))
		return 0;
	/* The program's struct may be anywhere (a missing page of a
	 * registered range): copy it before taking anything. */
	if (act)
		a = *act;
	pthread_mutex_lock(&g_lock);
	o = ch->prog;
	if (act)
		publish_locked(ch, &a);
	pthread_mutex_unlock(&g_lock);
	if (old)
		*old = o;
	return 1;
}

/* async-signal-safe */
void sigchain_program(int sig, struct sigaction *out)
{
	struct chain *ch = chain_of(sig);

	if (ch && atomic_load(&ch->installed)) {
		read_prog(ch, out);
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
	if (si->si_code <= 0 && (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)) {
		/* Sent by kill(), raise(), sigqueue() or tgkill(), not raised by
		 * an access: ignored, the signal is gone (and we stay); by
		 * default, the default action, at once: the same signal again,
		 * with our handler out of the way. */
		if (sa.sa_handler == SIG_IGN)
			return;
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		__sigaction(sig, &dfl, NULL);
		sys_tgsigqueueinfo(getpid(), sys_gettid(), sig, si);
		return;
	}
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
		/* Not under g_lock (a signal handler cannot take it): if a
		 * program thread is setting the disposition at this very moment,
		 * its call wins, as it may win over the kernel's reset. */
		if (seq_write_try_begin(&ch->lock)) {
			memset(&ch->prog, 0, sizeof ch->prog);
			ch->prog.sa_handler = SIG_DFL;
			seq_write_end(&ch->lock);
		}
	}
	/* The mask the kernel would give the handler: sa_mask, plus the
	 * signal itself unless SA_NODEFER (ours is NODEFER, so add it). */
	if (!(sa.sa_flags & SA_NODEFER))
		sigaddset(&sa.sa_mask, sig);
	sys_sigmask(SIG_BLOCK, &sa.sa_mask, &old);
	if (sa.sa_flags & SA_SIGINFO)
		sa.sa_sigaction(sig, si, uctx);
	else
		sa.sa_handler(sig);
	sys_sigmask(SIG_SETMASK, &old, NULL);
}
