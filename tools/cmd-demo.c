/* SPDX-License-Identifier: MIT */
/*
 * cmd-demo.c - "userfault demo [N]": a userfaultfd serving missing pages.
 *
 * The main thread maps N pages, registers them for missing-page faults and
 * reads each page every 1024 bytes.  A handler thread polls the userfaultfd,
 * reads the fault messages and answers each with UFFDIO_COPY of a page full
 * of one letter: 'A' for the first fault, 'B' for the second, and so on
 * through 20 letters.  Both threads print what they do.
 *
 * The output is in a fixed order: the faulting read does not return before
 * the COPY, and main waits until the handler has printed the result of the
 * COPY before it prints what it read.  There is no time limit: a page whose
 * fault message never comes hangs the demo (run it under timeout(1) in a
 * test), while a slow reader of the output (a pager) must not fail it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"

#define DEFAULT_PAGES	8
#define MAX_PAGES	(1L << 20)
#define LETTERS		20	/* 'A'..'T', then 'A' again */
#define READ_STEP	1024	/* main reads every READ_STEP bytes */
#define READ_FIRST	0xf	/* ... starting inside the page, not at its start */

static const char demo_help[] =
	"usage: " CLI_NAME " demo [N] [--backend B]\n"
	"\n"
	"Map N pages (default 8), register them with a userfaultfd for missing\n"
	"pages, and read each page every 1024 bytes from the main thread.  A\n"
	"handler thread polls the userfaultfd, prints each fault and serves it\n"
	"with UFFDIO_COPY of a page filled with 'A' for the first fault, 'B' for\n"
	"the second, and so on through 'T', then 'A' again.  The first line names\n"
	"the back-end in use.\n"
	"\n"
	"  --backend B    auto, kernel or emulated\n"
	"\n"
	"Exit status: 0 if every byte read was the expected letter; 1 if one was\n"
	"not, or the back-end could not be set up; 2 for a command-line error.\n";

struct demo {
	long npages;
	size_t page_size;
	char *region;		/* the registered pages */
	int uffd;
	int stop[2];		/* a pipe: main tells the handler to stop */

	/* Handler to main: how far each page has got (enum page_state). */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned char *state;	/* per page */
	long faults;		/* pages served so far */
};

enum page_state {
	PAGE_UNTOUCHED = 0,
	PAGE_FAULTED,		/* the handler has its fault message */
	PAGE_PRINTED,		/* ... and has printed what it did about it */
};

static char expected_letter(long page)
{
	return (char)('A' + page % LETTERS);
}

static const char *fault_kind(unsigned long long flags)
{
	if (flags & UFFD_PAGEFAULT_FLAG_WP)
		return "write-protect";
	if (flags & UFFD_PAGEFAULT_FLAG_MINOR)
		return "minor";
	return flags & UFFD_PAGEFAULT_FLAG_WRITE ? "write" : "read";
}

/* A failure in the handler thread: main may be blocked in a fault that will
 * never be served, so end the process. */
static void handler_fatal(const char *what, int err)
{
	cli_error("demo: handler: %s: %s", what, strerror(err));
	exit(CLI_FAIL);
}

