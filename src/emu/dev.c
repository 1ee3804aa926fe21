/* SPDX-License-Identifier: MIT */
/*
 * Emulated /dev/userfaultfd descriptors: like a uffd, the read end of a
 * pipe known by identity, whose write end we keep to see its last close;
 * acc is the access mode it was opened with.  The pipe holds one byte for
 * good: the kernel's device has no poll method, so poll() reports it
 * readable (and writable) whatever happens.
 */
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include "base/caps.h"
#include "base/fdreg.h"
#include "base/sys.h"
#include "emu/ctx.h"

enum dev_state { DEV_FREE = 0, DEV_LIVE, DEV_SETUP, DEV_CLOSING };

static struct {
	_Atomic int state;	/* enum dev_state */
	dev_t dev;
	ino_t ino;
	_Atomic int ourfd;
	int acc;
} g_devs[DEV_MAX];

void dev_reap(void)
{
	fd_pin();
	for (int i = 0; i < DEV_MAX; i++) {
		int expected = DEV_LIVE;
		if (atomic_load(&g_devs[i].state) == DEV_LIVE && ctx_peer_gone(atomic_load(&g_devs[i].ourfd)) &&
		    atomic_compare_exchange_strong(&g_devs[i].state, &expected, DEV_CLOSING)) {
			fd_close_own(atomic_load(&g_devs[i].ourfd));
			atomic_store(&g_devs[i].state, DEV_FREE);
			ctx_live_add(-1);
		}
	}
	fd_unpin();
}

void dev_fd_relocate(int from, int to)
{
	for (int i = 0; i < DEV_MAX; i++) {
		int expected = from;
		if (atomic_load(&g_devs[i].state) != DEV_FREE)
			atomic_compare_exchange_strong(&g_devs[i].ourfd, &expected, to);
	}
}

static int find(dev_t dev, ino_t ino)
{
	for (int i = 0; i < DEV_MAX; i++)
		if (atomic_load(&g_devs[i].state) == DEV_LIVE && g_devs[i].ino == ino &&
		    g_devs[i].dev == dev)
			return i;
	return -1;
}

/* async-signal-safe */
int dev_is(dev_t dev, ino_t ino)
{
	return find(dev, ino) >= 0;
}

int dev_rw_errno(int fd, int write)
{
	struct stat st;
	int i, acc;

	/* The device has neither method: the kernel's VFS answers EINVAL
	 * where the descriptor was opened for it, else EBADF. */
	if (fstat(fd, &st) < 0 || (i = find(st.st_dev, st.st_ino)) < 0)
		return EBADF;
	acc = g_devs[i].acc;
	if (acc == O_RDWR || acc == (write ? O_WRONLY : O_RDONLY))
		return EINVAL;
	return EBADF;
}

int dev_open(int oflags)
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
	dev_reap();
	/* Our end does not block either: it only ever gets the one byte. */
	if (pipe2(pfd, O_CLOEXEC | (oflags & O_NONBLOCK)) < 0)
		return -1;
	if (!(oflags & O_CLOEXEC))
		sys_fcntl(pfd[0], F_SETFD, 0);
	if (fstat(pfd[0], &st) < 0 || sys_write(pfd[1], "d", 1) != 1)
		goto fail;
	for (int i = 0; i < DEV_MAX; i++) {
		int expected = DEV_FREE;
		if (atomic_compare_exchange_strong(&g_devs[i].state, &expected, DEV_SETUP)) {
			g_devs[i].dev = st.st_dev;
			g_devs[i].ino = st.st_ino;
			atomic_store(&g_devs[i].ourfd, pfd[1]);
			fd_own(pfd[1]);
			g_devs[i].acc = oflags & O_ACCMODE;
			ctx_live_add(1);
			atomic_store(&g_devs[i].state, DEV_LIVE);
			return pfd[0];
		}
	}
	errno = EMFILE;
fail:
	r = errno;
	sys_close(pfd[0]);
	sys_close(pfd[1]);
	errno = r;
	return -1;
}
