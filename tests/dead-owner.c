/* SPDX-License-Identifier: MIT */
/* A uffd whose process is gone before this one ever used it (UFFD-SPEC
 * 13.2, 13.4):
 *  1. exec: a process makes a uffd (not close-on-exec), registers memory,
 *     and execs; the new image holds a uffd of its old, dead address space;
 *  2. received after exit: a process makes a uffd, registers memory, sends
 *     the descriptor over a unix socket and exits; the receiver takes it
 *     only then.
 * Both answer as the kernel's uffd of a dead process: COPY and ZEROPAGE
 * ESRCH (the output field untouched), REGISTER and UNREGISTER ENOMEM, WAKE
 * 0, API EINVAL, read EAGAIN, poll nothing (not POLLHUP), never ENOTTY.
 * Through the library a dead uffd is recognised at its first uf_* call;
 * the checks make one before poll.  A plain pipe still says ENOTTY. */
#include "t.h"
#include <sys/wait.h>

#define P(n) ((size_t)(n) * (size_t)t_ps)
/* The registered range of the dead process (the new image is told it; the
 * receiver reads it from a shared page). */
static char *REGION;
static char **g_shared;

static void check_dead(int fd, const char *how, int read_first)
{
	char src[4096] __attribute__((aligned(4096)));
	struct uffd_msg m;
	struct uffdio_api api = { .api = UFFD_API };
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	int64_t out = 0;

	fprintf(stderr, "%s\n", how);
	if (read_first)
		CHECK_ERRNO(uf_read(fd, &m, sizeof m), EAGAIN);
	memset(src, 0x5a, sizeof src);
	CHECK_ERRNO(t_copy(fd, REGION, src, P(1), 0, &out), ESRCH);
	CHECK_EQ(out, 0x5a5a);			/* t_copy's: untouched */
	CHECK_ERRNO(t_zeropage(fd, REGION, P(1), 0, NULL), ESRCH);
	CHECK_ERRNO(t_register(fd, REGION, P(2)), ENOMEM);
	CHECK_ERRNO(t_unregister(fd, REGION, P(2)), ENOMEM);
	CHECK_OK(t_wake(fd, REGION, P(2)));
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_API, &api), EINVAL);
	CHECK_ERRNO(uf_read(fd, &m, sizeof m), EAGAIN);
	CHECK_EQ(poll(&pf, 1, 0), 0);		/* nothing, not even POLLHUP */
	CHECK_EQ(pf.revents, 0);
	CHECK_OK(uf_close(fd));
}

/* A uffd (O_NONBLOCK, and close-on-exec as cloexec says) with REGION
 * registered in this process. */
static int make_uffd(int cloexec)
{
	int fd = t_uffd(0);
	char *p;

	CHECK_OK(fcntl(fd, F_SETFD, cloexec ? FD_CLOEXEC : 0));
	p = t_map(2);
	CHECK_OK(t_register(fd, p, P(2)));
	REGION = *g_shared = p;
	return fd;
}

/* ---- 1: exec ---- */
static void across_exec(const char *self)
{
	pid_t pid = fork();
	int status;

	T_REQUIRE(pid >= 0);
	if (pid == 0) {
		char arg[16], reg[32];
		int fd = make_uffd(0);

		snprintf(arg, sizeof arg, "%d", fd);
		snprintf(reg, sizeof reg, "%p", (void *)REGION);
		execl(self, self, "--exec-image", arg, reg, (char *)NULL);
		_exit(99);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);	/* the new image's checks */
}

/* ---- 2: received after its process exited ---- */
static void after_exit(void)
{
	int sv[2], fd, status;
	pid_t pid;

	T_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	pid = fork();
	T_REQUIRE(pid >= 0);
	if (pid == 0) {
		fd = make_uffd(1);
		t_send_fd(sv[1], fd);
		_exit(0);
	}
	close(sv[1]);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	fd = t_recv_fd(sv[0], MSG_CMSG_CLOEXEC);
	close(sv[0]);
	REGION = *g_shared;
	check_dead(fd, "received after its process exited", 1);
}

/* A plain pipe is no uffd: ENOTTY, and end of file once its writer is
 * closed. */
static void plain_pipe(void)
{
	char src[64] = { 0 }, buf[64];
	int p[2];

	T_REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	CHECK_ERRNO(t_copy(p[0], REGION, src, P(1), 0, NULL), ENOTTY);
	close(p[1]);
	CHECK_EQ(uf_read(p[0], buf, sizeof buf), 0);
	CHECK_ERRNO(t_wake(p[0], REGION, P(1)), ENOTTY);
	close(p[0]);
}

int main(int argc, char **argv)
{
	t_start(30);
	g_shared = mmap(NULL, sizeof *g_shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	T_REQUIRE(g_shared != MAP_FAILED);
	if (argc == 4 && !strcmp(argv[1], "--exec-image")) {
		REGION = (char *)(uintptr_t)strtoull(argv[3], NULL, 16);
		check_dead(atoi(argv[2]), "inherited across exec", 0);
		return t_done();
	}
	{
		/* Its own path (under valgrind, /proc/self/exe is valgrind). */
		static char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

		T_REQUIRE(n > 0);
		self[n] = 0;
		across_exec(self);
	}
	after_exit();
	plain_pipe();
	return t_done();
}
