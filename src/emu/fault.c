/* SPDX-License-Identifier: MIT */
/*
 * The fault path: the SIGSEGV handler, the waiter slots in which faulting
 * threads sleep, and the wake-ups.  Everything in this file runs in, or
 * can be called from, a signal handler: it is async-signal-safe (atomics,
 * futexes and plain system calls; no malloc, no stdio, no locks).
 */
#include <sched.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include "base/arch/fault.h"
#include "emu/emu.h"

/* A waiter slot.  state packs a generation (high bits) and a phase (low 8
 * bits), so that a compare-and-swap can never hit a recycled slot. */
enum { W_FREE = 0, W_CLAIMED, W_PENDING, W_READ, W_WOKEN, W_DONE };
struct waiter {
	_Atomic uint32_t state;
	_Atomic uint32_t ctx;
	_Atomic uint64_t ticket;
	_Atomic uintptr_t addr;		/* as reported in the message */
	_Atomic uint32_t sleeping;	/* the faulter is (about to be) in futex_wait */
	_Atomic int event;		/* a non-cooperative event, not a fault */
	_Atomic int ev_read;		/* the event was read (not abandoned) */
	struct uffd_msg msg;
};

static struct waiter g_w[UF_MAX_WAITERS];
static _Atomic int g_w_hw;			/* slots ever used */
static _Atomic uint64_t g_ticket = 1;
static _Atomic uint32_t g_w_freed;		/* futex: a slot was freed */
static _Atomic int g_w_starved;			/* threads waiting for a slot */

#define PHASE(s) ((s) & 0xff)
#define WITH(s, ph) (((s) & ~0xffu) | (ph))

/* async-signal-safe */
static struct waiter *slot_claim(void)
{
	for (;;) {
		uint32_t gen = atomic_load(&g_w_freed);
		for (int i = 0; i < UF_MAX_WAITERS; i++) {
			uint32_t s = atomic_load(&g_w[i].state);
			if (PHASE(s) != W_FREE)
				continue;
			if (atomic_compare_exchange_strong(&g_w[i].state, &s,
							   ((s & ~0xffu) + 0x100u) | W_CLAIMED)) {
				int hw = atomic_load(&g_w_hw);
				while (hw < i + 1 && !atomic_compare_exchange_weak(&g_w_hw, &hw, i + 1))
					;
				return &g_w[i];
			}
		}
		/* More faulting threads than slots: wait for one to go. */
		atomic_fetch_add(&g_w_starved, 1);
		if (atomic_load(&g_w_freed) == gen)
			sys_futex_wait(&g_w_freed, gen, NULL);
		atomic_fetch_sub(&g_w_starved, 1);
	}
}

/* async-signal-safe */
static void slot_free(struct waiter *w)
{
	uint32_t s = atomic_load(&w->state);
	atomic_store(&w->ctx, 0);
	atomic_store(&w->state, WITH(s, W_FREE));
	atomic_fetch_add(&g_w_freed, 1);
	if (atomic_load(&g_w_starved))
		sys_futex_wake(&g_w_freed, 1);
}

/* Move a queued or read waiter to phase `to`; returns 1 if we did. */
static int slot_finish(struct waiter *w, uint32_t seen, uint32_t to, struct ctx *c)
{
	if (!atomic_compare_exchange_strong(&w->state, &seen, WITH(seen, to)))
		return 0;
	if (PHASE(seen) == W_PENDING && c)
		atomic_fetch_sub(&c->npending, 1);
	return 1;
}

/* Wake every waiter of c whose address is in [start, end).  Returns how
 * many of them had not been read yet (their messages are withdrawn, so the
 * descriptor's readiness may have to change); *woken (if not NULL) gets how
 * many were woken.  a-s-s */
long wq_wake_range(struct ctx *c, uintptr_t start, uintptr_t end, long *woken)
{
	uint32_t id = atomic_load(&c->id);
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
		if (slot_finish(w, s, W_WOKEN, c)) {
			if (atomic_load(&w->sleeping))
				sys_futex_wake(&w->state, 1);
			unread += PHASE(s) == W_PENDING;
			if (woken)
				++*woken;
		}
	}
	return unread;
}

