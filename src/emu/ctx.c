/* SPDX-License-Identifier: MIT */
/*
 * Emulated uffd objects: the table, identity, readiness for poll/epoll,
 * non-cooperative events, and release (see ctx.h).
 */
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include "base/sys.h"
#include "base/fdreg.h"
#include "base/watch.h"
#include "emu/area.h"
#include "emu/ctx.h"

/* The table: chunks of CHUNK slots, mapped when first needed and kept. */
#define CHUNK 256
#define GEN_MASK ((1u << (32 - CTX_SLOT_BITS)) - 1)
static struct ctx *_Atomic g_chunk[CTX_MAX / CHUNK];
static _Atomic int g_ctx_hw;		/* slots ever used */
static int g_free_from;			/* no free slot below (area lock) */
static _Atomic uint32_t g_ctx_gen = 1;
static _Atomic int g_live;		/* emulated descriptors alive */
/* Which uffd a pipe's inode was last found to be: a hint, checked. */
#define IDENT_CACHE 4096
static _Atomic uint32_t g_ident[IDENT_CACHE];

void ctx_live_add(int n)
{
	atomic_fetch_add(&g_live, n);
}

int ctx_alive(void)
{
	return atomic_load_explicit(&g_live, memory_order_relaxed) > 0;
}

/* The slot's ctx, or NULL if its chunk was never mapped.
 * async-signal-safe */
SIG_SAFE static struct ctx *slot_ctx(uint32_t slot)
{
	struct ctx *chunk;

	if (slot >= CTX_MAX || !(chunk = atomic_load(&g_chunk[slot / CHUNK])))
		return NULL;
	return &chunk[slot % CHUNK];
}

/* async-signal-safe */
SIG_SAFE struct ctx *ctx_by_id(uint32_t id)
{
	struct ctx *c;

	if (!id || !(c = slot_ctx(id & (CTX_MAX - 1))))
		return NULL;
	return atomic_load(&c->q.id) == id ? c : NULL;
}

static int ident_is(struct ctx *c, dev_t dev, ino_t ino)
{
	return c && atomic_load(&c->state) != CTX_FREE && c->ino == ino && c->dev == dev;
}

/* async-signal-safe */
struct ctx *ctx_by_ident(dev_t dev, ino_t ino)
{
	_Atomic uint32_t *hint = &g_ident[ino % IDENT_CACHE];
	struct ctx *c = ctx_by_id(atomic_load(hint));
	int hw = atomic_load(&g_ctx_hw);

	if (ident_is(c, dev, ino))
		return c;
	for (int i = 0; i < hw; i++) {
		c = slot_ctx((uint32_t)i);
		if (ident_is(c, dev, ino)) {
			atomic_store(hint, atomic_load(&c->q.id));
			return c;
		}
	}
	return NULL;
}

struct ctx *ctx_next(int *i)
{
	int hw = atomic_load(&g_ctx_hw);

	for (; *i < hw; ++*i) {
		struct ctx *c = slot_ctx((uint32_t)*i);
		if (c && atomic_load(&c->state) != CTX_FREE) {
			++*i;
			return c;
		}
	}
	return NULL;
}

/* A free slot (the area lock held): the lowest, mapping a new chunk when
 * every mapped one is in use.  -1 if the table is full or no memory. */
