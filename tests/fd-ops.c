/* SPDX-License-Identifier: MIT */
/* The uffd is an ordinary descriptor: dup / dup3 copies share the object and
 * the file status flags (F_SETFL O_NONBLOCK on a copy makes reads on the
 * original non-blocking, and back); FD_CLOEXEC via F_SETFD is honoured by
 * exec; a descriptor passed over a unix socket (SCM_RIGHTS) within the process
 * is the same object, and keeps working after the original is closed; the
 * ioctls the VFS answers for any file (FIONBIO, FIOCLEX...) work through
 * uf_ioctl as on any descriptor; a number that named a uffd and names
 * another file since (closed and opened again, replaced by dup2 or dup3,
 * closed by close_range) is that file to uf_read and uf_ioctl. */
#include "t.h"

#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

static void dups(void)
{
	int fd = t_uffd_flags(O_CLOEXEC, 0);	/* blocking */
	int d1 = dup(fd), d3 = dup3(fd, 100, O_CLOEXEC);
	char *p = t_map(3);
	struct uffd_msg m;
	struct t_touch t;

	T_REQUIRE(d1 >= 0 && d3 == 100);
	/* Register through one copy, read through another, COPY through the
	 * third. */
	CHECK_EQ(t_register(d1, p, 3 * (size_t)t_ps), 0);
	CHECK_EQ(fcntl(d3, F_SETFL, O_NONBLOCK), 0);
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
	CHECK_ERRNO(uf_read(fd, &m, sizeof m), EAGAIN);
	T_EXPECT_FAULT(d3, p, 0, 0x21);
	CHECK_EQ(p[1], 0x21);

	/* Back to blocking through a copy: a read on the original waits for
	 * the fault. */
	CHECK_EQ(fcntl(d1, F_SETFL, 0), 0);
	CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK));
	t_touch_start_delayed(&t, p + t_ps, 0, 0, 150);
	CHECK_EQ(uf_read(fd, &m, sizeof m), 32);
	CHECK_FAULT(&m, p + t_ps, 0);
	CHECK_EQ(t_copy_byte(fd, p + t_ps, 0x22, 1, 0), 0);
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(t.val, 0x22);

	/* Closing copies does not release the object. */
	CHECK_EQ(uf_close(fd), 0);
	CHECK_EQ(uf_close(d1), 0);
	CHECK_EQ(fcntl(d3, F_SETFL, O_NONBLOCK), 0);
	T_EXPECT_FAULT(d3, p + 2 * t_ps, 1, 0x23);
	CHECK_EQ(uf_close(d3), 0);
}

/* Does a program exec'ed now see descriptor fd open? */
static int open_after_exec(int fd)
{
	char cmd[64];
	pid_t pid;
	int st;

	snprintf(cmd, sizeof cmd, "[ -e /proc/self/fd/%d ]", fd);
	pid = fork();
	T_REQUIRE(pid >= 0);
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	T_REQUIRE(waitpid(pid, &st, 0) == pid);
	T_REQUIRE(WIFEXITED(st) && WEXITSTATUS(st) != 127);
	return WEXITSTATUS(st) == 0;
}

static void cloexec(void)
{
	int fd = t_uffd_flags(0, 0);

	CHECK_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	CHECK_EQ(open_after_exec(fd), 1);
	CHECK_EQ(fcntl(fd, F_SETFD, FD_CLOEXEC), 0);
	CHECK_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	CHECK_EQ(open_after_exec(fd), 0);
	CHECK_EQ(fcntl(fd, F_SETFD, 0), 0);
	CHECK_EQ(open_after_exec(fd), 1);
	/* Still a working uffd. */
	CHECK_EQ(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	{
		char *p = t_map_reg(fd, 1);

		T_EXPECT_FAULT(fd, p, 1, 0x24);
	}
	CHECK_EQ(uf_close(fd), 0);
}

static void scm_rights(void)
{
	int sv[2], fd, got;
	char *p = t_map(3);
	struct uffdio_api api = { .api = UFFD_API };

	T_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	/* Sent before UFFDIO_API; the API is done on the received copy. */
	fd = uf_userfaultfd(O_CLOEXEC | O_NONBLOCK);
	T_REQUIRE(fd >= 0);
	t_send_fd(sv[0], fd);
	got = t_recv_fd(sv[1], MSG_CMSG_CLOEXEC);
	CHECK(got >= 0 && got != fd);
	/* cppcheck-suppress invalidFunctionArg ; got < 0 has failed the check above already */
	CHECK(fcntl(got, F_GETFL) & O_NONBLOCK);
	CHECK_EQ(t_api_fd(got, UFFD_FEATURE_THREAD_ID), 0);
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_API, &api), EINVAL);

	/* Register on the original, the received one sees the faults. */
	CHECK_EQ(t_register(fd, p, 3 * (size_t)t_ps), 0);
	T_EXPECT_FAULT(got, p, 0, 0x31);
	/* And the other way round. */
	CHECK_EQ(t_unregister(got, p + 2 * t_ps, (size_t)t_ps), 0);
	T_EXPECT_NO_FAULT(fd, p + 2 * t_ps, 0, 0);
	/* The original closed: the received copy carries on. */
	CHECK_EQ(uf_close(fd), 0);
	T_EXPECT_FAULT(got, p + t_ps, 1, 0x32);

	/* A copy in flight keeps the object (and its registrations) alive. */
	munmap(p, 3 * (size_t)t_ps);
	p = t_map(1);
	CHECK_EQ(t_register(got, p, (size_t)t_ps), 0);
	t_send_fd(sv[0], got);
	CHECK_EQ(uf_close(got), 0);
	fd = t_recv_fd(sv[1], MSG_CMSG_CLOEXEC);
	T_REQUIRE(fd >= 0);
	T_EXPECT_FAULT(fd, p, 0, 0x33);
	CHECK_EQ(uf_close(fd), 0);
	close(sv[0]);
	close(sv[1]);
}

