/* SPDX-License-Identifier: MIT */
/*
 * Emulated userfaultfd objects: creation, identity of their descriptors,
 * read(), readiness for poll/epoll, close and release.
 */
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <time.h>
#include <sched.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include "emu/emu.h"

struct caps caps;
struct ctx g_ctxs[UF_MAX_CTX];
pthread_mutex_t g_table_lock = PTHREAD_MUTEX_INITIALIZER;
struct stats g_stats;

static _Atomic int g_live;		/* emulated uffds and devices alive */
static _Atomic int g_ctx_hw;		/* ctx slots ever used */
static _Atomic uint32_t g_ctx_gen = 1;
static _Atomic int g_remotes;		/* foreign uffds in use (remote.c) */

/* Emulated /dev/userfaultfd descriptors: like a uffd, the read end of a
 * pipe known by identity, whose write end we keep to see its last close;
 * acc is the access mode it was opened with.  The pipe holds one byte for
 * good: the kernel's device has no poll method, so poll() reports it
 * readable (and writable) whatever happens. */
static struct { _Atomic int used; dev_t dev; ino_t ino; int ourfd; int acc; } g_devs[UF_MAX_DEV];

/* Is the read end of the pipe whose write end is ourfd closed everywhere?
 * async-signal-safe */
static int peer_gone_fd(int ourfd)
{
	struct pollfd p = { .fd = ourfd, .events = 0 };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}

/* Forget the emulated devices whose every descriptor is closed. */
static void devs_reap(void)
{
	for (int i = 0; i < UF_MAX_DEV; i++) {
		int expected = 1;
		if (atomic_load(&g_devs[i].used) == 1 && peer_gone_fd(g_devs[i].ourfd) &&
		    atomic_compare_exchange_strong(&g_devs[i].used, &expected, 3)) {
			close(g_devs[i].ourfd);
			atomic_store(&g_devs[i].used, 0);
			atomic_fetch_sub(&g_live, 1);
		}
	}
}

static pthread_once_t g_caps_once = PTHREAD_ONCE_INIT;
static int g_caps_err;

/*
 * After an install, the next access either takes an exception that maps
 * the page, or finds its entry already filled by MADV_POPULATE_READ, a
 * system call that costs more than a plain one.  Which is cheaper depends
 * on the machine (on a shadow-paging VM an exception costs ~11 us, several
 * times the call; on bare metal or with nested paging, less than the
 * call): measure both on a page of the probe's memfd, best of 8.
 */
static int populate_pays(void *p, size_t ps)
{
	volatile char *c = p;
	long fault = LONG_MAX, pop = LONG_MAX;

	c[0] = 1;		/* the page exists in the memfd from now on */
	for (int i = 0; i < 8; i++) {
		long t0, t1;

		sys_madvise(p, ps, MADV_DONTNEED);	/* drops the entry only */
		t0 = sys_now_ns();
		(void)c[0];
		t1 = sys_now_ns();
		if (t1 - t0 < fault)
			fault = t1 - t0;
		sys_madvise(p, ps, MADV_DONTNEED);
		t0 = sys_now_ns();
		sys_madvise(p, ps, MADV_POPULATE_READ);
		(void)c[0];
		t1 = sys_now_ns();
		if (t1 - t0 < pop)
			pop = t1 - t0;
	}
	return pop < fault;
}

