/* SPDX-License-Identifier: MIT */
/*
 * close, close_range, closefrom: the emulation's own descriptors (see
 * src/base/fdreg.h) stay open when the program closes descriptors it did
 * not open, so that their numbers never come to name one of the program's
 * files (a memfd of ours written into the program's file, a pipe of ours
 * read by the program).  A close of one of them succeeds and does nothing.
 *
 * dup2, dup3: the program gets a number it believes free; if it is one of
 * ours, our file moves to another number first (emu_fd_relocate).
 *
 * close, dup2 and dup3 are weak: the drop-in (dropin.c) has its own, which
 * do the same and more.
 */
#include <errno.h>
#include <unistd.h>
#include "base/fdreg.h"
#include "base/sys.h"
#include "emu/emu.h"
#include "interpose/real.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

UF_UNINSTRUMENTED static int raw_close(int fd)
{
	return (int)sys_call1(SYS_close, fd);
}

UF_UNINSTRUMENTED static int raw_close_range(unsigned int first, unsigned int last, int flags)
{
	return (int)sys_call4(SYS_close_range, first, last, flags, 0);
}

UF_UNINSTRUMENTED static int raw_dup2(int oldfd, int newfd)
{
	if (oldfd == newfd)
		return (int)sys_call4(SYS_fcntl, oldfd, F_GETFD, 0, 0) < 0 ? -1 : newfd;
	return (int)sys_call4(SYS_dup3, oldfd, newfd, 0, 0);
}

UF_UNINSTRUMENTED static int raw_dup3(int oldfd, int newfd, int flags)
{
	return (int)sys_call4(SYS_dup3, oldfd, newfd, flags, 0);
}

/* After a call that may have closed or replaced descriptors: R, its
 * result, unchanged (the generation changes whatever it was: a close that
 * fails with EINTR has closed). */
UF_UNINSTRUMENTED int fds_changed(int r)
{
	fd_numbers_changed();
	return r;
}

/* Before a dup2 or dup3 onto newfd: 0, or -1 and errno. */
int fds_before_dup(int oldfd, int newfd)
{
	int r;

	if (oldfd == newfd || !fd_ours(newfd))
		return 0;	/* (dup2 changes nothing; dup3 says EINVAL) */
	if ((r = emu_fd_relocate(newfd)) < 0) {
		errno = -r;
		return -1;
	}
	return 0;
}

UF_EXPORT UF_UNINSTRUMENTED __attribute__((weak)) int dup2(int oldfd, int newfd)
{
	UF_REAL_OR(dup2, raw_dup2);
	if (fds_before_dup(oldfd, newfd) < 0)
		return -1;
	return fds_changed(real_dup2(oldfd, newfd));
}

UF_EXPORT UF_UNINSTRUMENTED __attribute__((weak)) int dup3(int oldfd, int newfd, int flags)
{
	UF_REAL_OR(dup3, raw_dup3);
	if (fds_before_dup(oldfd, newfd) < 0)
		return -1;
	return fds_changed(real_dup3(oldfd, newfd, flags));
}

UF_EXPORT UF_UNINSTRUMENTED __attribute__((weak)) int close(int fd)
{
	UF_REAL_OR(close, raw_close);
	if (fd_ours(fd))
		return 0;
	return fds_changed(real_close(fd));
}

/* close_range without our descriptors: the pieces between them. */
UF_EXPORT UF_UNINSTRUMENTED int close_range(unsigned int first, unsigned int last, int flags)
{
	unsigned int at = first;

	UF_REAL_OR(close_range, raw_close_range);
	/* Close-on-exec is already set on ours: nothing to keep from it. */
	if ((flags & CLOSE_RANGE_CLOEXEC) || first > last)
		return fds_changed(real_close_range(first, last, flags));
	for (unsigned int fd = first; fd <= last && fd < (1U << 20); fd++) {
		if (!fd_ours((int)fd))
			continue;
		if (fd > at && fds_changed(real_close_range(at, fd - 1, flags)) < 0)
			return -1;
		at = fd + 1;
		if (fd == last)
			return 0;
	}
	return at <= last ? fds_changed(real_close_range(at, last, flags)) : 0;
}

UF_EXPORT UF_UNINSTRUMENTED void closefrom(int lowfd)
{
	close_range(lowfd < 0 ? 0 : (unsigned int)lowfd, ~0U, 0);
}
