/* SPDX-License-Identifier: MIT */
/*
 * Back-end "kernel": a pass-through to the real userfaultfd, through the
 * system call or /dev/userfaultfd.  ioctl/read/close go straight to libc
 * (see backend.c); only creation and probing live here.
 */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include "api/api.h"
#include "base/sys.h"

static int dev_new(int flags)
{
	int dev = sys_open("/dev/userfaultfd", O_RDWR | O_CLOEXEC, 0);
	int fd, err;

	if (dev < 0)
		return -1;
	fd = sys_ioctl(dev, USERFAULTFD_IOC_NEW, (unsigned long)flags);
	err = errno;
	sys_close(dev);
	errno = err;
	return fd;
}

int kernel_userfaultfd(int flags)
{
	int fd = (int)sys_call1(__NR_userfaultfd, flags);
	int err;

	if (fd >= 0 || (errno != EPERM && errno != ENOSYS))
		return fd;
	/* The system call is refused (unprivileged with the sysctl at 0, or a
	 * seccomp filter): /dev/userfaultfd gives the same object to whoever
	 * may open it.  If that fails too, report the system call's error. */
	err = errno;
	fd = dev_new(flags);
	if (fd < 0)
		errno = err;
	return fd;
}

int kernel_open_dev(int oflags)
{
	return sys_open("/dev/userfaultfd", oflags, 0);
}

/* What the probe child reports, field by field as it goes: if a seccomp
 * filter kills it, the parent still has what came before. */
enum probe_what { PROBE_DEV = 1, PROBE_SYSCALL_USER, PROBE_SYSCALL };
struct probe_rec {
	int what;	/* enum probe_what */
	int err;
	uint64_t features;
};

/* Report one way of making a uffd (fd, or -1 and errno) with the features
 * its UFFDIO_API offers; in the probe child: system calls only. */
static void probe_report(int wfd, enum probe_what what, int fd)
{
	struct probe_rec r;
	struct uffdio_api api;

	memset(&r, 0, sizeof r);
	r.what = what;
	r.err = fd < 0 ? errno : 0;
	if (fd >= 0) {
		memset(&api, 0, sizeof api);
		api.api = UFFD_API;
		if (sys_ioctl(fd, UFFDIO_API, (unsigned long)&api) == 0)
			r.features = api.features;
		else if (what == PROBE_SYSCALL)
			r.err = errno;
		sys_close(fd);
	}
	if (sys_write(wfd, &r, sizeof r) < 0)
		sys_call1(SYS_exit_group, 1);
}

/* Runs in the child made by a raw clone (no atfork handlers, one thread):
 * only system calls, then exit.  The system call comes last: a seccomp
 * filter may kill us there. */
static void probe_child(int wfd)
{
	probe_report(wfd, PROBE_DEV, dev_new(O_CLOEXEC));
	probe_report(wfd, PROBE_SYSCALL_USER, (int)sys_call1(__NR_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY));
	probe_report(wfd, PROBE_SYSCALL, (int)sys_call1(__NR_userfaultfd, O_CLOEXEC));
	sys_call1(SYS_exit_group, 0);
}

void kernel_probe(struct uf_probe *p)
{
	int pfd[2], status = 0;
	pid_t pid;
	struct probe_rec r;

	p->syscall_errno = p->syscall_user_errno = p->dev_errno = ENOSYS;
	p->syscall_killed = 0;
	p->kernel_features = 0;
	p->kernel_usable = 0;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return;
	/* A raw clone: like fork(), but without running anybody's atfork
	 * handlers (ours would copy emulated areas for nothing). */
	pid = (pid_t)sys_call6(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0);
	if (pid == 0) {
		sys_close(pfd[0]);
		probe_child(pfd[1]);
	}
	sys_close(pfd[1]);
	if (pid < 0) {
		sys_close(pfd[0]);
		return;
	}
	memset(&r, 0, sizeof r);
	while (sys_read(pfd[0], &r, sizeof r) == (ssize_t)sizeof r) {
		if (r.what == PROBE_DEV) {
			p->dev_errno = r.err;
			if (!r.err)
				p->kernel_features = r.features;
		} else if (r.what == PROBE_SYSCALL_USER) {
			p->syscall_user_errno = r.err;
			if (!r.err && !p->kernel_features)
				p->kernel_features = r.features;
		} else if (r.what == PROBE_SYSCALL) {
			p->syscall_errno = r.err;
			if (!r.err)
				p->kernel_features = r.features;
		}
	}
	sys_close(pfd[0]);
	while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status))
		p->syscall_killed = WTERMSIG(status);
	p->kernel_usable = (p->syscall_errno == 0 || p->dev_errno == 0) && p->kernel_features;
}
