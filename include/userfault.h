/* SPDX-License-Identifier: MIT */
/*
 * userfault.h - userfaultfd(2) in user space.
 *
 * One umbrella header.  It gives you:
 *
 *  1. The kernel ABI (<userfault/uapi.h>): the same structs, ioctl numbers,
 *     feature bits and messages as <linux/userfaultfd.h> of Linux 6.18.
 *
 *  2. ABI entry points that behave like the kernel's: they return -1 and set
 *     errno, and UFFDIO_COPY/ZEROPAGE report negative errno in .copy and
 *     .zeropage.  Call them where you would call the system call, ioctl(),
 *     read() and close() on a userfaultfd:
 *
 *        int fd = uf_userfaultfd(O_CLOEXEC | O_NONBLOCK);
 *        uf_ioctl(fd, UFFDIO_API, &api);
 *        uf_read(fd, msgs, sizeof msgs);
 *        uf_close(fd);
 *
 *     The descriptor is a real file descriptor: poll(), select() and epoll
 *     see it readable when a message waits (on an O_NONBLOCK descriptor),
 *     and dup(), fcntl(), FD_CLOEXEC and SCM_RIGHTS work on it.
 *
 *  3. Helpers of our own, which return 0 or a negative errno (as liburing).
 *
 * Two back-ends are chosen at run time: "kernel" passes everything through to
 * the real userfaultfd; "emulated" implements it with SIGSEGV, guard markers
 * and memfd-backed pages.  "auto" (the default) uses the kernel where it works.
 * The environment variable USERFAULT_BACKEND=auto|kernel|emulated, or
 * uf_set_backend(), forces one.
 */
#ifndef USERFAULT_H
#define USERFAULT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <userfault/uapi.h>
#include <userfault/pagemap.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility: what is declared here is
 * what it exports (and all it exports, besides the C library functions it
 * interposes; see the README). */
#pragma GCC visibility push(default)

#define USERFAULT_VERSION_MAJOR 0
#define USERFAULT_VERSION_MINOR 1
#define USERFAULT_VERSION_PATCH 0

/* ---------------------------------------------------------------------- */
/* ABI entry points: kernel conventions (-1 and errno).                     */
/* ---------------------------------------------------------------------- */

/* userfaultfd(2).  flags: O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY. */
int uf_userfaultfd(int flags);

/* open("/dev/userfaultfd", oflags): a descriptor on which
 * uf_ioctl(devfd, USERFAULTFD_IOC_NEW, flags) creates a userfaultfd. */
int uf_open_dev(int oflags);

/* ioctl(2) on a userfaultfd or on a /dev/userfaultfd descriptor.  The third
 * argument is a pointer to the UFFDIO_* structure, or the flags (by value)
 * for USERFAULTFD_IOC_NEW. */
int uf_ioctl(int fd, unsigned long request, ...);

/* read(2) of struct uffd_msg records (a multiple of 32 bytes). */
ssize_t uf_read(int fd, void *buf, size_t count);

/* close(2).  Closing the last descriptor of a userfaultfd releases it: its
 * ranges are unregistered and every waiting thread resumes. */
int uf_close(int fd);

/* ---------------------------------------------------------------------- */
/* Helpers: 0 / value on success, negative errno on failure.                */
/* ---------------------------------------------------------------------- */

enum uf_backend {
	UF_BACKEND_AUTO = 0,
	UF_BACKEND_KERNEL = 1,
	UF_BACKEND_EMULATED = 2,
};

/* Choose the back-end for userfaultfds created from now on.  AUTO probes the
 * kernel (in a child process, so a seccomp filter that kills cannot kill us). */
int uf_set_backend(enum uf_backend backend);

/* The back-end that uf_userfaultfd() uses now (KERNEL or EMULATED; resolves
 * AUTO, probing if needed). */
enum uf_backend uf_get_backend(void);

/* "auto", "kernel", "emulated"; NULL for an unknown value. */
const char *uf_backend_name(enum uf_backend backend);

/* Parse "auto" | "kernel" | "emulated": the back-end, or -EINVAL. */
int uf_backend_parse(const char *name);

/* Which back-end serves this descriptor: KERNEL for a real userfaultfd,
 * EMULATED for one of ours, -EBADF if fd is not open, -EINVAL if it is not
 * a userfaultfd. */
