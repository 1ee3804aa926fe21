/* SPDX-License-Identifier: MIT */
/*
 * Layer 3, the waiter queue (waitq.c): the slots in which faulting threads
 * (and threads that raised a non-cooperative event) wait until a reader and
 * a resolver let them go, and the messages those slots carry.  Slots are
 * shared by every uffd of the process (WQ_MAX threads waiting at once);
 * each uffd's queue is the slots tagged with its id.  Everything here is
 * async-signal-safe: atomics and futexes, no lock, no allocation.  This
 * layer calls only src/base/.
 */
#ifndef UF_EMU_WAITQ_H
#define UF_EMU_WAITQ_H

#include <stdatomic.h>
#include <stdint.h>
#include "userfault/uapi.h"

#define WQ_MAX 1024		/* threads waiting at once per process */

/* One uffd's queue: embedded in its context (layer 4). */
struct wq_queue {
	_Atomic uint32_t id;	/* the uffd's id; 0 when it is free */
	_Atomic int npending;	/* messages queued and not yet read */
};

struct waiter;

/* A free slot (waits for one if all are taken); *gen gets the claim's
 * generation, which every later call on the slot names: once the slot is
 * freed and claimed again, calls with the old one do nothing. */
struct waiter *wq_claim(uint32_t *gen);
/* Queue w on q with message m: a fault at addr (as the message reports it),
 * or a non-cooperative event. */
void wq_queue_fault(struct waiter *w, struct wq_queue *q, const struct uffd_msg *m, uintptr_t addr);
void wq_queue_event(struct waiter *w, struct wq_queue *q, const struct uffd_msg *m);
/* The waiter itself gives up before waiting (resolved meanwhile, or its
 * uffd is not running): its message, if unread, is withdrawn. */
void wq_cancel(struct waiter *w, uint32_t gen, struct wq_queue *q);
/* Wait until woken: 1 if woken by a reader or resolver, 0 if cancelled.
 * spin: first spin a little (faults; see waitq.c).  abandon_on_signal: a
 * signal handler that runs during the sleep ends the wait as cancelled (the
 * kernel's fault returns to retry the access). */
int wq_wait(struct waiter *w, uint32_t gen, struct wq_queue *q, int spin, int abandon_on_signal);
/* wq_wait for an event's message to be read, as the kernel's killable wait:
 * signals other than fatal ones wait until it ends, and the thread shows as
 * D (disk sleep) in /proc meanwhile: it waits in a vfork, whose child (on
 * this stack, sharing the memory) waits for the reading.  Where the child
 * cannot be made, or with USERFAULT_EVENT_WAIT=futex, wq_wait. */
int wq_wait_killable(struct waiter *w, uint32_t gen, struct wq_queue *q);
/* Was the event of w read (rather than abandoned at release)? */
int wq_event_read(const struct waiter *w);
/* Give the slot back (the waiter itself, once woken or cancelled). */
void wq_free(struct waiter *w, uint32_t gen);
/* Free a cancelled slot whose waiter may never come back for it (a signal
 * handler left the wait with siglongjmp): 1 if freed.  Safe while the
 * waiter's frame is still live: it then finds the claim gone and returns
 * as cancelled. */
int wq_reclaim(struct waiter *w, uint32_t gen);

/* Wake the fault waiters of q whose address is in [start, end).  Returns
 * how many had not been read (their messages are withdrawn: the uffd's
 * readiness may have to change); *woken (if not NULL) gets how many woke. */
long wq_wake_range(struct wq_queue *q, uintptr_t start, uintptr_t end, long *woken);
/* Release: wake every waiter of the uffd whose id was id. */
void wq_wake_all(uint32_t id);

/* Events taken by wq_take, to be completed once the reader has them. */
#define WQ_TAKEN_MAX 64
struct wq_taken {
	int n;
	int slot[WQ_TAKEN_MAX];
	uint32_t state[WQ_TAKEN_MAX];
};
/* Take up to max unread messages of q: faults oldest first, then events
 * oldest first (the kernel returns an event only when no fault is
 * pending).  Taking an event completes it (its thread goes on) unless
 * `later` is given: then wq_complete(later) does, once the reader has the
 * messages (a thread let go may end its process at once). */
int wq_take(struct wq_queue *q, struct uffd_msg *out, int max, struct wq_taken *later);
void wq_complete(const struct wq_taken *t);

/* Fork child: only the forking thread exists; every slot is free. */
void wq_reset_after_fork(void);

#endif