static int slot_alloc_locked(void)
{
	int hw = atomic_load(&g_ctx_hw), slot;

	for (slot = g_free_from; slot < hw; slot++)
		if (atomic_load(&slot_ctx((uint32_t)slot)->state) == CTX_FREE)
			break;
	if (slot == CTX_MAX)
		return -1;
	if (!slot_ctx((uint32_t)slot)) {
		void *m = sys_mmap(NULL, CHUNK * sizeof(struct ctx), PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return -1;
		atomic_store(&g_chunk[slot / CHUNK], (struct ctx *)m);
	}
	g_free_from = slot + 1;
	return slot;
}

struct ctx *ctx_create_locked(dev_t dev, ino_t ino, int ourfd, int flags, uint64_t features)
{
	int slot = slot_alloc_locked();
	uint32_t gen;
	struct ctx *c;

	if (slot < 0)
		return NULL;
	if (!(c = slot_ctx((uint32_t)slot)))
		return NULL;	/* (slot_alloc_locked mapped its chunk) */
	c->dev = dev;
	c->ino = ino;
	atomic_store(&c->ourfd, ourfd);
	c->flags = flags;
	atomic_store(&c->features, features);
	atomic_store(&c->q.npending, 0);
	atomic_store(&c->sent, 0);	/* (a new pipe: empty) */
	atomic_store(&c->taken, 0);
	atomic_store(&c->changing, 0);
	atomic_store(&c->api_busy, 0);
	atomic_store(&c->pager_fn, 0);
	atomic_store(&c->pager_arg, 0);
	atomic_store(&c->pager_fd, -1);
	atomic_store(&c->lsock, -1);
	c->orphan_tried = 0;
	do	/* never 0: an id is never 0 */
		gen = atomic_fetch_add(&g_ctx_gen, 1) & GEN_MASK;
	while (!gen);
	atomic_store(&c->q.id, (gen << CTX_SLOT_BITS) | (uint32_t)slot);
	atomic_store(&c->state, features ? CTX_RUNNING : CTX_NEW);
	if (slot + 1 > atomic_load(&g_ctx_hw))
		atomic_store(&g_ctx_hw, slot + 1);
	atomic_store(&g_ident[ino % IDENT_CACHE], atomic_load(&c->q.id));
	atomic_fetch_add(&g_live, 1);
	return c;
}

/* async-signal-safe */
int ctx_peer_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = 0 };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}

/* Release: the last descriptor of the uffd is closed.  Unregister all its
 * ranges and wake every waiter; unread messages vanish with them. */
void ctx_release(struct ctx *c, uint32_t id)
{
	int ls;

	area_lock();
	/* The slot may hold another uffd by now: release only the one meant. */
	if (atomic_load(&c->state) == CTX_FREE || !id || atomic_load(&c->q.id) != id) {
		area_unlock();
		return;
	}
	area_unregister_all_locked(id);
	atomic_store(&c->state, CTX_FREE);
	atomic_store(&c->q.id, 0);
	if ((int)(id & (CTX_MAX - 1)) < g_free_from)
		g_free_from = (int)(id & (CTX_MAX - 1));
	atomic_fetch_sub(&g_live, 1);
	wq_wake_all(id);
	while (atomic_load(&c->users))
		sched_yield();
	fd_close_own(atomic_exchange(&c->ourfd, -1));
	if ((ls = atomic_exchange(&c->lsock, -1)) >= 0) {
		watch_del(ls);
		fd_close_own(ls);
	}
	area_unlock();
}

int ctx_release_closed(void)
{
	struct ctx *c;
	int it = 0, n = 0;

	while ((c = ctx_next(&it))) {
		uint32_t id = atomic_load(&c->q.id);
		int gone;

		fd_pin();
		gone = atomic_load(&c->state) != CTX_ORPHAN && ctx_peer_gone(atomic_load(&c->ourfd));
		fd_unpin();
		if (gone) {
			ctx_release(c, id);
			n++;
		}
	}
	return n;
}

void ctx_fd_relocate(int from, int to)
{
	struct ctx *c;
	int it = 0;

	while ((c = ctx_next(&it))) {
		int expected = from;
		/* A signal handler may be writing to the old number: it
		 * counts itself in users first (ctx_notify). */
		if (atomic_compare_exchange_strong(&c->ourfd, &expected, to))
			while (atomic_load(&c->users))
				sched_yield();
		expected = from;
		atomic_compare_exchange_strong(&c->lsock, &expected, to);
	}
}

/* The watcher saw our end of a uffd report POLLERR. */
static void on_release(uint64_t id, uint32_t events)
{
	struct ctx *c = ctx_by_id((uint32_t)id);

	/* One-shot: the closing of ourfd in release removes it (a fork
	 * child's copy may keep the file open). */
	if (c && (events & (EPOLLERR | EPOLLHUP)))
		ctx_release(c, (uint32_t)id);
}

void ctx_watch_release(struct ctx *c)
{
	/* No event asked: a pipe's write end reports EPOLLERR, always
	 * delivered, once no read end is left anywhere. */
	watch_add(atomic_load(&c->ourfd), EPOLLONESHOT, on_release, atomic_load(&c->q.id));
}

