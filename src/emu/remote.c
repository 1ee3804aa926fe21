/* SPDX-License-Identifier: MIT */
/*
 * A uffd used from another process (UFFD-SPEC section 13): a monitor that
 * got the descriptor over a unix socket (SCM_RIGHTS), a fork child holding
 * its parent's uffd, the reader of a UFFD_EVENT_FORK.  The memory, the
 * waiters and the messages live in the process that owns the uffd (where
 * it was created); that process serves the others.
 *
 *   Owner  Every uffd listens on an abstract unix socket named after the
 *          identity of its pipe ("userfault-uffd-DEV-INO"), served by the
 *          watcher thread (src/base/watch.c).  A connection must first prove that
 *          its process holds the uffd: HELLO carries the read end itself
 *          (SCM_RIGHTS), which is compared and closed at once.  Then it
 *          may read messages (TAKE) and run ioctls; COPY carries the
 *          source bytes in the request, at most CHUNK at a time.
 *   Client The reply to HELLO hands over a copy of the pipe's write end:
 *          the client keeps it, so that when the owner exits the uffd
 *          neither reads EOF nor polls POLLHUP (the kernel shows nothing
 *          either).  read() takes the messages from the owner; poll and
 *          epoll work on the pipe as in the owner.
 *
 * When the owner is gone: COPY and ZEROPAGE give ESRCH, REGISTER and
 * UNREGISTER ENOMEM, WAKE 0, API EINVAL, read() waits forever (EAGAIN
 * with O_NONBLOCK), as the kernel's uffd of a dead process.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include "base/caps.h"
#include "base/fdreg.h"
#include "base/sys.h"
#include "base/usercopy.h"
#include "base/watch.h"
#include "emu/ops.h"
#include "emu/process.h"

#define REMOTE_MAX	64	/* foreign uffds a process uses */
#define CONN_MAX	64	/* connections an owner serves */
#define CHUNK	((size_t)128 * 1024)
#define MAX_READ	64	/* messages one remote read() returns, at most */

enum { RQ_HELLO = 1, RQ_TAKE, RQ_IOCTL, RQ_COPY, RQ_COPY_FD };
_Static_assert(MAX_READ <= WQ_TAKEN_MAX, "every event of one TAKE can be completed after the reply");

struct rq {
	uint32_t op;
	uint32_t max;		/* TAKE: messages wanted */
	uint64_t req;		/* IOCTL, COPY: the request number; TAKE: the
				 * readiness bytes the reader drained */
	unsigned char s[64];	/* IOCTL, COPY: the struct (COPY: payload follows) */
};
struct rp {
	int64_t ret;
	int32_t err;
	int32_t n;		/* TAKE: messages following */
	unsigned char s[64];
};

static void name_of(struct sockaddr_un *a, socklen_t *len, dev_t dev, ino_t ino)
{
	int n;

	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "userfault-uffd-%lx-%lx",
		     (unsigned long)dev, (unsigned long)ino);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* Send a message with n descriptors (n <= MAX_READ).  0 or -1. */
static int send_fds(int sock, const void *buf, size_t len, const int *fds, int n)
{
	union { char b[CMSG_SPACE(sizeof(int) * MAX_READ)]; struct cmsghdr align; } u;
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (n > 0) {
		struct cmsghdr *c;
		memset(&u, 0, sizeof u);
		m.msg_control = u.b;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
	}
	return sys_sendmsg(sock, &m, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* Receive a message and the descriptors that came with it (closed if more
 * than max).  Returns the length, 0 at EOF, -1 on error. */
static ssize_t recv_fds(int sock, void *buf, size_t len, int *fds, int max, int *nfds)
{
	union { char b[CMSG_SPACE(sizeof(int) * MAX_READ)]; struct cmsghdr align; } u;
	struct iovec iov = { buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
			    .msg_controllen = sizeof u.b };
	ssize_t r;

	memset(&u, 0, sizeof u);
	*nfds = 0;
	do
		r = sys_recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int f;
			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
			if (*nfds < max)
				fds[(*nfds)++] = f;
			else
				sys_close(f);
		}
	}
	return r;
}

/* ====================================================================== */
/* The owner's side: served by the watcher thread.                         */
/* ====================================================================== */

static struct { int fd; uint32_t ctx; int authed; } g_conn[CONN_MAX];
static pthread_once_t g_conn_once = PTHREAD_ONCE_INIT;

static void conn_init(void)
{
	for (int i = 0; i < CONN_MAX; i++)
		g_conn[i].fd = -1;
}

static void on_listen(uint64_t id, uint32_t events);
static void on_conn(uint64_t i, uint32_t events);

