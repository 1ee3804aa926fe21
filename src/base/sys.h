/* SPDX-License-Identifier: MIT */
/*
 * The system layer: raw system calls.  Everything here is
 * async-signal-safe (plain system calls, no libc state).
 *
 * The rule (HACKING.md, checked by tools/check-arch.sh): code of the library
 * never calls a C library function that the library or the drop-in
 * interposes (src/interpose/, listed in the README) by its public name: it
 * calls the sys_ wrapper here.  A call by the public name would come back
 * into our own interposer (read(), close(), mmap(), ...), or, under a
 * sanitizer, through its interceptor, which must not see the emulation's
 * own traffic.
 */
#ifndef UF_SYS_H
#define UF_SYS_H

#include <errno.h>
#include <signal.h>
#include <time.h>
#include <stdint.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <linux/futex.h>

#ifndef __NR_userfaultfd
#if defined(__x86_64__)
#define __NR_userfaultfd 323
#elif defined(__aarch64__)
#define __NR_userfaultfd 282
#endif
#endif

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif

#define UF_PAGE_SIZE_MAX 65536

/* The wrappers are not instrumented by the sanitizers: a raw system call
 * has nothing to check, and some run while a sanitizer's runtime starts
 * (its calls of sigaltstack, pthread_sigmask, close reach our interposers). */
#define SYS_NOSAN __attribute__((no_sanitize("thread", "address", "undefined")))

#if defined(__SANITIZE_THREAD__)
#define UF_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UF_TSAN 1
#endif
#endif

/* SIG_SAFE marks a function that runs in our signal handlers: it is
 * async-signal-safe, and tools/check-signal.sh checks every function they
 * reach.  ThreadSanitizer does not instrument it: our handlers are
 * installed behind TSan's back, so the interrupted thread may be inside
 * TSan's runtime, holding a lock that an instrumented access would take
 * again (clang needs its stronger attribute there: its no_sanitize keeps
 * the atomics' instrumentation).  ASan and UBSan still check it. */
#if defined(UF_TSAN) && defined(__clang__)
#define SIG_SAFE __attribute__((disable_sanitizer_instrumentation))
#else
#define SIG_SAFE __attribute__((no_sanitize("thread")))
#endif

/* A system call without going through syscall(3), nor through a
 * sanitizer's interceptor, nor through our own interposers of the memory
 * calls (src/interpose/memory.c).  -1 and errno.  async-signal-safe */
SYS_NOSAN static inline long sys_call6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	long ret;
#if defined(__x86_64__)
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	register long r9 __asm__("r9") = a6;
	__asm__ volatile("syscall" : "=a"(ret)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a1;
	register long x1 __asm__("x1") = a2;
	register long x2 __asm__("x2") = a3;
	register long x3 __asm__("x3") = a4;
	register long x4 __asm__("x4") = a5;
	register long x5 __asm__("x5") = a6;
	__asm__ volatile("svc 0" : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
	ret = x0;
#else
#error "userfault: add the raw system call for this architecture"
#endif
	if (ret < 0 && ret > -4096) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
}

SYS_NOSAN static inline long sys_call4(long nr, long a1, long a2, long a3, long a4)
{
	return sys_call6(nr, a1, a2, a3, a4, 0, 0);
}

SYS_NOSAN static inline long sys_call1(long nr, long a1)
{
	return sys_call6(nr, a1, 0, 0, 0, 0, 0);
}

/* The socket calls of remote.c: not through the drop-in's recvmsg, which
 * would take the descriptors they carry for the program's. */
struct msghdr;
SYS_NOSAN static inline long sys_recvmsg(int fd, struct msghdr *m, int flags)
{
	return sys_call6(SYS_recvmsg, fd, (long)m, flags, 0, 0, 0);
}
SYS_NOSAN static inline long sys_sendmsg(int fd, const struct msghdr *m, int flags)
{
	return sys_call6(SYS_sendmsg, fd, (long)m, flags, 0, 0, 0);
}

/* The memory calls, as the library itself makes them.  async-signal-safe */
SYS_NOSAN static inline void *sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	long r = sys_call6(SYS_mmap, (long)addr, (long)len, prot, flags, fd, (long)off);
	return r == -1 ? (void *)-1 : (void *)r;
}
SYS_NOSAN static inline int sys_munmap(void *addr, size_t len)
{
	return (int)sys_call6(SYS_munmap, (long)addr, (long)len, 0, 0, 0, 0);
}
SYS_NOSAN static inline int sys_mprotect(void *addr, size_t len, int prot)
{
	return (int)sys_call6(SYS_mprotect, (long)addr, (long)len, prot, 0, 0, 0);
}
SYS_NOSAN static inline int sys_madvise(void *addr, size_t len, int advice)
{
	return (int)sys_call6(SYS_madvise, (long)addr, (long)len, advice, 0, 0, 0);
}
SYS_NOSAN static inline void *sys_mremap(void *old, size_t oldlen, size_t newlen, int flags, void *new_addr)
{
	long r = sys_call6(SYS_mremap, (long)old, (long)oldlen, (long)newlen, flags,
				 (long)new_addr, 0);
	return r == -1 ? (void *)-1 : (void *)r;
}