/* Release: wake all of a context's waiters.  a-s-s */
void wq_wake_all(uint32_t ctx_id)
{
	int hw = atomic_load(&g_w_hw);

	for (int i = 0; i < hw; i++) {
		struct waiter *w = &g_w[i];
		uint32_t s = atomic_load(&w->state);
		if ((PHASE(s) == W_PENDING || PHASE(s) == W_READ) && atomic_load(&w->ctx) == ctx_id &&
		    slot_finish(w, s, W_WOKEN, NULL) && atomic_load(&w->sleeping))
			sys_futex_wake(&w->state, 1);
	}
}

/* Take up to max unread messages of c: faults oldest first, then events
 * oldest first (the kernel returns an event only when no fault is
 * pending).  Reading an event completes it: the thread that raised it goes
 * on; with `later` (not NULL), not yet: the caller completes them with
 * wq_complete() once the reader has them (a thread let go may end
 * its process at once).  a-s-s */
int wq_take_ex(struct ctx *c, struct uffd_msg *out, int max, struct wq_taken *later)
{
	uint32_t id = atomic_load(&c->id);
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
		/* Copy before claiming: once READ, the faulter may be woken and
		 * reuse the slot at any moment. */
		memcpy(&out[k], &g_w[best].msg, sizeof out[k]);
		if (bev && !later) {
			struct waiter *w = &g_w[best];
			atomic_store(&w->ev_read, 1);
			if (slot_finish(w, bs, W_WOKEN, c)) {
				if (atomic_load(&w->sleeping))
					sys_futex_wake(&w->state, 1);
				k++;
			}
		} else if (slot_finish(&g_w[best], bs, W_READ, c)) {
			if (bev && later->n < WQ_TAKEN_MAX) {
				later->slot[later->n] = best;
				later->state[later->n++] = WITH(bs, W_READ);
			}
			k++;
		}
	}
	return k;
}

int wq_take(struct ctx *c, struct uffd_msg *out, int max)
{
	return wq_take_ex(c, out, max, NULL);
}

/* The events taken with wq_take_ex(..., later) are read: let their
 * threads go (unless a release let them go already).  a-s-s */
void wq_complete(const struct wq_taken *t)
{
	for (int i = 0; i < t->n; i++) {
		struct waiter *w = &g_w[t->slot[i]];
		uint32_t s = t->state[i];

		atomic_store(&w->ev_read, 1);
		if (atomic_compare_exchange_strong(&w->state, &s, WITH(s, W_WOKEN)) &&
		    atomic_load(&w->sleeping))
			sys_futex_wake(&w->state, 1);
	}
}

/*
 * A non-cooperative event: queue msg on c and wait until it is read (1) or
 * abandoned because c was released (0).  The caller has raised c->changing
 * (COPY and ZEROPAGE fail with EAGAIN meanwhile).  Not in a signal handler
 * of ours; never with g_table_lock held (the reader may need it).
 */
int wq_event_raise(struct ctx *c, const struct uffd_msg *msg)
{
	struct waiter *w = slot_claim();
	uint32_t s;
	int r;

	memcpy(&w->msg, msg, sizeof w->msg);
	atomic_store(&w->addr, 0);
	atomic_store(&w->event, 1);
	atomic_store(&w->ev_read, 0);
	atomic_store(&w->sleeping, 1);
	atomic_store(&w->ctx, atomic_load(&c->id));
	atomic_store(&w->ticket, atomic_fetch_add(&g_ticket, 1));
	atomic_fetch_add(&c->npending, 1);
	s = atomic_load(&w->state);
	atomic_store(&w->state, WITH(s, W_PENDING));
	if (atomic_load(&c->state) != CTX_RUNNING) {
		s = atomic_load(&w->state);
		if (PHASE(s) == W_PENDING)
			slot_finish(w, s, W_DONE, c);
	} else {
		ctx_notify(c);
	}
	for (;;) {
		s = atomic_load(&w->state);
		if (PHASE(s) == W_WOKEN || PHASE(s) == W_DONE)
			break;
		/* Signals are handled and the wait goes on (the kernel's wait
		 * is killable only). */
		sys_futex_wait(&w->state, s, NULL);
	}
	r = atomic_load(&w->ev_read);
	atomic_store(&w->event, 0);
	slot_free(w);
	return r;
}