int remote_listen(struct ctx *c)
{
	struct sockaddr_un a;
	socklen_t len;
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (s < 0)
		return -1;
	fd_own(s);
	name_of(&a, &len, c->dev, c->ino);
	if (bind(s, (struct sockaddr *)&a, len) < 0 || listen(s, 16) < 0 ||
	    watch_add(s, EPOLLIN, on_listen, atomic_load(&c->q.id)) < 0) {
		fd_close_own(s);
		return -1;
	}
	return s;
}

static void conn_close(int i)
{
	watch_del(g_conn[i].fd);
	fd_close_own(g_conn[i].fd);
	g_conn[i].fd = -1;
}

static void on_accept(int lsock, uint32_t id)
{
	for (;;) {
		struct sockaddr_un peer;
		socklen_t plen = sizeof peer;
		int s = accept4(lsock, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC), i;

		if (s < 0)
			return;
		for (i = 0; i < CONN_MAX && g_conn[i].fd >= 0; i++)
			;
		if (i == CONN_MAX) {
			sys_close(s);
			continue;
		}
		fd_own(s);
		g_conn[i].fd = s;
		g_conn[i].ctx = id;
		g_conn[i].authed = 0;
		if (watch_add(s, EPOLLIN, on_conn, (uint64_t)i) < 0)
			conn_close(i);
	}
}

static void serve_take(struct ctx *c, int sock, const struct rq *q)
{
	struct {
		struct rp h;
		struct uffd_msg m[MAX_READ];
	} out;
	int max = (int)q->max, k, fds[MAX_READ] = { 0 }, nfds = 0;
	struct wq_taken later = { .n = 0 };

	memset(&out.h, 0, sizeof out.h);
	if (max < 1 || max > MAX_READ)
		max = MAX_READ;
	ctx_took(c, q->req <= (1u << 20) ? (long)q->req : 0);	/* (the reader's drain) */
	if (atomic_load(&c->state) == CTX_NEW) {
		out.h.ret = -1;
		out.h.err = EINVAL;
		k = 0;
	} else {
		k = atomic_load(&c->state) == CTX_RUNNING ? wq_take(&c->q, out.m, max, &later) : 0;
	}
	if (atomic_load(&c->q.npending) > 0)
		ctx_notify(c);
	/* A FORK message names a descriptor of ours (the forking thread's, who
	 * closes it once the event is complete): a copy goes along, and the
	 * reader puts its own number in the message. */
	for (int i = 0; i < k; i++)
		if (out.m[i].event == UFFD_EVENT_FORK)
			fds[nfds++] = sys_dup_min((int)out.m[i].arg.fork.ufd, 0, 1);
	out.h.n = k;
	if (send_fds(sock, &out, sizeof out.h + (size_t)k * sizeof out.m[0], fds, nfds) < 0) {
		(void)0;	/* the reader is gone: the messages are lost, as
				 * the kernel's are when a reader's copy-out fails */
	}
	/* Only now may the threads that raised the events go on: one may end
	 * this process at once, and the reader must have its message. */
	wq_complete(&later);
	for (int i = 0; i < nfds; i++)
		sys_close(fds[i]);
}

/*
 * An ioctl for a client.  COPY and ZEROPAGE are run without their wake,
 * which comes after the reply: a woken thread may end its process at
 * once, and the client must have its answer first (the kernel's ioctl
 * returns whatever the woken thread does).
 */
