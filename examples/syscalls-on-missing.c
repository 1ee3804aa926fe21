/* syscalls-on-missing: system calls whose buffers lie on missing pages of a registered range (read, write, pread, pwrite, readv, writev, send, recv, fread, fwrite). */
/*
 * SPDX-License-Identifier: MIT
 *
 * Raw kernel ABI only.  A handler thread serves every fault with UFFDIO_COPY
 * of a page full of the letter 'A' + page number.  The main thread then makes
 * system calls that read from or write into pages nobody has touched yet:
 * the kernel takes the fault for the call, the handler serves it, and the
 * call succeeds, as if the page had been there.  The same calls on a uffd
 * made with UFFD_USER_MODE_ONLY fail with EFAULT instead: such a uffd only
 * reports faults taken in user mode.  Everything the handler saw is printed
 * at the end, sorted by page.
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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <userfault/uapi.h>	/* our copy of <linux/userfaultfd.h> */

#define NPAGES 12

static size_t ps;
static char *region;
static int uffd, stop[2];
static int faulted[NPAGES];	/* 0 no fault, 1 read fault, 2 write fault */

static void *handler(void *arg)
{
	static char page[65536];
	(void)arg;
	for (;;) {
		struct pollfd p[2] = { { uffd, POLLIN, 0 }, { stop[0], POLLIN, 0 } };
		struct uffd_msg m;
		if (poll(p, 2, -1) < 0 || p[1].revents)
			return NULL;
		if (read(uffd, &m, sizeof m) != sizeof m)
			continue;
		uintptr_t at = m.arg.pagefault.address & ~(uintptr_t)(ps - 1);
		size_t n = (at - (uintptr_t)region) / ps;
		faulted[n] = (m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) ? 2 : 1;
		memset(page, 'A' + (int)n, ps);
		struct uffdio_copy c = { .dst = at, .src = (uintptr_t)page, .len = ps };
		if (ioctl(uffd, UFFDIO_COPY, &c) < 0 && errno != EEXIST)
			perror("UFFDIO_COPY");
	}
}

static char *pg(int n) { return region + (size_t)n * ps; }

static void result(const char *what, ssize_t r, const char *data)
{
	if (r < 0)
		printf("  %-34s -> -1 %s\n", what, strerrorname_np(errno));
	else
		printf("  %-34s -> %zd  [%.6s]\n", what, r, data ? data : "");
}

static void calls(void)
{
	int p[2], sv[2];
	char buf[256];
	ssize_t r;
	FILE *f;

	/* Non-blocking: when a call failed, reading back finds nothing. */
	if (pipe2(p, O_NONBLOCK) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		exit(1);
	memset(buf, 'x', sizeof buf);

	r = write(p[1], pg(0) + 10, 100);		/* the kernel reads page 0 */
	result("write(pipe, page 0)", r, NULL);
	r = read(p[0], buf, sizeof buf);
	result("  read back", r, buf);

	if (write(p[1], "hello, page one", 15) != 15)
		exit(1);
	r = read(p[0], pg(1) + 20, 15);			/* the kernel writes page 1 */
	result("read(pipe, page 1)", r, r > 0 ? pg(1) + 20 : NULL);

	f = tmpfile();
	if (!f || fwrite("file data for pages", 1, 19, f) != 19 || fflush(f))
		exit(1);
	r = pread(fileno(f), pg(2) + 30, 9, 0);		/* writes page 2 */
	result("pread(file, page 2)", r, r > 0 ? pg(2) + 30 : NULL);
	r = pwrite(fileno(f), pg(3), 6, 100);		/* reads page 3 */
	result("pwrite(file, page 3)", r, NULL);
	r = pread(fileno(f), buf, 6, 100);
	result("  read back", r, buf);

	struct iovec wv[2] = { { pg(4) + 1, 3 }, { pg(5) + 2, 3 } };
	r = writev(p[1], wv, 2);			/* reads pages 4 and 5 */
	result("writev(pipe, pages 4+5)", r, NULL);
	struct iovec rv[2] = { { pg(6), 3 }, { pg(7), 3 } };
	r = readv(p[0], rv, 2);				/* writes pages 6 and 7 */
	result("readv(pipe, pages 6+7)", r, r > 0 ? pg(6) : NULL);
	if (r > 0)
		printf("  %-34s    [%.3s]\n", "", pg(7));

	r = send(sv[0], pg(8), 5, 0);			/* reads page 8 */
	result("send(socket, page 8)", r, NULL);
	r = recv(sv[1], pg(9) + 7, 5, 0);		/* writes page 9 */
	result("recv(socket, page 9)", r, r > 0 ? pg(9) + 7 : NULL);

	rewind(f);
	r = (ssize_t)fwrite(pg(10), 1, ps, f);		/* a whole page: straight to write() */
	result("fwrite(file, page 10)", r, NULL);
	if (fflush(f) == 0 && pread(fileno(f), buf, 6, 0) == 6)
		result("  read back", 6, buf);
	rewind(f);
	r = (ssize_t)fread(pg(11), 1, ps, f);		/* straight from read() */
	result("fread(file, page 11)", r, r > 0 ? pg(11) : NULL);

	fclose(f);
	close(p[0]); close(p[1]); close(sv[0]); close(sv[1]);
}

static void run(int user_mode_only)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	pthread_t th;

	printf("%s:\n", user_mode_only ? "UFFD_USER_MODE_ONLY" : "plain uffd");
	memset(faulted, 0, sizeof faulted);
	region = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | (user_mode_only ? UFFD_USER_MODE_ONLY : 0));
	if (region == MAP_FAILED || uffd < 0 || pipe(stop) || ioctl(uffd, UFFDIO_API, &api)) {
		perror("set-up");
		exit(1);
	}
	reg.range.start = (uintptr_t)region;
	reg.range.len = NPAGES * ps;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) || pthread_create(&th, NULL, handler, NULL)) {
		perror("register");
		exit(1);
	}
	calls();
	if (write(stop[1], "x", 1) != 1)
		exit(1);
	pthread_join(th, NULL);
	for (int i = 0; i < NPAGES; i++)
		if (faulted[i])
			printf("  fault on page %d (%s)\n", i, faulted[i] == 2 ? "write" : "read");
	ioctl(uffd, UFFDIO_UNREGISTER, &reg.range);
	close(uffd);
	close(stop[0]);
	close(stop[1]);
	munmap(region, NPAGES * ps);
}

int main(void)
{
	ps = (size_t)sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	run(0);
	run(1);
	return 0;
}
