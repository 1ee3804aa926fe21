/* SPDX-License-Identifier: MIT */
/*
 * fork(): an area is a shared mapping, but the memory it stands for is
 * private.  Before the fork the parent freezes its areas (no writes until
 * the child has its copy); the child replaces each area by private memory
 * with the same bytes and forgets the parent's tables; the parent waits for
 * that, then thaws.
 *
 * UFFD_FEATURE_EVENT_FORK (UFFD-SPEC 12.2): for each uffd that asked and
 * owns an area, the parent makes a pipe before the fork, the new uffd's.
 * The child keeps its areas of that uffd registered, on copies of their
 * memfds, owned by a new uffd on that pipe, which it serves to other
 * processes (remote.c); the parent queues UFFD_EVENT_FORK with the pipe's
 * read end and waits in fork() until it is read, while the child waits
 * before it returns from fork(), as the kernel's child does not run before.
 * An event abandoned (the parent's uffd released) closes the read end:
 * the child's new uffd is released and its ranges unregistered.
 *
 * No spurious FORK: the child says it is there before the parent sends
 * anything; a fork that failed sends nothing.
 *
 * clone(3) without CLONE_VM makes a new process too, but runs no
 * pthread_atfork handler: src/interpose/process.c runs ours around it.
 */
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "base/sys.h"
#include "base/fdreg.h"
#include "base/watch.h"
#include "emu/area.h"
#include "emu/process.h"

struct fork_uffd {
	uint32_t parent_id;	/* the uffd with EVENT_FORK */
	int flags;		/* its creation flags */
	uint64_t features;
	int rd, wr;		/* the new uffd's pipe */
};
/* At most one per area: a uffd gets a FORK event only if it owns one. */
static struct fork_uffd g_fu[AREA_MAX];
_Static_assert(sizeof(((struct uffd_msg *)0)->arg.reserved.reserved2) >= sizeof(int),
	       "a FORK message carries the creation flags to its reader in reserved2");
static int g_nfu;
static int g_done[2] = { -1, -1 };	/* child -> parent: 'c' when copied */
static int g_go[2] = { -1, -1 };	/* parent -> child: EOF when events read */

void fork_prepare(void)
{
	struct ctx *c;
	int it = 0;

	area_lock();
	area_freeze_all();
	if (pipe2(g_done, O_CLOEXEC) < 0)
		g_done[0] = g_done[1] = -1;
	g_nfu = 0;
	while ((c = ctx_next(&it))) {
		uint32_t id = atomic_load(&c->q.id);
		int p[2];

		if (atomic_load(&c->state) != CTX_RUNNING ||
		    !(atomic_load(&c->features) & UFFD_FEATURE_EVENT_FORK) || !area_owned_by_locked(id) ||
		    g_nfu == AREA_MAX)
			continue;
		/* Close-on-exec while we hold it; the reader gets the creation
		 * flags.  O_NONBLOCK belongs to the open file: set now. */
		if (pipe2(p, O_CLOEXEC | (c->flags & O_NONBLOCK)) < 0)
			continue;
		sys_fcntl(p[1], F_SETFL, O_NONBLOCK);
		fd_mark_uffd(p[0], 1);	/* (the parent's features) */
		g_fu[g_nfu].parent_id = id;
		g_fu[g_nfu].flags = c->flags;
		g_fu[g_nfu].features = atomic_load(&c->features);
		g_fu[g_nfu].rd = p[0];
		g_fu[g_nfu].wr = p[1];
		g_nfu++;
	}
	if (g_nfu && pipe2(g_go, O_CLOEXEC) < 0)
		g_go[0] = g_go[1] = -1;
}