static void serve_ioctl(struct ctx *c, int sock, struct rq *q, void *payload, size_t plen)
{
	struct rp out;
	uint64_t dst = 0;
	int64_t done = 0;
	int wake = 0;

	memset(&out, 0, sizeof out);
	if (q->op == RQ_COPY) {
		struct uffdio_copy cp;
		memcpy(&cp, q->s, sizeof cp);
		if (cp.len > plen)
			cp.len = plen;
		cp.src = (uintptr_t)payload;
		wake = !(cp.mode & UFFDIO_COPY_MODE_DONTWAKE);
		cp.mode |= UFFDIO_COPY_MODE_DONTWAKE;
		dst = cp.dst;
		memcpy(q->s, &cp, sizeof cp);
	} else if ((unsigned)q->req == UFFDIO_ZEROPAGE) {
		struct uffdio_zeropage zp;
		memcpy(&zp, q->s, sizeof zp);
		wake = !(zp.mode & UFFDIO_ZEROPAGE_MODE_DONTWAKE);
		zp.mode |= UFFDIO_ZEROPAGE_MODE_DONTWAKE;
		dst = zp.range.start;
		memcpy(q->s, &zp, sizeof zp);
	} else if ((unsigned)q->req == UFFDIO_WRITEPROTECT) {
		/* Clearing wakes: after the reply too (the woken thread may end
		 * this process before the reply would have gone). */
		struct uffdio_writeprotect wp;
		memcpy(&wp, q->s, sizeof wp);
		if (!(wp.mode & (UFFDIO_WRITEPROTECT_MODE_WP | UFFDIO_WRITEPROTECT_MODE_DONTWAKE))) {
			wp.mode |= UFFDIO_WRITEPROTECT_MODE_DONTWAKE;
			memcpy(q->s, &wp, sizeof wp);
			out.ret = ioctl_local(c, -1, (unsigned long)q->req, (unsigned long)q->s);
			out.err = out.ret < 0 ? errno : 0;
			wp.mode &= ~(uint64_t)UFFDIO_WRITEPROTECT_MODE_DONTWAKE;
			memcpy(out.s, &wp, sizeof wp);
			send_fds(sock, &out, sizeof out, NULL, 0);
			if (out.ret == 0)
				wq_wake_range(&c->q, wp.range.start, wp.range.start + wp.range.len, NULL);
			return;
		}
	}
	out.ret = ioctl_local(c, -1, (unsigned long)q->req, (unsigned long)q->s);
	out.err = out.ret < 0 ? errno : 0;
	if (wake) {
		/* Give the client back the mode it asked for. */
		if (q->op == RQ_COPY) {
			struct uffdio_copy cp;
			memcpy(&cp, q->s, sizeof cp);
			cp.mode &= ~(uint64_t)UFFDIO_COPY_MODE_DONTWAKE;
			done = cp.copy;
			memcpy(q->s, &cp, sizeof cp);
		} else {
			struct uffdio_zeropage zp;
			memcpy(&zp, q->s, sizeof zp);
			zp.mode &= ~(uint64_t)UFFDIO_ZEROPAGE_MODE_DONTWAKE;
			done = zp.zeropage;
			memcpy(q->s, &zp, sizeof zp);
		}
	}
	memcpy(out.s, q->s, sizeof out.s);
	send_fds(sock, &out, sizeof out, NULL, 0);
	if (wake && done > 0)
		wq_wake_range(&c->q, dst, dst + (uint64_t)done, NULL);
}

/* A COPY whose source came in a memfd (copy_by_fd): mapped here, then as
 * any COPY. */
static void serve_copy_fd(struct ctx *c, int sock, struct rq *q, int mfd)
{
	struct uffdio_copy cp;
	struct stat st;
	void *m = MAP_FAILED;

	memcpy(&cp, q->s, sizeof cp);
	if (mfd >= 0 && fstat(mfd, &st) == 0 && (uint64_t)st.st_size >= cp.len && cp.len)
		m = sys_mmap(NULL, cp.len, PROT_READ, MAP_SHARED, mfd, 0);
	if (mfd >= 0)
		sys_close(mfd);
	if (m == MAP_FAILED) {
		cp.len = 0;		/* nothing to copy from: -EFAULT below */
		m = NULL;
	}
	cp.src = (uintptr_t)m;
	memcpy(q->s, &cp, sizeof cp);
	q->op = RQ_COPY;
	serve_ioctl(c, sock, q, m, cp.len);
	if (m)
		sys_munmap(m, cp.len);
}

/* A connection on the listening socket of uffd id (the watcher thread). */
static void on_listen(uint64_t id, uint32_t events)
{
	struct ctx *c = ctx_by_id((uint32_t)id);

	(void)events;
	pthread_once(&g_conn_once, conn_init);
	if (c && atomic_load(&c->lsock) >= 0)
		on_accept(atomic_load(&c->lsock), (uint32_t)id);
}