/* async-signal-safe */
SYS_NOSAN static inline long sys_futex_wait(_Atomic uint32_t *addr, uint32_t val, const struct timespec *ts)
{
	return sys_call6(SYS_futex, (long)addr, FUTEX_WAIT_PRIVATE, val, (long)ts, 0, 0);
}

/* async-signal-safe */
SYS_NOSAN static inline long sys_futex_wake(_Atomic uint32_t *addr, int n)
{
	return sys_call6(SYS_futex, (long)addr, FUTEX_WAKE_PRIVATE, n, 0, 0, 0);
}

/* CLOCK_MONOTONIC in ns.  async-signal-safe (clock_gettime is; under
 * TSan, whose interceptor it has, the system call). */
SIG_SAFE static inline long sys_now_ns(void)
{
	struct timespec ts;
#ifdef UF_TSAN
	sys_call6(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts, 0, 0, 0, 0);
#else
	clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Signal sets, for code that runs in a handler: the C library's
 * sigemptyset and sigorset are replaced by TSan's interceptors.
 * async-signal-safe */
SIG_SAFE static inline void sys_sigemptyset(sigset_t *set)
{
	__builtin_memset(set, 0, sizeof *set);
}
SIG_SAFE static inline void sys_sigorset(sigset_t *dst, const sigset_t *a, const sigset_t *b)
{
	for (unsigned i = 0; i < sizeof dst->__val / sizeof dst->__val[0]; i++)
		dst->__val[i] = a->__val[i] | b->__val[i];
}

/* async-signal-safe */
SYS_NOSAN static inline pid_t sys_gettid(void)
{
	return (pid_t)sys_call1(SYS_gettid, 0);
}

/* Set this thread's signal mask (the kernel's 8-byte sigset); old (may be
 * NULL) gets the previous one. */
SYS_NOSAN static inline int sys_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	return (int)sys_call6(SYS_rt_sigprocmask, how, (long)set, (long)old, 8, 0, 0);
}
SYS_NOSAN static inline int sys_sigprocmask(int how, const sigset_t *set)
{
	return sys_sigmask(how, set, NULL);
}

/* async-signal-safe: queue a signal with a chosen siginfo to a thread of
 * this process (the kernel allows any si_code when signalling oneself). */
SYS_NOSAN static inline int sys_tgsigqueueinfo(pid_t tgid, pid_t tid, int sig, siginfo_t *si)
{
	return (int)sys_call4(SYS_rt_tgsigqueueinfo, tgid, tid, sig, (long)si);
}

/* A read or close that the program makes through us (the drop-in's read and
 * close of descriptors that are not ours, uf_read, uf_close, a read that
 * waits for a message): the C library's own, under the names the drop-in
 * does not interpose, because they are cancellation points (a thread
 * blocked in read() must be cancellable by pthread_cancel) and a raw
 * system call is not. */
