/* SPDX-License-Identifier: MIT */
/*
 * Shared anonymous memory made reachable.  The emulation registers shared
 * memory through a descriptor of its file (COPY writes the file, cachestat
 * says what it has: area-register.c).  The file of a MAP_SHARED|
 * MAP_ANONYMOUS mapping has no descriptor anywhere: only
 * /proc/self/map_files reaches it, and that needs CAP_SYS_ADMIN or
 * CAP_CHECKPOINT_RESTORE, which an ordinary process (a container under the
 * default profile) lacks.  There, when the emulation is the back-end, the
 * mmap interposer makes such a mapping a mapping of a memfd of ours
 * instead: the same shared memory (shmem; hugetlb for MAP_HUGETLB, of the
 * size the flags ask), the same size (a shared anonymous mapping's file is
 * as long as the mapping), shared across fork the same way.  The memfd
 * stays open, and REGISTER finds it among the process's descriptors.
 *
 * Bounds: at most ANON_MAX such descriptors are open.  When the table is
 * full, the descriptors whose memory is no longer mapped anywhere in this
 * process are closed (one read of /proc/self/maps); if none is, the
 * mapping is made the kernel's way, and its REGISTER gives EINVAL as
 * before.  What differs from the kernel's mapping: its name in
 * /proc/PID/maps ("/memfd:userfault-shared (deleted)" for "/dev/zero
 * (deleted)"), and one descriptor of the process's (kept open against the
 * program's close: fdreg.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include "base/caps.h"
#include "base/fdreg.h"
#include "base/maps.h"
#include "base/sys.h"
#include "emu/emu.h"

#define ANON_MAX 128

static struct {
	int fd;
	unsigned long ino;
} g_anon[ANON_MAX];
static int g_n;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

/* Close the descriptors whose memory no mapping holds any more. */
static void scavenge(void)
{
	struct vma *v;
	int n = maps_in(0, UINTPTR_MAX, &v);

	if (n < 0)
		return;
	for (int i = 0; i < g_n;) {
		int mapped = 0;
		for (int j = 0; j < n && !mapped; j++)
			mapped = v[j].ino == g_anon[i].ino && v[j].shared;
		if (mapped) {
			i++;
			continue;
		}
		fd_close_own(g_anon[i].fd);
		g_anon[i] = g_anon[--g_n];
	}
	free(v);
}

/* A fork in another thread while the table is locked leaves it usable in
 * the child. */
static void lock(void)
{
	pthread_mutex_lock(&g_lock);
}

static void unlock(void)
{
	pthread_mutex_unlock(&g_lock);
}

static void at_fork(void)
{
	pthread_atfork(lock, unlock, unlock);
}

int emu_anon_shared_fd(size_t len, int flags)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	unsigned mfd = MFD_CLOEXEC;
	struct stat st;
	int fd;

	if (caps_init() < 0 || len == 0 || len > caps.task_size)
		return -1;	/* the kernel's mmap says why */
	pthread_once(&once, at_fork);
	if (flags & MAP_HUGETLB)
		mfd |= MFD_HUGETLB | (unsigned)((unsigned)flags & ((unsigned)MAP_HUGE_MASK << MAP_HUGE_SHIFT));
	pthread_mutex_lock(&g_lock);
	if (g_n == ANON_MAX)
		scavenge();
	fd = -1;
	if (g_n < ANON_MAX)
		fd = memfd_create("userfault-shared", mfd);
	if (fd >= 0 && (flags & MAP_HUGETLB)) {
		/* A hugetlb file is as long as whole huge pages. */
		struct statfs sf;
		if (fstatfs(fd, &sf) == 0 && sf.f_bsize > 0)
			len = (len + (size_t)sf.f_bsize - 1) & ~((size_t)sf.f_bsize - 1);
	}
	if (fd >= 0 && (ftruncate(fd, (off_t)len) < 0 || fstat(fd, &st) < 0)) {
		sys_close(fd);
		fd = -1;
	}
	if (fd >= 0) {
		fd_own(fd);
		g_anon[g_n].fd = fd;
		g_anon[g_n++].ino = st.st_ino;
	}
	pthread_mutex_unlock(&g_lock);
	return fd;
}

void emu_anon_shared_mapped(int fd, int ok)
{
	if (fd < 0 || ok)
		return;
	pthread_mutex_lock(&g_lock);
	for (int i = 0; i < g_n; i++)
		if (g_anon[i].fd == fd) {
			fd_close_own(fd);
			g_anon[i] = g_anon[--g_n];
			break;
		}
	pthread_mutex_unlock(&g_lock);
}

void anon_shared_fd_relocate(int fd, int to)
{
	pthread_mutex_lock(&g_lock);
	for (int i = 0; i < g_n; i++)
		if (g_anon[i].fd == fd)
			g_anon[i].fd = to;
	pthread_mutex_unlock(&g_lock);
}
