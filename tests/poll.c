/* SPDX-License-Identifier: MIT */
/* poll / select / epoll on a uffd.  O_NONBLOCK: readable (POLLIN only) iff an
 * unread message waits, 0 after the read, and a sleeping poll/epoll_wait
 * wakes when a fault arrives.  Blocking descriptor: the kernel always reports
 * POLLERR (select: readable and writable; epoll: EPOLLERR); emulated reports
 * readable only when a message waits (documented difference).  F_SETFL
 * O_NONBLOCK switches between the two at once.  UNREGISTER takes the unread
 * messages of the threads it wakes: no longer readable for them.  With
 * several threads faulting at once and one handler, a read after poll said
 * POLLIN always has a message (never EAGAIN). */
#include "t.h"

#include <sys/epoll.h>
#include <sys/select.h>

static int poll_now(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
	int r = poll(&p, 1, ms);

	return r < 0 ? -1 : r == 0 ? 0 : p.revents;
}

/* 1 = readable, 2 = writable. */
static int select_now(int fd)
{
	fd_set r, w;
	struct timeval tv = { 0, 0 };

	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_SET(fd, &r);
	FD_SET(fd, &w);
	if (select(fd + 1, &r, &w, NULL, &tv) < 0)
		return -1;
	return (FD_ISSET(fd, &r) ? 1 : 0) | (FD_ISSET(fd, &w) ? 2 : 0);
}

static int epoll_now(int ep, int ms)
{
	struct epoll_event ev;
	int r = epoll_wait(ep, &ev, 1, ms);

	return r < 0 ? -1 : r == 0 ? 0 : (int)ev.events;
}

/* Expected readiness of the descriptor as it is now (epoll not checked if
 * ep < 0). */
struct want { int poll, select, epoll; };

static void check_ready(int fd, int ep, const struct want *w, const char *when)
{
	int before = t_failures;

	CHECK_EQ(poll_now(fd, 0), w->poll);
	CHECK_EQ(select_now(fd), w->select);
	if (ep >= 0)
		CHECK_EQ(epoll_now(ep, 0), w->epoll);
	if (t_failures != before)
		fprintf(stderr, "  (%s)\n", when);
}

static void nonblocking(void)
{
	static const struct want idle = { 0, 0, 0 };
	static const struct want ready = { POLLIN, 1, EPOLLIN };
	int fd = t_uffd(0);
	char *p = t_map_reg(fd, 3);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	struct t_touch t;
	struct uffd_msg m;

	T_REQUIRE(ep >= 0);
	T_REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
	check_ready(fd, ep, &idle, "O_NONBLOCK, empty");
	CHECK_EQ(poll_now(fd, 100), 0);

	/* A sleeping poll wakes when the fault comes. */
	t_touch_start_delayed(&t, p, 0, 0, 150);
	CHECK_EQ(poll_now(fd, 3000), POLLIN);
	check_ready(fd, ep, &ready, "O_NONBLOCK, one message");
	/* Still there: poll does not consume. */
	check_ready(fd, ep, &ready, "O_NONBLOCK, one message, again");
	CHECK_EQ(uf_read(fd, &m, sizeof m), 32);
	CHECK_FAULT(&m, p, 0);
	check_ready(fd, ep, &idle, "O_NONBLOCK, message read, fault unresolved");
	CHECK_EQ(t_copy_byte(fd, p, 1, 1, 0), 0);
	CHECK(t_touch_wait(&t, 2000));
	check_ready(fd, ep, &idle, "O_NONBLOCK, resolved");

	/* A sleeping epoll_wait wakes too. */
	t_touch_start_delayed(&t, p + t_ps, 0, 0, 150);
	CHECK_EQ(epoll_now(ep, 3000), EPOLLIN);
	if (T_MSG(fd, &m, 1000))
		CHECK_FAULT(&m, p + t_ps, 0);
	check_ready(fd, ep, &idle, "O_NONBLOCK, second message read");
	CHECK_EQ(t_copy_byte(fd, p + t_ps, 2, 1, 0), 0);
	CHECK(t_touch_wait(&t, 2000));

	/* Switch to blocking with F_SETFL: as in blocking() for poll and
	 * select (an epoll set that saw no wake-up since is not re-polled). */
	CHECK_EQ(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK), 0);
	if (t_emulated())
		check_ready(fd, -1, &idle, "F_SETFL blocking, empty");
	else
		check_ready(fd, -1, &(struct want){ POLLERR, 3, EPOLLERR },
			    "F_SETFL blocking, empty");
	CHECK_EQ(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	check_ready(fd, ep, &idle, "F_SETFL O_NONBLOCK again, empty");
	close(ep);
	CHECK_EQ(uf_close(fd), 0);
}

