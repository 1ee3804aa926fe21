/* devuffd-zeropage: a userfaultfd from /dev/userfaultfd (USERFAULTFD_IOC_NEW) with THREAD_ID; four threads fault, the handler answers with UFFDIO_ZEROPAGE or UFFDIO_COPY. */
/*
 * SPDX-License-Identifier: MIT
 *
 * Raw kernel ABI only: open("/dev/userfaultfd"), ioctl, poll, read.
 *
 * Thread i owns pages 2i and 2i+1 of a registered mapping.  It reads page
 * 2i (a read fault, which the handler answers with UFFDIO_ZEROPAGE), writes
 * to that page (no userfault: the zero page is copied on write), then writes
 * to page 2i+1 (a write fault, answered with UFFDIO_COPY of a page full of
 * the letter 'a' + page number).  The handler tells the threads apart by the
 * thread id in each message (UFFD_FEATURE_THREAD_ID).  The faults come in
 * any order, so everything is printed sorted, after the threads are done.
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

#define NTHREADS	4
#define NPAGES		(2 * NTHREADS)
#define READ_AT		100	/* offsets inside the pages the threads touch */
#define WRITE_AT	200

static size_t page_size;
static char *region;
static int uffd;
static int stop_pipe[2];
static pthread_barrier_t start_line;

/* What each worker saw. */
static struct worker {
	pthread_t thread;
	pid_t tid;
	char zero_read;		/* page 2i at READ_AT after the fault: 0 */
	char zero_written;	/* the same byte after writing 'z' */
	char copy_written;	/* page 2i+1 at WRITE_AT after writing 'w' */
	char copy_first;	/* page 2i+1 at 0 and at its last byte: */
	char copy_last;		/*   the letter the handler copied */
} workers[NTHREADS];

/* What the handler did, one record per fault message. */
static struct fault {
	pid_t ptid;
	long page;
	int write;		/* UFFD_PAGEFAULT_FLAG_WRITE */
	int aligned;		/* the address was page-aligned */
	int zeropage;		/* answered with ZEROPAGE (else COPY) */
	long long result;	/* .zeropage or .copy */
} faults[4 * NPAGES];
static int nfaults;

static void die(const char *what)
{
	fprintf(stderr, "devuffd-zeropage: %s: %s\n", what, strerror(errno));
	exit(1);
}

static char copy_letter(long page)
{
	return (char)('a' + page);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	long i = w - workers;
	volatile char *zero_page = region + (size_t)(2 * i) * page_size;
	volatile char *copy_page = region + (size_t)(2 * i + 1) * page_size;

	w->tid = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(&start_line);

	w->zero_read = zero_page[READ_AT];		/* fault: ZEROPAGE */
	zero_page[READ_AT] = 'z';			/* copy on write */
	w->zero_written = zero_page[READ_AT];

	copy_page[WRITE_AT] = 'w';			/* fault: COPY */
	w->copy_written = copy_page[WRITE_AT];
	w->copy_first = copy_page[0];
	w->copy_last = copy_page[page_size - 1];
	return NULL;
}

