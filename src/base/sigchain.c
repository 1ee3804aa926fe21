/* SPDX-License-Identifier: MIT */
/*
 * Sharing signals with the program (see sigchain.h).  The program's
 * disposition of each signal we take part in is kept here, published with
 * the seqlock for the signal handlers that read it; the program's
 * sigaction() and the C library's other entry points
 * (src/interpose/signals.c) come here first.
 *
 * Two ways of taking part:
 *  - ours (SIGSEGV for the emulation, SIGBUS for the kernel back-end's
 *    pager): our handler stays in place and hands on what is not ours;
 *  - wrapped (every other signal with a handler, once sigchain_wrap_all()
 *    was called): the program's handler is installed behind a trampoline
 *    with the program's own flags and mask, so that the kernel delivers it
 *    exactly as before, and the trampoline first tells the emulation that
 *    a handler runs on this thread (the interrupt hook: a fault wait is
 *    abandoned, as the kernel's is when a signal arrives).
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

SIG_SAFE int sigchain_real_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	return __sigaction(sig, act, old);
}

enum chain_mode { CH_NONE = 0, CH_OURS, CH_WRAPPED };

struct chain {
	struct seqlock lock;
	_Atomic int mode;		/* enum chain_mode */
	struct sigaction prog;		/* what the program believes */
};
static struct chain g_chain[NSIG];
/* The signals of ours the program believes this thread blocks: really
 * blocked, a fault would kill it (the kernel forces a synchronous signal
 * that is blocked, and resets its handler).  Bit sig for each. */
static __thread uint64_t tls_blocked __attribute__((tls_model("initial-exec")));
static _Atomic int g_wrapping;		/* sigchain_wrap_all() was called */
static _Atomic(void (*)(void)) g_hook;	/* the interrupt hook */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;	/* writers */

/* async-signal-safe */
static struct chain *chain_of(int sig)
{
	return sig > 0 && sig < NSIG ? &g_chain[sig] : NULL;
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
SIG_SAFE static void read_prog(struct chain *ch, struct sigaction *out)
{
	uint32_t s;

	do {
		s = seq_read_begin(&ch->lock);
		memcpy(out, &ch->prog, sizeof *out);
	} while (seq_read_retry(&ch->lock, s));
}

/* A handler of the program's: neither SIG_DFL nor SIG_IGN (whatever
 * SA_SIGINFO says: sa_handler and sa_sigaction share their storage). */
static int is_handler(const struct sigaction *sa)
{
	return sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN;
}

/* Reset the program's disposition to SIG_DFL from a signal handler (which
 * cannot take g_lock): if a program thread is setting it at this very
 * moment, its call wins.  async-signal-safe */
SIG_SAFE static void reset_from_handler(struct chain *ch)
{
	if (seq_write_try_begin(&ch->lock)) {
		memset(&ch->prog, 0, sizeof ch->prog);
		ch->prog.sa_handler = SIG_DFL;
		seq_write_end(&ch->lock);
	}
}

/* Make sig's real disposition SIG_DFL (our handler out of the way).  a-s-s */
SIG_SAFE static void reset_real_default(int sig)
{
	struct sigaction dfl;

	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	__sigaction(sig, &dfl, NULL);
}

/* Call the program's handler as the kernel would have.  a-s-s */
SIG_SAFE static void call_prog(const struct sigaction *sa, int sig, siginfo_t *si, void *uctx)
{
	if (sa->sa_flags & SA_SIGINFO)
		sa->sa_sigaction(sig, si, uctx);
	else
		sa->sa_handler(sig);
}

/* Take our signals out of a mask that is about to be really applied: a
 * fault on a missing page must always reach our handler.  a-s-s */
__attribute__((no_sanitize("thread", "address", "undefined"))) static void unblock_ours(sigset_t *set)
{
	for (int sig = 1; sig < NSIG; sig++)
		if (atomic_load_explicit(&g_chain[sig].mode, memory_order_relaxed) == CH_OURS)
			sigdelset(set, sig);
}

/* Our signals in set, as bits (for tls_blocked).  a-s-s */
SIG_SAFE static uint64_t ours_in(const sigset_t *set)
{
	uint64_t b = 0;

	for (int sig = 1; sig < NSIG && sig < 64; sig++)
		if (atomic_load_explicit(&g_chain[sig].mode, memory_order_relaxed) == CH_OURS &&
		    sigismember(set, sig))
			b |= 1ULL << sig;
	return b;
}

/* The trampoline of a wrapped signal: installed with the program's flags
 * and mask, so the kernel already did what it would have (mask, stack,
 * SA_RESETHAND on the real disposition).  async-signal-safe */
SIG_SAFE static void trampoline(int sig, siginfo_t *si, void *uctx)
{
	struct chain *ch = &g_chain[sig];
	void (*hook)(void) = atomic_load(&g_hook);
	struct sigaction sa;
	int saved = errno;

	if (hook)
		hook();
	read_prog(ch, &sa);
	if (sa.sa_flags & SA_RESETHAND)
		reset_from_handler(ch);
	errno = saved;
	if (is_handler(&sa)) {
		/* Ours were left out of the real mask: the handler still sees
		 * them blocked, as its sa_mask says. */
		uint64_t was = tls_blocked;
		tls_blocked |= ours_in(&sa.sa_mask);
		call_prog(&sa, sig, si, uctx);
		tls_blocked = was;
	}
	/* (Else the program changed it while this one was on its way: the
	 * new disposition is already the real one for the next.) */
}

/* async-signal-safe */
SIG_SAFE void sigchain_call_masked(const struct sigaction *sa, int sig, siginfo_t *si, void *uctx,
				   const sigset_t *mask)
{
	uint64_t was = tls_blocked;
	sigset_t real;

	sys_sigemptyset(&real);
	sys_sigorset(&real, &real, mask);
	unblock_ours(&real);
	tls_blocked |= ours_in(mask);
	sys_sigmask(SIG_SETMASK, &real, NULL);
	call_prog(sa, sig, si, uctx);
	tls_blocked = was;
}

/* Install the real disposition standing for the program's sa (g_lock
 * held): the trampoline with the program's flags and mask (less our
 * signals), or sa as it is (SIG_DFL, SIG_IGN). */
static int install_locked(int sig, const struct sigaction *sa)
{
	struct sigaction real = *sa;

	if (is_handler(sa)) {
		real.sa_sigaction = trampoline;
		real.sa_flags |= SA_SIGINFO;
		unblock_ours(&real.sa_mask);
	}
	return __sigaction(sig, &real, NULL);
}

/* Not instrumented: the mask interposers call it while a sanitizer's
 * runtime may be starting. */
__attribute__((no_sanitize("thread", "address", "undefined"))) int sigchain_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	sigset_t want, cur;
	uint64_t blocked = 0;
	int any = 0;