void wq_reset_after_fork(void)
{
	/* Only the forking thread exists in the child. */
	for (int i = 0; i < UF_MAX_WAITERS; i++)
		atomic_store(&g_w[i].state, 0);
	atomic_store(&g_w_hw, 0);
}

/* ---------------------------------------------------------------------- */
/* Copies that may fault: a per-thread recovery point.                     */
/* ---------------------------------------------------------------------- */

struct recover {
	sigjmp_buf jb;
	int active;
};
static __thread struct recover *tls_recover __attribute__((tls_model("initial-exec")));

/* async-signal-safe */
void usercopy_recover(void)
{
	struct recover *r = tls_recover;
	if (r && r->active) {
		r->active = 0;
		siglongjmp(r->jb, 1);
	}
}

/* The copy is out of line so that nothing of it is kept in registers across
 * the jump.  It reads and writes memory the caller gave us, which may be
 * bad on purpose: the sanitizers must let the fault happen (we recover). */
static __attribute__((noinline, no_sanitize("address", "undefined"))) void copy_bytes(volatile char *d, const volatile char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		d[i] = s[i];
}

static int guarded_copy(void *dst, const void *src, size_t n)
{
	struct recover r, *saved = tls_recover;

	r.active = 1;
	tls_recover = &r;
	if (sigsetjmp(r.jb, 0)) {
		tls_recover = saved;
		return -EFAULT;
	}
	copy_bytes(dst, src, n);
	r.active = 0;
	tls_recover = saved;
	return 0;
}

/* async-signal-safe */
int usercopy_in(void *dst, const void *usrc, size_t n)
{
	return guarded_copy(dst, usrc, n);
}

/* async-signal-safe */
int usercopy_out(void *udst, const void *src, size_t n)
{
	return guarded_copy(udst, src, n);
}

/* ---------------------------------------------------------------------- */
/* The fault.                                                               */
/* ---------------------------------------------------------------------- */

static __thread unsigned tls_spins __attribute__((tls_model("initial-exec")));
static __thread unsigned tls_accerr __attribute__((tls_model("initial-exec")));
static __thread uint32_t tls_accerr_gen __attribute__((tls_model("initial-exec")));

/* Is delivering SIGBUS by calling the program's handler from here exact:
 * the same handler, mask and stack as the kernel would give it? */