/* Answer one fault: ZEROPAGE for even pages, COPY for odd ones. */
static void serve(const struct uffd_msg *msg, char *src)
{
	unsigned long long addr = msg->arg.pagefault.address;
	unsigned long long page_addr = addr & ~(unsigned long long)(page_size - 1);
	struct fault *f;

	if (msg->event != UFFD_EVENT_PAGEFAULT) {
		fprintf(stderr, "devuffd-zeropage: unexpected event 0x%x\n", msg->event);
		exit(1);
	}
	if (nfaults == (int)(sizeof faults / sizeof faults[0])) {
		fprintf(stderr, "devuffd-zeropage: too many faults\n");
		exit(1);
	}
	f = &faults[nfaults++];
	f->ptid = (pid_t)msg->arg.pagefault.feat.ptid;
	f->page = (long)((page_addr - (uintptr_t)region) / page_size);
	f->write = !!(msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE);
	f->aligned = addr == page_addr;
	f->zeropage = f->page % 2 == 0;

	if (f->zeropage) {
		struct uffdio_zeropage zp;

		memset(&zp, 0, sizeof zp);
		zp.range.start = page_addr;
		zp.range.len = page_size;
		if (ioctl(uffd, UFFDIO_ZEROPAGE, &zp) < 0 && errno != EEXIST)
			die("UFFDIO_ZEROPAGE");
		f->result = zp.zeropage;
	} else {
		struct uffdio_copy copy;

		memset(src, copy_letter(f->page), page_size);
		memset(&copy, 0, sizeof copy);
		copy.dst = page_addr;
		copy.src = (uintptr_t)src;
		copy.len = page_size;
		if (ioctl(uffd, UFFDIO_COPY, &copy) < 0 && errno != EEXIST)
			die("UFFDIO_COPY");
		f->result = copy.copy;
	}
}

static void *handler_main(void *arg)
{
	struct uffd_msg msgs[NPAGES];
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
		ssize_t n;

		if (poll(fds, 2, -1) < 0)
			die("poll");
		if (fds[1].revents)
			break;
		n = read(uffd, msgs, sizeof msgs);	/* one or more messages */
		if (n < 0) {
			if (errno == EAGAIN)
				continue;
			die("read");
		}
		for (ssize_t i = 0; i < n / (ssize_t)sizeof msgs[0]; i++)
			serve(&msgs[i], src);
	}
	munmap(src, page_size);
	return NULL;
}

/* The worker with this thread id, or -1. */
static int thread_index(pid_t tid)
{
	for (int i = 0; i < NTHREADS; i++)
		if (workers[i].tid == tid)
			return i;
	return -1;
}

static int fault_order(const void *a, const void *b)
{
	const struct fault *x = a, *y = b;
	int tx = thread_index(x->ptid), ty = thread_index(y->ptid);

	if (tx != ty)
		return tx < ty ? -1 : 1;
	return x->page < y->page ? -1 : x->page > y->page;
}

static const char *show(char c, char *buf)
{
	if (c >= 0x20 && c < 0x7f)
		sprintf(buf, "'%c'", c);
	else
		sprintf(buf, "%d", c);
	return buf;
}

