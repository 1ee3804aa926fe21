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
 * pthread_atfork handler: we interpose it and run ours around it (the
 * child's on its way to the function it was given).
 */
#include "interpose/real.h"
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "emu/emu.h"

struct fork_uffd {
	uint32_t parent_id;	/* the uffd with EVENT_FORK */
	int flags;		/* its creation flags */
	uint64_t features;
	int rd, wr;		/* the new uffd's pipe */
};
static struct fork_uffd g_fu[UF_MAX_CTX];
static int g_nfu;
static int g_done[2] = { -1, -1 };	/* child -> parent: 'c' when copied */
static int g_go[2] = { -1, -1 };	/* parent -> child: EOF when events read */

/* Does a live area belong to uffd id? */
static int owns_area(uint32_t id)
{
	int hw = atomic_load(&g_areas_hw);

	for (int k = 0; k < hw; k++)
		if (atomic_load(&g_areas[k].live) && UF_LD(g_areas[k].ctx) == id)
			return 1;
	return 0;
}

static void prepare(void)
{
	pthread_mutex_lock(&g_table_lock);
	area_freeze_all();
	if (pipe2(g_done, O_CLOEXEC) < 0)
		g_done[0] = g_done[1] = -1;
	g_nfu = 0;
	for (int i = 0; i < UF_MAX_CTX; i++) {
		struct ctx *c = &g_ctxs[i];
		uint32_t id = atomic_load(&c->id);
		int p[2];

		if (atomic_load(&c->state) != CTX_RUNNING ||
		    !(atomic_load(&c->features) & UFFD_FEATURE_EVENT_FORK) || !owns_area(id))
			continue;
		/* Close-on-exec while we hold it; the reader gets the creation
		 * flags.  O_NONBLOCK belongs to the open file: set now. */
		if (pipe2(p, O_CLOEXEC | (c->flags & O_NONBLOCK)) < 0)
			continue;
		fcntl(p[1], F_SETFL, O_NONBLOCK);
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

static void parent(void)
{
	struct fork_uffd fu[UF_MAX_CTX];
	int nfu = g_nfu, go = g_go[1], child_ok = 0;
	char b;

	if (g_done[1] >= 0)
		close(g_done[1]);
	if (g_done[0] >= 0) {
		ssize_t n;
		while ((n = read(g_done[0], &b, 1)) < 0 && errno == EINTR)
			;
		child_ok = n == 1;
		close(g_done[0]);
	}
	g_done[0] = g_done[1] = -1;
	if (g_go[0] >= 0)
		close(g_go[0]);
	g_go[0] = g_go[1] = -1;
	memcpy(fu, g_fu, sizeof fu[0] * (size_t)nfu);
	for (int i = 0; i < nfu; i++)
		close(fu[i].wr);
	area_thaw_all();
	pthread_mutex_unlock(&g_table_lock);

	/* One event per uffd, each waited for; none if there is no child. */
	for (int i = 0; i < nfu; i++) {
		struct ctx *c = ctx_by_id(fu[i].parent_id);
		struct uffd_msg m;

		if (!child_ok || !c) {
			close(fu[i].rd);
			continue;
		}
		memset(&m, 0, sizeof m);
		m.event = UFFD_EVENT_FORK;
		m.arg.fork.ufd = (__u32)fu[i].rd;
		m.arg.reserved.reserved2 = (__u64)fu[i].flags;	/* for the reader */
		atomic_fetch_add(&c->changing, 1);
		/* Read: the reader has its own descriptor now.  Abandoned: the
		 * child's uffd goes with this last one. */
		wq_event_raise(c, &m);
		close(fu[i].rd);
		atomic_fetch_sub(&c->changing, 1);
	}
	if (go >= 0)
		close(go);
}

/* Child: the new uffd standing for fu's, on its pipe; 0 or -1. */
static uint32_t child_ctx(const struct fork_uffd *fu)
{
	struct ctx *pc = ctx_by_id(fu->parent_id);
	struct stat st;
	int slot = -1;

	if (!pc || fstat(fu->wr, &st) < 0)
		return 0;
	for (int i = 0; i < UF_MAX_CTX; i++)
		if (atomic_load(&g_ctxs[i].state) == CTX_FREE) {
			slot = i;
			break;
		}
	if (slot < 0)
		return 0;
	return ctx_make(slot, st.st_dev, st.st_ino, fu->wr, fu->flags, fu->features);
}

static void child(void)
{
	uint32_t from[UF_MAX_CTX], to[UF_MAX_CTX];
	int n = 0;
	char b;

	wq_reset_after_fork();
	watch_reset_after_fork();
	remote_service_reset_after_fork();
	remote_reset_after_fork();
	/* The inherited uffds belong to the parent (which serves them). */
	for (int i = 0; i < UF_MAX_CTX; i++) {
		struct ctx *c = &g_ctxs[i];
		int ls;
		if (atomic_load(&c->state) == CTX_FREE)
			continue;
		atomic_store(&c->state, CTX_ORPHAN);
		c->orphan_tried = 0;
		if ((ls = atomic_exchange(&c->lsock, -1)) >= 0)
			close(ls);
	}
	for (int i = 0; i < g_nfu; i++) {
		uint32_t id;
		close(g_fu[i].rd);
		id = child_ctx(&g_fu[i]);
		if (!id) {
			close(g_fu[i].wr);
			continue;
		}
		from[n] = g_fu[i].parent_id;
		to[n++] = id;
	}
	area_privatize_all(from, to, n);
	pg_install_resume();
	pthread_mutex_init(&g_table_lock, NULL);
	for (int i = 0; i < n; i++) {
		struct ctx *c = ctx_by_id(to[i]);
		if (c)
			watch_add(c);
	}
	g_nfu = 0;
	if (g_done[0] >= 0)
		close(g_done[0]);
	if (g_done[1] >= 0) {
		b = 'c';
		if (write(g_done[1], &b, 1) < 0)
			b = 0;
		close(g_done[1]);
	}
	g_done[0] = g_done[1] = -1;
	/* Run only once the parent's events are read, as the kernel's child. */
	if (g_go[1] >= 0)
		close(g_go[1]);
	if (g_go[0] >= 0) {
		while (read(g_go[0], &b, 1) < 0 && errno == EINTR)
			;
		close(g_go[0]);
	}
	g_go[0] = g_go[1] = -1;
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static _Atomic int g_active;	/* the handlers are installed */
static void once(void)
{
	pthread_atfork(prepare, parent, child);
	atomic_store(&g_active, 1);
}

struct clone_call {
	int (*fn)(void *);
	void *arg;
};

static int clone_child(void *p)
{
	struct clone_call *cc = p;	/* our copy of the parent's */

	child();
	/* The C library's clone ends this thread when fn returns (SYS_exit):
	 * with a watcher thread of ours alive, the process would go on.  End
	 * the process instead, with fn's value, as it would have. */
	_exit(cc->fn(cc->arg));
}

int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...)
{
	struct clone_call cc = { fn, arg };
	pid_t *ptid, *ctid;
	void *tls;
	va_list ap;
	int r, e;

	va_start(ap, arg);
	ptid = va_arg(ap, pid_t *);
	tls = va_arg(ap, void *);
	ctid = va_arg(ap, pid_t *);
	va_end(ap);
	UF_REAL(clone);
	/* A thread or vfork-like child shares the memory: nothing to do, as
	 * for the kernel (no FORK event with CLONE_VM). */
	if ((flags & CLONE_VM) || !atomic_load(&g_active))
		return real_clone(fn, stack, flags, arg, ptid, tls, ctid);
	prepare();
	r = real_clone(clone_child, stack, flags, &cc, ptid, tls, ctid);
	e = errno;
	parent();
	errno = e;
	return r;
}

void fork_init(void)
{
	pthread_once(&g_once, once);
}
