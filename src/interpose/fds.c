/* SPDX-License-Identifier: MIT */
/*
 * close, close_range, closefrom: the emulation's own descriptors (see
 * src/base/fdreg.h) stay open when the program closes descriptors it did
 * not open, so that their numbers never come to name one of the program's
 * files (a memfd of ours written into the program's file, a pipe of ours
 * read by the program).  A close of one of them succeeds and does nothing.
 *
 * close is weak: the drop-in (dropin.c) has its own, which does the same
 * and more.
 */
#include <errno.h>
#include <unistd.h>
#include "base/fdreg.h"
#include "base/sys.h"
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

UF_EXPORT UF_UNINSTRUMENTED __attribute__((weak)) int close(int fd)
{
	UF_REAL_OR(close, raw_close);
	if (fd_ours(fd))
		return 0;
	return real_close(fd);
}

/* close_range without our descriptors: the pieces between them. */
UF_EXPORT UF_UNINSTRUMENTED int close_range(unsigned int first, unsigned int last, int flags)
{
	unsigned int at = first;

	UF_REAL_OR(close_range, raw_close_range);
	/* Close-on-exec is already set on ours: nothing to keep from it. */
	if ((flags & CLOSE_RANGE_CLOEXEC) || first > last)
		return real_close_range(first, last, flags);
	for (unsigned int fd = first; fd <= last && fd < (1U << 20); fd++) {
		if (!fd_ours((int)fd))
			continue;
		if (fd > at && real_close_range(at, fd - 1, flags) < 0)
			return -1;
		at = fd + 1;
		if (fd == last)
			return 0;
	}
	return at <= last ? real_close_range(at, last, flags) : 0;
}

UF_EXPORT UF_UNINSTRUMENTED void closefrom(int lowfd)
{
	close_range(lowfd < 0 ? 0 : (unsigned int)lowfd, ~0U, 0);
}