void fork_parent(void)
{
	struct fork_uffd *fu = NULL;
	int nfu = g_nfu, go = g_go[1], child_ok = 0;
	size_t fu_len = sizeof *fu * (size_t)nfu;
	char b;

	if (g_done[1] >= 0)
		sys_close(g_done[1]);
	if (g_done[0] >= 0) {
		ssize_t n;
		while ((n = sys_read(g_done[0], &b, 1)) < 0 && errno == EINTR)
			;
		child_ok = n == 1;
		sys_close(g_done[0]);
	}
	g_done[0] = g_done[1] = -1;
	if (g_go[0] >= 0)
		sys_close(g_go[0]);
	g_go[0] = g_go[1] = -1;
	/* Our copy (off the stack, which may be small): another fork may
	 * start once the lock is released. */
	if (nfu) {
		fu = sys_mmap(NULL, fu_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (fu == MAP_FAILED)
			fu = NULL;
		else
			memcpy(fu, g_fu, fu_len);
	}
	for (int i = 0; i < nfu; i++) {
		sys_close(g_fu[i].wr);
		if (!fu)
			sys_close(g_fu[i].rd);	/* no events: as abandoned */
	}
	if (!fu)
		nfu = 0;
	area_thaw_all();
	area_unlock();

	/* One event per uffd, each waited for; none if there is no child. */
	for (int i = 0; i < nfu; i++) {
		struct ctx *c = ctx_by_id(fu[i].parent_id);
		struct uffd_msg m;

		if (!child_ok || !c) {
			sys_close(fu[i].rd);
			continue;
		}
		memset(&m, 0, sizeof m);
		m.event = UFFD_EVENT_FORK;
		m.arg.fork.ufd = (__u32)fu[i].rd;
		m.arg.reserved.reserved2 = (__u64)fu[i].flags;	/* for the reader */
		atomic_fetch_add(&c->changing, 1);
		/* Read: the reader has its own descriptor now.  Abandoned: the
		 * child's uffd goes with this last one. */
		ctx_event_raise(c, &m);
		sys_close(fu[i].rd);
		atomic_fetch_sub(&c->changing, 1);
	}
	if (fu)
		sys_munmap(fu, fu_len);
	if (go >= 0)
		sys_close(go);
}

/* Child: the new uffd standing for fu's, on its pipe, serving it to other
 * processes; its id, or 0. */
static uint32_t child_ctx(const struct fork_uffd *fu)
{
	struct stat st;
	struct ctx *c;

	if (!ctx_by_id(fu->parent_id) || fstat(fu->wr, &st) < 0)
		return 0;
	fd_own(fu->wr);
	c = ctx_create_locked(st.st_dev, st.st_ino, fu->wr, fu->flags, fu->features);
	if (!c)
		return 0;
	atomic_store(&c->lsock, remote_listen(c));
	return atomic_load(&c->q.id);
}

void fork_child(void)
{
	static uint32_t from[AREA_MAX], to[AREA_MAX];	/* the child has one thread */
	struct ctx *c;
	int n = 0, it = 0;
	char b;

	wq_reset_after_fork();
	fd_reset_after_fork();
	watch_reset_after_fork();
	remote_reset_after_fork();
	/* The inherited uffds belong to the parent (which serves them). */
	while ((c = ctx_next(&it))) {
		int ls;
		atomic_store(&c->state, CTX_ORPHAN);
		c->orphan_tried = 0;
		if ((ls = atomic_exchange(&c->lsock, -1)) >= 0)
			fd_close_own(ls);
	}
	for (int i = 0; i < g_nfu; i++) {
		uint32_t id;
		sys_close(g_fu[i].rd);
		id = child_ctx(&g_fu[i]);
		if (!id) {
			sys_close(g_fu[i].wr);
			continue;
		}
		from[n] = g_fu[i].parent_id;
		to[n++] = id;
	}
	area_privatize_all(from, to, n);
	pg_install_resume();
	area_lock_reset_after_fork();
	for (int i = 0; i < n; i++)
		if ((c = ctx_by_id(to[i])))
			ctx_watch_release(c);
	g_nfu = 0;
	if (g_done[0] >= 0)
		sys_close(g_done[0]);
	if (g_done[1] >= 0) {
		b = 'c';
		if (sys_write(g_done[1], &b, 1) < 0)
			b = 0;
		sys_close(g_done[1]);
	}
	g_done[0] = g_done[1] = -1;
	/* Run only once the parent's events are read, as the kernel's child. */
	if (g_go[1] >= 0)
		sys_close(g_go[1]);
	if (g_go[0] >= 0) {
		while (sys_read(g_go[0], &b, 1) < 0 && errno == EINTR)
			;
		sys_close(g_go[0]);
	}
	g_go[0] = g_go[1] = -1;
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static _Atomic int g_active;	/* the handlers are installed */

static void once(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	atomic_store(&g_active, 1);
}

void fork_init(void)
{
	pthread_once(&g_once, once);
}

int fork_active(void)
{
	return atomic_load(&g_active);
}
