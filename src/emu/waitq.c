/* SPDX-License-Identifier: MIT */
/*
 * The waiter queue (see waitq.h).  Everything here runs in, or can be
 * called from, a signal handler: it is async-signal-safe (atomics, futexes
 * and plain system calls; no malloc, no stdio, no locks).
 *
 * A slot's state packs a generation (high 24 bits) and a phase (low 8
 * bits), so that a compare-and-swap can never hit a recycled slot.  The
 * phases, and who moves a slot from one to the next:
 *
 *            wq_claim (the waiter)
 *    FREE ------------------------> CLAIMED
 *     ^                                |  wq_queue_fault / wq_queue_event
 *     |                                v  (the waiter; npending + 1)
 *     |                             PENDING ----------------------+
 *     |                                |  wq_take (a reader:       |
 *     |                                |  read(), a remote TAKE)   |
 *     |                                v                           |
 *     |                              READ                          |
 *     |                  wq_wake_range |  (a resolver: COPY,       | wake or take of
 *     |                  wq_wake_all   |  ZEROPAGE, WAKE,          | an event, from
 *     |                  wq_complete   |  UNREGISTER, release;     | PENDING directly
 *     |                                v  a reader, for an event)  | (npending - 1)
 *     |    wq_free (the waiter)     WOKEN <------------------------+
 *     +---------------------------- DONE <--- wq_cancel, or a signal during
 *                                              wq_wait (the waiter itself),
 *                                              from PENDING or READ
 *
 * Every move out of PENDING takes one off the queue's npending.  Moves
 * other than the waiter's own are compare-and-swaps from the phase seen,
 * so of a wake, a take and a cancel racing for one slot exactly one wins.
 * A waiter sleeps on its state word (futex) only after setting `sleeping`;
 * whoever moves it to WOKEN calls futex_wake only then.
 */
#include <sched.h>
#include <signal.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <string.h>
#include <sys/wait.h>
#include "base/arch/fault.h"
#include "base/caps.h"
#include "base/sys.h"
#include "emu/waitq.h"

enum phase { W_FREE = 0, W_CLAIMED, W_PENDING, W_READ, W_WOKEN, W_DONE };
#define PHASE(s) ((s) & 0xffu)
#define WITH(s, ph) (((s) & ~0xffu) | (ph))

struct waiter {
	_Atomic uint32_t state;
	_Atomic uint32_t ctx;		/* the queue's id */
	_Atomic uint64_t ticket;	/* order of arrival */
	_Atomic uintptr_t addr;		/* as reported in the message */
	_Atomic uint32_t sleeping;	/* the waiter is (about to be) in futex_wait */
	_Atomic int event;		/* a non-cooperative event, not a fault */
	_Atomic int ev_read;		/* the event was read (not abandoned) */
	struct uffd_msg msg;
};

static struct waiter g_w[WQ_MAX];
static _Atomic int g_w_hw;			/* slots ever used */
static _Atomic uint64_t g_ticket = 1;
static _Atomic uint32_t g_w_freed;		/* futex: a slot was freed */
static _Atomic int g_w_starved;			/* threads waiting for a slot */

SIG_SAFE struct waiter *wq_claim(uint32_t *gen)
{
	for (;;) {
		uint32_t freed = atomic_load(&g_w_freed);
		for (int i = 0; i < WQ_MAX; i++) {
			uint32_t s = atomic_load(&g_w[i].state);
			if (PHASE(s) != W_FREE)
				continue;
			if (atomic_compare_exchange_strong(&g_w[i].state, &s,
							   ((s & ~0xffu) + 0x100u) | W_CLAIMED)) {
				int hw = atomic_load(&g_w_hw);
				while (hw < i + 1 && !atomic_compare_exchange_weak(&g_w_hw, &hw, i + 1))
					;
				*gen = (s & ~0xffu) + 0x100u;
				return &g_w[i];
			}
		}
		/* More waiting threads than slots: wait for one to go. */
		atomic_fetch_add(&g_w_starved, 1);
		if (atomic_load(&g_w_freed) == freed)
			sys_futex_wait(&g_w_freed, freed, NULL);
		atomic_fetch_sub(&g_w_starved, 1);
	}
}

/* Free the slot if it is still w's claim gen, woken or cancelled: 1 if we
 * did (a reclaim may have done it first). */