/* A request on connection v (the watcher thread). */
static void on_conn(uint64_t v, uint32_t events)
{
	static unsigned char buf[sizeof(struct rq) + CHUNK];
	struct ctx *c;
	struct rq *q = (struct rq *)buf;
	int fds[1], nfds, i, copyfd = -1;
	ssize_t n;

	pthread_once(&g_conn_once, conn_init);
	if (v >= CONN_MAX || g_conn[v].fd < 0)
		return;
	i = (int)v;
	n = recv_fds(g_conn[i].fd, buf, sizeof buf, fds, 1, &nfds);
	if (n < (ssize_t)sizeof *q) {
		for (int k = 0; k < nfds; k++)
			sys_close(fds[k]);
		if (n <= 0 && !(n < 0 && errno == EAGAIN))
			conn_close(i);
		return;
	}
	(void)events;
	c = ctx_by_id(g_conn[i].ctx);
	if (!c) {
		for (int k = 0; k < nfds; k++)
			sys_close(fds[k]);
		conn_close(i);	/* released: the client sees the owner gone */
		return;
	}
	if (q->op == RQ_HELLO) {
		struct stat st;
		struct rp out;
		int ok = nfds == 1 && fstat(fds[0], &st) == 0 && st.st_dev == c->dev &&
			 st.st_ino == c->ino && (sys_fcntl(fds[0], F_GETFL, 0) & O_ACCMODE) == O_RDONLY;

		if (nfds)
			sys_close(fds[0]);
		memset(&out, 0, sizeof out);
		out.ret = ok ? 0 : -1;
		out.err = ok ? 0 : EPERM;
		if (ok)
			g_conn[i].authed = 1;
		{
			int wr = atomic_load(&c->ourfd);
			send_fds(g_conn[i].fd, &out, sizeof out, &wr, ok);
		}
		if (!ok)
			conn_close(i);
		return;
	}
	/* A COPY_FD keeps its memfd; anything else sent with a request goes. */
	for (int k = 0; k < nfds; k++)
		if (q->op == RQ_COPY_FD && copyfd < 0)
			copyfd = fds[k];
		else
			sys_close(fds[k]);
	if (!g_conn[i].authed) {
		if (copyfd >= 0)
			sys_close(copyfd);
		conn_close(i);
		return;
	}
	switch (q->op) {
	case RQ_TAKE:
		serve_take(c, g_conn[i].fd, q);
		break;
	case RQ_IOCTL:
	case RQ_COPY:
		serve_ioctl(c, g_conn[i].fd, q, buf + sizeof *q, (size_t)n - sizeof *q);
		break;
	case RQ_COPY_FD:
		serve_copy_fd(c, g_conn[i].fd, q, copyfd);	/* (closes it) */
		break;
	default:
		conn_close(i);
	}
}

/* Fork child: the connections are the parent's: close our copies. */
static void service_reset_after_fork(void)
{
	pthread_once(&g_conn_once, conn_init);
	for (int i = 0; i < CONN_MAX; i++)
		if (g_conn[i].fd >= 0) {
			fd_close_own(g_conn[i].fd);
			g_conn[i].fd = -1;
		}
}

/* ====================================================================== */
/* The client's side.                                                       */
/* ====================================================================== */

enum rem_state { REM_FREE = 0, REM_LIVE, REM_BUSY /* being set up or freed */ };

struct remote {
	_Atomic int used;	/* enum rem_state */
	dev_t dev;
	ino_t ino;
	_Atomic int sock;	/* -1 once the owner is gone (read unlocked by remote_read) */
	_Atomic int wr;		/* the pipe's write end */
	_Atomic int fresh;	/* gone before its UFFDIO_API, none done since */
	pthread_mutex_t mu;
};
static struct remote g_rem[REMOTE_MAX];
static _Atomic int g_nrem;		/* entries in use */

/* async-signal-safe */
static int lookup(dev_t dev, ino_t ino)
{
	if (!atomic_load(&g_nrem))
		return -1;
	for (int i = 0; i < REMOTE_MAX; i++)
		if (atomic_load(&g_rem[i].used) == REM_LIVE && g_rem[i].ino == ino && g_rem[i].dev == dev)
			return i;
	return -1;
}

/* async-signal-safe */
int remote_known(dev_t dev, ino_t ino)
{
	return lookup(dev, ino) >= 0;
}

static void count(int n)
{
	atomic_fetch_add(&g_nrem, n);
	ctx_live_add(n);
}

static void remote_free(int i)
{
	struct remote *r = &g_rem[i];
	int expected = REM_LIVE;

	if (!atomic_compare_exchange_strong(&r->used, &expected, REM_BUSY))
		return;
	pthread_mutex_lock(&r->mu);	/* after any call in flight */
	if (r->sock >= 0)
		fd_close_own(r->sock);
	if (atomic_load(&r->wr) >= 0) {
		int wr = atomic_exchange(&r->wr, -1);
		watch_del(wr);
		fd_close_own(wr);
	}
	r->sock = -1;
	pthread_mutex_unlock(&r->mu);
	count(-1);
	atomic_store(&r->used, REM_FREE);
}

/* Forget the foreign uffds whose every read end is closed.  Called at our
 * sys_close() of one, and by the watcher (each write end is watched). */
void remote_reap(void)
{
	if (!atomic_load(&g_nrem))
		return;
	fd_pin();
	for (int i = 0; i < REMOTE_MAX; i++) {
		struct pollfd p = { .fd = atomic_load(&g_rem[i].wr), .events = 0 };
		if (atomic_load(&g_rem[i].used) == REM_LIVE && poll(&p, 1, 0) == 1 && (p.revents & POLLERR))
			remote_free(i);
	}
	fd_unpin();
}