static void caps_probe(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	int fd;
	void *p;

	caps.page_size = (size_t)ps;
	caps.page_shift = (unsigned)__builtin_ctzl((unsigned long)ps);
#if defined(__x86_64__)
	caps.task_size = 0x7ffffffff000UL;	/* 4-level paging default */
#else
	caps.task_size = 1UL << 48;
#endif
	fd = memfd_create("userfault-probe", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 2 * ps) < 0) {
		g_caps_err = -errno;
		if (fd >= 0)
			close(fd);
		return;
	}
	p = sys_mmap(NULL, 2 * (size_t)ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		g_caps_err = -errno;
		close(fd);
		return;
	}
	caps.guard_markers = opt_guard_markers() &&
				sys_madvise(p, (size_t)ps, MADV_GUARD_INSTALL) == 0 &&
				sys_madvise(p, (size_t)ps, MADV_GUARD_REMOVE) == 0;
	caps.populate = sys_madvise(p, (size_t)ps, MADV_POPULATE_WRITE) == 0 &&
			   sys_madvise(p, (size_t)ps, MADV_POPULATE_READ) == 0 &&
			   populate_pays(p, (size_t)ps);
	/* Spinning pays only with a CPU left over for the thread that
	 * resolves: leave it one. */
	caps.max_spinners = (int)sysconf(_SC_NPROCESSORS_ONLN) - 1;
	caps.spin_ns = opt_spin_us() * 1000;
	sys_munmap(p, 2 * (size_t)ps);
	close(fd);
	/* Without guard markers the emulation protects missing pages instead
	 * (see pages.c): it works, within vm.max_map_count mappings. */
	g_caps_err = 0;
}

int caps_init(void)
{
	pthread_once(&g_caps_once, caps_probe);
	return g_caps_err;
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
	return EMU_FEATURES;
}

/* A foreign uffd starts (1) or stops (-1) being used here (remote.c). */
void ctx_live_add(int n)
{
	atomic_fetch_add(&g_live, n);
	atomic_fetch_add(&g_remotes, n);
}

int emu_in_use(void)
{
	return atomic_load_explicit(&g_live, memory_order_relaxed) > 0;
}

/* async-signal-safe */
struct ctx *ctx_by_id(uint32_t id)
{
	struct ctx *c;

	if (!id)
		return NULL;
	c = &g_ctxs[id & 0xff];
	return atomic_load(&c->id) == id ? c : NULL;
}

/* async-signal-safe */
static struct ctx *ctx_by_ident(dev_t dev, ino_t ino)
{
	int hw = atomic_load(&g_ctx_hw);

	for (int i = 0; i < hw; i++) {
		struct ctx *c = &g_ctxs[i];
		if (atomic_load(&c->state) != CTX_FREE && c->ino == ino && c->dev == dev)
			return c;
	}
	return NULL;
}

/* The emulated device with this identity: its slot, or -1. */
static int dev_by_ident(dev_t dev, ino_t ino)
{
	for (int i = 0; i < UF_MAX_DEV; i++)
		if (atomic_load(&g_devs[i].used) == 1 && g_devs[i].ino == ino && g_devs[i].dev == dev)
			return i;
	return -1;
}

/* read() (write: 0) or write() (1) on an emulated /dev/userfaultfd: the
 * device has neither method, so the kernel's VFS answers EINVAL where the
 * descriptor was opened for it, else EBADF. */
static int dev_rw_errno(int fd, int write)
{
	struct stat st;
	int i, acc;

	if (fstat(fd, &st) < 0 || (i = dev_by_ident(st.st_dev, st.st_ino)) < 0)
		return EBADF;
	acc = g_devs[i].acc;
	if (acc == O_RDWR || acc == (write ? O_WRONLY : O_RDONLY))
		return EINVAL;
	return EBADF;
}

int emu_write_errno(int fd, enum emu_kind kind)
{
	/* A uffd is opened read-only. */
	return kind == EMU_DEV ? dev_rw_errno(fd, 1) : EBADF;
}

/* async-signal-safe */
enum emu_kind emu_fd_kind(int fd, struct ctx **ctx)
{
	struct stat st;
	struct ctx *c;

	if (ctx)
		*ctx = NULL;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
		return EMU_NONE;
	if (atomic_load(&g_remotes) > 0 && remote_lookup(st.st_dev, st.st_ino) >= 0)
		return EMU_REMOTE;
	if ((c = ctx_by_ident(st.st_dev, st.st_ino))) {
		if (ctx)
			*ctx = c;
		return EMU_UFFD;
	}
	return dev_by_ident(st.st_dev, st.st_ino) >= 0 ? EMU_DEV : EMU_NONE;
}

