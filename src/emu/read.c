/* SPDX-License-Identifier: MIT */
/*
 * read() of a uffd of this process: the messages of its queue (layer 3),
 * one at a time, as the kernel takes them.
 */
#include <fcntl.h>
#include "base/sys.h"
#include "base/usercopy.h"
#include "emu/process.h"

/* The FORK messages just taken name descriptors of ours made at fork (the
 * forking thread closes them once the event is complete): give the reader
 * its own, at the lowest free number, as the kernel does at read() time. */
static void fork_msgs_adopt(struct uffd_msg *m, int k)
{
	for (int i = 0; i < k; i++) {
		if (m[i].event != UFFD_EVENT_FORK)
			continue;
		int held = (int)m[i].arg.fork.ufd, flags = (int)m[i].arg.reserved.reserved2;
		int nfd = sys_dup_min(held, 0, flags & O_CLOEXEC);
		m[i].arg.reserved.reserved2 = 0;
		m[i].arg.fork.ufd = (__u32)(nfd >= 0 ? remote_adopt_fork_fd(nfd, flags) : -1);
	}
}

ssize_t read_local(struct ctx *c, int fd, void *buf, size_t count)
{
	struct uffd_msg msgs[1];
	char tok;

	if (atomic_load(&c->state) == CTX_NEW || count < sizeof(struct uffd_msg)) {
		errno = EINVAL;
		return -1;
	}
	for (;;) {
		size_t max = count / sizeof(struct uffd_msg);
		ssize_t k = 0;
		struct wq_taken later;

		/* As the kernel: one message at a time, as many as fit, each
		 * taken from the queue before it is copied.  A copy that fails
		 * loses its message and ends the read: EFAULT if it was the
		 * first, else the messages copied before it; the rest stay
		 * queued. */
		while ((size_t)k < max && atomic_load(&c->state) == CTX_RUNNING &&
		       wq_take(&c->q, msgs, 1, &later) == 1) {
			fork_msgs_adopt(msgs, 1);
			wq_complete(&later);
			/* (Integer arithmetic: buf may be NULL.) */
			if (usercopy_out((void *)((uintptr_t)buf + (size_t)k * sizeof msgs[0]), msgs,
					 sizeof msgs[0]) < 0) {
				if (!k)
					k = -1;
				break;
			}
			k++;
		}
		if (k) {
			ctx_sync_ready(c, fd);
			if (k < 0) {
				errno = EFAULT;
				return -1;
			}
			return k * (ssize_t)sizeof msgs[0];
		}
		/* Nothing queued: wait on the pipe itself, so that O_NONBLOCK,
		 * EINTR and SA_RESTART behave exactly as for any descriptor. */
		ssize_t n = sys_read_cancellable(fd, &tok, 1);
		if (n < 0)
			return -1;
		ctx_took(c, n);
		if (n == 0) {		/* our end is gone: cannot happen while open */
			errno = EAGAIN;
			return -1;
		}
	}
}
