/* SPDX-License-Identifier: MIT */
/* The watcher thread (see watch.h). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include "base/sys.h"
#include "base/fdreg.h"
#include "base/watch.h"

/* The functions: a handful of kinds, numbered in the epoll data's top byte. */
#define KINDS 8
#define KIND_SHIFT 56
static watch_fn g_fns[KINDS];
#define KIND_KICK (KINDS - 1)		/* our own: the kick below */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
/* Held by the watcher while it calls the functions, and by watch_pause. */
static pthread_mutex_t g_run = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int g_epfd = -1;
/* The epoll number the watcher is about to wait on or waits on (-1: it
 * does not), and an eventfd in that epoll that makes it come out. */
static _Atomic uint32_t g_waiting_on = (uint32_t)-1;
static _Atomic int g_kick = -1;
static pid_t g_pid;

static void *watch_main(void *arg)
{
	struct epoll_event ev[16];

	(void)arg;
	for (;;) {
		/* The number is read anew each time: it may have been
		 * relocated.  Said first, then checked: a relocation either
		 * sees it and kicks us out, or we see the new number. */
		int epfd = atomic_load(&g_epfd), n;

		atomic_store(&g_waiting_on, (uint32_t)epfd);
		if (atomic_load(&g_epfd) != epfd)
			continue;
		n = epoll_wait(epfd, ev, 16, -1);
		atomic_store(&g_waiting_on, (uint32_t)-1);
		sys_futex_wake(&g_waiting_on, 1);
		if (n < 0) {
			if (errno == EINTR || atomic_load(&g_epfd) != epfd)
				continue;
			return NULL;
		}
		pthread_mutex_lock(&g_run);
		for (int i = 0; i < n; i++) {
			uint64_t d = ev[i].data.u64, v;
			watch_fn fn = g_fns[d >> KIND_SHIFT];
			if ((d >> KIND_SHIFT) == KIND_KICK) {
				while (sys_read(atomic_load(&g_kick), &v, sizeof v) == (ssize_t)sizeof v)
					;
				continue;
			}
			if (fn)
				fn(d & ((1ULL << KIND_SHIFT) - 1), ev[i].events);
		}
		pthread_mutex_unlock(&g_run);
	}
}

void watch_pause(void)
{
	pthread_mutex_lock(&g_run);
}

/* (g_run held: the watcher is not between two functions.) */
void watch_relocate(int from, int to)
{
	int expected = from;

	if (from < 0)
		return;
	pthread_mutex_lock(&g_lock);
	atomic_compare_exchange_strong(&g_kick, &expected, to);
	expected = from;
	if (atomic_compare_exchange_strong(&g_epfd, &expected, to)) {
		/* The watcher may wait on the old number (or be about to):
		 * get it out before the number changes hands. */
		uint64_t one = 1;
		if (atomic_load(&g_waiting_on) == (uint32_t)from &&
		    sys_write(atomic_load(&g_kick), &one, sizeof one) == (ssize_t)sizeof one)
			while (atomic_load(&g_waiting_on) == (uint32_t)from)
				sys_futex_wait(&g_waiting_on, (uint32_t)from, NULL);
	}
	pthread_mutex_unlock(&g_lock);
}

void watch_resume(void)
{
	pthread_mutex_unlock(&g_run);
}

/* Start the watcher of this process if needed (g_lock held). */
static void start_locked(void)
{
	pthread_t t;
	pthread_attr_t at;
	sigset_t all, old;

	if (g_epfd >= 0 && g_pid == getpid())
		return;
	g_epfd = epoll_create1(EPOLL_CLOEXEC);
	g_pid = getpid();
	if (g_epfd < 0)
		return;
	fd_own(g_epfd);
	g_kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g_kick >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)KIND_KICK << KIND_SHIFT };
		fd_own(g_kick);
		if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, g_kick, &ev) < 0) {
			fd_close_own(g_kick);
			g_kick = -1;
		}
	}
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, (size_t)256 * 1024);
	/* The watcher takes no signals: they belong to the program. */
	sigfillset(&all);
	sys_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&t, &at, watch_main, NULL) != 0) {
		fd_close_own(g_epfd);
		g_epfd = -1;
		if (g_kick >= 0)
			fd_close_own(g_kick);
		g_kick = -1;
	}
	sys_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&at);
}

static int kind_of_locked(watch_fn fn)
{
	for (int k = 0; k < KIND_KICK; k++) {
		if (g_fns[k] == fn)
			return k;
		if (!g_fns[k]) {
			g_fns[k] = fn;
			return k;
		}
	}
	return -1;
}

int watch_add(int fd, uint32_t events, watch_fn fn, uint64_t data)
{
	struct epoll_event ev = { .events = events };
	int r = -1, k;

	pthread_mutex_lock(&g_lock);
	start_locked();
	k = kind_of_locked(fn);
	if (g_epfd >= 0 && k >= 0) {
		ev.data.u64 = (uint64_t)k << KIND_SHIFT | data;
		r = epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &ev);
	}
	pthread_mutex_unlock(&g_lock);
	return r;
}

void watch_del(int fd)
{
	pthread_mutex_lock(&g_lock);
	if (g_epfd >= 0)
		epoll_ctl(g_epfd, EPOLL_CTL_DEL, fd, NULL);
	pthread_mutex_unlock(&g_lock);
}

void watch_reset_after_fork(void)
{
	/* The watcher thread does not exist in a fork child: our copy of its
	 * epoll descriptor goes (the parent keeps its own). */
	pthread_mutex_init(&g_lock, NULL);
	pthread_mutex_init(&g_run, NULL);
	if (g_epfd >= 0)
		fd_close_own(g_epfd);
	g_epfd = -1;
	if (g_kick >= 0)
		fd_close_own(g_kick);
	g_kick = -1;
	atomic_store(&g_waiting_on, (uint32_t)-1);
}