/* Tell main how far the handler has got with a page. */
static void set_state(struct demo *d, long page, enum page_state state)
{
	pthread_mutex_lock(&d->lock);
	d->state[page] = (unsigned char)state;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void serve_fault(struct demo *d, const struct uffd_msg *msg, char *src)
{
	unsigned long long flags = msg->arg.pagefault.flags;
	unsigned long long addr = msg->arg.pagefault.address;
	unsigned long long page_addr = addr & ~(unsigned long long)(d->page_size - 1);
	unsigned long long start = (unsigned long long)(uintptr_t)d->region;
	struct uffdio_copy copy;
	long page;
	char letter;

	if (msg->event != UFFD_EVENT_PAGEFAULT) {
		printf("handler: unexpected event 0x%x, ignored\n", msg->event);
		return;
	}
	printf("handler: UFFD_EVENT_PAGEFAULT flags %llu (%s) address 0x%llx\n",
	       flags, fault_kind(flags), addr);
	if (page_addr < start ||
	    page_addr >= start + (unsigned long long)d->npages * d->page_size) {
		printf("handler: address outside the region, ignored\n");
		return;
	}
	page = (long)((page_addr - start) / d->page_size);
	set_state(d, page, PAGE_FAULTED);

	letter = expected_letter(d->faults);
	memset(src, letter, d->page_size);
	memset(&copy, 0, sizeof copy);
	copy.dst = page_addr;
	copy.src = (unsigned long long)(uintptr_t)src;
	copy.len = d->page_size;
	copy.mode = 0;
	if (uf_ioctl(d->uffd, UFFDIO_COPY, &copy) == 0) {
		printf("handler: UFFDIO_COPY of '%c' to page %ld: copy = %lld\n",
		       letter, page, (long long)copy.copy);
		d->faults++;
	} else if (errno == EEXIST) {
		/* A stale message: the page is already there. */
		printf("handler: UFFDIO_COPY to page %ld: already present (EEXIST)\n",
		       page);
	} else {
		handler_fatal("UFFDIO_COPY", errno);
	}
	set_state(d, page, PAGE_PRINTED);
}

static void *handler_thread(void *arg)
{
	struct demo *d = arg;
	struct uffd_msg msgs[16];
	char *src;

	src = mmap(NULL, d->page_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED)
		handler_fatal("mmap", errno);

	for (;;) {
		struct pollfd fds[2] = {
			{ .fd = d->uffd, .events = POLLIN },
			{ .fd = d->stop[0], .events = POLLIN },
		};
		ssize_t n;
		int ready;

		ready = poll(fds, 2, -1);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			handler_fatal("poll", errno);
		}
		if (fds[1].revents)
			break;
		if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			cli_error("demo: handler: poll reports revents 0x%x on the userfaultfd",
				  fds[0].revents);
			exit(CLI_FAIL);
		}

		n = uf_read(d->uffd, msgs, sizeof msgs);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			handler_fatal("read", errno);
		}
		for (size_t i = 0; i < (size_t)n / sizeof msgs[0]; i++)
			serve_fault(d, &msgs[i], src);
	}
	munmap(src, d->page_size);
	return NULL;
}

/* Called after a read of the page returned: wait until the handler has
 * printed what it did for the page.  -1 if the page never faulted: the
 * handler takes the message before the COPY, and the read cannot return
 * before the COPY, so by now the handler has it or will never get it. */
static int wait_printed(struct demo *d, long page)
{
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	if (d->state[page] == PAGE_UNTOUCHED)
		ret = -1;
	else
		while (d->state[page] != PAGE_PRINTED)
			pthread_cond_wait(&d->cond, &d->lock);
	pthread_mutex_unlock(&d->lock);
	return ret;
}

/* The main thread's part: read every page; the number of wrong bytes, or -1
 * if a page was never served. */
static long read_pages(struct demo *d, long *reads)
{
	const volatile char *region = d->region;
	long wrong = 0;

	*reads = 0;
	for (long page = 0; page < d->npages; page++) {
		for (size_t off = READ_FIRST; off < d->page_size; off += READ_STEP) {
			size_t at = (size_t)page * d->page_size + off;
			char c = region[at];
			char want = expected_letter(page);

			if (wait_printed(d, page) < 0) {
				cli_error("demo: page %ld was readable without a fault message", page);
				return -1;
			}
			(*reads)++;
			if (c == want) {
				printf("main: read 0x%llx: '%c'\n",
				       (unsigned long long)(uintptr_t)(region + at), c);
			} else {
				printf("main: read 0x%llx: 0x%02x, expected '%c'\n",
				       (unsigned long long)(uintptr_t)(region + at),
				       (unsigned char)c, want);
				wrong++;
			}
		}
	}
	return wrong;
}

static void print_emulation_stats(void)
{
	struct uf_emu_stats st;

	if (uf_emu_stats(&st) < 0)
		return;
	printf("emulation: %llu fault messages, %llu pages installed\n",
	       (unsigned long long)st.faults,
	       (unsigned long long)st.pages_installed);
}

/* The arguments: CLI_OK after --help, CLI_USAGE for a bad command line (the
 * error printed), or -1 to go on with the demo. */
/* The page count: CLI_USAGE after printing why if arg is not one, or the
 * second one. */
static int take_count(const char *arg, int *have_count, long *npages)
{
	if (*have_count)
		return cli_usage_error("demo", "unexpected argument '%s'", arg);
	if (cli_parse_count(arg, 1, MAX_PAGES, npages) < 0)
		return cli_usage_error("demo", "invalid number of pages '%s': expected 1 to %ld",
				       arg, MAX_PAGES);
	*have_count = 1;
	return CLI_OK;
}

/* The arguments: CLI_OK after --help, CLI_USAGE for a bad command line (the
 * error printed), or -1 to go on with the demo. */
