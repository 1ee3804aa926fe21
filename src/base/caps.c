/* SPDX-License-Identifier: MIT */
/* What this machine offers the emulation, probed once. */
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/mman.h>
#include "base/caps.h"
#include "base/options.h"
#include "base/sys.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

struct caps caps;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_err;

/*
 * Does a write to a pipe take RWF_NOSIGNAL (EPIPE without SIGPIPE, Linux
 * 6.18+)?  A kernel that does not know a flag refuses it (EOPNOTSUPP), so
 * one write into a pipe with a reader tells.
 */
static int probe_write_nosignal(void)
{
	int p[2], ok;
	struct iovec iov = { (void *)"p", 1 };

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return 0;
	ok = sys_writev_flags(p[1], &iov, 1, RWF_NOSIGNAL) == 1;
	sys_close(p[0]);
	sys_close(p[1]);
	return ok;
}

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

static void probe(void)
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
		g_err = -errno;
		if (fd >= 0)
			sys_close(fd);
		return;
	}
	p = sys_mmap(NULL, 2 * (size_t)ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		g_err = -errno;
		sys_close(fd);
		return;
	}
	caps.guard_markers = opt_guard_markers() &&
			     sys_madvise(p, (size_t)ps, MADV_GUARD_INSTALL) == 0 &&
			     sys_madvise(p, (size_t)ps, MADV_GUARD_REMOVE) == 0;
	{
		/* cachestat(2): the page cache's presence of shared memory. */
		uint64_t range[2] = { 0, (uint64_t)ps }, cs[5];
		caps.cachestat = sys_call4(451 /* SYS_cachestat */, fd, (long)range, (long)cs, 0) == 0;
	}
	caps.populate = sys_madvise(p, (size_t)ps, MADV_POPULATE_WRITE) == 0 &&
			sys_madvise(p, (size_t)ps, MADV_POPULATE_READ) == 0 &&
			populate_pays(p, (size_t)ps);
	/* Spinning pays only with a CPU left over for the thread that
	 * resolves: leave it one. */
	caps.max_spinners = (int)sysconf(_SC_NPROCESSORS_ONLN) - 1;
	caps.spin_ns = opt_spin_us() * 1000;
	caps.event_vfork = opt_event_vfork();
	caps.write_nosignal = probe_write_nosignal();
	sys_munmap(p, 2 * (size_t)ps);
	sys_close(fd);
	/* Without guard markers the emulation protects missing pages instead
	 * (see emu/pages.c): it works, within vm.max_map_count mappings. */
	g_err = 0;
}

int caps_init(void)
{
	pthread_once(&g_once, probe);
	return g_err;
}

int caps_map_files(void)
{
	static _Atomic long g_for_uid = -1;	/* euid the answer is for */
	static _Atomic int g_ok;
	long uid = (long)geteuid();
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	char path[64];
	void *p;
	int fd;

	if (atomic_load(&g_for_uid) == uid)
		return atomic_load(&g_ok);
	p = sys_mmap(NULL, ps, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 0;
	snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx", (unsigned long)p,
		 (unsigned long)p + (unsigned long)ps);
	fd = sys_open(path, O_RDONLY | O_CLOEXEC, 0);
	sys_munmap(p, ps);
	if (fd >= 0)
		sys_close(fd);
	atomic_store(&g_ok, fd >= 0);
	atomic_store(&g_for_uid, uid);
	return fd >= 0;
}
