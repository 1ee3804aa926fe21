/* SPDX-License-Identifier: MIT */
/* The watcher thread (see watch.h). */
#include <pthread.h>
#include <signal.h>
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
static int g_epfd = -1;
static pid_t g_pid;

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
			uint64_t d = ev[i].data.u64;
			watch_fn fn = g_fns[d >> KIND_SHIFT];
			if (fn)
				fn(d & ((1ULL << KIND_SHIFT) - 1), ev[i].events);
		}
	}
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
	if (pthread_create(&t, &at, watch_main, (void *)(intptr_t)g_epfd) != 0) {
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
	if (g_epfd >= 0)
		fd_close_own(g_epfd);
	g_epfd = -1;
}
