/* SPDX-License-Identifier: MIT */
/*
 * Layer 7, the emulated back-end's entry points (emu.c), for the public API
 * (src/api/) and the interposers (src/interpose/).  -1 and errno unless
 * noted.  Below this header lie, from the top: layer 6 (process.h: events,
 * the program's memory calls, fork, other processes, read), 5 (ops.h:
 * ioctls, faults), 4 (ctx.h: uffd objects), 3 (waitq.h), 2 (area.h),
 * 1 (pages.h), and src/base/.  HACKING.md draws them.
 *
 * Model.  A registered range of private anonymous memory is turned into an
 * "area": a MAP_SHARED mapping of a memfd (its store) at the same address,
 * with the bytes it held.  A missing page is a hole in the memfd with a
 * guard marker (MADV_GUARD_INSTALL) on its page-table entry, so any
 * user-mode access raises SIGSEGV without splitting the mapping (without
 * markers, it is PROT_NONE instead: see pages.c).  UFFDIO_COPY writes the
 * page into the memfd with pwrite() (complete before anyone can see it),
 * then removes the marker and populates the entry, so the page appears
 * whole, at once, to every thread.  The SIGSEGV handler turns a fault on a
 * missing page into a uffd_msg in a waiter slot and sleeps on a futex until
 * a wake covers it.  The uffd itself is the read end of a pipe (see ctx.h).
 */
#ifndef UF_EMU_EMU_H
#define UF_EMU_EMU_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "userfault.h"

struct ctx;
struct iovec;

/* What a descriptor is to the emulation. */
enum emu_kind {
	EMU_NONE = 0,
	EMU_UFFD,	/* an emulated uffd of this process */
	EMU_DEV,	/* an emulated /dev/userfaultfd */
	EMU_REMOTE,	/* an emulated uffd of another process */
};

/* Any emulated descriptor alive?  (The pass-through's fast path.) */
int emu_in_use(void);
/* 0 if the emulation can work here, else a negative errno; *guard_markers
 * (may be NULL) says whether missing pages use guard markers. */
int emu_check(int *guard_markers);
/* What fd is (one fstat); *ctx (may be NULL) gets the uffd's context.
 * async-signal-safe */
enum emu_kind emu_fd_kind(int fd, struct ctx **ctx);

int emu_userfaultfd(int flags);
int emu_open_dev(int oflags);
/* On a descriptor emu_fd_kind said is ours (kind and ctx from it). */
int emu_ioctl(int fd, enum emu_kind kind, struct ctx *c, unsigned long req, unsigned long arg);
ssize_t emu_read(int fd, enum emu_kind kind, struct ctx *c, void *buf, size_t count);
/* PAGEMAP_SCAN on fd: 1 and *ret (the ioctl's result: -1 and errno, or
 * the regions found) when the emulation answers it (fd is this process's
 * pagemap and memory of ours exists), else 0 (the kernel's to answer). */
int emu_pagemap_scan(int fd, unsigned long arg, int *ret);
/* pread(2) of fd: *done = 1 and the result (-1 and errno) when fd is this
 * process's pagemap and memory of ours exists, whose entries are then made
 * the kernel's (pagemap.c); else *done = 0, nothing read. */
ssize_t emu_pagemap_pread(int fd, void *buf, size_t n, off_t off, int *done);
/* The errno of write(2) on an emulated descriptor of this kind. */
int emu_write_errno(int fd, enum emu_kind kind);
/* close(2) of any descriptor, releasing an emulated uffd or device at its
 * last close. */
int emu_close(int fd);
/* fd, unknown so far, may be an emulated uffd of another process: 0 if it
 * is, and is usable from now on; else a negative errno. */
int emu_adopt(int fd);

/* The program is about to dup2()/dup3() onto fd: if the number is one of
 * the emulation's own, our file moves to another number first (see
 * src/base/fdreg.h).  0, or a negative errno (EMFILE: no number left). */
int emu_fd_relocate(int fd);

/* Shared anonymous memory as a memfd of ours (shared-anon.c), for an
 * mmap(MAP_SHARED|MAP_ANONYMOUS[|MAP_HUGETLB], len) that the emulation
 * could not reach otherwise: the descriptor to map instead (offset 0), or
 * -1 to map it the kernel's way.  Then emu_anon_shared_mapped() says
 * whether the mmap succeeded (if not, the descriptor is closed). */
int emu_anon_shared_fd(size_t len, int flags);
void emu_anon_shared_mapped(int fd, int ok);
/* (emu_fd_relocate's part for those descriptors) */
void anon_shared_fd_relocate(int fd, int to);

/* The in-thread pager: make uffd fd one (before any REGISTER); the
 * context of fd if its callback runs on this thread (async-signal-safe). */
int emu_set_pager(int fd, uf_pager_fn fn, void *arg);
struct ctx *emu_pager_hint(int fd);

/* Touch, in user mode, the missing registered pages of a buffer that a
 * system call is about to write (kernel_writes) or read, so that their
 * faults reach the uffd first (pretouch.c). */
void emu_pretouch(uintptr_t buf, size_t len, int kernel_writes);
void emu_pretouch_iov(const struct iovec *iov, int n, int kernel_writes);
/* The same over every registered range (mlockall). */
void emu_pretouch_all(int kernel_writes);

#endif