/* Set up the free ctx slot for a uffd whose pipe is (dev, ino) with our
 * end ourfd: new (features 0) or, for a fork child, running with these
 * features.  Returns its id.  g_table_lock held, or the fork child's only
 * thread. */
uint32_t ctx_make(int slot, dev_t dev, ino_t ino, int ourfd, int flags, uint64_t features)
{
	struct ctx *c = &g_ctxs[slot];
	uint32_t id;

	c->dev = dev;
	c->ino = ino;
	atomic_store(&c->ourfd, ourfd);
	c->flags = flags;
	atomic_store(&c->features, features);
	atomic_store(&c->npending, 0);
	atomic_store(&c->changing, 0);
	atomic_store(&c->api_busy, 0);
	atomic_store(&c->pager_fn, 0);
	atomic_store(&c->pager_arg, 0);
	atomic_store(&c->pager_fd, -1);
	atomic_store(&c->lsock, remote_listen(c));
	c->orphan_tried = 0;
	id = ((atomic_fetch_add(&g_ctx_gen, 1) & 0xffffff) << 8) | (uint32_t)slot;
	atomic_store(&c->id, id);
	atomic_store(&c->state, features ? CTX_RUNNING : CTX_NEW);
	if (slot + 1 > atomic_load(&g_ctx_hw))
		atomic_store(&g_ctx_hw, slot + 1);
	atomic_fetch_add(&g_live, 1);
	return id;
}