	for (int sig = 1; sig < NSIG; sig++)
		any |= atomic_load_explicit(&g_chain[sig].mode, memory_order_relaxed) == CH_OURS;
	if (!any)
		return sys_sigmask(how, set, old) < 0 ? -1 : 0;
	/* The program's view: the real mask, plus ours it blocked. */
	sigemptyset(&cur);
	if (sys_sigmask(SIG_BLOCK, NULL, &cur) < 0)
		return -1;
	for (int sig = 1; sig < NSIG && sig < 64; sig++)
		if (tls_blocked & (1ULL << sig))
			sigaddset(&cur, sig);
	if (set) {
		if (how == SIG_BLOCK) {
			sigorset(&want, &cur, set);
		} else if (how == SIG_UNBLOCK) {
			sigset_t inv;
			sigfillset(&inv);
			for (int sig = 1; sig < NSIG; sig++)
				if (sigismember(set, sig))
					sigdelset(&inv, sig);
			sigandset(&want, &cur, &inv);
		} else if (how == SIG_SETMASK) {
			want = *set;
		} else {
			errno = EINVAL;
			return -1;
		}
		for (int sig = 1; sig < NSIG && sig < 64; sig++)
			if (atomic_load_explicit(&g_chain[sig].mode, memory_order_relaxed) == CH_OURS &&
			    sigismember(&want, sig))
				blocked |= 1ULL << sig;
		unblock_ours(&want);
		/* As the C library's: its own two signals (thread cancellation,
		 * set*id across threads) are never blocked. */
		sigdelset(&want, 32);
		sigdelset(&want, 33);
		if (sys_sigmask(SIG_SETMASK, &want, NULL) < 0)
			return -1;
		tls_blocked = blocked;
	}
	if (old)
		*old = cur;
	return 0;
}

int sigchain_install(int sig, const struct sigaction *ours)
{
	struct chain *ch = chain_of(sig);
	struct sigaction prev;
	int r = 0;

	pthread_mutex_lock(&g_lock);
	if (atomic_load(&ch->mode) != CH_OURS) {
		if (atomic_load(&ch->mode) == CH_WRAPPED)
			prev = ch->prog;
		if (__sigaction(sig, ours, atomic_load(&ch->mode) == CH_WRAPPED ? NULL : &prev) < 0) {
			r = -errno;
		} else {
			publish_locked(ch, &prev);
			atomic_store(&ch->mode, CH_OURS);
		}
	}
	pthread_mutex_unlock(&g_lock);
	return r;
}

