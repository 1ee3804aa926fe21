/* SPDX-License-Identifier: MIT */
/* Faults taken inside system calls.  With UFFD_USER_MODE_ONLY (both back-ends;
 * the emulation always behaves so): write() from / read() into a missing
 * registered page fails with EFAULT and queues no message, while user-mode
 * accesses are reported normally.  Without it the kernel reports the fault and
 * the system call completes after COPY: kernel only (skipped on emulated). */
#include "t.h"

struct sys_io {
	int fd;
	char *buf;
	int write;		/* 1: write(fd, buf); 0: read(fd, buf) */
	ssize_t ret;
	int done;
};

static void *sys_io_fn(void *arg)
{
	struct sys_io *s = arg;

	s->ret = s->write ? write(s->fd, s->buf, 64) : read(s->fd, s->buf, 64);
	__atomic_store_n(&s->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void user_mode_only(void)
{
	int fd = t_uffd_flags(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY, 0);
	char *p = t_map_reg(fd, 4);
	char buf[64];
	int pfd[2], zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);

	T_REQUIRE(pipe(pfd) == 0 && zero >= 0);
	CHECK_ERRNO(write(pfd[1], p, 64), EFAULT);
	CHECK_ERRNO(write(pfd[1], p + 2 * t_ps + 100, 1), EFAULT);
	memset(buf, 0x3a, sizeof buf);
	CHECK_EQ(write(pfd[1], buf, sizeof buf), 64);
	CHECK_ERRNO(read(pfd[0], p + t_ps, 64), EFAULT);
	CHECK_ERRNO(read(zero, p + 2 * t_ps, 64), EFAULT);
	T_NO_MSG(fd, 100);

	/* User-mode accesses are reported; resolved pages work in syscalls. */
	T_EXPECT_FAULT(fd, p + 10, 0, 0x3b);
	T_EXPECT_FAULT(fd, p + 3 * t_ps, 1, 0x3c);
	CHECK_EQ(write(pfd[1], p, 64), 64);
	close(pfd[0]);
	close(pfd[1]);
	T_REQUIRE(pipe(pfd) == 0);
	CHECK_EQ(write(pfd[1], buf, sizeof buf), 64);
	CHECK_EQ(read(pfd[0], p + 3 * t_ps, 64), 64);
	CHECK_EQ(p[3 * t_ps + 63], 0x3a);
	CHECK_EQ(read(zero, p, 64), 64);
	CHECK_EQ(p[0], 0);
	CHECK_EQ(p[64], 0x3b);
	/* Still missing, still EFAULT. */
	CHECK_ERRNO(write(pfd[1], p + t_ps, 64), EFAULT);
	T_NO_MSG(fd, 0);
	close(pfd[0]);
	close(pfd[1]);
	close(zero);
	CHECK_EQ(uf_close(fd), 0);
}

/* Kernel only: the syscall blocks on the fault and completes after COPY. */
static void kernel_mode_faults(void)
{
	int fd = t_uffd(0);
	char *p = t_map_reg(fd, 2);
	int pfd[2];
	struct sys_io s[2];
	struct uffd_msg m;
	pthread_t th;
	char buf[64];

	T_REQUIRE(pipe(pfd) == 0);
	s[0] = (struct sys_io){ .fd = pfd[1], .buf = p + 8, .write = 1 };
	th = t_thread(sys_io_fn, &s[0]);
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, p, 0);
	CHECK(!t_wait_flag(&s[0].done, 200));
	CHECK_EQ(t_copy_byte(fd, p, 0x4e, 1, 0), 0);
	CHECK(t_wait_flag(&s[0].done, 2000));
	t_join(th);
	CHECK_EQ(s[0].ret, 64);
	CHECK_EQ(read(pfd[0], buf, sizeof buf), 64);
	CHECK_EQ(buf[63], 0x4e);

	memset(buf, 0x4f, sizeof buf);
	CHECK_EQ(write(pfd[1], buf, sizeof buf), 64);
	s[1] = (struct sys_io){ .fd = pfd[0], .buf = p + t_ps, .write = 0 };
	th = t_thread(sys_io_fn, &s[1]);
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, p + t_ps, UFFD_PAGEFAULT_FLAG_WRITE);
	CHECK_EQ(t_zeropage(fd, p + t_ps, (size_t)t_ps, 0, NULL), 0);
	CHECK(t_wait_flag(&s[1].done, 2000));
	t_join(th);
	CHECK_EQ(s[1].ret, 64);
	CHECK_EQ(p[t_ps + 63], 0x4f);
	CHECK_EQ(p[t_ps + 64], 0);
	close(pfd[0]);
	close(pfd[1]);
	CHECK_EQ(uf_close(fd), 0);
}

int main(void)
{
	t_start(20);
	user_mode_only();
	if (t_emulated())
		T_NOTE("kernel-mode faults without UFFD_USER_MODE_ONLY: kernel only, skipped on emulated");
	else
		kernel_mode_faults();
	return t_done();
}