void remote_fd_relocate(int from, int to)
{
	for (int i = 0; i < REMOTE_MAX; i++) {
		struct remote *r = &g_rem[i];
		int expected = from;

		if (atomic_load(&r->used) != REM_LIVE)
			continue;
		pthread_mutex_lock(&r->mu);	/* after the call in flight */
		atomic_compare_exchange_strong(&r->sock, &expected, to);
		expected = from;
		atomic_compare_exchange_strong(&r->wr, &expected, to);
		pthread_mutex_unlock(&r->mu);
	}
	pthread_once(&g_conn_once, conn_init);
	for (int i = 0; i < CONN_MAX; i++)	/* the watcher's own */
		if (g_conn[i].fd == from)
			g_conn[i].fd = to;
}

/* The watcher saw the write end of foreign uffd i report EPOLLERR. */
static void on_remote_gone(uint64_t i, uint32_t events)
{
	(void)i;
	if (events & (EPOLLERR | EPOLLHUP))
		remote_reap();
}

/* A new entry for the pipe st, served on sock (-1: the owner is gone),
 * with wr a write end of its own.  Both become ours.  0, or -1 (EMFILE). */
static int entry_new(const struct stat *st, int sock, int wr)
{
	int i, expected;

	for (i = 0; i < REMOTE_MAX; i++) {
		expected = REM_FREE;
		if (atomic_compare_exchange_strong(&g_rem[i].used, &expected, REM_BUSY))
			break;
	}
	if (i == REMOTE_MAX) {
		sys_close(wr);
		if (sock >= 0)
			sys_close(sock);
		errno = EMFILE;
		return -1;
	}
	g_rem[i].dev = st->st_dev;
	g_rem[i].ino = st->st_ino;
	if (sock >= 0)
		fd_own(sock);
	fd_own(wr);
	g_rem[i].sock = sock;
	atomic_store(&g_rem[i].fresh, 0);
	atomic_store(&g_rem[i].wr, wr);
	pthread_mutex_init(&g_rem[i].mu, NULL);
	count(1);
	atomic_store(&g_rem[i].used, REM_LIVE);
	/* No event asked: the write end reports EPOLLERR once every read end
	 * is closed. */
	watch_add(wr, 0, on_remote_gone, (uint64_t)i);
	return 0;
}

/* A uffd whose owner is gone before we met it (it exited, or it exec'd
 * and its listening socket went with the old image): the kernel's uffd of
 * a dead process.  A write end of our own (reopened through /proc) keeps
 * the pipe from reading EOF or polling POLLHUP, and the owner's readiness
 * tokens are taken out: poll then says nothing, read EAGAIN, the ioctls
 * answer as ioctl_gone() says. */
static int attach_dead(int fd, const struct stat *st)
{
	char path[64];
	int wr, i;

	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	wr = sys_open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC, 0);
	if (wr < 0)
		return -1;
	ctx_drain(fd);
	if (entry_new(st, -1, wr) < 0)
		return -1;
	if ((i = lookup(st->st_dev, st->st_ino)) >= 0 && fd_marked_uffd(fd) == 2)
		atomic_store(&g_rem[i].fresh, 1);
	return 0;
}

/* Use the uffd fd, owned by another process, from this one: 0, or -1 if
 * it is no uffd (a pipe without the mark of fd_marked_uffd()). */
int remote_attach(int fd)
{
	struct sockaddr_un a;
	socklen_t len;
	struct stat st;
	struct rq q;
	struct rp p;
	int s, fds[1], nfds;

	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
		return -1;
	if (lookup(st.st_dev, st.st_ino) >= 0)
		return 0;
	if (!fd_marked_uffd(fd))
		return -1;	/* a plain pipe */
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	name_of(&a, &len, st.st_dev, st.st_ino);
	if (connect(s, (struct sockaddr *)&a, len) < 0) {
		sys_close(s);
		return attach_dead(fd, &st);
	}
	memset(&q, 0, sizeof q);
	q.op = RQ_HELLO;
	if (send_fds(s, &q, sizeof q, &fd, 1) < 0 ||
	    recv_fds(s, &p, sizeof p, fds, 1, &nfds) != (ssize_t)sizeof p || p.ret < 0 || nfds != 1) {
		sys_close(s);
		return -1;
	}
	/* The owner is who it says: it holds the write end of this pipe. */
	if (fstat(fds[0], &st) < 0 || lookup(st.st_dev, st.st_ino) >= 0) {
		sys_close(fds[0]);
		sys_close(s);
		return lookup(st.st_dev, st.st_ino) >= 0 ? 0 : -1;
	}
	return entry_new(&st, s, fds[0]);
}

