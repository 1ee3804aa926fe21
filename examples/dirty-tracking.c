/* dirty-tracking: incremental checkpoints of a memory region with UFFD_FEATURE_WP_ASYNC and the PAGEMAP_SCAN ioctl, the way CRIU and garbage collectors track written pages. */
/*
 * SPDX-License-Identifier: MIT
 *
 * Raw kernel ABI only: userfaultfd(2), ioctl, read and pread of
 * /proc/self/pagemap.
 *
 * A region of 16 pages is registered for write protection on a uffd with
 * UFFD_FEATURE_WP_ASYNC, and protected whole.  A write to a protected page
 * is resolved at once, with no message: the page becomes writable and
 * reads as written.  Each checkpoint asks PAGEMAP_SCAN for the written pages
 * and protects them again in the same call (PM_SCAN_WP_MATCHING), then
 * copies just those pages.  The uffd-wp bit (57) of the pagemap entries
 * shows the protection page by page.  Under the emulation
 * (`userfault run --backend emulated`) the output is the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <userfault/uapi.h>	/* our copy of <linux/userfaultfd.h> */
#include <userfault/pagemap.h>	/* PAGEMAP_SCAN, as <linux/fs.h> of 6.7+ */

#define NPAGES 16
#define PM_UFFD_WP (1ULL << 57)

static size_t ps;
static char *region, *copy;
static int uffd, pagemap;

static void die(const char *what)
{
	printf("%s: %s\n", what, strerror(errno));
	exit(1);
}

/* One checkpoint: the pages written since the last, protected again. */
static void checkpoint(int n)
{
	struct page_region v[NPAGES] = { { 0, 0, 0 } };
	struct pm_scan_arg a = {
		.size = sizeof a, .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = (uintptr_t)region, .end = (uintptr_t)(region + NPAGES * ps),
		.vec = (uintptr_t)v, .vec_len = NPAGES,
		.category_mask = PAGE_IS_WRITTEN, .return_mask = PAGE_IS_WRITTEN,
	};
	int r = ioctl(pagemap, PAGEMAP_SCAN, &a), pages = 0;

	if (r < 0)
		die("PAGEMAP_SCAN");
	if (r == 0) {
		printf("checkpoint %d: nothing written\n", n);
		return;
	}
	printf("checkpoint %d: %d region%s written:", n, r, r == 1 ? "" : "s");
	for (int i = 0; i < r; i++) {
		size_t from = (v[i].start - (uintptr_t)region) / ps, to = (v[i].end - (uintptr_t)region) / ps;
		printf(" [%zu,%zu)", from, to);
		memcpy(copy + from * ps, region + from * ps, (to - from) * ps);
		pages += (int)(to - from);
	}
	printf(", %d page%s copied\n", pages, pages == 1 ? "" : "s");
}

/* The uffd-wp bit of each page, from /proc/self/pagemap. */
static void show_protection(void)
{
	uint64_t e[NPAGES];
	off_t off = (off_t)((uintptr_t)region / ps * sizeof e[0]);

	if (pread(pagemap, e, sizeof e, off) != (ssize_t)sizeof e)
		die("pread pagemap");
	printf("protected: ");
	for (int i = 0; i < NPAGES; i++)
		putchar(e[i] & PM_UFFD_WP ? 'P' : '.');
	putchar('\n');
}

static void write_pages(const char *what, const int *pages, int n, char c)
{
	printf("program writes %s:", what);
	for (int i = 0; i < n; i++) {
		region[pages[i] * ps + 7] = c;
		printf(" %d", pages[i]);
	}
	putchar('\n');
}

int main(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC };
	struct uffd_msg m;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		die("userfaultfd");
	if (ioctl(uffd, UFFDIO_API, &api))
		die("UFFDIO_API");
	pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pagemap < 0)
		die("open /proc/self/pagemap");
	region = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	copy = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED || copy == MAP_FAILED)
		die("mmap");
	for (int i = 0; i < NPAGES; i++)
		region[i * ps] = (char)('a' + i);

	struct uffdio_register reg = { .range = { (uintptr_t)region, NPAGES * ps },
				       .mode = UFFDIO_REGISTER_MODE_WP };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER");
	/* The first checkpoint copies everything and starts the tracking. */
	checkpoint(0);
	show_protection();

	int a[] = { 1, 2, 9 }, b[] = { 2, 14 }, c[] = { 5, 6, 7, 8 };
	write_pages("pages", a, 3, 'x');
	show_protection();
	checkpoint(1);
	show_protection();
	write_pages("pages", b, 2, 'y');
	checkpoint(2);
	checkpoint(3);
	write_pages("pages", c, 4, 'z');
	checkpoint(4);

	/* No write waited for anyone: the uffd has no message. */
	if (read(uffd, &m, sizeof m) < 0 && errno == EAGAIN)
		printf("uffd: no message (the writes were resolved at once)\n");
	else
		printf("uffd: unexpected message\n");
	/* The copy is the region. */
	printf("copy %s the region\n", memcmp(copy, region, NPAGES * ps) ? "differs from" : "equals");
	return 0;
}
