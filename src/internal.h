/* SPDX-License-Identifier: MIT */
/* Internal interfaces between the front end (backend.c), the kernel
 * pass-through (kernel.c) and the emulation (emu/). */
#ifndef UF_INTERNAL_H
#define UF_INTERNAL_H

#include <signal.h>
#include <stdarg.h>
#include "userfault.h"
#include "base/sys.h"

#define UF_HIDDEN __attribute__((visibility("hidden")))

/* options.c: options that are also environment variables. */
UF_HIDDEN enum uf_backend opt_backend(void);	/* USERFAULT_BACKEND */
UF_HIDDEN int opt_guard_markers(void);	/* USERFAULT_GUARD_MARKERS (default 1) */
UF_HIDDEN long opt_spin_us(void);		/* USERFAULT_SPIN_US (default 100) */

/* kernel.c: the real thing.  -1 and errno. */
UF_HIDDEN int kernel_userfaultfd(int flags);
UF_HIDDEN int kernel_open_dev(int oflags);
/* Probe in a child process; fills the kernel part of *p. */
UF_HIDDEN void kernel_probe(struct uf_probe *p);

/* sigchain.c: sharing SIGSEGV and SIGBUS with the program. */
UF_HIDDEN int sigchain_real_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
/* Install our handler for sig (SIGSEGV or SIGBUS) once; from then on the
 * program's sigaction() calls for sig are recorded.  0 or -errno. */
UF_HIDDEN int sigchain_install(int sig, const struct sigaction *ours);
/* The disposition the program believes sig has.  async-signal-safe */
UF_HIDDEN void sigchain_program(int sig, struct sigaction *out);
/* Hand a fault that is not ours to the program's handler.  a-s-s */
UF_HIDDEN void sigchain_forward(int sig, siginfo_t *si, void *uctx);

/* emu/: the emulation.  -1 and errno unless noted. */
enum emu_kind { EMU_NONE = 0, EMU_UFFD = 1, EMU_DEV = 2,
		   EMU_REMOTE = 3 /* an emulated uffd of another process */ };
struct ctx;
UF_HIDDEN int emu_in_use(void);			/* any emulated fd alive? */
/* What fd is to the emulation (one fstat); *ctx (may be NULL) gets the
 * uffd's context. */
UF_HIDDEN enum emu_kind emu_fd_kind(int fd, struct ctx **ctx);
UF_HIDDEN int emu_userfaultfd(int flags);
UF_HIDDEN int emu_open_dev(int oflags);
/* On a descriptor emu_fd_kind said is ours (kind and ctx from it). */
UF_HIDDEN int emu_ioctl(int fd, enum emu_kind kind, struct ctx *c, unsigned long req,
			   unsigned long arg);
UF_HIDDEN ssize_t emu_read(int fd, enum emu_kind kind, struct ctx *c, void *buf,
			      size_t count);
/* The errno of write(2) on an emulated descriptor of this kind. */
UF_HIDDEN int emu_write_errno(int fd, enum emu_kind kind);
/* close(2) of any descriptor, releasing an emulated uffd or device at its
 * last close. */
UF_HIDDEN int emu_close(int fd);
/* The context of fd if it is the pager whose callback runs on this thread,
 * else NULL.  async-signal-safe */
UF_HIDDEN struct ctx *emu_pager_hint(int fd);
/* Make the emulated uffd fd an in-thread pager (before any REGISTER). */
UF_HIDDEN int emu_set_pager(int fd, uf_pager_fn fn, void *arg);
/* Touch, in user mode, the missing registered pages of a buffer that a
 * system call is about to write (kernel_writes) or read, so that their faults
 * reach the uffd first (emu/pretouch.c). */
struct iovec;
UF_HIDDEN void emu_pretouch(uintptr_t buf, size_t len, int kernel_writes);
UF_HIDDEN void emu_pretouch_iov(const struct iovec *iov, int n, int kernel_writes);
/* fd, unknown so far, may be an emulated uffd of another process (a pipe
 * whose owner serves it): 0 if it is, and is usable from now on. */
UF_HIDDEN int emu_adopt(int fd);
/* 0 if the emulation can work here, else a negative errno. */
UF_HIDDEN int emu_check(int *guard_markers);

#endif