/* One request and its reply, under the entry's lock.  -1 if the owner is
 * gone (then for good). */
static int call(struct remote *r, const struct rq *q, const void *payload, size_t plen,
		void *reply, size_t rlen, int *fds, int *nfds, int sendfd)
{
	struct iovec iov[2] = { { (void *)q, sizeof *q }, { (void *)payload, plen } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = plen ? 2 : 1 };
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
	int dummy, ok = -1;
	ssize_t n;

	if (sendfd >= 0) {
		struct cmsghdr *c;
		memset(&u, 0, sizeof u);
		m.msg_control = u.b;
		m.msg_controllen = sizeof u.b;
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &sendfd, sizeof(int));
	}

	pthread_mutex_lock(&r->mu);
	if (r->sock >= 0 && sys_sendmsg(r->sock, &m, MSG_NOSIGNAL) == (ssize_t)(sizeof *q + plen)) {
		n = recv_fds(r->sock, reply, rlen, fds ? fds : &dummy, fds ? MAX_READ : 0,
			     nfds ? nfds : &dummy);
		if (n >= (ssize_t)sizeof(struct rp))
			ok = 0;
	}
	if (ok < 0 && r->sock >= 0) {
		fd_close_own(r->sock);
		r->sock = -1;
	}
	pthread_mutex_unlock(&r->mu);
	return ok;
}

static int fail(int err)
{
	errno = err;
	return -1;
}


/* COPY from here: the source is read here, page by page where it faults,
 * and sent along, CHUNK at a time. */
/* Can the output field at uptr be written?  (The kernel does not wake when
 * it cannot write the result: ask for no wake then.) */
static int out_writable(void *uptr)
{
	int64_t v;

	return usercopy_in(&v, uptr, sizeof v) == 0 && usercopy_out(uptr, &v, sizeof v) == 0;
}

/* A COPY longer than CHUNK: the source goes in a memfd, passed with the
 * request, in one piece (a hugetlb destination takes whole huge pages
 * only).  What the source gives before it faults is copied; then EFAULT.
 * Returns the copy's result as the output field has it (> 0 or -errno), or
 * INT64_MIN when the owner is gone, INT64_MIN + 1 when refused before
 * copying (errno set). */
static int64_t copy_by_fd(struct remote *r, const struct uffdio_copy *cp)
{
	uint64_t got = 0, ps = caps.page_size ? caps.page_size : 4096;
	int mfd = memfd_create("userfault-copy", MFD_CLOEXEC);
	struct uffdio_copy part = *cp;
	struct rq q;
	struct rp p;

	if (mfd < 0 || ftruncate(mfd, (off_t)cp->len) < 0) {
		if (mfd >= 0)
			sys_close(mfd);
		return -ENOMEM;
	}
	while (got < cp->len) {
		ssize_t w = sys_pwrite(mfd, (const void *)(uintptr_t)(cp->src + got), cp->len - got, (off_t)got);
		if (w <= 0)
			break;
		got += (uint64_t)w;
	}
	got &= ~(ps - 1);
	if (!got) {
		sys_close(mfd);
		return -EFAULT;
	}
	memset(&q, 0, sizeof q);
	q.op = RQ_COPY_FD;
	q.req = UFFDIO_COPY;
	part.len = got;
	part.src = 0;
	part.copy = INT64_MIN;
	memcpy(q.s, &part, sizeof part);
	if (call(r, &q, NULL, 0, &p, sizeof p, NULL, NULL, mfd) < 0) {
		sys_close(mfd);
		return INT64_MIN;
	}
	sys_close(mfd);
	memcpy(&part, p.s, sizeof part);
	if (part.copy == INT64_MIN) {
		errno = p.ret < 0 ? (int)p.err : EIO;
		return INT64_MIN + 1;
	}
	if (part.copy > 0 && (uint64_t)part.copy == got && got < cp->len)
		return part.copy;	/* the caller says EFAULT after it */
	return part.copy;
}