static void blocking(void)
{
	int fd = t_uffd_flags(O_CLOEXEC, 0);
	char *p = t_map_reg(fd, 2);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	struct uffd_msg m;
	struct t_touch t;
	/* Kernel: POLLERR whatever is queued.  Emulated: readable iff a
	 * message waits. */
	const struct want err = { POLLERR, 3, EPOLLERR };
	const struct want *idle = t_emulated() ? &(struct want){ 0, 0, 0 } : &err;
	const struct want *ready = t_emulated() ? &(struct want){ POLLIN, 1, EPOLLIN } : &err;

	T_REQUIRE(ep >= 0);
	T_REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
	check_ready(fd, ep, idle, "blocking, empty");
	t_touch_start(&t, p, 1, 3);
	if (t_emulated()) {
		CHECK_EQ(poll_now(fd, 3000), POLLIN);
	} else {
		t_msleep(200);
	}
	check_ready(fd, ep, ready, "blocking, one message");
	CHECK_EQ(uf_read(fd, &m, sizeof m), 32);
	CHECK_FAULT(&m, p, UFFD_PAGEFAULT_FLAG_WRITE);
	check_ready(fd, ep, idle, "blocking, message read");
	CHECK_EQ(t_copy_byte(fd, p, 4, 1, 0), 0);
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(p[0], 3);

	/* F_SETFL O_NONBLOCK: readiness now tracks messages on both. */
	CHECK_EQ(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	check_ready(fd, ep, &(struct want){ 0, 0, 0 }, "F_SETFL O_NONBLOCK, empty");
	t_touch_start(&t, p + t_ps, 0, 0);
	CHECK_EQ(poll_now(fd, 3000), POLLIN);
	check_ready(fd, ep, &(struct want){ POLLIN, 1, EPOLLIN },
		    "F_SETFL O_NONBLOCK, one message");
	CHECK_EQ(t_copy_byte(fd, p + t_ps, 5, 1, 0), 0);
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(t.val, 5);
	close(ep);
	CHECK_EQ(uf_close(fd), 0);
}

/* UNREGISTER wakes the threads of its range and their unread messages go
 * with them: readable no more, unless a message of another range waits. */
static void after_unregister(void)
{
	static const struct want idle = { 0, 0, 0 };
	static const struct want ready = { POLLIN, 1, EPOLLIN };
	int fd = t_uffd(0);
	char *p = t_map_reg(fd, 3);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	struct t_touch t[3];
	struct uffd_msg m;

	T_REQUIRE(ep >= 0);
	T_REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
	for (int i = 0; i < 3; i++)
		t_touch_start(&t[i], p + i * t_ps, 0, 0);
	CHECK_EQ(poll_now(fd, 3000), POLLIN);
	t_msleep(200);			/* all three queued, none read */
	CHECK_EQ(t_unregister(fd, p, 2 * (size_t)t_ps), 0);
	CHECK(t_touch_wait(&t[0], 2000));
	CHECK(t_touch_wait(&t[1], 2000));
	check_ready(fd, ep, &ready, "UNREGISTER woke 2 of 3 unread");
	CHECK_EQ(t_unregister(fd, p + 2 * t_ps, (size_t)t_ps), 0);
	CHECK(t_touch_wait(&t[2], 2000));
	check_ready(fd, ep, &idle, "UNREGISTER woke the last unread");
	CHECK_ERRNO(uf_read(fd, &m, sizeof m), EAGAIN);
	close(ep);
	munmap(p, 3 * (size_t)t_ps);
	CHECK_EQ(uf_close(fd), 0);
}

#define BUSY_THREADS 4
#define BUSY_PAGES 4096		/* per round, shared out among the threads */
struct busy {
	char *p;
	int k;
};

static void *busy_toucher(void *arg)
{
	struct busy *b = arg;
	long sum = 0;

	for (size_t i = (size_t)b->k; i < BUSY_PAGES; i += BUSY_THREADS)
		sum += ((volatile char *)b->p)[i * (size_t)t_ps];
	return (void *)sum;
}

/* The kernel's uffd is readable only while a message is queued: a handler
 * that is the only reader may take poll's POLLIN as the promise of one. */
static void readable_means_message(void)
{
	long eagain = 0, served = 0;
	int fd;
	char *p, *src;

	if (getenv("USERFAULT_TEST_VALGRIND")) {
		/* Its threads' stacks land next to the registered range, and
		 * valgrind takes a fault on a missing page just below a stack
		 * for a stack overflow (an access in a guard page): it kills
		 * the process before the emulation's handler runs. */
		T_NOTE("readable_means_message: not under valgrind (a fault next to a thread's stack is a stack overflow to it)");
		return;
	}
	fd = t_uffd(0);
	p = t_map_reg(fd, BUSY_PAGES);
	src = malloc((size_t)t_ps);
	T_REQUIRE(src);
	memset(src, 7, (size_t)t_ps);
	for (int round = 0; round < 4 && !t_failures; round++) {
		pthread_t th[BUSY_THREADS];
		struct busy b[BUSY_THREADS];
		long done = 0, total = 0;

		for (int k = 0; k < BUSY_THREADS; k++) {
			b[k] = (struct busy){ p, k };
			T_REQUIRE(pthread_create(&th[k], NULL, busy_toucher, &b[k]) == 0);
		}
		while (done < BUSY_PAGES) {
			struct pollfd pf = { .fd = fd, .events = POLLIN };
			struct uffd_msg m;
			ssize_t n;

			if (poll(&pf, 1, 10000) != 1 || !(pf.revents & POLLIN)) {
				CHECK(!"poll: a message within 10 s");
				break;
			}
			n = uf_read(fd, &m, sizeof m);
			if (n < 0 && errno == EAGAIN) {
				eagain++;
				continue;
			}
			CHECK_EQ(n, (ssize_t)sizeof m);
			if (n != (ssize_t)sizeof m)
				break;
			/* Pages installed are counted, not messages: a fault
			 * retried on a page already there (EEXIST) asks twice. */
			if (t_copy(fd, (void *)(uintptr_t)(m.arg.pagefault.address & ~((uint64_t)t_ps - 1)), src,
				   (size_t)t_ps, 0, NULL) == 0) {
				done++;
				served++;
			} else if (errno != EEXIST) {
				CHECK(!"UFFDIO_COPY");
				break;
			}
		}
		for (int k = 0; k < BUSY_THREADS; k++) {
			void *sum;
			pthread_join(th[k], &sum);
			total += (long)sum;
		}
		CHECK_EQ(total, 7L * BUSY_PAGES);
		CHECK_EQ(madvise(p, BUSY_PAGES * (size_t)t_ps, MADV_DONTNEED), 0);
	}
	CHECK_EQ(eagain, 0);
	T_NOTE("%ld faults served from poll and read", served);
	free(src);
	t_unmap_reg(fd, p, BUSY_PAGES);
	CHECK_EQ(uf_close(fd), 0);
}

int main(void)
{
	t_start(30);
	readable_means_message();
	nonblocking();
	blocking();
	after_unregister();
	return t_done();
}
