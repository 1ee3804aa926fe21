/* SPDX-License-Identifier: MIT */
/*
 * seccomp-run MODE -- PROG [ARGS...]
 *
 * Runs PROG under a seccomp filter that takes the kernel userfaultfd away, as
 * container runtimes do, so that the library must fall back to its emulation:
 *
 *   userfaultfd(2)                      MODE=eperm  -> EPERM
 *                                       MODE=enosys -> ENOSYS
 *                                       MODE=kill   -> the process is killed
 *                                                      (SECCOMP_RET_KILL_PROCESS)
 *   ioctl(fd, USERFAULTFD_IOC_NEW, ...) -> EACCES (all modes)
 *
 * seccomp cannot look at the path given to open/openat, so /dev/userfaultfd is
 * made useless through its only ioctl instead.  Every other system call is
 * allowed.  Before exec the filter is checked (except the killing part).
 * Exit status: PROG's, or 125 if the filter could not be installed, 127 if
 * PROG could not be run.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#if defined(__x86_64__)
#define SR_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SR_ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp-run: only x86-64 and aarch64"
#endif

#define SR_IOC_NEW 0xAA00u	/* USERFAULTFD_IOC_NEW */

/* Offset of the low 32 bits of ioctl's second argument (the command). */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SR_ARG1_LO offsetof(struct seccomp_data, args[1])
#else
#define SR_ARG1_LO (offsetof(struct seccomp_data, args[1]) + 4)
#endif

static int install(unsigned int uffd_action)
{
	struct sock_filter f[] = {
		/* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		/* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SR_ARCH, 0, 5),	/* other arch: allow */
		/* 2 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		/* 3 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 4, 0),
		/* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 2),
		/* 5 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SR_ARG1_LO),
		/* 6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SR_IOC_NEW, 2, 0),
		/* 7 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		/* 8 */ BPF_STMT(BPF_RET | BPF_K, uffd_action),
		/* 9 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
	};
	struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
		perror("seccomp-run: PR_SET_NO_NEW_PRIVS");
		return -1;
	}
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) {
		perror("seccomp-run: SECCOMP_SET_MODE_FILTER");
		return -1;
	}
	return 0;
}

/* The filter answers as it should (the killing variant cannot be tried). */
static int self_check(int uffd_errno)
{
	long r;

	if (uffd_errno) {
		errno = 0;
		r = syscall(SYS_userfaultfd, 0);
		if (r != -1 || errno != uffd_errno) {
			fprintf(stderr, "seccomp-run: userfaultfd() gave %ld (%s), not %s\n",
				r, strerror(errno), strerror(uffd_errno));
			return -1;
		}
	}
	errno = 0;
	r = ioctl(-1, SR_IOC_NEW, 0);
	if (r != -1 || errno != EACCES) {
		fprintf(stderr, "seccomp-run: ioctl(USERFAULTFD_IOC_NEW) gave %ld (%s), not EACCES\n",
			r, strerror(errno));
		return -1;
	}
	return 0;
}

__attribute__((noreturn)) static void usage(void)
{
	fprintf(stderr, "usage: seccomp-run eperm|enosys|kill -- PROG [ARGS...]\n");
	exit(125);
}

int main(int argc, char **argv)
{
	unsigned int action = 0;
	int uffd_errno = 0;

	if (argc < 4 || strcmp(argv[2], "--") != 0)
		usage();
	if (!strcmp(argv[1], "eperm")) {
		action = SECCOMP_RET_ERRNO | EPERM;
		uffd_errno = EPERM;
	} else if (!strcmp(argv[1], "enosys")) {
		action = SECCOMP_RET_ERRNO | ENOSYS;
		uffd_errno = ENOSYS;
	} else if (!strcmp(argv[1], "kill")) {
		action = SECCOMP_RET_KILL_PROCESS;
	} else {
		usage();
	}
	if (install(action) || self_check(uffd_errno))
		return 125;
	execvp(argv[3], argv + 3);
	fprintf(stderr, "seccomp-run: %s: %s\n", argv[3], strerror(errno));
	return 127;
}