/* NOLINTBEGIN(bugprone-reserved-identifier): glibc's own names for them */
extern ssize_t __read(int fd, void *buf, size_t n);
extern int __close(int fd);
/* NOLINTEND(bugprone-reserved-identifier) */
SYS_NOSAN static inline ssize_t sys_read_cancellable(int fd, void *buf, size_t n)
{
	return __read(fd, buf, n);
}
SYS_NOSAN static inline int sys_close_cancellable(int fd)
{
	return __close(fd);
}

/* The descriptor calls the drop-in interposes, as the library makes them.
 * async-signal-safe */
SYS_NOSAN static inline ssize_t sys_read(int fd, void *buf, size_t n)
{
	return sys_call6(SYS_read, fd, (long)buf, (long)n, 0, 0, 0);
}
SYS_NOSAN static inline ssize_t sys_write(int fd, const void *buf, size_t n)
{
	return sys_call6(SYS_write, fd, (long)buf, (long)n, 0, 0, 0);
}
SYS_NOSAN static inline ssize_t sys_pread(int fd, void *buf, size_t n, off_t off)
{
	return sys_call6(SYS_pread64, fd, (long)buf, (long)n, (long)off, 0, 0);
}
SYS_NOSAN static inline ssize_t sys_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return sys_call6(SYS_pwrite64, fd, (long)buf, (long)n, (long)off, 0, 0);
}
SYS_NOSAN static inline int sys_fallocate(int fd, int mode, off_t off, off_t len)
{
	return (int)sys_call6(SYS_fallocate, fd, mode, (long)off, (long)len, 0, 0);
}
SYS_NOSAN static inline ssize_t sys_pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	return sys_call6(SYS_pwritev, fd, (long)iov, cnt, (long)off, 0, 0);
}
/* preadv2 with offset -1 (the file position) and flags. */
SYS_NOSAN static inline ssize_t sys_readv_flags(int fd, const struct iovec *iov, int cnt, int flags)
{
	return sys_call6(SYS_preadv2, fd, (long)iov, cnt, -1, -1, flags);
}
/* pwritev2 with offset -1 (the file position) and flags.  RWF_NOSIGNAL:
 * EPIPE without SIGPIPE (Linux 6.18+; caps.write_nosignal). */
#ifndef RWF_NOSIGNAL
#define RWF_NOSIGNAL 0x00000100
#endif
SYS_NOSAN static inline ssize_t sys_writev_flags(int fd, const struct iovec *iov, int cnt, int flags)
{
	return sys_call6(SYS_pwritev2, fd, (long)iov, cnt, -1, -1, flags);
}
/* ThreadSanitizer follows each descriptor from its creation (pipe2,
 * socket, accept4, epoll_create1 are its interceptors) to its close: a
 * close it does not see leaves it a descriptor that the next file of that
 * number inherits, and false reports of races between the two.  Under it,
 * our closes go through its interceptor (which then makes the system
 * call). */
#ifdef UF_TSAN
/* NOLINTNEXTLINE(bugprone-reserved-identifier): the sanitizer's name */
extern int __interceptor_close(int fd) __attribute__((weak));
#endif
SYS_NOSAN static inline int sys_close(int fd)
{
#ifdef UF_TSAN
	if (__interceptor_close)
		return __interceptor_close(fd);
#endif
	return (int)sys_call1(SYS_close, fd);
}
SYS_NOSAN static inline int sys_open(const char *path, int flags, int mode)
{
	return (int)sys_call4(SYS_openat, AT_FDCWD, (long)path, flags, mode);
}
SYS_NOSAN static inline int sys_ioctl(int fd, unsigned long req, unsigned long arg)
{
	return (int)sys_call4(SYS_ioctl, fd, (long)req, (long)arg, 0);
}
SYS_NOSAN static inline int sys_fcntl(int fd, int cmd, long arg)
{
	return (int)sys_call4(SYS_fcntl, fd, cmd, arg, 0);
}
SYS_NOSAN static inline int sys_dup_min(int fd, int min, int cloexec)
{
	return sys_fcntl(fd, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, min);
}

#endif
