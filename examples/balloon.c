/* balloon: a monitor that handles a balloon-style MADV_DONTNEED (UFFD_EVENT_REMOVE) and then serves zero pages for the removed range. */
/*
 * SPDX-License-Identifier: MIT
 *
 * Raw kernel ABI only: userfaultfd(2), ioctl, poll, read.
 *
 * A guest's memory (8 pages) is registered MISSING with
 * UFFD_FEATURE_EVENT_REMOVE.  The monitor thread fills pages on first touch
 * from the "image" (UFFDIO_COPY of a letter per page).  Then the balloon
 * inflates: the guest gives pages 2..5 back with MADV_DONTNEED.  The
 * monitor hears UFFD_EVENT_REMOVE (the madvise waits until it is read),
 * forgets those pages, and from then on answers their faults with
 * UFFDIO_ZEROPAGE: the guest finds zeros, never stale image data.
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
#include <time.h>
#include <unistd.h>

#include <userfault/uapi.h>	/* our copy of <linux/userfaultfd.h> */

#define NPAGES 8

static size_t page_size;
static char *guest;
static int uffd;
static int ballooned[NPAGES];	/* given back: serve zeros */
static int stop;
static int removes_seen;	/* REMOVE events handled */

static void die(const char *what)
{
	fprintf(stderr, "balloon: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *monitor(void *arg)
{
	char *src = malloc(page_size);

	(void)arg;
	if (!src)
		die("malloc");
	while (!__atomic_load_n(&stop, __ATOMIC_SEQ_CST)) {
		struct pollfd p = { .fd = uffd, .events = POLLIN };
		struct uffd_msg m;

		if (poll(&p, 1, 50) <= 0)
			continue;
		if (read(uffd, &m, sizeof m) != sizeof m) {
			if (errno == EAGAIN)
				continue;
			die("read");
		}
		if (m.event == UFFD_EVENT_REMOVE) {
			long first = (long)((m.arg.remove.start - (uintptr_t)guest) / page_size);
			long end = (long)((m.arg.remove.end - (uintptr_t)guest) / page_size);
			for (long i = first; i < end; i++)
				ballooned[i] = 1;
			printf("monitor: REMOVE pages %ld..%ld: the balloon took them\n", first, end - 1);
			__atomic_add_fetch(&removes_seen, 1, __ATOMIC_SEQ_CST);
			continue;
		}
		if (m.event != UFFD_EVENT_PAGEFAULT) {
			fprintf(stderr, "balloon: unexpected event 0x%x\n", m.event);
			exit(1);
		}
		uintptr_t page = m.arg.pagefault.address & ~(uintptr_t)(page_size - 1);
		long i = (long)((page - (uintptr_t)guest) / page_size);
		/* Print first: the guest prints once the page is there. */
		if (ballooned[i]) {
			struct uffdio_zeropage z = { .range = { page, page_size } };
			printf("monitor: fault on page %ld (ballooned): ZEROPAGE\n", i);
			if (ioctl(uffd, UFFDIO_ZEROPAGE, &z) < 0 && errno != EEXIST)
				die("UFFDIO_ZEROPAGE");
		} else {
			struct uffdio_copy c = { .dst = page, .src = (uintptr_t)src, .len = page_size };
			printf("monitor: fault on page %ld: COPY '%c' from the image\n", i, 'A' + (int)i);
			memset(src, 'A' + (int)i, page_size);
			if (ioctl(uffd, UFFDIO_COPY, &c) < 0 && errno != EEXIST)
				die("UFFDIO_COPY");
		}
	}
	free(src);
	return NULL;
}

int main(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE };
	struct uffdio_register reg;
	pthread_t th;

	setvbuf(stdout, NULL, _IOLBF, 0);
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		die("userfaultfd");
	if (ioctl(uffd, UFFDIO_API, &api) < 0)
		die("UFFDIO_API");
	guest = mmap(NULL, NPAGES * page_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guest == MAP_FAILED)
		die("mmap");
	reg.range.start = (uintptr_t)guest;
	reg.range.len = NPAGES * page_size;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		die("UFFDIO_REGISTER");
	if (pthread_create(&th, NULL, monitor, NULL))
		die("pthread_create");

	/* The guest boots: every page comes from the image. */
	for (int i = 0; i < NPAGES; i++)
		printf("guest: page %d reads '%c'\n", i, guest[(size_t)i * page_size + 10]);

	/* The balloon inflates over pages 2..5. */
	printf("guest: MADV_DONTNEED pages 2..5\n");
	if (madvise(guest + 2 * page_size, 4 * page_size, MADV_DONTNEED) < 0)
		die("madvise");
	/* madvise returned once the monitor read the event; wait for its
	 * acknowledgement too, so that the lines below come after its own. */
	while (!__atomic_load_n(&removes_seen, __ATOMIC_SEQ_CST)) {
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}

	/* Pages 1 and 3 are used again: 1 kept its data, 3 is zero. */
	printf("guest: page 1 reads '%c'\n", guest[page_size + 10]);
	printf("guest: page 3 reads %d\n", guest[3 * page_size + 10]);
	guest[3 * page_size + 10] = 'x';
	printf("guest: page 3 reads '%c' after writing 'x'\n", guest[3 * page_size + 10]);

	__atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);
	close(uffd);
	printf("done\n");
	return 0;
}