int uf_fd_backend(int fd);

/* What this machine offers.  Every field is filled by uf_probe(). */
struct uf_probe {
	/* Kernel: the userfaultfd(2) system call. */
	int syscall_errno;		/* 0 if userfaultfd(0) worked, else errno */
	int syscall_user_errno;		/* same for UFFD_USER_MODE_ONLY */
	int syscall_killed;		/* signal that killed the probe, or 0 */
	/* Kernel: /dev/userfaultfd. */
	int dev_errno;			/* 0 if open + USERFAULTFD_IOC_NEW worked */
	int unprivileged_sysctl;	/* vm.unprivileged_userfaultfd, -1 unknown */
	int seccomp_mode;		/* Seccomp: from /proc/self/status, -1 unknown */
	uint64_t kernel_features;	/* UFFDIO_API features (0 if unusable) */
	int kernel_usable;		/* a full (kernel-fault) uffd can be made */
	/* Emulation. */
	int emulated_usable;		/* the emulated back-end works here */
	int emulated_errno;		/* why not, if it does not */
	uint64_t emulated_features;	/* features the emulation offers */
	int guard_markers;		/* MADV_GUARD_INSTALL on shmem works */
	long max_map_count;		/* vm.max_map_count, -1 unknown */
	enum uf_backend auto_choice;	/* what AUTO picks here */
};
int uf_probe(struct uf_probe *out);

/* Features the emulated back-end supports in UFFDIO_API. */
uint64_t uf_emulated_features(void);

/* Statistics of the emulated back-end in this process. */
struct uf_emu_stats {
	uint64_t faults;		/* fault messages queued */
	uint64_t sigbus;		/* SIGBUS raised for FEATURE_SIGBUS */
	uint64_t pages_installed;	/* pages made present by COPY/ZEROPAGE */
	uint64_t areas;			/* live memfd-backed areas */
	uint64_t registered_bytes;	/* bytes currently registered */
};
int uf_emu_stats(struct uf_emu_stats *out);

/*
 * In-thread paging (an extension; these return 0 or a negative errno).
 *
 * A pager is a userfaultfd whose faults are not queued as messages: the
 * callback runs in the faulting thread itself, inside a signal handler, and
 * resolves the fault with uf_pager_copy() or uf_pager_zero() (or the
 * UFFDIO_COPY/ZEROPAGE ioctls on f->uffd).  A fault then costs one exception
 * and no hand-off to another thread.  On the kernel back-end it is a uffd
 * with UFFD_FEATURE_SIGBUS and a SIGBUS handler; on the emulated back-end the
 * callback runs straight from the SIGSEGV handler.
 *
 * The callback must be async-signal-safe.  It returns 0 to retry the access
 * (if the page is still missing, it faults again and the callback runs
 * again), or a negative value to give the thread SIGBUS (BUS_ADRERR) as
 * UFFD_FEATURE_SIGBUS would.  It must not unregister or close the pager.
 */
struct uf_pager_fault {
	int uffd;		/* the pager */
	unsigned flags;		/* UFFD_PAGEFAULT_FLAG_WRITE for a write */
	void *address;		/* the faulting address, exact */
	void *page;		/* its page, page-aligned */
};
typedef int (*uf_pager_fn)(const struct uf_pager_fault *f, void *arg);

/* A new pager on the current back-end (O_CLOEXEC): its descriptor, ready for
 * uf_pager_register(), or a negative errno. */
int uf_pager_open(uf_pager_fn fn, void *arg);
/* Register / unregister [addr, addr+len) (page-aligned, private anonymous)
 * for missing-page faults served by the pager. */
int uf_pager_register(int uffd, void *addr, size_t len);
int uf_pager_unregister(int uffd, void *addr, size_t len);
/* Resolve: install len bytes at dst from src, or zeros.  0 when all of it
 * was installed; -EEXIST if its first page was already present (another
 * thread won: treat it as success); -EAGAIN if only a first part was
 * installed (a later page was present); else the ioctl's errno, as a
 * negative value.  errno is left alone.  async-signal-safe */
int uf_pager_copy(int uffd, void *dst, const void *src, size_t len);
int uf_pager_zero(int uffd, void *dst, size_t len);
/* Unregister everything and close. */
int uf_pager_close(int uffd);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* USERFAULT_H */
