/* SPDX-License-Identifier: MIT */
/*
 * The emulated back-end's entry points (emu.h): creation, and the routing
 * of each call on a descriptor to the layer that serves it: this process's
 * uffd (ops, read), a foreign uffd (remote), an emulated device (dev).
 */
#include <fcntl.h>
#include <sys/stat.h>
#include "base/caps.h"
#include "base/fdreg.h"
#include "base/stats.h"
#include "base/sys.h"
#include "base/watch.h"
#include "emu/area.h"
#include "emu/emu.h"
#include "emu/ops.h"
#include "emu/process.h"

int emu_in_use(void)
{
	return ctx_alive();
}

int emu_check(int *guard_markers)
{
	int r = caps_init();
	if (guard_markers)
		*guard_markers = caps.guard_markers;
	return r;
}

uint64_t uf_emulated_features(void)
{
	caps_init();		/* (shared memory depends on what the kernel has) */
	return EMU_FEATURES;
}

/*
 * The descriptor this thread last found to be one of our uffds, valid while
 * no number has changed its file (fd_numbers_gen) and the uffd lives: a
 * handler's read and ioctls on its uffd then need not ask the kernel what
 * the number is each time (an fstat each).  A close the library does not
 * see (a raw system call of the program's own) is the one thing it misses:
 * the README says so.  Its own sequence count keeps a signal handler that
 * runs on this thread, and looks or stores, from reading or leaving half of
 * a store (a handler stores only when no store is under way).
 */
static __thread struct {
	unsigned seq;
	int fd;
	uint32_t id, gen;
} tls_hint __attribute__((tls_model("initial-exec"))) = { 0, -1, 0, 0 };

/* async-signal-safe */
SIG_SAFE static struct ctx *hint_get(int fd, uint32_t gen)
{
	unsigned seq = tls_hint.seq;
	int hfd;
	uint32_t id, hgen;

	atomic_signal_fence(memory_order_seq_cst);
	hfd = tls_hint.fd;
	id = tls_hint.id;
	hgen = tls_hint.gen;
	atomic_signal_fence(memory_order_seq_cst);
	if ((seq & 1) || seq != tls_hint.seq || hfd != fd || hgen != gen)
		return NULL;
	struct ctx *c = ctx_by_id(id);
	return c && atomic_load(&c->state) != CTX_FREE ? c : NULL;
}

/* async-signal-safe */
SIG_SAFE static void hint_set(int fd, uint32_t id, uint32_t gen)
{
	if (tls_hint.seq & 1)
		return;		/* (we interrupted a store) */
	tls_hint.seq++;
	atomic_signal_fence(memory_order_seq_cst);
	tls_hint.fd = fd;
	tls_hint.id = id;
	tls_hint.gen = gen;
	atomic_signal_fence(memory_order_seq_cst);
	tls_hint.seq++;
}

/* async-signal-safe */
SIG_SAFE enum emu_kind emu_fd_kind(int fd, struct ctx **ctx)
{
	/* (The generation before the fstat: a number changed during it
	 * leaves a hint that is stale at once.) */
	uint32_t gen = fd_numbers_gen();
	struct stat st;
	struct ctx *c;

	if (ctx)
		*ctx = NULL;
	if (fd >= 0 && (c = hint_get(fd, gen))) {
		if (ctx)
			*ctx = c;
		return EMU_UFFD;
	}
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
		return EMU_NONE;
	if (remote_known(st.st_dev, st.st_ino))
		return EMU_REMOTE;
	if ((c = ctx_by_ident(st.st_dev, st.st_ino))) {
		hint_set(fd, atomic_load(&c->q.id), gen);
		if (ctx)
			*ctx = c;
		return EMU_UFFD;
	}
	return dev_is(st.st_dev, st.st_ino) ? EMU_DEV : EMU_NONE;
}

int emu_userfaultfd(int flags)
{
	int sv[2], r;
	struct stat st;
	struct ctx *c;

	if (flags & ~(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY)) {
		errno = EINVAL;
		return -1;
	}
	if ((r = caps_init()) < 0 || (r = fault_install()) < 0) {
		errno = -r;
		return -1;
	}
	fork_init();
	/* The user's end (read end) gets exactly the creation flags; ours
	 * (the write end) is close-on-exec and never blocks. */
	if (pipe2(sv, flags & (O_CLOEXEC | O_NONBLOCK)) < 0)
		return -1;
	if (sys_fcntl(sv[1], F_SETFD, FD_CLOEXEC) < 0 || sys_fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0 ||
	    fstat(sv[0], &st) < 0)
		goto fail;
	fd_own(sv[1]);
	fd_mark_uffd(sv[0], 0);
	area_lock();
	c = ctx_create_locked(st.st_dev, st.st_ino, sv[1], flags, 0);
	area_unlock();
	if (!c) {
		errno = EMFILE;
		goto fail;
	}
	atomic_store(&c->lsock, remote_listen(c));
	ctx_watch_release(c);
	return sv[0];
fail:
	r = errno;
	sys_close(sv[0]);
	fd_close_own(sv[1]);
	errno = r;
	return -1;
}