SIG_SAFE static int release(struct waiter *w, uint32_t gen)
{
	uint32_t s = atomic_load(&w->state);

	if ((s & ~0xffu) != gen || (PHASE(s) != W_WOKEN && PHASE(s) != W_DONE))
		return 0;
	/* Take it (CLAIMED: nobody else moves it) before clearing it: the
	 * waiter may be interrupted here by a handler that reclaims. */
	if (!atomic_compare_exchange_strong(&w->state, &s, WITH(s, W_CLAIMED)))
		return 0;
	atomic_store(&w->event, 0);
	atomic_store(&w->ctx, 0);
	atomic_store(&w->state, WITH(s, W_FREE));
	atomic_fetch_add(&g_w_freed, 1);
	if (atomic_load(&g_w_starved))
		sys_futex_wake(&g_w_freed, 1);
	return 1;
}

SIG_SAFE void wq_free(struct waiter *w, uint32_t gen)
{
	release(w, gen);
}

SIG_SAFE int wq_reclaim(struct waiter *w, uint32_t gen)
{
	uint32_t s = atomic_load(&w->state);

	return s == (gen | W_DONE) && release(w, gen);
}

/* Move a queued or read waiter from `seen` to phase `to`: 1 if we did. */
SIG_SAFE static int finish(struct waiter *w, uint32_t seen, uint32_t to, struct wq_queue *q)
{
	if (!atomic_compare_exchange_strong(&w->state, &seen, WITH(seen, to)))
		return 0;
	if (PHASE(seen) == W_PENDING && q)
		atomic_fetch_sub(&q->npending, 1);
	return 1;
}

/* Wake a waiter seen in phase PENDING or READ (in *seen): 1 if we moved it
 * to WOKEN.  A reader may take its message (PENDING -> READ) between our
 * look and our move: the wake must not be lost to that, so it is retried
 * for as long as the slot holds the same waiter, queued or read.  *seen
 * gets the phase it was woken from. */
static int wake_from(struct waiter *w, uint32_t *seen, struct wq_queue *q)
{
	uint32_t s = *seen;

	for (;;) {
		if (finish(w, s, W_WOKEN, q)) {
			*seen = s;
			return 1;
		}
		uint32_t now = atomic_load(&w->state);
		if ((now & ~0xffu) != (s & ~0xffu) || (PHASE(now) != W_PENDING && PHASE(now) != W_READ))
			return 0;	/* woken, cancelled or reused meanwhile */
		s = now;
	}
}

/* Let a waiter moved to WOKEN go. */
static void wake(struct waiter *w)
{
	if (atomic_load(&w->sleeping))
		sys_futex_wake(&w->state, 1);
}

SIG_SAFE static void queue(struct waiter *w, struct wq_queue *q, const struct uffd_msg *m, uintptr_t addr,
		  int event)
{
	uint32_t s;

	memcpy(&w->msg, m, sizeof w->msg);
	atomic_store(&w->addr, addr);
	atomic_store(&w->event, event);
	atomic_store(&w->ev_read, 0);
	atomic_store(&w->sleeping, event);	/* an event never spins */
	atomic_store(&w->ctx, atomic_load(&q->id));
	atomic_store(&w->ticket, atomic_fetch_add(&g_ticket, 1));
	atomic_fetch_add(&q->npending, 1);
	s = atomic_load(&w->state);
	atomic_store(&w->state, WITH(s, W_PENDING));
}

SIG_SAFE void wq_queue_fault(struct waiter *w, struct wq_queue *q, const struct uffd_msg *m, uintptr_t addr)
{
	queue(w, q, m, addr, 0);
}

void wq_queue_event(struct waiter *w, struct wq_queue *q, const struct uffd_msg *m)
{
	queue(w, q, m, 0, 1);
}

SIG_SAFE void wq_cancel(struct waiter *w, uint32_t gen, struct wq_queue *q)
{
	uint32_t s = atomic_load(&w->state);

	while ((s & ~0xffu) == gen && (PHASE(s) == W_PENDING || PHASE(s) == W_READ) &&
	       !finish(w, s, W_DONE, q))
		s = atomic_load(&w->state);	/* read meanwhile: cancel that */
}

int wq_event_read(const struct waiter *w)
{
	return atomic_load(&w->ev_read);
}