int main(void)
{
	const unsigned long long needed = (1ULL << _UFFDIO_COPY) |
		(1ULL << _UFFDIO_ZEROPAGE) | (1ULL << _UFFDIO_WAKE);
	struct uffdio_api api;
	struct uffdio_register reg;
	pthread_t handler;
	int devfd, bad = 0, aligned = 0, reads = 0, zeropages = 0;
	char b1[8], b2[8], b3[8], b4[8];

	setvbuf(stdout, NULL, _IOLBF, 0);
	page_size = (size_t)sysconf(_SC_PAGESIZE);

	devfd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (devfd < 0)
		die("open /dev/userfaultfd");
	uffd = ioctl(devfd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		die("USERFAULTFD_IOC_NEW");
	{
		/* The device itself has no read or write (EINVAL, opened
		 * O_RDWR), and no poll method: always ready. */
		char b[sizeof(struct uffd_msg)];
		struct pollfd p = { .fd = devfd, .events = POLLIN };
		int rerr, werr;

		rerr = read(devfd, b, sizeof b) < 0 ? errno : 0;
		werr = write(devfd, b, 1) < 0 ? errno : 0;
		printf("/dev/userfaultfd: read: %s; write: %s; poll: %s\n", strerror(rerr),
		       strerror(werr), poll(&p, 1, 0) == 1 && p.revents == POLLIN ? "POLLIN" : "not ready");
	}
	{
		/* Requests the kernel answers for any file, and FIONREAD,
		 * which goes to the uffd. */
		int on = 1, n, nerr, aerr;

		nerr = ioctl(uffd, FIONREAD, &n) < 0 ? errno : 0;
		aerr = ioctl(uffd, FIOASYNC, &on) < 0 ? errno : 0;
		printf("uffd: FIONREAD: %s; FIOASYNC: %s; FIONBIO: %s\n", strerror(nerr),
		       strerror(aerr), ioctl(uffd, FIONBIO, &on) == 0 ? "ok" : strerror(errno));
	}
	close(devfd);
	printf("/dev/userfaultfd: USERFAULTFD_IOC_NEW gave a userfaultfd\n");

	memset(&api, 0, sizeof api);
	api.api = UFFD_API;
	api.features = UFFD_FEATURE_THREAD_ID;
	if (ioctl(uffd, UFFDIO_API, &api) < 0)
		die("UFFDIO_API");
	printf("UFFDIO_API: THREAD_ID enabled\n");

	region = mmap(NULL, (size_t)NPAGES * page_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		die("mmap");
	memset(&reg, 0, sizeof reg);
	reg.range.start = (uintptr_t)region;
	reg.range.len = (size_t)NPAGES * page_size;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		die("UFFDIO_REGISTER");
	printf("UFFDIO_REGISTER: %d pages at %p, COPY/ZEROPAGE/WAKE %s\n", NPAGES,
	       (void *)region, (reg.ioctls & needed) == needed ? "offered" : "not offered");
	if ((reg.ioctls & needed) != needed)
		bad++;

	if (pipe(stop_pipe) < 0)
		die("pipe");
	errno = pthread_create(&handler, NULL, handler_main, NULL);
	if (errno)
		die("pthread_create");
	pthread_barrier_init(&start_line, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++) {
		errno = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
		if (errno)
			die("pthread_create");
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(workers[i].thread, NULL);
	if (write(stop_pipe[1], "", 1) != 1)
		die("write");
	pthread_join(handler, NULL);

	/* The faults, by thread and page. */
	qsort(faults, (size_t)nfaults, sizeof faults[0], fault_order);
	for (int i = 0; i < nfaults; i++) {
		const struct fault *f = &faults[i];
		int t = thread_index(f->ptid);

		if (t < 0) {
			printf("fault: unknown thread id (ptid %d) ", (int)f->ptid);
			bad++;
		} else {
			printf("fault: thread %d ", t);
		}
		printf("%s page %ld -> ", f->write ? "write" : "read", f->page);
		if (f->zeropage)
			printf("UFFDIO_ZEROPAGE: zeropage = %lld\n", f->result);
		else
			printf("UFFDIO_COPY '%c': copy = %lld\n", copy_letter(f->page),
			       f->result);
		if (f->result != (long long)page_size)
			bad++;
		aligned += f->aligned;
		reads += !f->write;
		zeropages += f->zeropage;
	}

	/* What each thread saw. */
	for (int i = 0; i < NTHREADS; i++) {
		const struct worker *w = &workers[i];
		char letter = copy_letter(2 * i + 1);

		printf("thread %d: page %d read %s, then %s after writing 'z'; "
		       "page %d reads %s after writing 'w', %s at both ends\n",
		       i, 2 * i, show(w->zero_read, b1), show(w->zero_written, b2),
		       2 * i + 1, show(w->copy_written, b3),
		       show(w->copy_first == w->copy_last ? w->copy_first : '?', b4));
		if (w->zero_read != 0 || w->zero_written != 'z' ||
		    w->copy_written != 'w' || w->copy_first != letter ||
		    w->copy_last != letter)
			bad++;
	}

	printf("summary: %d faults (%d read, %d write), %d ZEROPAGE, %d COPY, "
	       "%d of %d addresses page-aligned: %s\n",
	       nfaults, reads, nfaults - reads, zeropages, nfaults - zeropages,
	       aligned, nfaults,
	       bad == 0 && nfaults == NPAGES && aligned == nfaults ? "ok" : "FAILED");
	close(uffd);
	munmap(region, (size_t)NPAGES * page_size);
	return bad == 0 && nfaults == NPAGES && aligned == nfaults ? 0 : 1;
}