static int sigbus_direct_ok(const struct sigaction *sa, const ucontext_t *uc)
{
	/* Whatever SA_SIGINFO says, as the kernel: one field for both. */
	if (sa->sa_handler == SIG_DFL || sa->sa_handler == SIG_IGN)
		return 0;		/* the kernel's default action */
	if (sa->sa_flags & SA_RESETHAND)
		return 0;
	/* We run on the alternate stack whenever the thread has one; the
	 * kernel would run a handler without SA_ONSTACK on the normal stack. */
	if (uc->uc_stack.ss_size && !(uc->uc_stack.ss_flags & SS_DISABLE) &&
	    !(sa->sa_flags & SA_ONSTACK))
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
static void raise_sigbus(uintptr_t addr, void *uctx)
{
	siginfo_t si;
	struct sigaction cur;
	ucontext_t *uc = uctx;

	memset(&si, 0, sizeof si);
	si.si_signo = SIGBUS;
	si.si_code = BUS_ADRERR;
	si.si_addr = (void *)addr;
	atomic_fetch_add(&g_stats.sigbus, 1);
	sigchain_program(SIGBUS, &cur);
	if (!sigismember(&uc->uc_sigmask, SIGBUS) && sigbus_direct_ok(&cur, uc)) {
		sigset_t mask;
		sigorset(&mask, &uc->uc_sigmask, &cur.sa_mask);
		if (!(cur.sa_flags & SA_NODEFER))
			sigaddset(&mask, SIGBUS);
		sys_sigprocmask(SIG_SETMASK, &mask);
		if (cur.sa_flags & SA_SIGINFO)
			cur.sa_sigaction(SIGBUS, &si, uctx);
		else
			cur.sa_handler(SIGBUS);
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
struct ctx *emu_pager_hint(int fd)
{
	return fd == tls_pager_fd ? tls_pager_ctx : NULL;
}

/* An in-thread pager: its callback resolves the fault right here.  a-s-s */
static void run_pager(struct ctx *c, uintptr_t addr, int write, void *uctx)
{
	uf_pager_fn fn = (uf_pager_fn)atomic_load(&c->pager_fn);
	struct uf_pager_fault f;
	int saved_fd = tls_pager_fd, r;
	struct ctx *saved_ctx = tls_pager_ctx;

	f.uffd = atomic_load(&c->pager_fd);
	f.flags = write ? UFFD_PAGEFAULT_FLAG_WRITE : 0;
	f.address = (void *)addr;
	f.page = (void *)pg_down(addr);
	atomic_fetch_add(&g_stats.faults, 1);
	tls_pager_fd = f.uffd;
	tls_pager_ctx = c;
	r = fn(&f, (void *)atomic_load(&c->pager_arg));
	tls_pager_fd = saved_fd;
	tls_pager_ctx = saved_ctx;
	if (r < 0)
		raise_sigbus(addr, uctx);
}

/* ---- Waiting: spin a little, then sleep ---- */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

static _Atomic int g_spinners;		/* threads spinning now */
static _Atomic long g_wait_ewma = -1;	/* recent waits, ns (-1: none yet) */

static int resolved(struct waiter *w)
{
	uint32_t s = atomic_load(&w->state);
	return PHASE(s) == W_WOKEN || PHASE(s) == W_DONE;
}

/*
 * Most faults are answered within tens of microseconds.  Sleeping at once
 * costs the resolver a futex_wake system call and this thread a wake-up
 * from an idle CPU, which is the largest single cost of a round trip on a
 * virtual machine.  So a faulting thread first spins, for about twice the
 * recent wait (at most USERFAULT_SPIN_US), and only while a CPU is left
 * over for the resolver; when recent waits are longer than that, it sleeps
 * at once.  a-s-s
 */
static void spin_wait(struct waiter *w)
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
		while (!resolved(w)) {
			for (int i = 0; i < 64 && !resolved(w); i++)
				cpu_relax();
			if (sys_now_ns() > end)
				break;
		}
	}
	atomic_fetch_sub(&g_spinners, 1);
}

/* A wait took ns: fold it into the recent average (1/8 weight).  a-s-s */
static void wait_learn(long ns)
{
	long old = atomic_load(&g_wait_ewma);
	long nw = old < 0 ? ns : old + (ns - old) / 8;
	atomic_compare_exchange_strong(&g_wait_ewma, &old, nw);
}

/* Queue the fault and sleep until a wake covers it.  a-s-s */
static void wait_fault(struct ctx *c, const struct area_view *v, uintptr_t addr, int write)
{
	struct waiter *w = slot_claim();
	uint64_t feat = atomic_load(&c->features);
	uintptr_t rep = (feat & UFFD_FEATURE_EXACT_ADDRESS) ? addr : pg_down(addr);
	uint32_t s;
	long t0;

	memset(&w->msg, 0, sizeof w->msg);
	w->msg.event = UFFD_EVENT_PAGEFAULT;
	w->msg.arg.pagefault.flags = write ? UFFD_PAGEFAULT_FLAG_WRITE : 0;
	w->msg.arg.pagefault.address = rep;
	if (feat & UFFD_FEATURE_THREAD_ID)
		w->msg.arg.pagefault.feat.ptid = (__u32)sys_gettid();
	atomic_store(&w->addr, rep);
	atomic_store(&w->event, 0);
	atomic_store(&w->sleeping, 0);
	atomic_store(&w->ctx, atomic_load(&c->id));
	atomic_store(&w->ticket, atomic_fetch_add(&g_ticket, 1));
	atomic_fetch_add(&c->npending, 1);
	s = atomic_load(&w->state);
	atomic_store(&w->state, WITH(s, W_PENDING));
	atomic_fetch_add(&g_stats.faults, 1);

	/* Resolved or unregistered while we queued?  Then do not sleep (the
	 * message may still have been read: monitors must accept EEXIST).
	 * This is checked after queueing, so a wake cannot slip between, and
	 * before telling the reader, as the kernel re-checks the page table
	 * right after queueing. */
	if (area_page_present(v, addr) || !area_still(v) ||
	    atomic_load(&c->state) != CTX_RUNNING) {
		s = atomic_load(&w->state);
		if (PHASE(s) == W_PENDING || PHASE(s) == W_READ)
			slot_finish(w, s, W_DONE, c);
	} else {
		ctx_notify(c);
	}
	t0 = sys_now_ns();
	spin_wait(w);
	if (!resolved(w))
		atomic_store(&w->sleeping, 1);
	for (;;) {
		s = atomic_load(&w->state);
		if (PHASE(s) == W_WOKEN || PHASE(s) == W_DONE)
			break;
		if (sys_futex_wait(&w->state, s, NULL) < 0 && errno == EINTR) {
			/* A signal handler ran on this thread (nested in ours).  As
			 * the kernel does, abandon the fault: the access is retried
			 * and, if the page is still missing, queues a new message. */
			s = atomic_load(&w->state);
			if ((PHASE(s) == W_PENDING || PHASE(s) == W_READ) &&
			    slot_finish(w, s, W_DONE, c))
				break;
		}
	}
	wait_learn(sys_now_ns() - t0);
	slot_free(w);
	/* Woken by a single-page install: the resolver left the entry of our
	 * page for us to fill (see resolve() in ioctl.c), off its path. */
	if (PHASE(s) == W_WOKEN && area_still(v) && area_page_present(v, addr))
		pg_populate(v, pg_down(addr), caps.page_size);
}

/* The SIGSEGV handler.  Returns to retry the access, or hands the signal on
 * to the program's own handler.  async-signal-safe */
static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
	int saved = errno;
	uintptr_t addr = (uintptr_t)si->si_addr;
	struct area_view v;
	struct ctx *c;
	int write;

	usercopy_recover();	/* a guarded copy of ours hit a bad pointer */
	if (si->si_code <= 0 || !area_find(addr, &v))
		goto not_ours;
	if (v.busy) {
		uint32_t gen = atomic_load(&g_busy_gen);
		if (area_still(&v))
			area_wait_busy(gen);
		goto retry;
	}
	write = arch_fault_is_write(uctx);
	if (!(v.prot & PROT_READ) || (write && !(v.prot & PROT_WRITE)))
		goto not_ours;		/* a real protection fault */
	if (caps.guard_markers && si->si_code == SEGV_ACCERR) {
		/* Markers fault with MAPERR: a protection fault is the program's,
		 * unless a freeze or conversion of ours (which protects whole
		 * areas for a moment) raised it and ended before we looked.
		 * Those bump g_busy_gen: retry while it moves, and forward a
		 * fault that repeats with nothing of ours going on. */
		uint32_t gen = atomic_load(&g_busy_gen);
		if (tls_accerr_gen != gen) {
			tls_accerr_gen = gen;
			tls_accerr = 0;
		}
		if (++tls_accerr > 2)
			goto not_ours;
		goto retry;
	}
	if (area_page_present(&v, addr) || !v.ctx) {
		/* Being installed or unregistered right now: the marker is about
		 * to go.  Retry; give up only if it never does. */
		if (++tls_spins > 100000)
			goto not_ours;
		sched_yield();
		goto retry;
	}
	c = ctx_by_id(v.ctx);
	if (!c || atomic_load(&c->state) != CTX_RUNNING || !(v.mode & UFFDIO_REGISTER_MODE_MISSING)) {
		if (++tls_spins > 100000)
			goto not_ours;
		sched_yield();
		goto retry;
	}
	tls_spins = 0;
	if (atomic_load(&c->pager_fn))
		run_pager(c, addr, write, uctx);
	else if (atomic_load(&c->features) & UFFD_FEATURE_SIGBUS)
		raise_sigbus(addr, uctx);
	else
		wait_fault(c, &v, addr, write);
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

	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = segv_handler;
	sigemptyset(&sa.sa_mask);
	/* NODEFER: a nested fault (a signal handler touching a missing page
	 * while we wait) must reach us, not kill the process. */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK | SA_RESTART;
	return sigchain_install(SIGSEGV, &sa);
}
