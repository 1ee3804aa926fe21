/* SPDX-License-Identifier: MIT */
/*
 * Layer 6, a uffd across the life of the process and beyond it:
 *
 *   events.c  non-cooperative events: which uffds an operation on the
 *             program's memory tells (REMOVE, UNMAP, REMAP)
 *   vmops.c   the program's munmap/mmap/mremap/mprotect/madvise over areas
 *             (called by src/interpose/memory.c), with their events
 *   fork.c    fork(): private copies for the child, UFFD_EVENT_FORK
 *   remote.c  a uffd used from another process: the owner's service, the
 *             client
 *   read.c    read() of a uffd of this process
 *
 * Calls go down to layers 5 to 1 and src/base/.
 */
#ifndef UF_EMU_PROCESS_H
#define UF_EMU_PROCESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "emu/ctx.h"

/* ---- events (events.c) ---- */
enum ev_kind { EV_UNMAP, EV_REMOVE, EV_REMAP };
#define EV_MAX 64		/* events one operation raises, at most */
struct ev {
	uint32_t ctx;
	uintptr_t start, end;
};
/* The events an operation on [start, end) raises, into ev[] (area lock
 * held); each uffd named gets its `changing` raised.  Returns the count. */
int ev_collect_locked(enum ev_kind kind, uintptr_t start, uintptr_t end, struct ev *ev, int max);
/* Send one event and wait until it is read (or its uffd released); the
 * area lock not held. */
int ev_send(enum ev_kind kind, const struct ev *e, uintptr_t to);
/* Lower `changing` again. */
void ev_done(const struct ev *ev, int n);

/* ---- the program's memory calls (vmops.c); real: the C library's ---- */
int vm_meets(const void *addr, size_t len);
int vm_munmap(void *addr, size_t len, int (*real)(void *, size_t));
void *vm_mmap_fixed(void *addr, size_t len, int prot, int flags, int fd, off_t off,
		    void *(*real)(void *, size_t, int, int, int, off_t));
void *vm_mremap(void *old, size_t oldlen, size_t newlen, int flags, void *want,
		void *(*real)(void *, size_t, size_t, int, ...));
int vm_mprotect(void *addr, size_t len, int prot, int (*real)(void *, size_t, int));
int vm_madvise(void *addr, size_t len, int advice, int (*real)(void *, size_t, int));
/* fallocate(PUNCH_HOLE) of [off, off+len) of fd succeeded: the whole pages
 * punched out of a registered shared memory file are missing again. */
void vm_punched(int fd, off_t off, off_t len);

/* ---- fork (fork.c) ---- */
void fork_init(void);		/* the atfork handlers, once */
int fork_active(void);		/* are they installed? */
void fork_prepare(void);
void fork_parent(void);
void fork_child(void);

/* ---- a uffd of another process (remote.c) ---- */
/* Serve c to other processes (its listening socket).  0 or -1. */
int remote_listen(struct ctx *c);
/* Is (dev, ino) a foreign uffd in use here?  async-signal-safe */
int remote_known(dev_t dev, ino_t ino);
/* Use the uffd fd, owned by another process, from here: 0, or -1. */
int remote_attach(int fd);
/* A fork child's copy of its parent's uffd: 1 if the parent serves it
 * (then use remote_ioctl/remote_read). */
int remote_orphan(int fd, struct ctx *c);
/* A FORK message's descriptor arrived (fd): give it the creation flags of
 * the parent uffd and make it usable from here; returns its number. */
int remote_adopt_fork_fd(int fd, int flags);
/* Forget the foreign uffds whose every read end is closed. */
void remote_reap(void);
/* One of our descriptors numbered from is now numbered to (see fdreg.h;
 * the watcher paused). */
void remote_fd_relocate(int from, int to);
int remote_ioctl(int fd, unsigned long req, unsigned long arg);
ssize_t remote_read(int fd, void *buf, size_t count);
/* Fork child: the connections are the parent's. */
void remote_reset_after_fork(void);

/* ---- PAGEMAP_SCAN (pagemap.c) ---- */
/* Is fd /proc/PID/pagemap of this process (or of one of its threads)? */
int pagemap_is_self(int fd);
/* PAGEMAP_SCAN on fd, this process's pagemap: the regions written, or a
 * negative errno, as the kernel answers it. */
long pagemap_scan(int fd, unsigned long arg);
/* pread(2) of fd, this process's pagemap, with the entries of the pages of
 * our areas made the kernel's (anonymous, uffd-wp bit 57, no guard
 * markers).  -1 and errno. */
ssize_t pagemap_pread(int fd, void *buf, size_t n, uint64_t off);

/* ---- read() of a uffd of this process (read.c) ---- */
ssize_t read_local(struct ctx *c, int fd, void *buf, size_t count);

#endif