/* The ioctls the kernel's VFS answers for any file, through uf_ioctl, before
 * and after UFFDIO_API: FIONBIO, FIOCLEX, FIONCLEX change the flags;
 * FIOASYNC is ENOTTY (no fasync) unless it clears; FIOQSIZE ENOTTY;
 * FIGETBSZ the page size; FIONREAD goes to the uffd (EINVAL). */
static void vfs_ioctls(void)
{
	int fd = uf_userfaultfd(O_CLOEXEC), on, n;
	long long q;

	T_REQUIRE(fd >= 0);
	for (int round = 0; round < 2; round++) {
		on = 1;
		CHECK_EQ(uf_ioctl(fd, FIONBIO, &on), 0);
		CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
		on = 0;
		CHECK_EQ(uf_ioctl(fd, FIONBIO, &on), 0);
		CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK));
		CHECK_ERRNO(uf_ioctl(fd, FIONBIO, NULL), EFAULT);
		CHECK_EQ(uf_ioctl(fd, FIONCLEX, 0UL), 0);
		CHECK_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
		CHECK_EQ(uf_ioctl(fd, FIOCLEX, 0UL), 0);
		CHECK_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
		on = 1;
		CHECK_ERRNO(uf_ioctl(fd, FIOASYNC, &on), ENOTTY);
		on = 0;
		CHECK_EQ(uf_ioctl(fd, FIOASYNC, &on), 0);
		CHECK_ERRNO(uf_ioctl(fd, FIOASYNC, NULL), EFAULT);
		CHECK_ERRNO(uf_ioctl(fd, FIOQSIZE, &q), ENOTTY);
		n = 0;
		CHECK_EQ(uf_ioctl(fd, FIGETBSZ, &n), 0);
		CHECK_EQ(n, t_ps);
		CHECK_ERRNO(uf_ioctl(fd, FIONREAD, &n), EINVAL);
		if (round == 0)
			CHECK_EQ(t_api_fd(fd, 0), 0);
	}
	CHECK_EQ(uf_close(fd), 0);
}

/* A regular file with "file" in it, at number want (a free one) or any
 * (want < 0). */
static int file_at(int want)
{
	int m = memfd_create("fd-ops", MFD_CLOEXEC), fd = m;

	T_REQUIRE(m >= 0 && write(m, "file", 4) == 4 && lseek(m, 0, SEEK_SET) == 0);
	if (want >= 0 && m != want) {
		fd = dup3(m, want, O_CLOEXEC);
		T_REQUIRE(fd == want);
		close(m);
	}
	return fd;
}

/* fd is a regular file holding "file" at offset 0, not a uffd. */
static void is_the_file(int fd)
{
	char buf[64] = { 0 };
	struct uffdio_api api = { .api = UFFD_API };

	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_API, &api), ENOTTY);
	CHECK_EQ(uf_read(fd, buf, sizeof buf), 4);
	CHECK(!memcmp(buf, "file", 4));
}

/* Use fd as a uffd (read and ioctls), the way a handler does each time. */
static void use_uffd(int fd)
{
	struct uffd_msg m;
	struct uffdio_api api = { .api = UFFD_API };

	for (int i = 0; i < 3; i++) {
		CHECK_ERRNO(uf_read(fd, &m, sizeof m), EAGAIN);
		CHECK_ERRNO(uf_ioctl(fd, UFFDIO_API, &api), EINVAL);	/* done once already */
	}
}

static void number_reused(void)
{
	int a = t_uffd_flags(O_CLOEXEC | O_NONBLOCK, 0), b = t_uffd_flags(O_CLOEXEC | O_NONBLOCK, 0);
	int f;

	/* close, then the number is opened again */
	use_uffd(a);
	CHECK_EQ(close(a), 0);
	is_the_file(file_at(a));
	CHECK_EQ(close(a), 0);

	/* dup2 and dup3 onto a uffd's number */
	a = t_uffd_flags(O_CLOEXEC | O_NONBLOCK, 0);
	use_uffd(a);
	use_uffd(b);
	f = file_at(-1);
	CHECK_EQ(dup2(f, a), a);
	CHECK_EQ(lseek(f, 0, SEEK_SET), 0);
	is_the_file(a);
	CHECK_EQ(lseek(f, 0, SEEK_SET), 0);
	CHECK_EQ(dup3(f, b, O_CLOEXEC), b);
	is_the_file(b);
	CHECK_EQ(close(a), 0);
	CHECK_EQ(close(b), 0);
	CHECK_EQ(close(f), 0);

	/* close_range over a uffd, then its number opened again */
	a = t_uffd_flags(O_CLOEXEC | O_NONBLOCK, 0);
	use_uffd(a);
	CHECK_EQ(close_range((unsigned)a, (unsigned)a, 0), 0);
	is_the_file(file_at(a));
	CHECK_EQ(close(a), 0);
}

int main(void)
{
	t_start(30);
	number_reused();
	dups();
	cloexec();
	scm_rights();
	vfs_ioctls();
	return t_done();
}
