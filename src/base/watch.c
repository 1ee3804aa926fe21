/* SPDX-License-Identifier: MIT */
/* The watcher thread (see watch.h). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>
#include <sys/epoll.h>
#include "base/sys.h"
#include "base/fdreg.h"
#include "base/watch.h"

/* The functions: a handful of kinds, numbered in the epoll data's top byte. */
#define KINDS 8
#define KIND_SHIFT 56
static watch_fn g_fns[KINDS];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
/* Held by the watcher while it calls the functions, and by watch_pause. */
static pthread_mutex_t g_run = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int g_epfd = -1;
static pid_t g_pid;

static void *watch_main(void *arg)
{
	struct epoll_event ev[16];

	(void)arg;
	for (;;) {
		/* The number is read anew each time: it may have been
		 * relocated (the old file stays open until we are back). */
		int epfd = atomic_load(&g_epfd);
		int n = epoll_wait(epfd, ev, 16, -1);
		if (n < 0) {
			if (errno == EINTR || atomic_load(&g_epfd) != epfd)
				continue;
			return NULL;
		}
		pthread_mutex_lock(&g_run);
		for (int i = 0; i < n; i++) {
			uint64_t d = ev[i].data.u64;
			watch_fn fn = g_fns[d >> KIND_SHIFT];
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

void watch_relocate(int from, int to)
{
	int expected = from;

	pthread_mutex_lock(&g_lock);
	if (from >= 0)
		atomic_compare_exchange_strong(&g_epfd, &expected, to);
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
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, (size_t)256 * 1024);
	/* The watcher takes no signals: they belong to the program. */
	sigfillset(&all);
	sys_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&t, &at, watch_main, NULL) != 0) {
		fd_close_own(g_epfd);
		g_epfd = -1;
	}
	sys_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&at);
}

static int kind_of_locked(watch_fn fn)
{
	for (int k = 0; k < KINDS; k++) {
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
}