int emu_userfaultfd(int flags)
{
	int sv[2], r, slot = -1;
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
	vmops_anchor();
	/* The user's end (read end) gets exactly the creation flags; ours
	 * (the write end) is close-on-exec and never blocks. */
	if (pipe2(sv, flags & (O_CLOEXEC | O_NONBLOCK)) < 0)
		return -1;
	if (fcntl(sv[1], F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0 || fstat(sv[0], &st) < 0)
		goto fail;

	pthread_mutex_lock(&g_table_lock);
	for (int i = 0; i < UF_MAX_CTX; i++)
		if (atomic_load(&g_ctxs[i].state) == CTX_FREE) {
			slot = i;
			break;
		}
	if (slot < 0) {
		pthread_mutex_unlock(&g_table_lock);
		errno = EMFILE;
		goto fail_nolock;
	}
	c = &g_ctxs[slot];
	ctx_make(slot, st.st_dev, st.st_ino, sv[1], flags, 0);
	pthread_mutex_unlock(&g_table_lock);
	watch_add(c);
	return sv[0];
fail:
	;
fail_nolock:
	r = errno;
	close(sv[0]);
	close(sv[1]);
	errno = r;
	return -1;
}

int emu_open_dev(int oflags)
{
	int pfd[2], r;
	struct stat st;

	/* What open(2) says of a character device that exists. */
	if (oflags & O_DIRECTORY) {
		errno = ENOTDIR;
		return -1;
	}
	if ((oflags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
		errno = EEXIST;
		return -1;
	}
	if (oflags & O_DIRECT) {
		errno = EINVAL;
		return -1;
	}
	if ((r = caps_init()) < 0) {
		errno = -r;
		return -1;
	}
	devs_reap();
	/* Our end does not block either: it only ever gets the one byte. */
	if (pipe2(pfd, O_CLOEXEC | (oflags & O_NONBLOCK)) < 0)
		return -1;
	if (!(oflags & O_CLOEXEC))
		fcntl(pfd[0], F_SETFD, 0);
	if (fstat(pfd[0], &st) < 0 || __write(pfd[1], "d", 1) != 1)
		goto fail;
	for (int i = 0; i < UF_MAX_DEV; i++) {
		int expected = 0;
		if (atomic_compare_exchange_strong(&g_devs[i].used, &expected, 2)) {
			g_devs[i].dev = st.st_dev;
			g_devs[i].ino = st.st_ino;
			g_devs[i].ourfd = pfd[1];
			g_devs[i].acc = oflags & O_ACCMODE;
			atomic_fetch_add(&g_live, 1);
			atomic_store(&g_devs[i].used, 1);
			return pfd[0];
		}
	}
	errno = EMFILE;
fail:
	r = errno;
	close(pfd[0]);
	close(pfd[1]);
	errno = r;
	return -1;
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

int remote_adopt_fork_fd(int fd, int flags)
{
	if (!(flags & O_CLOEXEC))
		fcntl(fd, F_SETFD, 0);
	if (remote_attach(fd) < 0) {
		/* Its process is already gone: a uffd of nothing, as the
		 * kernel's after a spurious FORK. */
	}
	return fd;
}

/* A fork child's copy of its parent's uffd: reach the parent (tried
 * once).  1 if the parent serves it: use remote_*. */
int remote_orphan(int fd, struct ctx *c)
{
	if (!c->orphan_tried) {
		c->orphan_tried = 1;
		remote_attach(fd);
	}
	return atomic_load(&g_remotes) > 0 && remote_lookup(c->dev, c->ino) >= 0;
}

/* The FORK messages just taken name descriptors of ours made at fork
 * (the forking thread closes them once the event is complete): give the
 * reader its own, at the lowest free number, as the kernel does at read()
 * time. */
static void fork_msgs_adopt(struct uffd_msg *m, int k)
{
	for (int i = 0; i < k; i++) {
		if (m[i].event != UFFD_EVENT_FORK)
			continue;
		int held = (int)m[i].arg.fork.ufd, flags = (int)m[i].arg.reserved.reserved2;
		int nfd = fcntl(held, (flags & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
		m[i].arg.reserved.reserved2 = 0;
		m[i].arg.fork.ufd = (__u32)(nfd >= 0 ? remote_adopt_fork_fd(nfd, flags) : -1);
	}
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

/* Tell poll/epoll that messages wait.  async-signal-safe */
void ctx_notify(struct ctx *c)
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

		sigemptyset(&pipe_only);
		sigaddset(&pipe_only, SIGPIPE);
		sys_call6(SYS_rt_sigprocmask, SIG_BLOCK, (long)&pipe_only, (long)&old, 8, 0, 0);
		r = __write(atomic_load(&c->ourfd), "m", 1);	/* full: readable */
		if (r < 0 && errno == EPIPE) {
			struct timespec zero = { 0, 0 };
			sys_call6(SYS_rt_sigtimedwait, (long)&pipe_only, 0, (long)&zero, 8, 0, 0);
		}
		sys_call6(SYS_rt_sigprocmask, SIG_SETMASK, (long)&old, 0, 8, 0, 0);
	}
	atomic_fetch_sub(&c->users, 1);
}

/*
 * Make the readiness of the user's end match the queue: at least one byte
 * while unread messages exist, none otherwise.  A faulter that queues while
 * we drain sends its own byte afterwards, so a wake-up is never lost; at
 * worst poll reports a message that is already gone, which the kernel's
 * uffd also does when a wake races with read.  async-signal-safe
 */
void ctx_sync_ready(struct ctx *c, int userfd)
{
	char buf[256];

	if (atomic_load(&c->npending) > 0) {
		int avail = 0;
		/* A raw call: the drop-in's ioctl() answers FIONREAD on a uffd
		 * as the kernel's does (EINVAL). */
		if (sys_call4(SYS_ioctl, userfd, FIONREAD, (long)&avail, 0) == 0 && avail == 0)
			ctx_notify(c);
		return;
	}
	/* Drain: usually one byte, so usually one call. */
	for (;;) {
		/* cppcheck-suppress legacyUninitvar ; buf is where preadv2 writes */
		struct iovec iov = { buf, sizeof buf };
		if (preadv2(userfd, &iov, 1, -1, RWF_NOWAIT) < (ssize_t)sizeof buf)
			break;
	}
	if (atomic_load(&c->npending) > 0)
		ctx_notify(c);
}

ssize_t emu_read(int fd, enum emu_kind kind, struct ctx *c, void *buf, size_t count)
{
	struct uffd_msg msgs[1];
	char tok;

	if (kind == EMU_DEV) {
		errno = dev_rw_errno(fd, 0);
		return -1;
	}
	if (kind == EMU_REMOTE || (atomic_load(&c->state) == CTX_ORPHAN && remote_orphan(fd, c)))
		return remote_read(fd, buf, count);
	if (atomic_load(&c->state) == CTX_NEW || count < sizeof(struct uffd_msg)) {
		errno = EINVAL;
		return -1;
	}
	for (;;) {
		size_t max = count / sizeof(struct uffd_msg);
		ssize_t k = 0;

		/* As the kernel: one message at a time, as many as fit, each
		 * taken from the queue before it is copied.  A copy that fails
		 * loses its message and ends the read: EFAULT if it was the
		 * first, else the messages copied before it; the rest stay
		 * queued. */
		struct wq_taken later;

		while ((size_t)k < max && atomic_load(&c->state) == CTX_RUNNING &&
		       wq_take_ex(c, msgs, 1, &later) == 1) {
			fork_msgs_adopt(msgs, 1);
			wq_complete(&later);
			/* (Integer arithmetic: buf may be NULL.) */
			if (usercopy_out((void *)((uintptr_t)buf + (size_t)k * sizeof msgs[0]), msgs,
					sizeof msgs[0]) < 0) {
				if (!k)
					k = -1;
				break;
			}
			k++;
		}
		if (k) {
			ctx_sync_ready(c, fd);
			if (k < 0) {
				errno = EFAULT;
				return -1;
			}
			return k * (ssize_t)sizeof msgs[0];
		}
		/* Nothing queued: wait on the socket itself, so that O_NONBLOCK,
		 * EINTR and SA_RESTART behave exactly as for any descriptor. */
		ssize_t n = __read(fd, &tok, 1);
		if (n < 0)
			return -1;
		if (n == 0) {		/* our end is gone: cannot happen while open */
			errno = EAGAIN;
			return -1;
		}
	}
}

static pthread_mutex_t g_watch_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_epfd = -1;
static pid_t g_watch_pid;

/* Release: the last descriptor of the uffd is closed.  Unregister all its
 * ranges and wake every waiter; unread messages vanish with them. */
void ctx_release(struct ctx *c, uint32_t id)
{
	pthread_mutex_lock(&g_table_lock);
	/* The slot may hold another uffd by now: release only the one meant. */
	if (atomic_load(&c->state) == CTX_FREE || !id || atomic_load(&c->id) != id) {
		pthread_mutex_unlock(&g_table_lock);
		return;
	}
	area_unregister_all_locked(id);
	atomic_store(&c->state, CTX_FREE);
	atomic_store(&c->id, 0);
	atomic_fetch_sub(&g_live, 1);
	wq_wake_all(id);
	while (atomic_load(&c->users))
		sched_yield();
	close(atomic_exchange(&c->ourfd, -1));
	{
		int ls = atomic_exchange(&c->lsock, -1);
		if (ls >= 0) {
			pthread_mutex_lock(&g_watch_lock);
			if (g_epfd >= 0)
				epoll_ctl(g_epfd, EPOLL_CTL_DEL, ls, NULL);
			pthread_mutex_unlock(&g_watch_lock);
			close(ls);
		}
	}
	pthread_mutex_unlock(&g_table_lock);
}

/* Is the peer of our end closed everywhere (every descriptor, in every
 * process)?  async-signal-safe */
static int peer_gone(struct ctx *c)
{
	return peer_gone_fd(atomic_load(&c->ourfd));
}

int emu_close(int fd)
{
	struct stat st;
	struct ctx *c = NULL;
	uint32_t id = 0;
	int r, err, dev = -1;

	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) {
		c = ctx_by_ident(st.st_dev, st.st_ino);
		id = c ? atomic_load(&c->id) : 0;
		if (!c)
			dev = dev_by_ident(st.st_dev, st.st_ino);
	}
	r = __close(fd);
	err = errno;
	if (c && atomic_load(&c->id) == id && peer_gone(c))
		ctx_release(c, id);
	else if (dev >= 0)
		devs_reap();
	else if (atomic_load(&g_remotes) > 0)
		remote_reap();
	errno = err;
	return r;
}

/* ---- the watcher: one thread that notices closes we did not see, and
 * serves the uffds of this process to other processes (remote.c) ---- */

static void *watch_main(void *arg)
{
	int epfd = (int)(intptr_t)arg;
	struct epoll_event ev[16];

	for (;;) {
		int n = epoll_wait(epfd, ev, 16, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			uint64_t tag = ev[i].data.u64;
			uint32_t id = (uint32_t)tag;
			struct ctx *c;

			if ((tag & UF_TAG_MASK) == UF_TAG_REMOTE) {
				if (ev[i].events & (EPOLLERR | EPOLLHUP))
					remote_reap();
				continue;
			}
			if ((tag & UF_TAG_MASK) != UF_TAG_RELEASE) {
				remote_service_event(epfd, tag, ev[i].events);
				continue;
			}
			c = ctx_by_id(id);
			if (!c)
				continue;
			/* One-shot: the closing of ourfd in release removes it
			 * (a fork child's copy may keep the file open). */
			if (ev[i].events & (EPOLLERR | EPOLLHUP))
				ctx_release(c, id);
		}
	}
}

/* Start the watcher of this process if needed (g_watch_lock held). */
static void watch_start_locked(void)
{
	if (g_epfd < 0 || g_watch_pid != getpid()) {
		pthread_t t;
		pthread_attr_t at;
		sigset_t all, old;

		g_epfd = epoll_create1(EPOLL_CLOEXEC);
		g_watch_pid = getpid();
		if (g_epfd >= 0) {
			pthread_attr_init(&at);
			pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
			pthread_attr_setstacksize(&at, (size_t)256 * 1024);
			/* The watcher takes no signals: they belong to the program. */
			sigfillset(&all);
			pthread_sigmask(SIG_SETMASK, &all, &old);
			if (pthread_create(&t, &at, watch_main, (void *)(intptr_t)g_epfd) != 0) {
				close(g_epfd);
				g_epfd = -1;
			}
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			pthread_attr_destroy(&at);
		}
	}
}

void watch_add(struct ctx *c)
{
	/* No event asked: a pipe's write end reports EPOLLERR, always
	 * delivered, once no read end is left anywhere. */
	struct epoll_event ev = { .events = EPOLLONESHOT };
	struct epoll_event lev = { .events = EPOLLIN };
	int ls = atomic_load(&c->lsock);

	pthread_mutex_lock(&g_watch_lock);
	watch_start_locked();
	ev.data.u64 = UF_TAG_RELEASE | atomic_load(&c->id);
	lev.data.u64 = UF_TAG_LISTEN | atomic_load(&c->id);
	if (g_epfd >= 0) {
		epoll_ctl(g_epfd, EPOLL_CTL_ADD, atomic_load(&c->ourfd), &ev);
		if (ls >= 0)
			epoll_ctl(g_epfd, EPOLL_CTL_ADD, ls, &lev);
	}
	pthread_mutex_unlock(&g_watch_lock);
}

void watch_fd(int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = 0, .data.u64 = tag };

	pthread_mutex_lock(&g_watch_lock);
	watch_start_locked();
	if (g_epfd >= 0)
		epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &ev);
	pthread_mutex_unlock(&g_watch_lock);
}

void watch_reset_after_fork(void)
{
	/* The watcher thread does not exist in a fork child. */
	pthread_mutex_init(&g_watch_lock, NULL);
	g_epfd = -1;
}

int uf_emu_stats(struct uf_emu_stats *out)
{
	uint64_t bytes = 0, areas = 0;
	int hw = atomic_load(&g_areas_hw);

	if (!out)
		return -EINVAL;
	for (int i = 0; i < hw; i++) {
		struct area *a = &g_areas[i];
		if (!atomic_load(&a->live))
			continue;
		areas++;
		if (a->ctx)
			bytes += a->end - a->start;
	}
	out->faults = atomic_load(&g_stats.faults);
	out->sigbus = atomic_load(&g_stats.sigbus);
	out->pages_installed = atomic_load(&g_stats.pages_installed);
	out->areas = areas;
	out->registered_bytes = bytes;
	return 0;
}