long wq_wake_range(struct wq_queue *q, uintptr_t start, uintptr_t end, long *woken)
{
	uint32_t id = atomic_load(&q->id);
	int hw = atomic_load(&g_w_hw);
	long unread = 0;

	for (int i = 0; i < hw; i++) {
		struct waiter *w = &g_w[i];
		uint32_t s = atomic_load(&w->state);
		uintptr_t a;

		if (PHASE(s) != W_PENDING && PHASE(s) != W_READ)
			continue;
		if (atomic_load(&w->ctx) != id || atomic_load(&w->event))
			continue;
		a = atomic_load(&w->addr);
		if (a < start || a >= end)
			continue;
		if (wake_from(w, &s, q)) {
			wake(w);
			unread += PHASE(s) == W_PENDING;
			if (woken)
				++*woken;
		}
	}
	return unread;
}

void wq_wake_all(uint32_t id)
{
	int hw = atomic_load(&g_w_hw);

	for (int i = 0; i < hw; i++) {
		struct waiter *w = &g_w[i];
		uint32_t s = atomic_load(&w->state);
		if ((PHASE(s) == W_PENDING || PHASE(s) == W_READ) && atomic_load(&w->ctx) == id &&
		    wake_from(w, &s, NULL))
			wake(w);
	}
}

int wq_take(struct wq_queue *q, struct uffd_msg *out, int max, struct wq_taken *later)
{
	uint32_t id = atomic_load(&q->id);
	int k = 0;

	if (later)
		later->n = 0;
	while (k < max) {
		int hw = atomic_load(&g_w_hw), best = -1, bev = 2;
		uint64_t bt = UINT64_MAX;
		uint32_t bs = 0;

		for (int i = 0; i < hw; i++) {
			uint32_t s = atomic_load(&g_w[i].state);
			uint64_t t;
			int ev;
			if (PHASE(s) != W_PENDING || atomic_load(&g_w[i].ctx) != id)
				continue;
			t = atomic_load(&g_w[i].ticket);
			ev = atomic_load(&g_w[i].event);
			if (ev < bev || (ev == bev && t < bt)) {
				bt = t;
				bev = ev;
				best = i;
				bs = s;
			}
		}
		if (best < 0)
			break;
		/* Copy before claiming: once READ, the waiter may be woken and
		 * reuse the slot at any moment. */
		memcpy(&out[k], &g_w[best].msg, sizeof out[k]);
		if (bev && !later) {
			struct waiter *w = &g_w[best];
			atomic_store(&w->ev_read, 1);
			if (finish(w, bs, W_WOKEN, q)) {
				wake(w);
				k++;
			}
		} else if (finish(&g_w[best], bs, W_READ, q)) {
			if (bev && later->n < WQ_TAKEN_MAX) {
				later->slot[later->n] = best;
				later->state[later->n++] = WITH(bs, W_READ);
			}
			k++;
		}
	}
	return k;
}

void wq_complete(const struct wq_taken *t)
{
	for (int i = 0; i < t->n; i++) {
		struct waiter *w = &g_w[t->slot[i]];
		uint32_t s = t->state[i];

		atomic_store(&w->ev_read, 1);
		if (atomic_compare_exchange_strong(&w->state, &s, WITH(s, W_WOKEN)))
			wake(w);
	}
}

void wq_reset_after_fork(void)
{
	for (int i = 0; i < WQ_MAX; i++)
		atomic_store(&g_w[i].state, 0);
	atomic_store(&g_w_hw, 0);
}

/* ---- Waiting: spin a little, then sleep ---- */

SIG_SAFE static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

static _Atomic int g_spinners;		/* threads spinning now */
static _Atomic long g_wait_ewma = -1;	/* recent waits, ns (-1: none yet) */

/* Woken, cancelled, or no longer this claim at all (reclaimed after a
 * signal handler left the wait for good, see wq_reclaim). */
SIG_SAFE static int resolved(struct waiter *w, uint32_t gen)
{
	uint32_t s = atomic_load(&w->state);
	return (s & ~0xffu) != gen || (PHASE(s) != W_PENDING && PHASE(s) != W_READ);
}

/*
 * Most faults are answered within tens of microseconds.  Sleeping at once
 * costs the resolver a futex_wake system call and this thread a wake-up
 * from an idle CPU, which is the largest single cost of a round trip on a
 * virtual machine.  So a faulting thread first spins, for about twice the
 * recent wait (at most USERFAULT_SPIN_US), and only while a CPU is left
 * over for the resolver; when recent waits are longer than that, it sleeps
 * at once.
 */
