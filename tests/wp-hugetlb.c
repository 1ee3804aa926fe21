/* SPDX-License-Identifier: MIT */
/* Write-protect mode on hugetlb (2 MiB pages; private MAP_HUGETLB, and a
 * hugetlb memfd mapped shared, with an unregistered alias): WP alone and
 * with MISSING; every huge page of a WRITEPROTECT range is protected,
 * populated or not, so a first write is a WP fault, or a MISSING fault
 * first with MISSING mode; reads of populated pages never fault;
 * COPY_MODE_WP; a range not on huge pages is EINVAL; MADV_DONTNEED keeps
 * the protection; UNREGISTER drops it; the feature bit. */
#include "t.h"

#define HPS ((size_t)2 << 20)
#define NHP 4
#define WPF (UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_WRITE)

/* A write to addr by another thread: a message with `flags` for its huge
 * page, the thread waits; clearing the protection, or a COPY of byte 0x77
 * for a MISSING fault, lets it write. */
#define EXPECT_FAULT(fd, addr, val, flags) T_EXPECT_WRITE_FAULT((fd), (addr), (val), (flags), HPS, 3000)

/* shared 0: private MAP_HUGETLB; 1: a hugetlb memfd, shared, with an alias. */
static char *map_huge(int shared, char **alias)
{
	size_t len = NHP * HPS;
	char *p;

	*alias = NULL;
	if (!shared) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	} else {
		int fd = memfd_create("uf-wp-huge", MFD_CLOEXEC | MFD_HUGETLB);
		T_REQUIRE(fd >= 0 && ftruncate(fd, (off_t)len) == 0);
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		*alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		T_REQUIRE(*alias != MAP_FAILED);
		t_close_mapped_file(fd);
	}
	T_REQUIRE(p != MAP_FAILED);
	return p;
}

static void wp_only(int shared)
{
	int fd = t_uffd(0);
	char *alias, *p = map_huge(shared, &alias);
	uint64_t ioctls = 0;

	p[0] = 1;		/* huge page 0 populated, the others never */
	CHECK_OK(t_register_mode(fd, p, NHP * HPS, UFFDIO_REGISTER_MODE_WP, &ioctls));
	CHECK(ioctls & ((uint64_t)1 << _UFFDIO_WRITEPROTECT));
	CHECK_ERRNO(t_wprotect(fd, p + 4096, HPS, UFFDIO_WRITEPROTECT_MODE_WP), EINVAL);
	CHECK_OK(t_wprotect(fd, p, NHP * HPS, UFFDIO_WRITEPROTECT_MODE_WP));
	T_EXPECT_NO_FAULT(fd, p + 5, 0, 0);
	EXPECT_FAULT(fd, p + 9, 0x19, WPF);
	EXPECT_FAULT(fd, p + 2 * HPS + 3, 0x23, WPF);
	if (alias) {
		T_EXPECT_NO_FAULT(fd, alias + HPS, 1, 0x66);
		CHECK_EQ(p[HPS], 0x66);
	}
	/* MADV_DONTNEED keeps the protection. */
	p[2 * HPS] = 2;
	CHECK_OK(madvise(p + 2 * HPS, HPS, MADV_DONTNEED));
	CHECK_OK(t_wprotect(fd, p + 2 * HPS, HPS, UFFDIO_WRITEPROTECT_MODE_WP));
	CHECK_OK(madvise(p + 2 * HPS, HPS, MADV_DONTNEED));
	EXPECT_FAULT(fd, p + 2 * HPS + 7, 0x27, WPF);
	CHECK_OK(t_unregister(fd, p, NHP * HPS));
	T_EXPECT_NO_FAULT(fd, p + 3 * HPS, 1, 0x33);
	T_NO_MSG(fd, 10);
	uf_close(fd);
	munmap(p, NHP * HPS);
	if (alias)
		munmap(alias, NHP * HPS);
}

static void missing_wp(int shared)
{
	int fd = t_uffd(0);
	char *alias, *p = map_huge(shared, &alias);
	char *src = malloc(HPS);

	T_REQUIRE(src != NULL);
	p[0] = 1;
	CHECK_OK(t_register_mode(fd, p, NHP * HPS, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
				 NULL));
	CHECK_OK(t_wprotect(fd, p, NHP * HPS, UFFDIO_WRITEPROTECT_MODE_WP));
	/* MISSING first; the copy is writable. */
	EXPECT_FAULT(fd, p + HPS + 1, 0x11, UFFD_PAGEFAULT_FLAG_WRITE);
	CHECK_EQ(p[HPS], 0x77);
	T_EXPECT_NO_FAULT(fd, p + HPS + 2, 1, 0x12);
	/* COPY_MODE_WP: protected. */
	memset(src, 0x35, HPS);
	CHECK_OK(t_copy(fd, p + 3 * HPS, src, HPS, UFFDIO_COPY_MODE_WP, NULL));
	CHECK_EQ(p[3 * HPS + 100], 0x35);
	EXPECT_FAULT(fd, p + 3 * HPS, 0x36, WPF);
	/* The populated page is protected; a read of a missing one faults. */
	EXPECT_FAULT(fd, p + 5, 0x15, WPF);
	{
		struct t_touch t;
		struct uffd_msg m;
		t_touch_start(&t, p + 2 * HPS, 0, 0);
		if (T_MSG(fd, &m, 3000))
			t_check_fault_(__FILE__, __LINE__, &m, (uintptr_t)(p + 2 * HPS), 0);
		memset(src, 0x45, HPS);
		CHECK_OK(t_copy(fd, p + 2 * HPS, src, HPS, UFFDIO_COPY_MODE_WP, NULL));
		CHECK(t_touch_wait(&t, 3000));
		EXPECT_FAULT(fd, p + 2 * HPS, 0x46, WPF);
	}
	T_NO_MSG(fd, 10);
	free(src);
	uf_close(fd);
	munmap(p, NHP * HPS);
	if (alias)
		munmap(alias, NHP * HPS);
}

int main(void)
{
	t_start(90);
	if (t_emulated() && !(t_features() & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
		T_SKIP_TEST("no WP on hugetlb on the emulation here (guard markers on shared memory)");
	CHECK(t_features() & UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
	t_need_hugepages(2 * NHP + 2);
	for (int shared = 0; shared < 2; shared++) {
		wp_only(shared);
		missing_wp(shared);
	}
	return t_done();
}
