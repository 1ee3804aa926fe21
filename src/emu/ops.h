/* SPDX-License-Identifier: MIT */
/*
 * Layer 5, the operations on one uffd in this process: its ioctls
 * (ioctl.c, one description of each, also used by the remote path) and its
 * faults (fault.c, the SIGSEGV handler).  Calls go down to layers 4 to 1
 * and src/base/.
 */
#ifndef UF_EMU_OPS_H
#define UF_EMU_OPS_H

#include <stddef.h>
#include <stdint.h>
#include "emu/ctx.h"

/* ---- ioctls (ioctl.c) ---- */
/* What each uffd ioctl is: its number, its struct, where its output field
 * is, what a uffd whose process is gone answers, and its handler here. */
struct ioctl_desc {
	unsigned req;		/* UFFDIO_* */
	const char *name;
	size_t size;		/* the struct */
	size_t in;		/* bytes read before the call is checked */
	size_t out;		/* offset of the output field (0: none) */
	int gone_errno;		/* the answer when the owner is gone (0: 0) */
	/* The checks made on the struct before any memory is looked at:
	 * 0 or the errno.  NULL: none. */
	int (*check)(const void *arg);
	/* The handler: -1 and errno, or the result. */
	int (*run)(struct ctx *c, int fd, unsigned long arg);
};
/* The description of req, or NULL (not a uffd ioctl the emulation has:
 * EINVAL, as a kernel without it). */
const struct ioctl_desc *ioctl_find(unsigned long req);
/* What a uffd whose process is gone answers req (section 13.4): -1 and
 * errno, or 0. */
int ioctl_gone(unsigned long req);
/* UFFDIO_API on a uffd whose process is gone before its own UFFDIO_API
 * (*fresh is 1 until one succeeds): the kernel checks and answers it as
 * on a live uffd, once.  0, or -1 and errno. */
int ioctl_api_gone(unsigned long arg, _Atomic int *fresh);
/* A uffd ioctl on a uffd of this process (fd: its descriptor, or -1 when
 * the call comes from another process).  -1 and errno. */
int ioctl_local(struct ctx *c, int fd, unsigned long req, unsigned long arg);
/* The ioctls the kernel's VFS answers for any file (FIOCLEX, FIONBIO, ...):
 * 1 if req is one, with the result in *ret.  async-signal-safe */
int ioctl_vfs(int fd, unsigned long req, unsigned long arg, int *ret);
/* The features the emulation implements.  (REGISTER answers the kernel's
 * ioctls.) */
#define EMU_FEATURES_ANY (UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | \
			 UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_MISSING_HUGETLBFS | UFFD_FEATURE_SIGBUS | \
			 UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EXACT_ADDRESS | UFFD_FEATURE_POISON | \
			 UFFD_FEATURE_MOVE)
/* Shared memory needs guard markers on it (Linux 6.15+), and cachestat. */
#define EMU_SHMEM	(caps.guard_markers && caps.cachestat)
/* Write protection (private anonymous memory) needs guard markers too:
 * missing pages must fault apart from the protection. */
#define EMU_WP		(caps.guard_markers)
#define EMU_FEATURES	(EMU_FEATURES_ANY | (EMU_SHMEM ? UFFD_FEATURE_MISSING_SHMEM : 0) | \
			 (EMU_WP ? UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED | \
			  UFFD_FEATURE_WP_ASYNC : 0) | \
			 (EMU_WP && EMU_SHMEM ? UFFD_FEATURE_WP_HUGETLBFS_SHMEM : 0) | \
			 (EMU_SHMEM ? UFFD_FEATURE_MINOR_SHMEM : 0) | UFFD_FEATURE_MINOR_HUGETLBFS)

/* ---- UFFDIO_MOVE (move.c) ---- */
/* Move [src, src+len) to [dst, dst+len) for uffd c, once the arguments are
 * checked: the bytes done (holes included with ALLOW_SRC_HOLES), or -errno
 * if none.  Not async-signal-safe. */
long move_do(struct ctx *c, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode);

/* ---- faults (fault.c) ---- */
/* Install the SIGSEGV handler (once).  0 or -errno. */
int fault_install(void);
/* The context of fd if it is the pager whose callback runs on this thread,
 * else NULL.  async-signal-safe */
struct ctx *fault_pager_hint(int fd);

#endif
