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
 * Fault statistics: what each userfaultfd saw, on either back-end, counted
 * at the ABI entry points (uf_userfaultfd, uf_ioctl, uf_read, uf_close and
 * the drop-in's interposers).  `userfault stat` prints them for an
 * unmodified program.  Recording is off until uf_stat_enable() (then the
 * table is shared with the children this process forks), or until the
 * library finds USERFAULT_STAT_FD in the environment at start-up (a table
 * made by uf_stat_create(), inherited from the process that reads it, and
 * shared with every process that inherits it in turn, forked or executed);
 * then every uffd made from then on is recorded.
 *
 * Latency is the time from a fault to the ioctl that resolved it (COPY,
 * ZEROPAGE, CONTINUE, POISON, MOVE, WAKE, or WRITEPROTECT clearing the
 * protection).  The emulation timestamps the fault itself; the kernel's
 * fault is not visible to user space, so there the clock starts when its
 * message is read (latency_from_fault counts the samples of the first
 * kind).  In-thread pagers (uf_pager_*) and FEATURE_SIGBUS send no
 * messages and are not counted.
 */
#define UF_STAT_MAX 64		/* uffds recorded; further ones share the last */
#define UF_STAT_BUCKETS 320	/* latency histogram, see uf_stat_bucket_ns() */
enum {
	UF_STAT_EV_PAGEFAULT, UF_STAT_EV_FORK, UF_STAT_EV_REMAP, UF_STAT_EV_REMOVE,
	UF_STAT_EV_UNMAP, UF_STAT_EV_OTHER, UF_STAT_EVENTS
};
enum {
	UF_STAT_COPY, UF_STAT_ZEROPAGE, UF_STAT_CONTINUE, UF_STAT_POISON,
	UF_STAT_MOVE, UF_STAT_WRITEPROTECT, UF_STAT_WAKE, UF_STAT_IOCTLS
};
struct uf_stat {
	int32_t pid;		/* process that made the uffd */
	int32_t fd;		/* its first descriptor number */
	int32_t backend;	/* UF_BACKEND_KERNEL or UF_BACKEND_EMULATED */
	int32_t parent;		/* index of the uffd whose FORK event made it, or -1 */
	uint64_t features;	/* features UFFDIO_API returned (the back-end's) */
	uint64_t registered;	/* bytes of successful UFFDIO_REGISTER calls */
	uint64_t messages;	/* messages read */
	uint64_t events[UF_STAT_EVENTS];	/* messages by kind */
	uint64_t faults_write, faults_wp, faults_minor;	/* page faults with these flags */
	uint64_t ioctls[UF_STAT_IOCTLS];	/* calls that did (some of) their work */
	uint64_t bytes[UF_STAT_IOCTLS];		/* bytes they installed, changed or woke */
	uint64_t pages[UF_STAT_IOCTLS];		/* the same in pages of the system page size */
	uint64_t eexist;	/* COPY/ZEROPAGE/CONTINUE/POISON/MOVE that found the page there */
	uint64_t errors;	/* other failed calls of these ioctls */
	uint64_t resolved;	/* faults whose resolution was seen: latency samples */
	uint64_t latency_from_fault;	/* samples timed from the fault itself */
	uint64_t untracked;	/* faults not timed (too many pending at once) */
	uint64_t latency_sum_ns, latency_max_ns;
	uint64_t latency[UF_STAT_BUCKETS];	/* samples per bucket */
};
/* Start recording in this process (and its children): 0 or -errno. */
int uf_stat_enable(void);
/* A new, empty table in a memfd (not close-on-exec): its descriptor, for a
 * child to record into through USERFAULT_STAT_FD=<fd>; or -errno. */
int uf_stat_create(void);
/* Read (and record into) the table of fd, made by uf_stat_create(), from
 * now on: 0, -EINVAL if fd holds no table, or -errno. */
int uf_stat_attach(int fd);
/* Copy up to max records into out, in order of creation: the number of
 * records (may exceed max; at most UF_STAT_MAX, the last one shared by the
 * uffds beyond), 0 if none or recording is off. */
int uf_stat_get(struct uf_stat *out, int max);
/* Add n records into *total (counters summed, maxima kept). */
void uf_stat_sum(struct uf_stat *total, const struct uf_stat *s, int n);
/* Bucket b holds latencies from uf_stat_bucket_ns(b) up to
 * uf_stat_bucket_ns(b + 1) - 1 ns: exact below 16 ns, then 8 buckets per
 * power of two (12.5 % wide). */
uint64_t uf_stat_bucket_ns(int bucket);
/* The p-th percentile (0 < p <= 100) of the latency samples, in ns: the top
 * of the bucket that holds it, never more than the maximum; 0 without
 * samples. */
uint64_t uf_stat_percentile(const struct uf_stat *s, double p);

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