/* async-signal-safe */
SIG_SAFE void ctx_notify(struct ctx *c)
{
	/* Release waits for users to leave before it closes ourfd, so the
	 * number can never name another file by the time we write to it. */
	atomic_fetch_add(&c->users, 1);
	if (atomic_load(&c->state) != CTX_FREE) {
		/* Every reader may be gone (the monitor died; the watcher has
		 * not released the uffd yet): a pipe then raises SIGPIPE, which
		 * is not the program's.  A kernel that takes RWF_NOSIGNAL says
		 * EPIPE alone; elsewhere, write with SIGPIPE blocked and take
		 * back the one the write raised. */
		struct iovec iov = { (void *)"m", 1 };	/* full: readable */
		sigset_t pipe_only, old;
		ssize_t r;

		atomic_fetch_add(&c->sent, 1);
		if (caps.write_nosignal) {
			r = sys_writev_flags(atomic_load(&c->ourfd), &iov, 1, RWF_NOSIGNAL);
		} else {
			sys_sigemptyset(&pipe_only);
			sigaddset(&pipe_only, SIGPIPE);
			sys_sigmask(SIG_BLOCK, &pipe_only, &old);
			r = sys_write(atomic_load(&c->ourfd), "m", 1);
			if (r < 0 && errno == EPIPE) {
				struct timespec zero = { 0, 0 };
				sys_call6(SYS_rt_sigtimedwait, (long)&pipe_only, 0, (long)&zero, 8, 0, 0);
			}
			sys_sigmask(SIG_SETMASK, &old, NULL);
		}
		if (r != 1)
			atomic_fetch_sub(&c->sent, 1);
	}
	atomic_fetch_sub(&c->users, 1);
}

/* async-signal-safe */
SIG_SAFE void ctx_took(struct ctx *c, long n)
{
	if (n > 0)
		atomic_fetch_add(&c->taken, (uint64_t)n);
}

/* async-signal-safe */
SIG_SAFE long ctx_drain(int fd)
{
	char buf[256];
	long total = 0;

	/* Usually one byte, so usually one call. */
	for (;;) {
		/* cppcheck-suppress legacyUninitvar ; buf is where the call writes */
		struct iovec iov = { buf, sizeof buf };
		ssize_t n = sys_readv_flags(fd, &iov, 1, RWF_NOWAIT);

		if (n > 0)
			total += n;
		if (n < (ssize_t)sizeof buf)
			return total;
	}
}

/*
 * At least one byte in the pipe while unread messages exist, none
 * otherwise, as the kernel's uffd is readable exactly while a message is
 * queued.  A faulting thread queues its message, then writes its byte: a
 * reader may take the message in between, drain, and find the byte coming
 * afterwards, for nothing (poll would say POLLIN, and a lone reader's read
 * EAGAIN).  So, with nothing queued, every byte counted as sent must have
 * been read out: one that has not is in flight, a few instructions and its
 * write away; wait for it (at most 2 ms: a thread that left our handler by
 * siglongjmp in between never writes it) and take it too.  A faulter that
 * queues meanwhile sends its own byte after, so a wake-up is never lost.
 * async-signal-safe
 */
void ctx_sync_ready(struct ctx *c, int userfd)
{
	long end = 0;

	if (atomic_load(&c->q.npending) > 0) {
		int avail = 0;
		if (sys_ioctl(userfd, FIONREAD, (unsigned long)&avail) == 0 && avail == 0)
			ctx_notify(c);
		return;
	}
	ctx_took(c, ctx_drain(userfd));
	while (atomic_load(&c->q.npending) == 0 && atomic_load(&c->sent) > atomic_load(&c->taken)) {
		if (!end)
			end = sys_now_ns() + 2000000;
		else if (sys_now_ns() > end)
			break;
		sys_call1(SYS_sched_yield, 0);
		ctx_took(c, ctx_drain(userfd));
	}
	if (atomic_load(&c->q.npending) > 0)
		ctx_notify(c);
}

int ctx_event_raise(struct ctx *c, const struct uffd_msg *msg)
{
	uint32_t gen;
	struct waiter *w = wq_claim(&gen);
	int r;

	wq_queue_event(w, &c->q, msg);
	if (atomic_load(&c->state) != CTX_RUNNING)
		wq_cancel(w, gen, &c->q);
	else
		ctx_notify(c);
	/* Killable only, as the kernel's wait. */
	wq_wait_killable(w, gen, &c->q);
	r = wq_event_read(w);
	wq_free(w, gen);
	return r;
}
