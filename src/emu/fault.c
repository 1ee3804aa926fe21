/* SPDX-License-Identifier: MIT */
/*
 * The fault path: the SIGSEGV handler.  A fault on a missing page of a
 * registered area becomes a message in the waiter queue (layer 3) and the
 * thread sleeps until a wake covers it; with UFFD_FEATURE_SIGBUS it gets
 * SIGBUS instead, and with an in-thread pager the pager's callback runs
 * right here.  Faults that are not ours go to the program's own handler
 * (src/base/sigchain.c).  Everything in this file runs in a signal handler:
 * it is async-signal-safe (atomics, futexes and plain system calls; no
 * malloc, no stdio, no locks).
 */
#include <sched.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include "userfault.h"
#include "base/altstack.h"
#include "base/record.h"
#include "base/arch/fault.h"
#include "base/sigchain.h"
#include "base/stats.h"
#include "base/sys.h"
#include "base/usercopy.h"
#include "emu/area.h"
#include "emu/ops.h"

static __thread unsigned tls_spins __attribute__((tls_model("initial-exec")));
static __thread unsigned tls_accerr __attribute__((tls_model("initial-exec")));
static __thread uint32_t tls_accerr_gen __attribute__((tls_model("initial-exec")));
static __thread uint32_t tls_accerr_wp_gen __attribute__((tls_model("initial-exec")));
static __thread uint32_t tls_accerr_mv_gen __attribute__((tls_model("initial-exec")));

/* Is delivering SIGBUS by calling the program's handler from here exact:
 * the same handler, mask and stack as the kernel would give it? */
SIG_SAFE static int sigbus_direct_ok(const struct sigaction *sa, const ucontext_t *uc)
{
	/* Whatever SA_SIGINFO says, as the kernel: one field for both. */
	if (sa->sa_handler == SIG_DFL || sa->sa_handler == SIG_IGN)
		return 0;		/* the kernel's default action */
	if (sa->sa_flags & SA_RESETHAND)
		return 0;
	/* We run on the alternate stack whenever the thread has one; the
	 * kernel would run a handler without SA_ONSTACK on the normal stack
	 * when the program gave the thread one (ours alone is not the
	 * program's business: it would see no difference). */
	if (altstack_program_has(&uc->uc_stack) && !(sa->sa_flags & SA_ONSTACK))
		return 0;
	return 1;
}

/* UFFD_FEATURE_SIGBUS: the faulting thread gets SIGBUS, BUS_ADRERR, at the
 * exact address, as from the kernel.  Where exact, we call the program's
 * handler straight away, with the signal mask the kernel would set (the
 * interrupted one, plus sa_mask, plus SIGBUS unless SA_NODEFER); returning
 * from our handler then restores the interrupted mask, as sigreturn does
 * after the kernel's delivery.  Otherwise (SIGBUS blocked, ignored, default,
 * SA_RESETHAND, or another stack) the kernel delivers a queued SIGBUS:
 * unblocked if it was blocked, the default action if it was ignored.
 * a-s-s */
SIG_SAFE static void raise_sigbus(uintptr_t addr, void *uctx)
{
	siginfo_t si;
	struct sigaction cur;
	ucontext_t *uc = uctx;

	memset(&si, 0, sizeof si);
	si.si_signo = SIGBUS;
	si.si_code = BUS_ADRERR;
	si.si_addr = (void *)addr;
	STATS_ADD(sigbus, 1);
	sigchain_program(SIGBUS, &cur);
	if (!sigismember(&uc->uc_sigmask, SIGBUS) && sigbus_direct_ok(&cur, uc)) {
		sigset_t mask;
		sys_sigorset(&mask, &uc->uc_sigmask, &cur.sa_mask);
		if (!(cur.sa_flags & SA_NODEFER))
			sigaddset(&mask, SIGBUS);
		/* (SIGSEGV, if sa_mask has it, is blocked in the handler's
		 * view only: a fault in the handler must still reach us.) */
		sigchain_call_masked(&cur, SIGBUS, &si, uctx, &mask);
		return;
	}
	if (sigismember(&uc->uc_sigmask, SIGBUS))
		sigdelset(&uc->uc_sigmask, SIGBUS);
	if (sigchain_real_sigaction(SIGBUS, NULL, &cur) == 0 && cur.sa_handler == SIG_IGN) {
		cur.sa_handler = SIG_DFL;
		sigchain_real_sigaction(SIGBUS, &cur, NULL);
	}
	sys_tgsigqueueinfo(getpid(), sys_gettid(), SIGBUS, &si);
}

