/* SPDX-License-Identifier: MIT */
/* MISSING mode on hugetlb memory (2 MiB pages): private and shared
 * anonymous huge pages, a hugetlb memfd mapped shared (with an alias) and
 * private.  REGISTER wants huge-page ends and answers without ZEROPAGE;
 * the fault's address is the huge page (exact with EXACT_ADDRESS); COPY is
 * whole huge pages (EINVAL otherwise, ZEROPAGE always EINVAL), EEXIST on a
 * present page; a page made through the alias is present; MADV_REMOVE and
 * hole punching (shared) and MADV_DONTNEED (private) make pages missing
 * again, MADV_DONTNEED on shared memory does not.  Reserves its huge pages
 * (vm.nr_hugepages) and gives them back. */
#include "t.h"
#include <sys/stat.h>

#define NH 4			/* huge pages per mapping */
#define WANT 16			/* free huge pages the test needs */

static size_t hs;		/* huge page size */
/* kind: 0 private anonymous, 1 shared anonymous, 2 memfd shared (alias),
 * 3 memfd private. */
static char *map_kind(int kind, char **alias, int *mfd)
{
	size_t len = NH * hs;
	char *p;

	*alias = NULL;
	*mfd = -1;
	if (kind < 2) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 (kind ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
		T_REQUIRE(p != MAP_FAILED);
		return p;
	}
	*mfd = memfd_create("uf-huge", MFD_CLOEXEC | MFD_HUGETLB);
	T_REQUIRE(*mfd >= 0);
	T_REQUIRE(ftruncate(*mfd, (off_t)len) == 0);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, kind == 2 ? MAP_SHARED : MAP_PRIVATE, *mfd, 0);
	T_REQUIRE(p != MAP_FAILED);
	if (kind == 2) {
		*alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, *mfd, 0);
		T_REQUIRE(*alias != MAP_FAILED);
	}
	return p;
}

/* COPY of one huge page of `byte` (the source deliberately not aligned). */
static int copy_huge(int fd, void *dst, int byte, size_t len, int64_t *out)
{
	char *buf = malloc(len + 64);
	int r, e;

	T_REQUIRE(buf);
	memset(buf, byte, len + 64);
	r = t_copy(fd, dst, buf + 8, len, 0, out);
	e = errno;
	free(buf);
	errno = e;
	return r;
}

/* A thread's access to addr blocks until a COPY of `byte` resolves it;
 * the message's address is `want`. */
static void fault_and_copy(int fd, char *addr, int write, char *want, int byte)
{
	struct t_touch t;
	struct uffd_msg m;

	t_touch_start(&t, addr, write, (char)byte);
	if (T_MSG(fd, &m, 3000)) {
		CHECK_EQ(m.event, UFFD_EVENT_PAGEFAULT);
		CHECK_EQ(m.arg.pagefault.address, (uintptr_t)want);
		CHECK_EQ(!!(m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE), write);
	}
	CHECK_EQ(copy_huge(fd, (void *)((uintptr_t)addr & ~(uintptr_t)(hs - 1)), byte, hs, NULL), 0);
	CHECK(t_touch_wait(&t, 3000));
	CHECK_EQ(t.val, (char)byte);
}