static int remote_copy(struct remote *r, unsigned long arg, struct uffdio_copy *cp)
{
	uint64_t done = 0, ps = caps.page_size ? caps.page_size : 4096;
	int64_t out;
	int err = 0;
	char *buf;

	if (!out_writable((char *)arg + offsetof(struct uffdio_copy, copy)))
		cp->mode |= UFFDIO_COPY_MODE_DONTWAKE;
	if (cp->len > CHUNK) {
		int64_t c = copy_by_fd(r, cp);
		if (c == INT64_MIN)
			return ioctl_gone(UFFDIO_COPY);
		if (c == INT64_MIN + 1)
			return -1;
		if (c > 0) {
			done = (uint64_t)c;
			err = done < cp->len ? EAGAIN : 0;
			/* A source that faulted part way: EFAULT after it. */
			if (done < cp->len && done % ps == 0 &&
			    usercopy_in(&out, (const char *)(uintptr_t)(cp->src + done), 1))
				err = EFAULT;
		} else {
			err = (int)-c;
		}
		goto answer;
	}
	buf = malloc(CHUNK);
	if (!buf)
		return fail(ENOMEM);
	while (done < cp->len) {
		uint64_t n = cp->len - done < CHUNK ? cp->len - done : CHUNK, got = 0;
		struct rq q;
		struct rp p;
		struct uffdio_copy part = *cp;
		int src_fault = 0;

		/* Page by page where the source faults: what was read goes. */
		/* cppcheck-suppress knownConditionTrueFalse ; n > 0 here */
		while (got < n) {
			uint64_t step = n - got < ps ? n - got : ps;
			if (usercopy_in(buf + got, (const char *)(uintptr_t)cp->src + done + got, step)) {
				src_fault = 1;
				break;
			}
			got += step;
		}
		if (!got) {
			err = EFAULT;
			break;
		}
		memset(&q, 0, sizeof q);
		q.op = RQ_COPY;
		q.req = UFFDIO_COPY;
		part.dst = cp->dst + done;
		part.len = got;
		part.copy = INT64_MIN;	/* left so by a failure before the copy */
		memcpy(q.s, &part, sizeof part);
		if (call(r, &q, buf, got, &p, sizeof p, NULL, NULL, -1) < 0) {
			free(buf);
			return done ? fail(EAGAIN) : ioctl_gone(UFFDIO_COPY);
		}
		memcpy(&part, p.s, sizeof part);
		if (part.copy == INT64_MIN) {
			/* Refused before copying (a uffd not initialised): the
			 * output field is not written, as by the kernel. */
			free(buf);
			return done ? fail(EAGAIN) : fail(p.ret < 0 ? (int)p.err : EIO);
		}
		if (part.copy < 0) {
			err = (int)-part.copy;
			break;
		}
		done += (uint64_t)part.copy;
		if ((uint64_t)part.copy < got) {
			err = EAGAIN;
			break;
		}
		if (src_fault) {
			err = EFAULT;
			break;
		}
	}
	free(buf);
answer:
	out = done ? (int64_t)done : -err;
	if (usercopy_out((char *)arg + offsetof(struct uffdio_copy, copy), &out, sizeof out))
		return fail(EFAULT);
	if (!err)
		return 0;
	return fail(done ? EAGAIN : err);
}

static int remote_ioctl_at(int i, unsigned long req, unsigned long arg)
{
	struct remote *r = &g_rem[i];
	const struct ioctl_desc *d = ioctl_find(req);
	size_t size = d ? d->size : 0;
	struct rq q;
	struct rp p;

	if (!d)
		return fail(EINVAL);	/* MOVE, WRITEPROTECT, ...: not emulated */
	_Static_assert(sizeof q.s >= sizeof(struct uffdio_copy), "the largest struct fits a request");
	memset(&q, 0, sizeof q);
	if (usercopy_in(q.s, (void *)arg, size))
		return fail(EFAULT);
	if ((unsigned)req == UFFDIO_COPY) {
		struct uffdio_copy cp;
		
		memcpy(&cp, q.s, sizeof cp);
		/* A COPY that passes the checks made before the source is read
		 * (ioctl.c) brings its source along (MODE_WP too: the owner
		 * installs protected pages).  One that fails them goes as it
		 * is: the owner answers (an event being read first: EAGAIN,
		 * else EINVAL), reading no source. */
		if (d->check(&cp) == 0)
			return remote_copy(r, arg, &cp);
	}
	if ((unsigned)req == UFFDIO_ZEROPAGE &&
	    !out_writable((char *)arg + offsetof(struct uffdio_zeropage, zeropage))) {
		struct uffdio_zeropage zp;
		memcpy(&zp, q.s, sizeof zp);
		zp.mode |= UFFDIO_ZEROPAGE_MODE_DONTWAKE;
		memcpy(q.s, &zp, sizeof zp);
	}
	q.op = RQ_IOCTL;
	q.req = req;
	if (call(r, &q, NULL, 0, &p, sizeof p, NULL, NULL, -1) < 0)
		return ioctl_gone(req);
	if (usercopy_out((void *)arg, p.s, size))
		return fail(EFAULT);
	if (p.ret < 0)
		return fail(p.err);
	return (int)p.ret;
}

/* The entry of fd, attaching it if it is a foreign uffd not seen yet. */
static int entry_of(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
		return -1;
	return lookup(st.st_dev, st.st_ino);
}

