/* SPDX-License-Identifier: MIT */
/* read() on a uffd: EINVAL for fewer than 32 bytes (0, 1, 31; also while
 * messages wait, without consuming them); EAGAIN when empty (never 0);
 * k * 32 bytes, FIFO, several messages per read, read(40) returns one;
 * a COPY wake drops woken messages that were not read yet; a buffer that
 * faults loses the message being copied, and only that one (EFAULT if it
 * was the first, else the messages before it are returned); a blocking read
 * is interrupted by a signal (EINTR) or restarted with SA_RESTART. */
#include "t.h"

static volatile sig_atomic_t got_signal;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	got_signal++;
}

/* Thread: SIGUSR1 to the thread *arg after 200 ms. */
static void *signal_later(void *arg)
{
	t_msleep(200);
	pthread_kill(*(pthread_t *)arg, SIGUSR1);
	return NULL;
}

/* Three threads fault on pages first..first+2, in that order. */
static void three_faulters(char *p, int first, struct t_touch *t)
{
	for (int i = 0; i < 3; i++) {
		t_touch_start(&t[i], p + (first + i) * t_ps, 0, 0);
		t_msleep(150);
	}
}

static void nonblocking(void)
{
	int fd = t_uffd(0);
	char *p = t_map_reg(fd, 6);
	struct uffd_msg m[8];
	struct t_touch t[3];

	/* Empty. */
	CHECK_ERRNO(uf_read(fd, m, sizeof m[0]), EAGAIN);
	CHECK_ERRNO(uf_read(fd, m, sizeof m), EAGAIN);
	CHECK_ERRNO(uf_read(fd, m, 0), EINVAL);
	CHECK_ERRNO(uf_read(fd, m, 1), EINVAL);
	CHECK_ERRNO(uf_read(fd, m, 31), EINVAL);

	/* Three pending: FIFO, read(40) takes one, a big read takes the rest. */
	three_faulters(p, 0, t);
	CHECK_ERRNO(uf_read(fd, m, 31), EINVAL);
	CHECK_ERRNO(uf_read(fd, m, 0), EINVAL);
	CHECK_EQ(uf_read(fd, m, 40), 32);
	CHECK_FAULT(&m[0], p, 0);
	CHECK_EQ(uf_read(fd, m, sizeof m), 64);
	CHECK_FAULT(&m[0], p + t_ps, 0);
	CHECK_FAULT(&m[1], p + 2 * t_ps, 0);
	CHECK_ERRNO(uf_read(fd, m, sizeof m), EAGAIN);
	/* One COPY of three pages wakes all three. */
	{
		char *src = t_map(3);

		for (int i = 0; i < 3; i++)
			memset(src + i * t_ps, 0x61 + i, (size_t)t_ps);
		CHECK_EQ(t_copy(fd, p, src, 3 * (size_t)t_ps, 0, NULL), 0);
		munmap(src, 3 * (size_t)t_ps);
	}
	for (int i = 0; i < 3; i++) {
		CHECK(t_touch_wait(&t[i], 2000));
		CHECK_EQ(t[i].val, 0x61 + i);
	}
	CHECK_ERRNO(uf_read(fd, m, sizeof m), EAGAIN);

	/* Three pending, one read; the COPY wake removes the two unread. */
	three_faulters(p, 3, t);
	CHECK_EQ(uf_read(fd, m, 40), 32);
	CHECK_FAULT(&m[0], p + 3 * t_ps, 0);
	CHECK_EQ(t_copy_byte(fd, p + 3 * t_ps, 0x70, 3, 0), 0);
	for (int i = 0; i < 3; i++) {
		CHECK(t_touch_wait(&t[i], 2000));
		CHECK_EQ(t[i].val, 0x70);
	}
	T_NO_MSG(fd, 200);
	CHECK_EQ(uf_close(fd), 0);
}

/* A buffer that faults part way: messages are taken one at a time, and the
 * one whose copy fails is lost (its thread keeps waiting, unreported):
 * EFAULT if it was the first, else the bytes of those before it; the
 * messages after it stay queued. */
static void bad_buffer(void)
{
	int fd = t_uffd(0);
	char *p = t_map_reg(fd, 4);
	char *b = t_map(2);
	char *cut = b + t_ps - sizeof(struct uffd_msg);	/* 32 bytes, then a hole */
	struct uffd_msg m[4];
	struct t_touch t[4];

	munmap(b + t_ps, (size_t)t_ps);
	three_faulters(p, 0, t);
	CHECK_EQ(uf_read(fd, cut, 3 * sizeof m[0]), 32);
	memcpy(&m[0], cut, sizeof m[0]);
	CHECK_FAULT(&m[0], p, 0);
	/* The second was lost, the third is still there. */
	CHECK_EQ(uf_read(fd, m, sizeof m), 32);
	CHECK_FAULT(&m[0], p + 2 * t_ps, 0);
	T_NO_MSG(fd, 0);

	/* The first message cannot be copied: EFAULT, and it is gone. */
	t_touch_start(&t[3], p + 3 * t_ps, 1, 0x66);
	t_msleep(150);
	CHECK_ERRNO(uf_read(fd, NULL, 2 * sizeof m[0]), EFAULT);
	T_NO_MSG(fd, 100);
	for (int i = 0; i < 4; i++)
		CHECK(!t_touch_wait(&t[i], 0));
	CHECK_EQ(t_copy_byte(fd, p, 0x65, 4, 0), 0);
	for (int i = 0; i < 4; i++)
		CHECK(t_touch_wait(&t[i], 2000));
	CHECK_EQ(t[1].val, 0x65);
	CHECK_EQ(p[3 * t_ps], 0x66);
	T_NO_MSG(fd, 100);
	munmap(b, (size_t)t_ps);
	t_unmap_reg(fd, p, 4);
	CHECK_EQ(uf_close(fd), 0);
}

static void blocking(void)
{
	int fd = t_uffd_flags(O_CLOEXEC, 0);
	char *p = t_map_reg(fd, 1);
	struct uffd_msg m[4];
	pthread_t self = pthread_self();
	struct t_touch t;
	pthread_t th;

	/* A signal without SA_RESTART: EINTR. */
	t_sigaction(SIGUSR1, on_usr1, 0);
	got_signal = 0;
	th = t_thread(signal_later, &self);
	CHECK_ERRNO(uf_read(fd, m, sizeof m), EINTR);
	CHECK_EQ(got_signal, 1);
	t_join(th);

	/* With SA_RESTART the read goes on and returns the fault that comes
	 * after the signal. */
	t_sigaction(SIGUSR1, on_usr1, SA_RESTART);
	got_signal = 0;
	th = t_thread(signal_later, &self);
	t_touch_start_delayed(&t, p + 100, 0, 0, 400);
	CHECK_EQ(uf_read(fd, m, sizeof m), 32);
	CHECK_EQ(got_signal, 1);
	CHECK_FAULT(&m[0], p, 0);
	t_join(th);
	CHECK_EQ(t_copy_byte(fd, p, 0x42, 1, 0), 0);
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(t.val, 0x42);
	CHECK_EQ(uf_close(fd), 0);
}

int main(void)
{
	t_start(20);
	nonblocking();
	bad_buffer();
	blocking();
	return t_done();
}
