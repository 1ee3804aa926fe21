/* syscalls-during-install: write() from pages that another thread is installing at that moment never fails with EFAULT. */
/*
 * SPDX-License-Identifier: MIT
 *
 * Raw kernel ABI only.  A post-copy style monitor: a background thread
 * installs every page of a registered range with UFFDIO_COPY, in order,
 * while the main thread write()s each page into a file, close behind it,
 * and a handler thread serves the faults the main thread takes first.  A
 * page the write() meets may be missing, being installed, or present: in
 * every case the kernel's write() gets the page (it waits for it), never
 * EFAULT.  Then the file is read back and every page compared.
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

#define NPAGES 8192

static size_t ps;
static char *region;
static int uffd;
static volatile int stop;
static volatile size_t started;	/* the installer is at this page */

static void fill(char *page, size_t n)
{
	memset(page, 'a' + (int)(n % 26), ps);
	memcpy(page, &n, sizeof n);
}

/* Installs pages in order, 2 MiB at a time, as a post-copy background
 * transfer does. */
#define CHUNK 512
static void *installer(void *arg)
{
	char *buf = malloc(CHUNK * ps);
	(void)arg;
	for (size_t n = 0; n < NPAGES; n += CHUNK) {
		for (size_t k = 0; k < CHUNK; k++)
			fill(buf + k * ps, n + k);
		__atomic_store_n(&started, n + CHUNK, __ATOMIC_SEQ_CST);
		for (size_t done = 0; done < CHUNK;) {
			struct uffdio_copy c = { .dst = (uintptr_t)region + (n + done) * ps,
						 .src = (uintptr_t)buf + done * ps, .len = (CHUNK - done) * ps };
			if (ioctl(uffd, UFFDIO_COPY, &c) == 0)
				break;
			if (errno != EEXIST && errno != EAGAIN) {
				perror("UFFDIO_COPY (installer)");
				break;
			}
			/* A page the handler installed first: skip it. */
			done += (c.copy > 0 ? (size_t)c.copy : 0) / ps + (c.copy > 0 ? 0 : 1);
		}
	}
	free(buf);
	return NULL;
}

/* Serves the faults the writer takes before the installer gets there. */
static void *handler(void *arg)
{
	char *page = malloc(ps);
	(void)arg;
	while (!stop) {
		struct pollfd p = { uffd, POLLIN, 0 };
		struct uffd_msg m;
		if (poll(&p, 1, 50) <= 0)
			continue;
		if (read(uffd, &m, sizeof m) != sizeof m)
			continue;
		uintptr_t at = m.arg.pagefault.address & ~(uintptr_t)(ps - 1);
		size_t n = (at - (uintptr_t)region) / ps;
		fill(page, n);
		struct uffdio_copy c = { .dst = at, .src = (uintptr_t)page, .len = ps };
		if (ioctl(uffd, UFFDIO_COPY, &c) < 0 && errno != EEXIST)
			perror("UFFDIO_COPY (handler)");
		if (errno == EEXIST) {
			struct uffdio_range r = { at, ps };
			ioctl(uffd, UFFDIO_WAKE, &r);
		}
	}
	free(page);
	return NULL;
}

int main(void)
{
	pthread_t ti, th;
	int out, efault = 0, bad = 0, other = 0;
	char *back;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0) {
		perror("userfaultfd");
		return 1;
	}
	struct uffdio_api api = { .api = UFFD_API };
	if (ioctl(uffd, UFFDIO_API, &api) < 0) {
		perror("UFFDIO_API");
		return 1;
	}
	region = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct uffdio_register reg = { .range = { (uintptr_t)region, NPAGES * ps },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (region == MAP_FAILED || ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
		perror("register");
		return 1;
	}
	out = (int)syscall(SYS_memfd_create, "out", 0);
	if (out < 0) {
		perror("memfd_create");
		return 1;
	}
	pthread_create(&th, NULL, handler, NULL);
	pthread_create(&ti, NULL, installer, NULL);
	for (size_t n = 0; n < NPAGES; n++) {
		/* Inside the chunk the installer is installing now (in every
		 * fourth chunk: wherever it is). */
		while ((n / CHUNK) % 4 && __atomic_load_n(&started, __ATOMIC_SEQ_CST) <= n)
			;
		ssize_t w = pwrite(out, region + n * ps, ps, (off_t)(n * ps));
		if (w < 0 && errno == EFAULT)
			efault++;
		else if (w != (ssize_t)ps)
			other++;
	}
	pthread_join(ti, NULL);
	stop = 1;
	pthread_join(th, NULL);
	back = malloc(ps);
	char *want = malloc(ps);
	for (size_t n = 0; n < NPAGES; n++) {
		fill(want, n);
		if (pread(out, back, ps, (off_t)(n * ps)) != (ssize_t)ps || memcmp(back, want, ps) != 0)
			bad++;
	}
	free(back);
	free(want);
	close(out);
	printf("pages written: %d\n", NPAGES);
	printf("write() EFAULT: %d\n", efault);
	printf("other failures: %d\n", other);
	printf("pages that differ: %d\n", bad);
	return efault || other || bad;
}