/* The pager whose callback runs on this thread: its descriptor cannot be
 * closed meanwhile (the callback's contract), so ioctls on it need no
 * identity lookup. */
static __thread int tls_pager_fd __attribute__((tls_model("initial-exec"))) = -1;
static __thread struct ctx *tls_pager_ctx __attribute__((tls_model("initial-exec")));

/* async-signal-safe */
struct ctx *fault_pager_hint(int fd)
{
	return fd == tls_pager_fd ? tls_pager_ctx : NULL;
}

/* An in-thread pager: its callback resolves the fault right here.  a-s-s */
SIG_SAFE static void run_pager(struct ctx *c, uintptr_t addr, int write, uint64_t why, void *uctx)
{
	uf_pager_fn fn = (uf_pager_fn)atomic_load(&c->pager_fn);
	struct uf_pager_fault f;
	int saved_fd = tls_pager_fd, r;
	struct ctx *saved_ctx = tls_pager_ctx;

	f.uffd = atomic_load(&c->pager_fd);
	f.flags = (write ? UFFD_PAGEFAULT_FLAG_WRITE : 0) | why;
	f.address = (void *)addr;
	f.page = (void *)page_down(addr);
	STATS_ADD(faults, 1);
	tls_pager_fd = f.uffd;
	tls_pager_ctx = c;
	r = fn(&f, (void *)atomic_load(&c->pager_arg));
	tls_pager_fd = saved_fd;
	tls_pager_ctx = saved_ctx;
	if (r < 0)
		raise_sigbus(addr, uctx);
}

/*
 * The waits of this thread that have not ended: the current one, and any
 * that a signal handler left without returning (siglongjmp).  A signal
 * handler that runs on a waiting thread cancels its waits, as the kernel
 * abandons a fault when a signal arrives (its unread message goes; the
 * access faults again after the handler, with a new one); a wait left for
 * good is reclaimed by the thread's next fault.
 */
#define TLS_WAITS 8
struct tls_wait {
	struct waiter *w;
	uint32_t gen;
	struct wq_queue *q;
};
static __thread struct tls_wait tls_waits[TLS_WAITS] __attribute__((tls_model("initial-exec")));
static __thread int tls_nwaits __attribute__((tls_model("initial-exec")));

/* A signal handler is about to run on this thread (the trampoline of
 * src/base/sigchain.c, or a program's SIGSEGV handler).  a-s-s */
SIG_SAFE static void on_interrupt(void)
{
	for (int i = 0; i < tls_nwaits; i++)
		wq_cancel(tls_waits[i].w, tls_waits[i].gen, tls_waits[i].q);
}

/* Free the slots of waits that were cancelled and may never be resumed.
 * (One still live below us finds its claim gone and ends as cancelled.) */
SIG_SAFE static void reclaim_left(void)
{
	int k = 0;

	for (int i = 0; i < tls_nwaits; i++)
		if (!wq_reclaim(tls_waits[i].w, tls_waits[i].gen))
			tls_waits[k++] = tls_waits[i];
	tls_nwaits = k;
}

SIG_SAFE static void wait_pop(struct waiter *w, uint32_t gen)
{
	for (int i = tls_nwaits - 1; i >= 0; i--)
		if (tls_waits[i].w == w && tls_waits[i].gen == gen) {
			tls_waits[i] = tls_waits[--tls_nwaits];
			return;
		}
}

/* Is the fault resolved (or gone) by now?  A missing page that is present,
 * a write-protected one that is not protected any more, a minor fault's
 * page that is mapped.  a-s-s */
SIG_SAFE static bool fault_over(const struct area_view *v, uintptr_t addr, uint64_t why)
{
	struct pg_span sp = area_span(v);

	if (why == UFFD_PAGEFAULT_FLAG_WP)
		return !pg_wp_get(&sp, addr);
	if (why == UFFD_PAGEFAULT_FLAG_MINOR)
		return pg_mapped(&sp, addr);
	return pg_present(&sp, addr);
}

/* Queue the fault (why: 0 for a missing page, or UFFD_PAGEFAULT_FLAG_WP or
 * _MINOR) and sleep until a wake covers it.  a-s-s */