int remote_ioctl(int fd, unsigned long req, unsigned long arg)
{
	int i = entry_of(fd), r;

	if (i < 0)
		return ioctl_gone(req);
	if (g_rem[i].sock < 0 && atomic_load(&g_rem[i].fresh)) {
		/* Gone before its UFFDIO_API: nothing else until one. */
		if (req != UFFDIO_API)
			return fail(EINVAL);
		if ((r = ioctl_api_gone(arg, &g_rem[i].fresh)) == 0)
			fd_mark_uffd(fd, 1);
		return r;
	}
	r = remote_ioctl_at(i, req, arg);
	if (r == 0 && req == UFFDIO_API)
		fd_mark_uffd(fd, 1);	/* (its owner cannot: not its number) */
	return r;
}

ssize_t remote_read(int fd, void *buf, size_t count)
{
	struct {
		struct rp h;
		struct uffd_msg m[MAX_READ];
	} in;
	int i = entry_of(fd), fds[MAX_READ], nfds, k;
	char tok[256];
	int flags = sys_fcntl(fd, F_GETFL, 0);

	if (i < 0)
		return fail(EBADF);
	if (count < sizeof(struct uffd_msg) || (g_rem[i].sock < 0 && atomic_load(&g_rem[i].fresh)))
		return fail(EINVAL);	/* (or gone before its UFFDIO_API) */
	for (;;) {
		struct rq q;
		/* Drain first: a message queued after this sends its own byte.
		 * The owner counts what we took (ctx_sync_ready). */
		long drained = ctx_drain(fd);
		memset(&q, 0, sizeof q);
		q.op = RQ_TAKE;
		q.req = (uint64_t)drained;
		q.max = (uint32_t)(count / sizeof(struct uffd_msg));
		if (q.max > MAX_READ)
			q.max = MAX_READ;
		k = 0;
		if (call(&g_rem[i], &q, NULL, 0, &in, sizeof in, fds, &nfds, -1) == 0) {
			if (in.h.ret < 0) {
				for (int f = 0; f < nfds; f++)
					sys_close(fds[f]);
				return fail(in.h.err);
			}
			k = in.h.n;
			/* The FORK descriptors, in order, become ours. */
			for (int j = 0, f = 0; j < k; j++) {
				if (in.m[j].event != UFFD_EVENT_FORK)
					continue;
				int fl = (int)in.m[j].arg.reserved.reserved2;
				in.m[j].arg.reserved.reserved2 = 0;
				in.m[j].arg.fork.ufd = (__u32)(f < nfds ? remote_adopt_fork_fd(fds[f++], fl) : -1);
			}
		}
		if (k > 0) {
			if (usercopy_out(buf, in.m, (size_t)k * sizeof in.m[0]))
				return fail(EFAULT);
			return (ssize_t)k * (ssize_t)sizeof in.m[0];
		}
		/* Nothing: wait on the pipe, as a local read does. */
		if (g_rem[i].sock < 0 && (flags & O_NONBLOCK))
			return fail(EAGAIN);
		ssize_t n = sys_read_cancellable(fd, tok, 1);
		if (n < 0)
			return -1;
		if (n == 0)
			return fail(EAGAIN);
	}
}

void remote_reset_after_fork(void)
{
	service_reset_after_fork();
	/* The child inherits our descriptors but not the connections'
	 * meaning: each reply would go to whichever process reads first. */
	for (int i = 0; i < REMOTE_MAX; i++) {
		if (atomic_load(&g_rem[i].used) != REM_LIVE)
			continue;
		if (g_rem[i].sock >= 0)
			fd_close_own(g_rem[i].sock);
		g_rem[i].sock = -1;
		pthread_mutex_init(&g_rem[i].mu, NULL);
		/* Reconnect lazily: forget the entry, keep nothing open. */
		fd_close_own(atomic_exchange(&g_rem[i].wr, -1));
		count(-1);
		atomic_store(&g_rem[i].used, REM_FREE);
	}
}

/* A fork child's copy of its parent's uffd: reach the parent (tried
 * once).  1 if the parent serves it: use remote_*. */
int remote_orphan(int fd, struct ctx *c)
{
	if (!c->orphan_tried) {
		c->orphan_tried = 1;
		remote_attach(fd);
	}
	return lookup(c->dev, c->ino) >= 0;
}

int remote_adopt_fork_fd(int fd, int flags)
{
	if (!(flags & O_CLOEXEC))
		sys_fcntl(fd, F_SETFD, 0);
	/* Its process may be gone already: then a uffd of nothing, as the
	 * kernel's after a spurious FORK. */
	remote_attach(fd);
	return fd;
}
