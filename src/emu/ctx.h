/* SPDX-License-Identifier: MIT */
/*
 * Layer 4, contexts: the emulated uffd objects (ctx.c) and the emulated
 * /dev/userfaultfd descriptors (dev.c).  A uffd is the read end of a pipe,
 * known by its identity (device and inode): read-only like the kernel's, and
 * readable for poll/select/epoll while messages wait, because we keep the
 * write end and write a byte then.  Our end reports POLLERR once the last
 * read end is closed, in whatever process: that is the release.
 *
 * The table is private; ids are (generation << CTX_SLOT_BITS) | slot, so
 * an id of a released uffd does not find the next one in its slot.  Calls go down to layers 3
 * (waitq), 2 (areas) and src/base/.
 */
#ifndef UF_EMU_CTX_H
#define UF_EMU_CTX_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include "emu/waitq.h"

/* Emulated uffds per process: as many as the descriptor limit allows
 * (each costs three: the pipe and a listening socket); the table grows by
 * chunks and never moves, so a signal handler reads it without a lock. */
#define CTX_SLOT_BITS 19
#define CTX_MAX (1 << CTX_SLOT_BITS)
#define DEV_MAX 64		/* emulated /dev/userfaultfd descriptors */

enum ctx_state {
	CTX_FREE = 0,
	CTX_NEW,	/* made, UFFDIO_API not done yet */
	CTX_RUNNING,	/* UFFDIO_API done */
	CTX_ORPHAN,	/* a fork child's copy of its parent's uffd */
};

struct ctx {
	_Atomic int state;	/* enum ctx_state */
	struct wq_queue q;	/* q.id is the uffd's id */
	/* Identity of the user's end: atomics, as a lookup that read a slot's
	 * old state may read them while the slot is made anew. */
	_Atomic dev_t dev;
	_Atomic ino_t ino;
	_Atomic int ourfd;	/* our end: the pipe's write end */
	_Atomic int users;	/* threads writing to ourfd right now */
	/* Readiness bytes: counted into `sent` before their write (taken back
	 * if it fails), into `taken` once read out of the pipe by any reader
	 * of this process or, through TAKE, of another (ctx_sync_ready). */
	_Atomic uint64_t sent, taken;
	int flags;		/* creation flags */
	_Atomic uint64_t features;
	_Atomic int changing;	/* events raised and not yet read: COPY and
				 * ZEROPAGE give EAGAIN (the kernel's
				 * mmap_changing) */
	_Atomic int api_busy;	/* UFFDIO_API in progress */
	/* An in-thread pager (uf_pager_open): faults call pager_fn in the
	 * faulting thread instead of queueing messages. */
	_Atomic uintptr_t pager_fn, pager_arg;
	_Atomic int pager_fd;
	_Atomic int lsock;	/* listening for other processes (remote.c) */
	int orphan_tried;	/* fork child: tried to reach the owner */
};

/* The uffd with this id, or NULL.  async-signal-safe */
struct ctx *ctx_by_id(uint32_t id);
/* The uffd whose pipe is (dev, ino), or NULL.  async-signal-safe */
struct ctx *ctx_by_ident(dev_t dev, ino_t ino);
/* The live uffds, in slot order: start with *i = 0. */
struct ctx *ctx_next(int *i);
/* A new uffd on the pipe (dev, ino) whose write end is ourfd: new
 * (features 0) or, for a fork child, running with these features.  The
 * area lock held (or the fork child's only thread).  NULL if the table is
 * full. */
struct ctx *ctx_create_locked(dev_t dev, ino_t ino, int ourfd, int flags, uint64_t features);
/* Read every readiness byte a uffd's pipe (its read end fd) holds now,
 * without waiting: how many.  async-signal-safe */
long ctx_drain(int fd);
/* n readiness bytes of c were read out of its pipe (a reader's own wait,
 * another process's drain).  async-signal-safe */
void ctx_took(struct ctx *c, long n);
/* Watch for the release of c (the last close of its read end anywhere). */
void ctx_watch_release(struct ctx *c);
/* Release: unregister every range, wake every waiter, close our end. */
void ctx_release(struct ctx *c, uint32_t id);
/* Release now the uffds whose every descriptor is closed (in any process)
 * and that the watcher has not released yet: how many.  Not with the area
 * lock held. */
int ctx_release_closed(void);
/* One of our descriptors numbered from is now numbered to (see fdreg.h;
 * the area lock held). */
void ctx_fd_relocate(int from, int to);
void dev_fd_relocate(int from, int to);
/* Is the read end of the pipe whose write end is fd closed everywhere?
 * async-signal-safe */
int ctx_peer_gone(int fd);

/* Emulated descriptors alive (uffds, devices, foreign uffds in use). */
void ctx_live_add(int n);
int ctx_alive(void);

/* Tell poll/epoll that messages wait.  async-signal-safe */
void ctx_notify(struct ctx *c);
/* Make the readiness of the user's end (userfd) match the queue.  a-s-s */
void ctx_sync_ready(struct ctx *c, int userfd);
/* A non-cooperative event: queue msg and wait until it is read (1) or
 * abandoned at release (0).  The caller has raised c->changing.  Never in a
 * signal handler of ours, never with the area lock held. */
int ctx_event_raise(struct ctx *c, const struct uffd_msg *msg);

/* ---- emulated /dev/userfaultfd (dev.c) ---- */
/* open(2) of the device: the descriptor, or -1 and errno. */
int dev_open(int oflags);
/* Is (dev, ino) an emulated device?  async-signal-safe */
int dev_is(dev_t dev, ino_t ino);
/* The errno of read(2) (write 0) or write(2) (write 1) on device fd. */
int dev_rw_errno(int fd, int write);
/* Forget the devices whose every descriptor is closed. */
void dev_reap(void);

#endif