SIG_SAFE static void wait_fault(struct ctx *c, const struct area_view *v, uintptr_t addr, int write,
				uint64_t why)
{
	uint64_t feat = atomic_load(&c->features);
	int hs = store_huge_shift(v->store);
	/* (hugetlb: the huge page's address, as the kernel's) */
	uintptr_t rep = (feat & UFFD_FEATURE_EXACT_ADDRESS) ? addr
			: hs ? addr & ~(((uintptr_t)1 << hs) - 1) : page_down(addr);
	struct uffd_msg m;
	struct waiter *w;
	uint32_t gen;
	int woken;

	reclaim_left();
	w = wq_claim(&gen);
	memset(&m, 0, sizeof m);
	m.event = UFFD_EVENT_PAGEFAULT;
	m.arg.pagefault.flags = (write ? UFFD_PAGEFAULT_FLAG_WRITE : 0) | why;
	m.arg.pagefault.address = rep;
	if (feat & UFFD_FEATURE_THREAD_ID)
		m.arg.pagefault.feat.ptid = (__u32)sys_gettid();
	if (tls_nwaits < TLS_WAITS) {
		tls_waits[tls_nwaits].w = w;
		tls_waits[tls_nwaits].gen = gen;
		tls_waits[tls_nwaits].q = &c->q;
		tls_nwaits++;
	}
	rec_fault(rep);		/* (before the message can be read) */
	wq_queue_fault(w, &c->q, &m, rep);
	STATS_ADD(faults, 1);

	/* Resolved or unregistered while we queued?  Then do not sleep (the
	 * message may still have been read: monitors must accept EEXIST).
	 * This is checked after queueing, so a wake cannot slip between, and
	 * before telling the reader, as the kernel re-checks the page table
	 * right after queueing. */
	if (fault_over(v, addr, why) || !area_still(v) || atomic_load(&c->state) != CTX_RUNNING)
		wq_cancel(w, gen, &c->q);
	else
		ctx_notify(c);
	woken = wq_wait(w, gen, &c->q, 1, 1);
	wait_pop(w, gen);
	wq_free(w, gen);
	/* Woken by a single-page install: the resolver left the entry of our
	 * page for us to fill (see resolved_wake() in ioctl.c), off its path. */
	if (woken && !why && !hs && area_still(v) && area_page_present(v, addr))
		pg_populate(v->prot, page_down(addr), caps.page_size);
}

/* A fault of ours (why: as wait_fault's) goes to the uffd c: its in-thread
 * pager, SIGBUS (UFFD_FEATURE_SIGBUS), or a message and a wait.
 * async-signal-safe */
SIG_SAFE static void deliver(struct ctx *c, const struct area_view *v, uintptr_t addr, int write,
			     uint64_t why, void *uctx)
{
	tls_spins = 0;
	if (atomic_load(&c->pager_fn))
		run_pager(c, addr, write, why, uctx);
	else if (atomic_load(&c->features) & UFFD_FEATURE_SIGBUS)
		raise_sigbus(addr, uctx);
	else
		wait_fault(c, v, addr, write, why);
}

/* The SIGSEGV handler.  Returns to retry the access, or hands the signal on
 * to the program's own handler.  async-signal-safe */
