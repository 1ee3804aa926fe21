/* dead-uffd: a uffd whose process is gone: inherited across exec by the new image, or received after its sender exited. */
/*
 * SPDX-License-Identifier: MIT
 *
 * Raw kernel ABI only.  A uffd keeps pointing at the address space it was
 * made in.  When that one is gone (the process exec'd: the new image holds
 * a uffd of the old one; or it exited before the receiver took the
 * descriptor) the uffd stays a valid file that serves nothing: poll says
 * nothing, read says EAGAIN, COPY and ZEROPAGE ESRCH, REGISTER and
 * UNREGISTER ENOMEM, API EINVAL, WAKE succeeds.  One whose process went
 * before its UFFDIO_API still takes that call, once; until then read and
 * the other ioctls say EINVAL.
 *
 *   dead-uffd                     both cases, one line per call
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <userfault/uapi.h>	/* our copy of <linux/userfaultfd.h> */

#define LEN 8192UL
/* The registered range (the new image is told where it was). */
static void *REGION;

static void show(const char *what, long r)
{
	printf("%-22s %s\n", what, r < 0 ? strerrorname_np(errno) : "ok");
}

static void probe(int uffd)
{
	static char src[4096] __attribute__((aligned(4096)));
	struct pollfd pf = { .fd = uffd, .events = POLLIN };
	struct uffd_msg m;
	struct uffdio_copy cp = { (unsigned long)REGION, (unsigned long)src, 4096, 0, 0 };
	struct uffdio_zeropage zp = { { (unsigned long)REGION, 4096 }, 0, 0 };
	struct uffdio_register reg = { { (unsigned long)REGION, LEN }, UFFDIO_REGISTER_MODE_MISSING, 0 };
	struct uffdio_range rg = { (unsigned long)REGION, LEN };
	struct uffdio_api api = { .api = UFFD_API };
	int n = poll(&pf, 1, 0);

	printf("%-22s %d revents %#x\n", "poll", n, (unsigned)pf.revents);
	show("read", read(uffd, &m, sizeof m));
	show("UFFDIO_COPY", ioctl(uffd, UFFDIO_COPY, &cp));
	printf("%-22s %lld\n", "  .copy", (long long)cp.copy);
	show("UFFDIO_ZEROPAGE", ioctl(uffd, UFFDIO_ZEROPAGE, &zp));
	show("UFFDIO_REGISTER", ioctl(uffd, UFFDIO_REGISTER, &reg));
	show("UFFDIO_UNREGISTER", ioctl(uffd, UFFDIO_UNREGISTER, &rg));
	show("UFFDIO_WAKE", ioctl(uffd, UFFDIO_WAKE, &rg));
	show("UFFDIO_API", ioctl(uffd, UFFDIO_API, &api));
	close(uffd);
}

/* A uffd gone before its UFFDIO_API. */
static void probe_fresh(int uffd)
{
	struct uffd_msg m;
	static char src[4096] __attribute__((aligned(4096)));
	struct uffdio_copy cp = { (unsigned long)src, (unsigned long)src, 4096, 0, 0 };
	struct uffdio_range rg = { (unsigned long)src, 4096 };
	struct uffdio_api api = { .api = UFFD_API };

	show("read", read(uffd, &m, sizeof m));
	show("UFFDIO_COPY", ioctl(uffd, UFFDIO_COPY, &cp));
	show("UFFDIO_WAKE", ioctl(uffd, UFFDIO_WAKE, &rg));
	show("UFFDIO_API", ioctl(uffd, UFFDIO_API, &api));
	printf("%-22s %s\n", "  .ioctls", api.ioctls == UFFD_API_IOCTLS ? "UFFD_API_IOCTLS" : "other");
	show("UFFDIO_API again", ioctl(uffd, UFFDIO_API, &api));
	show("read", read(uffd, &m, sizeof m));
	show("UFFDIO_COPY", ioctl(uffd, UFFDIO_COPY, &cp));
	close(uffd);
}

/* A uffd with REGION registered. */
static int make_uffd(int flags)
{
	int uffd = (int)syscall(__NR_userfaultfd, flags | O_NONBLOCK);
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { { (unsigned long)REGION, LEN }, UFFDIO_REGISTER_MODE_MISSING, 0 };

	REGION = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	reg.range.start = (unsigned long)REGION;
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0 || REGION == MAP_FAILED ||
	    ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
		perror("uffd");
		exit(1);
	}
	return uffd;
}

static void send_fd(int sock, int fd)
{
	char c = 'u';
	struct iovec iov = { &c, 1 };
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
			    .msg_controllen = sizeof u.b };
	struct cmsghdr *cm;

	memset(&u, 0, sizeof u);
	cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	if (sendmsg(sock, &m, 0) != 1)
		exit(1);
}

static int recv_fd(int sock)
{
	char c;
	struct iovec iov = { &c, 1 };
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
			    .msg_controllen = sizeof u.b };
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) != 1 || !(cm = CMSG_FIRSTHDR(&m)))
		exit(1);
	memcpy(&fd, CMSG_DATA(cm), sizeof fd);
	return fd;
}

int main(int argc, char **argv)
{
	int sv[2], status;
	void **shared;
	pid_t pid;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc == 3 && !strcmp(argv[1], "--new-image-fresh")) {
		printf("inherited across exec before its UFFDIO_API:\n");
		probe_fresh((int)strtol(argv[2], NULL, 10));
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "--new-image")) {
		REGION = (void *)(uintptr_t)strtoull(argv[3], NULL, 16);
		printf("inherited across exec:\n");
		probe((int)strtol(argv[2], NULL, 10));
		return 0;
	}
	/* 1. A child makes a uffd (kept across exec) and execs this program. */
	pid = fork();
	if (pid == 0) {
		char arg[16], reg[32], self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

		if (n <= 0)
			_exit(1);
		self[n] = 0;
		snprintf(arg, sizeof arg, "%d", make_uffd(0));
		snprintf(reg, sizeof reg, "%p", REGION);
		execl(self, argv[0], "--new-image", arg, reg, (char *)NULL);
		_exit(1);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		return 1;
	/* 1b. The same before UFFDIO_API. */
	pid = fork();
	if (pid == 0) {
		char arg[16], self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		int uffd = (int)syscall(__NR_userfaultfd, O_NONBLOCK | UFFD_USER_MODE_ONLY);

		if (n <= 0 || uffd < 0)
			_exit(1);
		self[n] = 0;
		snprintf(arg, sizeof arg, "%d", uffd);
		execl(self, argv[0], "--new-image-fresh", arg, (char *)NULL);
		_exit(1);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		return 1;
	/* 2. A child sends its uffd and exits; then it is received. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 1;
	shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		return 1;
	pid = fork();
	if (pid == 0) {
		int uffd = make_uffd(O_CLOEXEC);
		*shared = REGION;
		send_fd(sv[1], uffd);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
		munmap(shared, sizeof *shared);
		return 1;
	}
	REGION = *shared;
	munmap(shared, sizeof *shared);
	printf("received after its sender exited:\n");
	probe(recv_fd(sv[0]));
	return 0;
}
