/* SPDX-License-Identifier: MIT */
/*
 * The seqlock: the one way data that signal handlers read is published.
 *
 * Writers are serialised by a lock of their own (never taken in a signal
 * handler) and bracket every change with seq_write_begin/seq_write_end: the
 * counter is odd while a change is under way.  Readers never block the
 * writer and never take a lock, so they may run in a signal handler:
 *
 *	uint32_t s;
 *	do {
 *		s = seq_read_begin(&x->seq);	// waits while odd
 *		... load the fields ...
 *	} while (seq_read_retry(&x->seq, s));
 *
 * Every field a reader loads is an atomic, stored and loaded sequentially
 * consistent (plain atomic_load/atomic_store), so the counter needs no
 * separate fences (which ThreadSanitizer cannot model) and a torn read is
 * never undefined behaviour, only retried.
 *
 * A reader that interrupts its own thread's writer would wait forever: a
 * writer whose change a signal handler of its own thread may read blocks
 * signals around it (seq_write_begin_masked), and copies anything that
 * could fault (program memory) before it begins.
 */
#ifndef UF_BASE_SEQLOCK_H
#define UF_BASE_SEQLOCK_H

#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "base/sys.h"

struct seqlock {
	_Atomic uint32_t seq;	/* odd while a change is under way */
};

/* async-signal-safe */
static inline void seq_write_begin(struct seqlock *l)
{
	atomic_fetch_add(&l->seq, 1);
}

/* async-signal-safe */
SIG_SAFE static inline void seq_write_end(struct seqlock *l)
{
	atomic_fetch_add(&l->seq, 1);
}

/* For a writer that cannot take the writers' lock (a signal handler):
 * begin only if no change is under way.  async-signal-safe */
SIG_SAFE static inline bool seq_write_try_begin(struct seqlock *l)
{
	uint32_t s = atomic_load(&l->seq);

	return !(s & 1) && atomic_compare_exchange_strong(&l->seq, &s, s + 1);
}

/* The same, with every signal blocked in between (old keeps the mask). */
static inline void seq_write_begin_masked(struct seqlock *l, sigset_t *old)
{
	sigset_t all;

	sigfillset(&all);
	sys_sigmask(SIG_BLOCK, &all, old);
	seq_write_begin(l);
}

static inline void seq_write_end_masked(struct seqlock *l, const sigset_t *old)
{
	seq_write_end(l);
	sys_sigmask(SIG_SETMASK, old, NULL);
}

/* The counter to check the read against; waits while a change is under
 * way.  async-signal-safe */
SIG_SAFE static inline uint32_t seq_read_begin(const struct seqlock *l)
{
	uint32_t s;

	while ((s = atomic_load(&l->seq)) & 1)
		sched_yield();
	return s;
}

/* Did a change happen since seq_read_begin returned s?  async-signal-safe */
SIG_SAFE static inline bool seq_read_retry(const struct seqlock *l, uint32_t s)
{
	return atomic_load(&l->seq) != s;
}

/* The counter as it is, odd or not (for readers that must not wait:
 * compare it with seq_read_retry after a look that may be torn). */
static inline uint32_t seq_peek(const struct seqlock *l)
{
	return atomic_load(&l->seq);
}

#endif