static int parse_args(int argc, char **argv, struct cli_global *global,
		      long *npages)
{
	static const struct option longopts[] = {
		CLI_LONGOPT_HELP,
		CLI_LONGOPT_BACKEND,
		CLI_LONGOPT_END,
	};
	int have_count = 0, c;

	*npages = DEFAULT_PAGES;
	/* '-': in order, N returned as 1 wherever it stands among the options. */
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(demo_help, stdout);
			return CLI_OK;
		case CLI_OPT_BACKEND:
			if (cli_take_backend(optarg, global, "demo") != CLI_OK)
				return CLI_USAGE;
			break;
		case 1:
			if (take_count(optarg, &have_count, npages) != CLI_OK)
				return CLI_USAGE;
			break;
		default:
			return cli_option_error("demo", c, argv, longopts);
		}
	}
	for (; optind < argc; optind++)	/* after "--" */
		if (take_count(argv[optind], &have_count, npages) != CLI_OK)
			return CLI_USAGE;
	return -1;	/* go on */
}

int cmd_demo(int argc, char **argv, struct cli_global *global)
{
	struct demo d = {
		.uffd = -1,
		.stop = { -1, -1 },
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
	};
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	struct uffdio_register reg;
	enum uf_backend backend;
	pthread_t handler;
	size_t len;
	long reads = 0, wrong;
	int status, err;

	status = parse_args(argc, argv, global, &d.npages);
	if (status >= 0)
		return status;
	status = cli_use_backend(global, "demo");
	if (status != CLI_OK)
		return status;
	setvbuf(stdout, NULL, _IOLBF, 0);

	d.page_size = (size_t)sysconf(_SC_PAGESIZE);
	len = (size_t)d.npages * d.page_size;

	d.uffd = uf_userfaultfd(O_CLOEXEC | O_NONBLOCK);
	if (d.uffd < 0) {
		cli_error("demo: userfaultfd: %s (%s)", strerror(errno),
			  cli_errno_name(errno));
		return CLI_FAIL;
	}
	err = uf_fd_backend(d.uffd);
	backend = err < 0 ? uf_get_backend() : (enum uf_backend)err;
	printf("userfault demo: %s back-end, %ld page%s of %zu bytes\n",
	       uf_backend_name(backend), d.npages, d.npages == 1 ? "" : "s",
	       d.page_size);

	if (uf_ioctl(d.uffd, UFFDIO_API, &api) < 0) {
		cli_error("demo: UFFDIO_API: %s", strerror(errno));
		return CLI_FAIL;
	}
	d.region = mmap(NULL, len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* NOLINTBEGIN(clang-analyzer-unix.Malloc): an error return below ends
	 * the process (as in every command): d.state goes with it. */
	d.state = calloc((size_t)d.npages, 1);
	if (d.region == MAP_FAILED || !d.state) {
		cli_error("demo: cannot allocate %ld pages: %s", d.npages, strerror(errno));
		return CLI_FAIL;
	}
	memset(&reg, 0, sizeof reg);
	reg.range.start = (unsigned long long)(uintptr_t)d.region;
	reg.range.len = len;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (uf_ioctl(d.uffd, UFFDIO_REGISTER, &reg) < 0) {
		cli_error("demo: UFFDIO_REGISTER: %s", strerror(errno));
		return CLI_FAIL;
	}
	printf("registered 0x%llx-0x%llx for missing pages\n",
	       (unsigned long long)reg.range.start,
	       (unsigned long long)(reg.range.start + reg.range.len));

	if (pipe2(d.stop, O_CLOEXEC) < 0) {
		cli_error("demo: pipe: %s", strerror(errno));
		return CLI_FAIL;
	}
	err = pthread_create(&handler, NULL, handler_thread, &d);
	if (err) {
		cli_error("demo: cannot start the handler thread: %s", strerror(err));
		return CLI_FAIL;
	}

	wrong = read_pages(&d, &reads);

	/* Stop the handler, then take everything down. */
	if (write(d.stop[1], "", 1) != 1) {
		cli_error("demo: cannot stop the handler: %s", strerror(errno));
		return CLI_FAIL;
	}
	/* NOLINTEND(clang-analyzer-unix.Malloc) */
	pthread_join(handler, NULL);
	if (backend == UF_BACKEND_EMULATED)
		print_emulation_stats();
	if (uf_close(d.uffd) < 0)
		cli_error("demo: close of the userfaultfd: %s", strerror(errno));
	close(d.stop[0]);
	close(d.stop[1]);
	munmap(d.region, len);
	free(d.state);

	if (wrong < 0)
		return CLI_FAIL;
	printf("userfault demo: %ld faults served, %ld of %ld reads as expected\n",
	       d.faults, reads - wrong, reads);
	return wrong == 0 ? CLI_OK : CLI_FAIL;
}