int emu_open_dev(int oflags)
{
	return dev_open(oflags);
}

int emu_ioctl(int fd, enum emu_kind kind, struct ctx *c, unsigned long req, unsigned long arg)
{
	int r;

	if (ioctl_vfs(fd, req, arg, &r))
		return r;
	switch (kind) {
	case EMU_DEV:
		if ((unsigned)req != USERFAULTFD_IOC_NEW) {
			errno = EINVAL;
			return -1;
		}
		/* The flags come by value, truncated to int as the kernel does. */
		return emu_userfaultfd((int)arg);
	case EMU_REMOTE:
		return remote_ioctl(fd, req, arg);
	default:
		/* A fork child's copy of its parent's uffd: the parent serves it,
		 * as the kernel's targets the parent's memory. */
		if (atomic_load(&c->state) == CTX_ORPHAN && fd >= 0 && remote_orphan(fd, c))
			return remote_ioctl(fd, req, arg);
		return ioctl_local(c, fd, req, arg);
	}
}

ssize_t emu_read(int fd, enum emu_kind kind, struct ctx *c, void *buf, size_t count)
{
	if (kind == EMU_DEV) {
		errno = dev_rw_errno(fd, 0);
		return -1;
	}
	if (kind == EMU_REMOTE || (atomic_load(&c->state) == CTX_ORPHAN && remote_orphan(fd, c)))
		return remote_read(fd, buf, count);
	return read_local(c, fd, buf, count);
}

int emu_pagemap_scan(int fd, unsigned long arg, int *ret)
{
	long r;

	if (!area_any() || !pagemap_is_self(fd))
		return 0;
	r = pagemap_scan(fd, arg);
	if (r < 0) {
		errno = (int)-r;
		*ret = -1;
	} else {
		*ret = (int)r;
	}
	return 1;
}

ssize_t emu_pagemap_pread(int fd, void *buf, size_t n, off_t off, int *done)
{
	*done = area_any() && pagemap_is_self(fd);
	return *done ? pagemap_pread(fd, buf, n, (uint64_t)off) : 0;
}

int emu_write_errno(int fd, enum emu_kind kind)
{
	/* A uffd is opened read-only. */
	return kind == EMU_DEV ? dev_rw_errno(fd, 1) : EBADF;
}

int emu_close(int fd)
{
	struct stat st;
	struct ctx *c = NULL;
	uint32_t id = 0;
	int r, err, dev = 0;

	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) {
		c = ctx_by_ident(st.st_dev, st.st_ino);
		id = c ? atomic_load(&c->q.id) : 0;
		if (!c)
			dev = dev_is(st.st_dev, st.st_ino);
	}
	r = sys_close_cancellable(fd);
	err = errno;
	fd_numbers_changed();
	if (c && atomic_load(&c->q.id) == id && ctx_peer_gone(atomic_load(&c->ourfd)))
		ctx_release(c, id);
	else if (dev)
		dev_reap();
	else
		remote_reap();
	errno = err;
	return r;
}

int emu_fd_relocate(int fd)
{
	int to;

	if (!fd_ours(fd))
		return 0;
	/* Nobody may use the number meanwhile: the watcher between two
	 * calls, no pin held, no area change, no install in flight. */
	watch_pause();
	fd_relocation_begin();
	area_lock();
	pg_install_pause();
	to = sys_fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (to >= 0) {
		fd_own(to);
		store_fd_relocate(fd, to);
		ctx_fd_relocate(fd, to);
		dev_fd_relocate(fd, to);
		remote_fd_relocate(fd, to);
		watch_relocate(fd, to);
		anon_shared_fd_relocate(fd, to);
		fd_disown(fd);
	}
	pg_install_resume();
	area_unlock();
	fd_relocation_end();
	watch_resume();
	return to < 0 ? -EMFILE : 0;
}

int emu_adopt(int fd)
{
	struct stat st;
	int r;

	/* Only a pipe can be one (a kernel uffd costs this fstat only). */
	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
		return -EBADF;
	if ((r = caps_init()) < 0)
		return r;
	fork_init();
	return remote_attach(fd) < 0 ? -EBADF : 0;
}

int emu_set_pager(int fd, uf_pager_fn fn, void *arg)
{
	struct ctx *c;

	if (emu_fd_kind(fd, &c) != EMU_UFFD)
		return -EBADF;
	atomic_store(&c->pager_arg, (uintptr_t)arg);
	atomic_store(&c->pager_fd, fd);
	atomic_store(&c->pager_fn, (uintptr_t)fn);
	return 0;
}

/* async-signal-safe */
struct ctx *emu_pager_hint(int fd)
{
	return fault_pager_hint(fd);
}

int uf_emu_stats(struct uf_emu_stats *out)
{
	uint64_t bytes, areas;

	if (!out)
		return -EINVAL;
	area_stats(&areas, &bytes);
	out->faults = atomic_load(&g_stats.faults);
	out->sigbus = atomic_load(&g_stats.sigbus);
	out->pages_installed = atomic_load(&g_stats.pages_installed);
	out->areas = areas;
	out->registered_bytes = bytes;
	return 0;
}
