/* manpage-demo: the userfaultfd(2) man page's example redone: a handler thread serves the missing pages of an anonymous mapping with UFFDIO_COPY. */
/*
 * SPDX-License-Identifier: MIT
 *
 * Raw kernel ABI only: syscall(__NR_userfaultfd), ioctl, poll, read.
 *
 *   manpage-demo [PAGES]      (default 4)
 *
 * The main thread maps PAGES pages, registers them for missing-page faults
 * and reads a byte every 1024 bytes of each page.  The first read of a page
 * blocks in a fault; the handler thread sees the fault message and fills the
 * page with UFFDIO_COPY: 'A' for the first fault, 'B' for the second, and so
 * on through 'T', then 'A' again.
 *
 * The output is the same on every run apart from addresses: the read does
 * not return before the COPY, and main prints only after the handler has
 * printed what it did for the page.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <userfault/uapi.h>	/* our copy of <linux/userfaultfd.h> */

#define LETTERS		20
#define READ_STEP	1024
#define READ_FIRST	0xf	/* not on a page boundary, on purpose */

static size_t page_size;
static char *region;
static long npages;
static int uffd;
static int stop_pipe[2];	/* main -> handler: time to go */

/* Handler -> main: how far the handler has got with each page. */
enum { PAGE_UNTOUCHED, PAGE_FAULTED, PAGE_PRINTED };
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned char *page_state;

static void set_page_state(long page, int state)
{
	pthread_mutex_lock(&lock);
	page_state[page] = (unsigned char)state;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

static void die(const char *what)
{
	fprintf(stderr, "manpage-demo: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *handler(void *arg)
{
	static long faults;
	char *src;

	(void)arg;
	src = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED)
		die("mmap");

	for (;;) {
		struct pollfd fds[2] = {
			{ .fd = uffd, .events = POLLIN },
			{ .fd = stop_pipe[0], .events = POLLIN },
		};
		struct uffdio_copy copy;
		struct uffd_msg msg;
		unsigned long long page_addr;
		ssize_t n;
		long page;
		int ready;
		char letter;

		ready = poll(fds, 2, -1);
		if (ready < 0)
			die("poll");
		if (fds[1].revents)
			break;
		printf("handler: poll() = %d; POLLIN %d, POLLERR %d\n", ready,
		       !!(fds[0].revents & POLLIN), !!(fds[0].revents & POLLERR));

		n = read(uffd, &msg, sizeof msg);
		if (n < 0)
			die("read");
		if (n != sizeof msg) {
			fprintf(stderr, "manpage-demo: read returned %zd bytes\n", n);
			exit(1);
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT) {
			fprintf(stderr, "manpage-demo: unexpected event 0x%x\n", msg.event);
			exit(1);
		}
		printf("handler: UFFD_EVENT_PAGEFAULT: flags %llu, address 0x%llx\n",
		       (unsigned long long)msg.arg.pagefault.flags,
		       (unsigned long long)msg.arg.pagefault.address);

		/* Serve the whole page the address is in. */
		page_addr = msg.arg.pagefault.address & ~(unsigned long long)(page_size - 1);
		page = (long)((page_addr - (uintptr_t)region) / page_size);
		if (page_addr < (uintptr_t)region || page >= npages) {
			fprintf(stderr, "manpage-demo: fault outside the region\n");
			exit(1);
		}
		set_page_state(page, PAGE_FAULTED);
		letter = (char)('A' + faults % LETTERS);
		faults++;
		memset(src, letter, page_size);
		memset(&copy, 0, sizeof copy);
		copy.dst = page_addr;
		copy.src = (uintptr_t)src;
		copy.len = page_size;
		copy.mode = 0;
		if (ioctl(uffd, UFFDIO_COPY, &copy) < 0)
			die("UFFDIO_COPY");
		printf("handler: UFFDIO_COPY of '%c': copy = %lld\n", letter,
		       (long long)copy.copy);
		set_page_state(page, PAGE_PRINTED);
	}
	munmap(src, page_size);
	return NULL;
}

/* After a read from the page returned, wait for the handler's lines.  The
 * handler has the fault message before the COPY and the read returns after
 * it, so a page still untouched now never faulted: -1. */
static int wait_page_printed(long page)
{
	int ret = 0;

	pthread_mutex_lock(&lock);
	if (page_state[page] == PAGE_UNTOUCHED)
		ret = -1;
	while (ret == 0 && page_state[page] != PAGE_PRINTED)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	return ret;
}

int main(int argc, char **argv)
{
	struct uffdio_api api;
	struct uffdio_register reg;
	pthread_t thread;
	size_t len;
	long wrong = 0, reads = 0;
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	npages = argc > 1 ? strtol(argv[1], NULL, 0) : 4;
	if (npages < 1 || npages > 100000) {
		fprintf(stderr, "usage: manpage-demo [PAGES]   (1 to 100000, default 4)\n");
		return 2;
	}
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	len = (size_t)npages * page_size;

	uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		die("userfaultfd");
	memset(&api, 0, sizeof api);
	api.api = UFFD_API;
	api.features = 0;
	if (ioctl(uffd, UFFDIO_API, &api) < 0)
		die("UFFDIO_API");

	region = mmap(NULL, len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		die("mmap");
	page_state = calloc((size_t)npages, 1);
	if (!page_state)
		die("calloc");
	printf("main: %ld pages mapped at %p\n", npages, (void *)region);

	memset(&reg, 0, sizeof reg);
	reg.range.start = (uintptr_t)region;
	reg.range.len = len;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		die("UFFDIO_REGISTER");

	if (pipe(stop_pipe) < 0)
		die("pipe");
	err = pthread_create(&thread, NULL, handler, NULL);
	if (err) {
		errno = err;
		die("pthread_create");
	}

	for (size_t off = READ_FIRST; off < len; off += READ_STEP) {
		long page = (long)(off / page_size);
		char want = (char)('A' + page % LETTERS);
		char c = ((volatile char *)region)[off];

		if (wait_page_printed(page) < 0) {
			fprintf(stderr, "manpage-demo: page %ld was read without a fault\n", page);
			return 1;
		}
		printf("main: read %p: '%c'\n", (void *)(region + off), c);
		reads++;
		if (c != want) {
			printf("main: expected '%c'\n", want);
			wrong++;
		}
	}

	/* Stop the handler and clean up. */
	if (write(stop_pipe[1], "", 1) != 1)
		die("write");
	pthread_join(thread, NULL);
	close(uffd);
	munmap(region, len);
	printf("main: %ld reads, %ld as expected\n", reads, reads - wrong);
	return wrong ? 1 : 0;
}