SIG_SAFE static void spin(struct waiter *w, uint32_t gen)
{
	long ewma = atomic_load(&g_wait_ewma), limit;

	if (caps.spin_ns <= 0)
		return;
	if (ewma < 0)
		ewma = caps.spin_ns / 2;
	if (ewma > caps.spin_ns)
		return;
	limit = 2 * ewma;
	if (limit < 20000)
		limit = 20000;
	if (limit > caps.spin_ns)
		limit = caps.spin_ns;
	if (atomic_fetch_add(&g_spinners, 1) < caps.max_spinners) {
		long end = sys_now_ns() + limit;
		while (!resolved(w, gen)) {
			for (int i = 0; i < 64 && !resolved(w, gen); i++)
				cpu_relax();
			if (sys_now_ns() > end)
				break;
		}
	}
	atomic_fetch_sub(&g_spinners, 1);
}

/* A wait took ns: fold it into the recent average (1/8 weight). */
SIG_SAFE static void learn(long ns)
{
	long old = atomic_load(&g_wait_ewma);
	long nw = old < 0 ? ns : old + (ns - old) / 8;
	atomic_compare_exchange_strong(&g_wait_ewma, &old, nw);
}

SIG_SAFE int wq_wait(struct waiter *w, uint32_t gen, struct wq_queue *q, int do_spin, int abandon_on_signal)
{
	long t0 = do_spin ? sys_now_ns() : 0;
	uint32_t s;

	if (do_spin) {
		spin(w, gen);
		if (!resolved(w, gen))
			atomic_store(&w->sleeping, 1);
	}
	for (;;) {
		s = atomic_load(&w->state);
		if ((s & ~0xffu) != gen)
			return 0;	/* reclaimed and reused: it was cancelled */
		if (PHASE(s) != W_PENDING && PHASE(s) != W_READ)
			break;		/* woken, cancelled, or being reclaimed */
		if (sys_futex_wait(&w->state, s, NULL) < 0 && errno == EINTR && abandon_on_signal) {
			/* A signal handler ran on this thread (nested in ours).  As
			 * the kernel does, abandon: the access is retried and, if
			 * the page is still missing, queues a new message. */
			wq_cancel(w, gen, q);
		}
	}
	if (do_spin)
		learn(sys_now_ns() - t0);
	return PHASE(s) == W_WOKEN;
}

/* The vfork child of wq_wait_killable: it runs on its parent's stack, with
 * its parent's thread pointer, while the parent sleeps; so only plain atomics
 * and raw system calls here, nothing instrumented. */
struct killable {
	struct waiter *w;
	uint32_t gen;
	long ppid;		/* our process */
};

__attribute__((no_sanitize("address", "thread", "undefined")))
static int killable_child(void *arg)
{
	struct killable *k = arg;

	/* Die with the waiting thread: a process that exits (another thread
	 * calls exit) or is killed meanwhile must not leave us waiting, with
	 * its memory and descriptors. */
	sys_call4(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0);
	if (sys_call4(SYS_getppid, 0, 0, 0, 0) != k->ppid)
		return 0;
	for (;;) {
		uint32_t s = __atomic_load_n((uint32_t *)&k->w->state, __ATOMIC_SEQ_CST);
		if ((s & ~0xffu) != k->gen || (PHASE(s) != W_PENDING && PHASE(s) != W_READ))
			return 0;
		sys_futex_wait(&k->w->state, s, NULL);
	}
}

int wq_wait_killable(struct waiter *w, uint32_t gen, struct wq_queue *q)
{
	/* (the child's stack: below this frame, which it outlives not) */
	char stack[8192] __attribute__((aligned(16)));
	struct killable k = { w, gen, (long)getpid() };
	sigset_t all, old;
	int pid, saved = errno;

	if (caps.event_vfork) {
		/* The child takes no signal on our stack; our own wait is
		 * killable only, as the kernel's.  It shares our descriptors:
		 * a copy would keep the uffd open past its last close. */
		sigfillset(&all);
		sys_sigmask(SIG_SETMASK, &all, &old);
		pid = (int)arch_clone_vm(killable_child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | CLONE_FILES,
					 &k);
		sys_sigmask(SIG_SETMASK, &old, NULL);
		if (pid > 0)
			while (sys_call4(SYS_wait4, pid, 0, __WCLONE, 0) < 0 && errno == EINTR)
				;
		errno = saved;
	}
	return wq_wait(w, gen, q, 0, 0);	/* (returns at once if over) */
}
