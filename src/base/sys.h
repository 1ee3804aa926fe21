/* SPDX-License-Identifier: MIT */
/*
 * Thin platform layer: raw system calls and atomics.  Everything here is
 * async-signal-safe (plain system calls, no libc state).
 */
#ifndef UF_SYS_H
#define UF_SYS_H

#include <errno.h>
#include <signal.h>
#include <time.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/syscall.h>
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

/*
 * The C library's functions that the drop-in interposes (syscall, open,
 * read, close) must not be reached from inside the library through their
 * public names, or the drop-in would call itself: we use these instead.
 */
/* NOLINTBEGIN(bugprone-reserved-identifier): glibc's own names for them */
extern ssize_t __read(int fd, void *buf, size_t n);
extern int __close(int fd);
extern ssize_t __write(int fd, const void *buf, size_t n);
extern int __open(const char *path, int flags, ...);
/* NOLINTEND(bugprone-reserved-identifier) */

/* A system call without going through syscall(3), nor through a
 * sanitizer's interceptor, nor through our own interposers of the memory
 * calls (emu/vmops.c).  -1 and errno.  async-signal-safe */
static inline long sys_call6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
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

static inline long sys_call4(long nr, long a1, long a2, long a3, long a4)
{
	return sys_call6(nr, a1, a2, a3, a4, 0, 0);
}

static inline long sys_call1(long nr, long a1)
{
	return sys_call6(nr, a1, 0, 0, 0, 0, 0);
}

/* The socket calls of remote.c: not through the drop-in's recvmsg, which
 * would take the descriptors they carry for the program's. */
struct msghdr;
static inline long sys_recvmsg(int fd, struct msghdr *m, int flags)
{
	return sys_call6(SYS_recvmsg, fd, (long)m, flags, 0, 0, 0);
}
static inline long sys_sendmsg(int fd, const struct msghdr *m, int flags)
{
	return sys_call6(SYS_sendmsg, fd, (long)m, flags, 0, 0, 0);
}

/* The memory calls, as the library itself makes them.  async-signal-safe */
static inline void *sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	long r = sys_call6(SYS_mmap, (long)addr, (long)len, prot, flags, fd, (long)off);
	return r == -1 ? (void *)-1 : (void *)r;
}
static inline int sys_munmap(void *addr, size_t len)
{
	return (int)sys_call6(SYS_munmap, (long)addr, (long)len, 0, 0, 0, 0);
}
static inline int sys_mprotect(void *addr, size_t len, int prot)
{
	return (int)sys_call6(SYS_mprotect, (long)addr, (long)len, prot, 0, 0, 0);
}
static inline int sys_madvise(void *addr, size_t len, int advice)
{
	return (int)sys_call6(SYS_madvise, (long)addr, (long)len, advice, 0, 0, 0);
}
static inline void *sys_mremap(void *old, size_t oldlen, size_t newlen, int flags, void *new_addr)
{
	long r = sys_call6(SYS_mremap, (long)old, (long)oldlen, (long)newlen, flags,
				 (long)new_addr, 0);
	return r == -1 ? (void *)-1 : (void *)r;
}

/* async-signal-safe */
static inline long sys_futex_wait(_Atomic uint32_t *addr, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, ts, NULL, 0);
}

/* async-signal-safe */
static inline long sys_futex_wake(_Atomic uint32_t *addr, int n)
{
	return syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* CLOCK_MONOTONIC in ns.  async-signal-safe (clock_gettime is). */
static inline long sys_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* async-signal-safe */
static inline pid_t sys_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* async-signal-safe: queue a signal with a chosen siginfo to a thread of
 * this process (the kernel allows any si_code when signalling oneself). */
/* Set this thread's signal mask (the kernel's 8-byte sigset). */
static inline int sys_sigprocmask(int how, const sigset_t *set)
{
	return (int)sys_call6(SYS_rt_sigprocmask, how, (long)set, 0, 8, 0, 0);
}

static inline int sys_tgsigqueueinfo(pid_t tgid, pid_t tid, int sig, siginfo_t *si)
{
	return (int)syscall(SYS_rt_tgsigqueueinfo, tgid, tid, sig, si);
}

#endif
