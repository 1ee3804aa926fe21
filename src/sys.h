/* SPDX-License-Identifier: MIT */
/*
 * Thin platform layer: raw system calls and atomics.  Everything here is
 * async-signal-safe (plain system calls, no libc state).
 */
#ifndef UF_SYS_H
#define UF_SYS_H

#include <errno.h>
#include <signal.h>
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
extern ssize_t __read(int fd, void *buf, size_t n);
extern int __close(int fd);
extern ssize_t __write(int fd, const void *buf, size_t n);
extern int __open(const char *path, int flags, ...);

/* A system call without going through syscall(3), nor through a
 * sanitizer's interceptor.  async-signal-safe */
static inline long uf_raw_syscall4(long nr, long a1, long a2, long a3, long a4)
{
	long ret;
#if defined(__x86_64__)
	register long r10 __asm__("r10") = a4;
	__asm__ volatile("syscall" : "=a"(ret)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10)
			 : "rcx", "r11", "memory");
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a1;
	register long x1 __asm__("x1") = a2;
	register long x2 __asm__("x2") = a3;
	register long x3 __asm__("x3") = a4;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
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

static inline long uf_raw_syscall1(long nr, long a1)
{
	return uf_raw_syscall4(nr, a1, 0, 0, 0);
}

/* async-signal-safe */
static inline long uf_sys_futex_wait(_Atomic uint32_t *addr, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, ts, NULL, 0);
}

/* async-signal-safe */
static inline long uf_sys_futex_wake(_Atomic uint32_t *addr, int n)
{
	return syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* async-signal-safe */
static inline pid_t uf_sys_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* async-signal-safe: queue a signal with a chosen siginfo to a thread of
 * this process (the kernel allows any si_code when signalling oneself). */
static inline int uf_sys_tgsigqueueinfo(pid_t tgid, pid_t tid, int sig, siginfo_t *si)
{
	return (int)syscall(SYS_rt_tgsigqueueinfo, tgid, tid, sig, si);
}

#endif
