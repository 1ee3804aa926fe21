/* stack-in-range: a thread whose stack, and a signal handler whose alternate stack, lie in a registered range run as if the memory were there. */
/*
 * SPDX-License-Identifier: MIT
 *
 * Raw kernel ABI only.  A handler thread serves every fault with a zero
 * page.  A thread is started on a stack carved out of the registered range
 * (pthread_attr_setstack): its calls push onto missing pages, which fault
 * like any other access.  Then the main thread sets an alternate signal
 * stack in the range and raises a signal whose handler runs on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <userfault/uapi.h>	/* our copy of <linux/userfaultfd.h> */

#define STACK_PAGES 512	/* 2 MiB: room for a sanitizer's thread-local storage too */
#define ALT_PAGES 16

static int uffd;
static int stop, faults;		/* (__atomic: the handler thread reads them) */
static volatile int in_handler;

static void *handler(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_SEQ_CST)) {
		struct pollfd p = { uffd, POLLIN, 0 };
		struct uffd_msg m;
		if (poll(&p, 1, 50) <= 0 || read(uffd, &m, sizeof m) != sizeof m)
			continue;
		struct uffdio_zeropage z = { .range = { m.arg.pagefault.address & ~(uint64_t)4095, 4096 } };
		__atomic_add_fetch(&faults, 1, __ATOMIC_SEQ_CST);
		if (ioctl(uffd, UFFDIO_ZEROPAGE, &z) < 0 && errno != EEXIST)
			perror("UFFDIO_ZEROPAGE");
	}
	return NULL;
}

/* Uses 48 KiB of its stack, page by page from the top. */
static __attribute__((noinline)) long deep(void)
{
	volatile char buf[16][3000];
	long sum = 0;

	for (int n = 16; n > 0; n--) {
		memset((char *)buf[16 - n], n, sizeof buf[0]);
		sum += buf[16 - n][7];
	}
	return sum;
}

static void *on_stack(void *arg)
{
	(void)arg;
	return (void *)deep();
}

static void on_usr1(int sig)
{
	volatile char buf[2000];
	stack_t cur;

	(void)sig;
	memset((char *)buf, 1, sizeof buf);
	sigaltstack(NULL, &cur);
	in_handler = buf[5] + (cur.ss_flags == SS_ONSTACK ? 10 : 0);
}

int main(void)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), len = (STACK_PAGES + ALT_PAGES) * ps;
	pthread_t h, t;
	pthread_attr_t at;
	struct sigaction sa;
	stack_t ss, back;
	void *r;
	char *region;

	uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = { .api = UFFD_API };
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0) {
		perror("userfaultfd");
		return 1;
	}
	region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct uffdio_register reg = { .range = { (uintptr_t)region, len }, .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (region == MAP_FAILED || ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
		perror("register");
		return 1;
	}
	pthread_create(&h, NULL, handler, NULL);

	pthread_attr_init(&at);
	if (pthread_attr_setstack(&at, region, STACK_PAGES * ps) != 0 ||
	    pthread_create(&t, &at, on_stack, NULL) != 0) {
		printf("thread on the registered stack: could not start\n");
		return 1;
	}
	pthread_join(t, &r);
	printf("thread on the registered stack: returned %ld\n", (long)r);

	ss.ss_sp = region + STACK_PAGES * ps;
	ss.ss_size = ALT_PAGES * ps;
	ss.ss_flags = 0;
	sigaltstack(&ss, NULL);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	pthread_kill(pthread_self(), SIGUSR1);
	printf("handler on the registered alternate stack: %d\n", in_handler);
	sigaltstack(NULL, &back);
	printf("sigaltstack reads back: %s\n", back.ss_sp == ss.ss_sp && back.ss_size == ss.ss_size ? "the same" : "another");
	__atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(h, NULL);
	printf("faults served: %s\n", __atomic_load_n(&faults, __ATOMIC_SEQ_CST) > 0 ? "some" : "none");
	return 0;
}
