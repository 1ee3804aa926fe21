/* SPDX-License-Identifier: MIT */
/*
 * raw-threads THREADS PAGES: a multi-threaded program written against the
 * kernel ABI alone (no library), for `userfault stat` (tests/stat.c).
 * THREADS threads each read PAGES pages of their own part of one
 * registered range, once each; a handler thread reads the messages from a
 * dup() of the uffd and resolves each with UFFDIO_COPY of a page filled
 * with the page's number.  Every byte is checked.  Then one more
 * UFFDIO_COPY onto a present page (EEXIST).  Prints "ok N" and exits 0, or
 * says what went wrong and exits 1.
 *
 * raw-threads exit N, raw-threads kill: exit with status N, or be killed by
 * SIGKILL, at once (a program for the runner's own checks that is built
 * like the others, sanitizers included).
 *
 * raw-threads exec: make a uffd without close-on-exec and execute itself
 * as "raw-threads inherited FD", which checks that FD is open and prints
 * "inherited".
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <userfault/uapi.h>

static long ps;
static char *area;
static int uffd, nthreads, npages;
static int bad;

static void die(const char *what)
{
	printf("raw-threads: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *faulter(void *arg)
{
	long t = (long)arg;

	for (int i = 0; i < npages; i++) {
		long page = t * npages + i;
		volatile char *p = area + page * ps;
		if (p[0] != (char)(page % 251 + 1) || p[ps - 1] != (char)(page % 251 + 1))
			__atomic_store_n(&bad, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static void *handler(void *arg)
{
	int fd = dup(uffd);	/* (the recorder follows dup) */
	char *buf = malloc((size_t)ps);
	long left = (long)nthreads * npages;

	(void)arg;
	if (fd < 0 || !buf)
		die("dup/malloc");
	while (left > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		struct uffd_msg m;
		if (poll(&pfd, 1, 10000) != 1)
			die("poll (no fault for 10 s)");
		if (read(fd, &m, sizeof m) != sizeof m) {
			if (errno == EAGAIN)
				continue;
			die("read");
		}
		if (m.event != UFFD_EVENT_PAGEFAULT) {
			printf("raw-threads: event %u\n", m.event);
			exit(1);
		}
		long page = (long)((m.arg.pagefault.address - (unsigned long)area) / (unsigned long)ps);
		memset(buf, (int)(page % 251 + 1), (size_t)ps);
		struct uffdio_copy c = {
			.dst = (unsigned long)area + (unsigned long)(page * ps),
			.src = (unsigned long)buf, .len = (unsigned long)ps,
		};
		if (ioctl(fd, UFFDIO_COPY, &c) == 0)
			left--;
		else if (errno != EEXIST)
			die("UFFDIO_COPY");
	}
	free(buf);
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t h, *th;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	struct uffdio_copy again;

	if (argc == 3 && !strcmp(argv[1], "exit"))
		return atoi(argv[2]);
	if (argc == 2 && !strcmp(argv[1], "kill"))
		raise(SIGKILL);
	if (argc == 2 && !strcmp(argv[1], "exec")) {
		char num[16];
		int fd = (int)syscall(__NR_userfaultfd, O_NONBLOCK | UFFD_USER_MODE_ONLY);
		if (fd < 0)
			die("userfaultfd");
		snprintf(num, sizeof num, "%d", fd);
		execl("/proc/self/exe", argv[0], "inherited", num, (char *)NULL);
		die("exec");
	}
	if (argc == 3 && !strcmp(argv[1], "inherited")) {
		struct stat st;
		if (fstat(atoi(argv[2]), &st) < 0)
			die("fstat of the inherited uffd");
		printf("inherited\n");
		return 0;
	}
	if (argc != 3 || (nthreads = atoi(argv[1])) < 1 || (npages = atoi(argv[2])) < 1) {
		fprintf(stderr, "usage: raw-threads THREADS PAGES\n");
		return 2;
	}
	ps = sysconf(_SC_PAGESIZE);
	uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (uffd < 0)
		die("userfaultfd");
	if (ioctl(uffd, UFFDIO_API, &api))
		die("UFFDIO_API");
	area = mmap(NULL, (size_t)(nthreads * npages) * (size_t)ps, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		die("mmap");
	reg.range.start = (unsigned long)area;
	reg.range.len = (unsigned long)(nthreads * npages) * (unsigned long)ps;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER");
	if (!(th = calloc((size_t)nthreads, sizeof *th)) || pthread_create(&h, NULL, handler, NULL))
		die("pthread_create");
	for (long t = 0; t < nthreads; t++)
		if (pthread_create(&th[t], NULL, faulter, (void *)t))
			die("pthread_create");
	for (int t = 0; t < nthreads; t++)
		pthread_join(th[t], NULL);
	pthread_join(h, NULL);
	if (bad) {
		printf("raw-threads: wrong bytes\n");
		return 1;
	}
	again.dst = (unsigned long)area;
	again.src = (unsigned long)area + (unsigned long)ps;
	again.len = (unsigned long)ps;
	again.mode = 0;
	if (ioctl(uffd, UFFDIO_COPY, &again) == 0 || errno != EEXIST) {
		printf("raw-threads: COPY onto a present page: not EEXIST\n");
		return 1;
	}
	printf("ok %d\n", nthreads * npages);
	free(th);
	return 0;
}