static void one_kind(int kind)
{
	static const char *const names[] = { "private anonymous", "shared anonymous", "memfd shared",
					     "memfd private" };
	int shared = kind == 1 || kind == 2, before = t_failures, mfd;
	int fd = t_uffd(0), xfd;
	char *alias, *p = map_kind(kind, &alias, &mfd);
	uint64_t ioctls = 0;
	int64_t out;

	if (kind == 1 && t_shared_anon_unreachable()) {
		T_NOTE("USERFAULT_SHARED_ANON=kernel without /proc/self/map_files: EINVAL (README)");
		CHECK_ERRNO(t_register(fd, p, NH * hs), EINVAL);
		munmap(p, NH * hs);
		close(fd);
		return;
	}
	p[hs - 1] = 0x11;		/* page 0 present before REGISTER */
	/* Ends not on huge pages: EINVAL. */
	CHECK_ERRNO(t_register(fd, p + t_ps, NH * hs - (size_t)t_ps), EINVAL);
	CHECK_ERRNO(t_register(fd, p, NH * hs - (size_t)t_ps), EINVAL);
	CHECK_EQ(t_register_mode(fd, p, NH * hs, UFFDIO_REGISTER_MODE_MISSING, &ioctls), 0);
	CHECK(ioctls & ((uint64_t)1 << _UFFDIO_COPY));
	CHECK(ioctls & ((uint64_t)1 << _UFFDIO_WAKE));
	CHECK(!(ioctls & ((uint64_t)1 << _UFFDIO_ZEROPAGE)));
	T_EXPECT_NO_FAULT(fd, p + 5, 0, 0);
	CHECK_EQ(p[hs - 1], 0x11);

	/* A fault: the huge page's address; COPY fills all of it. */
	fault_and_copy(fd, p + hs + 5000, 0, p + hs, 0x21);
	CHECK_EQ(p[hs], 0x21);
	CHECK_EQ(p[2 * hs - 1], 0x21);
	if (alias)
		CHECK_EQ(alias[hs + 77], 0x21);
	/* Only whole huge pages; no ZEROPAGE; EEXIST on a present page. */
	CHECK_ERRNO(copy_huge(fd, p + 2 * hs, 0x22, (size_t)t_ps, &out), EINVAL);
	CHECK_ERRNO(copy_huge(fd, p + 2 * hs + t_ps, 0x22, hs, &out), EINVAL);
	CHECK_ERRNO(t_zeropage(fd, p + 2 * hs, hs, 0, &out), EINVAL);
	CHECK_ERRNO(copy_huge(fd, p + hs, 0x23, hs, &out), EEXIST);
	CHECK_EQ(out, -EEXIST);
	CHECK_EQ(p[hs + 9], 0x21);

	/* A write fault with EXACT_ADDRESS, on a second uffd. */
	xfd = t_uffd(UFFD_FEATURE_EXACT_ADDRESS);
	CHECK_EQ(t_unregister(fd, p + 2 * hs, hs), 0);
	CHECK_EQ(t_register(xfd, p + 2 * hs, hs), 0);
	fault_and_copy(xfd, p + 2 * hs + 4097, 1, p + 2 * hs + 4097, 0x24);
	CHECK_EQ(p[2 * hs], 0x24);
	CHECK_EQ(t_unregister(xfd, p + 2 * hs, hs), 0);
	close(xfd);

	if (alias) {
		/* Made through the unregistered alias: present here. */
		alias[3 * hs + 3] = 0x31;
		T_EXPECT_NO_FAULT(fd, p + 3 * hs + 3, 0, 0x31);
		CHECK_ERRNO(copy_huge(fd, p + 3 * hs, 0x32, hs, &out), EEXIST);
		/* A hole punched in the file: missing again. */
		CHECK_OK(fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(3 * hs),
				   (off_t)hs));
		fault_and_copy(fd, p + 3 * hs + 8, 0, p + 3 * hs, 0x33);
		CHECK_EQ(alias[3 * hs + 8], 0x33);
	}
	if (shared) {
		/* DONTNEED: the file keeps the page. */
		CHECK_OK(madvise(p + hs, hs, MADV_DONTNEED));
		T_EXPECT_NO_FAULT(fd, p + hs + 1, 0, 0x21);
		/* REMOVE: it leaves the file, and faults again. */
		CHECK_OK(madvise(p + hs, hs, MADV_REMOVE));
		fault_and_copy(fd, p + hs + 2, 1, p + hs, 0x25);
	} else {
		/* DONTNEED drops the private page: it faults again. */
		CHECK_OK(madvise(p + hs, hs, MADV_DONTNEED));
		fault_and_copy(fd, p + hs + 2, 1, p + hs, 0x25);
	}
	CHECK_EQ(p[hs + 100], 0x25);
	T_NO_MSG(fd, 0);

	/* UNREGISTER: what is missing reads as zero, with no fault. */
	CHECK_EQ(t_unregister(fd, p, NH * hs), 0);
	if (kind == 2 || kind == 1)
		CHECK_EQ(p[2 * hs + 5], 0x24);
	CHECK_EQ(p[(NH - 1) * hs + (shared ? hs / 2 : 0)], alias ? 0x33 : 0);
	T_NO_MSG(fd, 0);
	munmap(p, NH * hs);
	if (alias)
		munmap(alias, NH * hs);
	if (mfd >= 0)
		close(mfd);
	close(fd);
	if (t_failures != before)
		fprintf(stderr, "  (%s)\n", names[kind]);
}

/* As an ordinary user (no /proc/self/map_files): shared anonymous huge
 * pages work on both back-ends (the emulation maps a hugetlb memfd of its
 * own instead). */
static void as_user(void)
{
	CHECK(!t_map_files_ok());
	one_kind(1);
}

int main(void)
{
	t_start(60);
	hs = 2u << 20;
	CHECK(t_features() & UFFD_FEATURE_MISSING_HUGETLBFS);
	t_need_hugepages(WANT);
	for (int kind = 0; kind < 4; kind++)
		one_kind(kind);
	t_as_user("shared anonymous huge pages", as_user);
	setenv("USERFAULT_SHARED_ANON", "memfd", 1);
	one_kind(1);
	return t_done();
}
