/* SPDX-License-Identifier: MIT */
/*
 * Emulated uffd objects: the table, identity, readiness for poll/epoll,
 * non-cooperative events, and release (see ctx.h).
 */
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include "base/sys.h"
#include "base/fdreg.h"
#include "base/watch.h"
#include "emu/area.h"
#include "emu/ctx.h"

static struct ctx g_ctxs[CTX_MAX];
static _Atomic int g_ctx_hw;		/* slots ever used */
static _Atomic uint32_t g_ctx_gen = 1;
static _Atomic int g_live;		/* emulated descriptors alive */

_Static_assert(CTX_MAX <= 256, "a uffd's id keeps its slot in its low 8 bits");

void ctx_live_add(int n)
{
	atomic_fetch_add(&g_live, n);
}

int ctx_alive(void)
{
	return atomic_load_explicit(&g_live, memory_order_relaxed) > 0;
}

/* async-signal-safe */
SIG_SAFE struct ctx *ctx_by_id(uint32_t id)
{
	struct ctx *c;

	if (!id)
		return NULL;
	c = &g_ctxs[id & 0xff];
	return atomic_load(&c->q.id) == id ? c : NULL;
}

/* async-signal-safe */
struct ctx *ctx_by_ident(dev_t dev, ino_t ino)
{
	int hw = atomic_load(&g_ctx_hw);

	for (int i = 0; i < hw; i++) {
		struct ctx *c = &g_ctxs[i];
		if (atomic_load(&c->state) != CTX_FREE && c->ino == ino && c->dev == dev)
			return c;
	}
	return NULL;
}

struct ctx *ctx_next(int *i)
{
	int hw = atomic_load(&g_ctx_hw);

	for (; *i < hw; ++*i)
		if (atomic_load(&g_ctxs[*i].state) != CTX_FREE)
			return &g_ctxs[(*i)++];
	return NULL;
}

struct ctx *ctx_create_locked(dev_t dev, ino_t ino, int ourfd, int flags, uint64_t features)
{
	struct ctx *c = NULL;
	int slot;

	for (slot = 0; slot < CTX_MAX; slot++)
		if (atomic_load(&g_ctxs[slot].state) == CTX_FREE) {
			c = &g_ctxs[slot];
			break;
		}
	if (!c)
		return NULL;
	c->dev = dev;
	c->ino = ino;
	atomic_store(&c->ourfd, ourfd);
	c->flags = flags;
	atomic_store(&c->features, features);
	atomic_store(&c->q.npending, 0);
	atomic_store(&c->changing, 0);
	atomic_store(&c->api_busy, 0);
	atomic_store(&c->pager_fn, 0);
	atomic_store(&c->pager_arg, 0);
	atomic_store(&c->pager_fd, -1);
	atomic_store(&c->lsock, -1);
	c->orphan_tried = 0;
	atomic_store(&c->q.id, ((atomic_fetch_add(&g_ctx_gen, 1) & 0xffffff) << 8) | (uint32_t)slot);
	atomic_store(&c->state, features ? CTX_RUNNING : CTX_NEW);
	if (slot + 1 > atomic_load(&g_ctx_hw))
		atomic_store(&g_ctx_hw, slot + 1);
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
		if (atomic_load(&c->state) != CTX_ORPHAN && ctx_peer_gone(atomic_load(&c->ourfd))) {
			ctx_release(c, id);
			n++;
		}
	}
	return n;
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
		 * is not the program's.  Write with it blocked, and take back
		 * the one the write raised. */
		sigset_t pipe_only, old;
		ssize_t r;

		sys_sigemptyset(&pipe_only);
		sigaddset(&pipe_only, SIGPIPE);
		sys_sigmask(SIG_BLOCK, &pipe_only, &old);
		r = sys_write(atomic_load(&c->ourfd), "m", 1);	/* full: readable */
		if (r < 0 && errno == EPIPE) {
			struct timespec zero = { 0, 0 };
			sys_call6(SYS_rt_sigtimedwait, (long)&pipe_only, 0, (long)&zero, 8, 0, 0);
		}
		sys_sigmask(SIG_SETMASK, &old, NULL);
	}
	atomic_fetch_sub(&c->users, 1);
}

/*
 * At least one byte in the pipe while unread messages exist, none
 * otherwise.  A faulter that queues while we drain sends its own byte
 * afterwards, so a wake-up is never lost; at worst poll reports a message
 * that is already gone, which the kernel's uffd also does when a wake races
 * with read.  async-signal-safe
 */
void ctx_sync_ready(struct ctx *c, int userfd)
{
	char buf[256];

	if (atomic_load(&c->q.npending) > 0) {
		int avail = 0;
		if (sys_ioctl(userfd, FIONREAD, (unsigned long)&avail) == 0 && avail == 0)
			ctx_notify(c);
		return;
	}
	/* Drain: usually one byte, so usually one call. */
	for (;;) {
		/* cppcheck-suppress legacyUninitvar ; buf is where the call writes */
		struct iovec iov = { buf, sizeof buf };
		if (sys_readv_flags(userfd, &iov, 1, RWF_NOWAIT) < (ssize_t)sizeof buf)
			break;
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
	/* Signals are handled and the wait goes on (the kernel's wait is
	 * killable only). */
	wq_wait(w, gen, &c->q, 0, 0);
	r = wq_event_read(w);
	wq_free(w, gen);
	return r;
}