void sigchain_wrap_all(void (*hook)(void))
{
	pthread_mutex_lock(&g_lock);
	atomic_store(&g_hook, hook);
	if (!atomic_load(&g_wrapping)) {
		for (int sig = 1; sig < NSIG; sig++) {
			struct chain *ch = &g_chain[sig];
			struct sigaction cur;

			if (sig == SIGKILL || sig == SIGSTOP || atomic_load(&ch->mode) != CH_NONE)
				continue;
			if (__sigaction(sig, NULL, &cur) < 0 || !is_handler(&cur))
				continue;
			publish_locked(ch, &cur);
			if (install_locked(sig, &cur) == 0)
				atomic_store(&ch->mode, CH_WRAPPED);
		}
		atomic_store(&g_wrapping, 1);
	}
	pthread_mutex_unlock(&g_lock);
}

int sigchain_program_set(int sig, const struct sigaction *act, struct sigaction *old)
{
	struct chain *ch = chain_of(sig);
	struct sigaction a, o;
	int mode, r = 0;

	if (!ch || sig == SIGKILL || sig == SIGSTOP)
		return 0;
	mode = atomic_load(&ch->mode);
	if (mode == CH_NONE && !atomic_load(&g_wrapping))
		return 0;
	/* The program's struct may be anywhere (a missing page of a
	 * registered range): copy it before taking anything. */
	if (act)
		a = *act;
	pthread_mutex_lock(&g_lock);
	mode = atomic_load(&ch->mode);
	if (mode == CH_NONE) {
		/* Not taken part in yet (no handler so far): the real one. */
		if (__sigaction(sig, NULL, &o) < 0) {
			pthread_mutex_unlock(&g_lock);
			return -1;
		}
		publish_locked(ch, &o);
		atomic_store(&ch->mode, CH_WRAPPED);
		mode = CH_WRAPPED;
	}
	o = ch->prog;
	if (act) {
		if (mode == CH_WRAPPED && install_locked(sig, &a) < 0)
			r = -1;
		else
			publish_locked(ch, &a);
	}
	pthread_mutex_unlock(&g_lock);
	if (r == 0 && old)
		*old = o;
	return r < 0 ? -1 : 1;
}

/* async-signal-safe */
SIG_SAFE void sigchain_program(int sig, struct sigaction *out)
{
	struct chain *ch = chain_of(sig);

	if (ch && atomic_load(&ch->mode) != CH_NONE) {
		read_prog(ch, out);
		return;
	}
	if (__sigaction(sig, NULL, out) < 0) {
		memset(out, 0, sizeof *out);
		out->sa_handler = SIG_DFL;
	}
}

/* Hand a fault that is not ours to the program.  a-s-s */
SIG_SAFE void sigchain_forward(int sig, siginfo_t *si, void *uctx)
{
	struct chain *ch = chain_of(sig);
	void (*hook)(void) = atomic_load(&g_hook);
	struct sigaction sa;
	sigset_t old;

	sigchain_program(sig, &sa);
	if (si->si_code <= 0 && !is_handler(&sa)) {
		/* Sent by kill(), raise(), sigqueue() or tgkill(), not raised by
		 * an access: ignored, the signal is gone (and we stay); by
		 * default, the default action, at once: the same signal again,
		 * with our handler out of the way. */
		if (sa.sa_handler == SIG_IGN)
			return;
		reset_real_default(sig);
		sys_tgsigqueueinfo(getpid(), sys_gettid(), sig, si);
		return;
	}
	if (!is_handler(&sa)) {
		/* The default action for a fault: reset and return, so that the
		 * access faults again and the kernel acts (core dump, exit status)
		 * exactly as it would have without us. */
		reset_real_default(sig);
		return;
	}
	if (hook)
		hook();
	if ((sa.sa_flags & SA_RESETHAND) && ch)
		reset_from_handler(ch);
	/* The mask the kernel would give the handler: sa_mask, plus the
	 * signal itself unless SA_NODEFER (ours is NODEFER, so add it);
	 * never our signals, so that a missing page it touches is served. */
	if (!(sa.sa_flags & SA_NODEFER))
		sigaddset(&sa.sa_mask, sig);
	uint64_t was = tls_blocked;
	tls_blocked |= ours_in(&sa.sa_mask);	/* what the handler sees */
	unblock_ours(&sa.sa_mask);
	sys_sigmask(SIG_BLOCK, &sa.sa_mask, &old);
	call_prog(&sa, sig, si, uctx);
	sys_sigmask(SIG_SETMASK, &old, NULL);
	tls_blocked = was;
}