SIG_SAFE static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
	int saved = errno;
	uintptr_t addr = (uintptr_t)si->si_addr;
	struct area_view v;
	struct ctx *c;
	int write, wp_missing = 0;

	usercopy_recover();	/* a guarded copy of ours hit a bad pointer */
	/* A write to the source of a move in progress: after the move (which
	 * always ends; not counted as a spin, which a thread writing to a
	 * source moved again and again would use up). */
	if (si->si_code == SEGV_ACCERR && pg_moving(addr)) {
		while (pg_moving(addr))
			sched_yield();
		goto retry;
	}
	if (si->si_code <= 0)
		goto not_ours;
	if (!area_find(addr, &v)) {
		/* A protection fault raised by a move that has ended since
		 * (its source read-only a moment): retried once per move. */
		uint32_t mg = pg_move_gen();
		if (si->si_code == SEGV_ACCERR && mg != tls_accerr_mv_gen) {
			tls_accerr_mv_gen = mg;
			goto retry;
		}
		goto not_ours;
	}
	if (v.busy) {
		uint32_t gen = area_busy_gen();
		if (area_still(&v))
			area_wait_busy(gen);
		goto retry;
	}
	write = arch_fault_is_write(uctx);
	if (!(v.prot & PROT_READ) || (write && !(v.prot & PROT_WRITE)))
		goto not_ours;		/* a real protection fault */
	/* A write to a write-protected page (UFFDIO_WRITEPROTECT).  A missing
	 * one (WP_UNPOPULATED) of an area registered for MISSING too faults
	 * as missing first, as on the kernel: below. */
	if (write && si->si_code == SEGV_ACCERR && (v.mode & UFFDIO_REGISTER_MODE_WP) && v.ctx &&
	    store_has_wp(v.store)) {
		struct pg_span sp = area_span(&v);
		if (pg_wp_get(&sp, addr)) {
			if ((v.mode & UFFDIO_REGISTER_MODE_MISSING) && !pg_present(&sp, addr)) {
				wp_missing = 1;
			} else {
				c = ctx_by_id(v.ctx);
				if (!c || atomic_load(&c->state) != CTX_RUNNING)
					goto spin;
				/* WP_ASYNC: resolved here, with no message. */
				if (atomic_load(&c->features) & UFFD_FEATURE_WP_ASYNC) {
					if (pg_wp_async(&sp, addr) < 0)
						goto not_ours;
					goto retry;
				}
				deliver(c, &v, addr, write, UFFD_PAGEFAULT_FLAG_WP, uctx);
				goto retry;
			}
		}
	}
	/* (hugetlb's missing pages, and a private shmem page being installed,
	 * are PROT_NONE: ACCERR there is ours) */
	if (caps.guard_markers && si->si_code == SEGV_ACCERR && !wp_missing && !store_huge_shift(v.store) &&
	    store_kind(v.store) != STORE_SHMEM_PRIVATE) {
		/* Markers fault with MAPERR: a protection fault is the program's,
		 * unless a freeze or conversion of ours (which protects whole
		 * areas for a moment) raised it and ended before we looked.
		 * Those bump g_busy_gen: retry while it moves, and forward a
		 * fault that repeats with nothing of ours going on. */
		uint32_t gen = area_busy_gen(), wgen = pg_wp_gen(), mg = pg_move_gen();
		/* (A write protection lifted meanwhile counts as such a
		 * change: WRITEPROTECT makes the page writable, then clears
		 * its bit, which the fault may have read in between; so does
		 * a move that made its source read-only a moment.) */
		if (tls_accerr_gen != gen || tls_accerr_wp_gen != wgen || tls_accerr_mv_gen != mg) {
			tls_accerr_gen = gen;
			tls_accerr_wp_gen = wgen;
			tls_accerr_mv_gen = mg;
			tls_accerr = 0;
		}
		if (++tls_accerr > 2)
			goto not_ours;
		goto retry;
	}
	/* A poisoned page: SIGBUS, at every access (UFFDIO_POISON), also
	 * after UNREGISTER or in a fork child, as the kernel's marker. */
	if (area_page_poisoned(&v, addr)) {
		tls_spins = 0;
		raise_sigbus(addr, uctx);
		goto retry;
	}
	if (!v.ctx)
		goto spin;		/* being unregistered: the marker is about to go */
	{
		struct pg_span sp = area_span(&v);
		switch (pg_fault_state(&sp, addr)) {
		case PG_OPENED:
			tls_spins = 0;
			goto retry;
		case PG_INSTALLING:
			goto spin;	/* the marker is about to go */
		case PG_MINOR:
			c = ctx_by_id(v.ctx);
			if (!c || atomic_load(&c->state) != CTX_RUNNING)
				goto spin;
			deliver(c, &v, addr, write, UFFD_PAGEFAULT_FLAG_MINOR, uctx);
			goto retry;
		case PG_MISSING:
			break;
		}
	}
	c = ctx_by_id(v.ctx);
	if (!c || atomic_load(&c->state) != CTX_RUNNING || !(v.mode & UFFDIO_REGISTER_MODE_MISSING)) {
		if (++tls_spins > 100000)
			goto not_ours;
		sched_yield();
		goto retry;
	}
	deliver(c, &v, addr, write, 0, uctx);
	goto retry;
spin:
	/* Retry; give up only if the page never appears. */
	if (++tls_spins > 100000)
		goto not_ours;
	sched_yield();
retry:
	errno = saved;
	return;
not_ours:
	tls_spins = 0;
	errno = saved;
	sigchain_forward(sig, si, uctx);
}

int fault_install(void)
{
	struct sigaction sa;
	int r;

	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = segv_handler;
	sigemptyset(&sa.sa_mask);
	/* NODEFER: a nested fault (a signal handler touching a missing page
	 * while we wait) must reach us, not kill the process. */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK | SA_RESTART;
	r = sigchain_install(SIGSEGV, &sa);
	/* The program's handlers of every other signal now tell us when they
	 * run on a waiting thread; every thread gets a stack of ours to take
	 * our signal on, whatever its own stack is. */
	if (r == 0) {
		sigchain_wrap_all(on_interrupt);
		altstack_enable();
	}
	return r;
}
