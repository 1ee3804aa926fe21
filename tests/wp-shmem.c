/* SPDX-License-Identifier: MIT */
/* Write-protect mode on shared memory (a memfd mapped MAP_SHARED or
 * MAP_PRIVATE, and MAP_SHARED|MAP_ANONYMOUS): REGISTER_MODE_WP alone and with MISSING; a
 * page never populated is protected too (the kernel's marker), so its first
 * write is a WP fault; reads never fault; an unregistered alias mapping of
 * the same file is not protected; COPY with and without MODE_WP, ZEROPAGE;
 * MADV_DONTNEED keeps the protection; UNREGISTER and a fork without
 * EVENT_FORK drop it; REGISTER again with other modes; WP_ASYNC with
 * PAGEMAP_SCAN (FILE pages).  Also a memfd mapped MAP_PRIVATE. */
#include "t.h"
#include <sys/ioctl.h>
#include <sys/wait.h>

#define NPAGES 8
#define WPF (UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_WRITE)

static size_t ps;

/* A write to addr by another thread: a message with `flags` for its page,
 * the thread waits; clearing the protection, or a COPY (MISSING), lets it
 * write. */
#define EXPECT_FAULT(fd, addr, val, flags) T_EXPECT_WRITE_FAULT((fd), (addr), (val), (flags), ps, 2000)

/* kind 0: MAP_SHARED|MAP_ANONYMOUS; 1: a memfd, with an alias mapping;
 * 2: a memfd mapped MAP_PRIVATE, with a shared alias mapping. */
static char *map_shared(int kind, char **alias)
{
	size_t len = NPAGES * ps;
	char *p;

	*alias = NULL;
	if (kind == 0) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	} else {
		int fd = memfd_create("uf-wp-shmem", MFD_CLOEXEC);
		T_REQUIRE(fd >= 0 && ftruncate(fd, (off_t)len) == 0);
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, kind == 2 ? MAP_PRIVATE : MAP_SHARED, fd, 0);
		*alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		T_REQUIRE(*alias != MAP_FAILED);
		t_close_mapped_file(fd);
	}
	T_REQUIRE(p != MAP_FAILED);
	return p;
}

static void wp_only(int kind)
{
	int fd = t_uffd(0);
	char *alias, *p = map_shared(kind, &alias);
	uint64_t ioctls = 0;

	p[0] = 1;
	p[ps] = 2;	/* pages 0, 1 populated; the others never */
	CHECK_OK(t_register_mode(fd, p, NPAGES * ps, UFFDIO_REGISTER_MODE_WP, &ioctls));
	CHECK(ioctls & ((uint64_t)1 << _UFFDIO_WRITEPROTECT));
	/* Registering protects nothing; a page never populated fills at its
	 * first access (no MISSING mode). */
	T_EXPECT_NO_FAULT(fd, p + 2 * ps, 1, 0x22);
	CHECK_OK(t_wprotect(fd, p, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	/* Reads never fault, populated or not. */
	T_EXPECT_NO_FAULT(fd, p + 3 * ps, 0, 0);
	CHECK_EQ(p[ps], 2);
	/* A write does: populated, and never populated (the marker). */
	EXPECT_FAULT(fd, p + ps + 5, 0x15, WPF);
	EXPECT_FAULT(fd, p + 5 * ps, 0x55, WPF);
	EXPECT_FAULT(fd, p + 3 * ps + 1, 0x31, WPF);
	/* The alias mapping is not protected, and sees the same file. */
	if (alias) {
		T_EXPECT_NO_FAULT(fd, alias + 6 * ps, 1, 0x66);
		CHECK_EQ(p[6 * ps], 0x66);
		/* (a private mapping's writes are its own) */
		CHECK_EQ(alias[5 * ps], kind == 2 ? 0 : 0x55);
	}
	/* MADV_DONTNEED keeps the protection of shared memory. */
	CHECK_OK(madvise(p + 7 * ps, ps, MADV_DONTNEED));
	EXPECT_FAULT(fd, p + 7 * ps, 0x70, WPF);
	/* UNREGISTER drops it. */
	CHECK_OK(t_unregister(fd, p, NPAGES * ps));
	T_EXPECT_NO_FAULT(fd, p + 4 * ps, 1, 0x44);
	T_EXPECT_NO_FAULT(fd, p, 1, 0x10);
	T_NO_MSG(fd, 10);
	uf_close(fd);
	munmap(p, NPAGES * ps);
	if (alias)
		munmap(alias, NPAGES * ps);
}

static void missing_wp(int kind)
{
	int fd = t_uffd(0);
	char *alias, *p = map_shared(kind, &alias);
	char buf[4096];

	p[0] = 1;
	CHECK_OK(t_register_mode(fd, p, NPAGES * ps, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
				 NULL));
	CHECK_OK(t_wprotect(fd, p, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	/* A missing page: MISSING first (then the copy is not protected). */
	EXPECT_FAULT(fd, p + 2 * ps, 0x22, UFFD_PAGEFAULT_FLAG_WRITE);
	T_EXPECT_NO_FAULT(fd, p + 2 * ps + 1, 1, 0x23);
	/* COPY_MODE_WP: the page arrives protected. */
	memset(buf, 0x33, sizeof buf);
	CHECK_OK(t_copy(fd, p + 3 * ps, buf, ps, UFFDIO_COPY_MODE_WP, NULL));
	CHECK_EQ(p[3 * ps], 0x33);
	EXPECT_FAULT(fd, p + 3 * ps, 0x34, WPF);
	/* ZEROPAGE replaces the marker, unprotected; a private mapping's
	 * refuses it, as for anonymous memory (then it is still missing). */
	if (kind == 2) {
		CHECK_ERRNO(t_zeropage(fd, p + 4 * ps, ps, 0, NULL), EEXIST);
		EXPECT_FAULT(fd, p + 4 * ps, 0x44, UFFD_PAGEFAULT_FLAG_WRITE);
	} else {
		CHECK_OK(t_zeropage(fd, p + 4 * ps, ps, 0, NULL));
		T_EXPECT_NO_FAULT(fd, p + 4 * ps, 1, 0x44);
	}
	/* The present page stays protected. */
	EXPECT_FAULT(fd, p, 0x11, WPF);
	/* A read of a missing page is a MISSING fault. */
	{
		struct t_touch t;
		struct uffd_msg m;
		t_touch_start(&t, p + 5 * ps, 0, 0);
		if (T_MSG(fd, &m, 2000))
			t_check_fault_(__FILE__, __LINE__, &m, (uintptr_t)(p + 5 * ps), 0);
		CHECK_OK(t_copy_byte(fd, p + 5 * ps, 0x55, 1, UFFDIO_COPY_MODE_WP));
		CHECK(t_touch_wait(&t, 2000));
		EXPECT_FAULT(fd, p + 5 * ps, 0x56, WPF);
	}
	T_NO_MSG(fd, 10);
	uf_close(fd);
	munmap(p, NPAGES * ps);
	if (alias)
		munmap(alias, NPAGES * ps);
}

/* REGISTER again with other modes: MISSING then WP alone (missing pages
 * fill without a fault), then MISSING|WP (they fault again). */
static void remode(void)
{
	int fd = t_uffd(0);
	char *alias, *p = map_shared(1, &alias);

	CHECK_OK(t_register_mode(fd, p, NPAGES * ps, UFFDIO_REGISTER_MODE_MISSING, NULL));
	CHECK_OK(t_register_mode(fd, p, NPAGES * ps, UFFDIO_REGISTER_MODE_WP, NULL));
	T_EXPECT_NO_FAULT(fd, p + ps, 0, 0);
	T_EXPECT_NO_FAULT(fd, p + 2 * ps, 1, 0x22);
	CHECK_OK(t_wprotect(fd, p, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	EXPECT_FAULT(fd, p + 2 * ps, 0x23, WPF);
	CHECK_OK(t_register_mode(fd, p, NPAGES * ps, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
				 NULL));
	EXPECT_FAULT(fd, p + 3 * ps, 0x33, UFFD_PAGEFAULT_FLAG_WRITE);
	EXPECT_FAULT(fd, p + ps, 0x24, WPF);	/* (read above: present) */
	CHECK_EQ(alias[ps], 0x24);
	T_NO_MSG(fd, 10);
	uf_close(fd);
	munmap(p, NPAGES * ps);
	munmap(alias, NPAGES * ps);
}

/* A fork without EVENT_FORK: the child's mapping is not protected. */
static void fork_plain(void)
{
	int fd = t_uffd(0);
	char *alias, *p = map_shared(1, &alias);
	pid_t pid;
	int st;

	memset(p, 1, NPAGES * ps);
	CHECK_OK(t_register_mode(fd, p, NPAGES * ps, UFFDIO_REGISTER_MODE_WP, NULL));
	CHECK_OK(t_wprotect(fd, p, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	pid = fork();
	T_REQUIRE(pid >= 0);
	if (pid == 0) {
		t_child_watchdog(10);
		for (size_t i = 0; i < NPAGES; i++)
			p[i * ps] = 9;
		_exit(0);
	}
	T_REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_EQ(alias[ps], 9);		/* the child wrote the shared file */
	EXPECT_FAULT(fd, p + 2 * ps, 0x22, WPF);	/* still protected here */
	T_NO_MSG(fd, 10);
	uf_close(fd);
	munmap(p, NPAGES * ps);
	munmap(alias, NPAGES * ps);
}

/* WP_ASYNC on shared memory, seen through PAGEMAP_SCAN. */
static void async_scan(void)
{
	int fd = t_uffd(UFFD_FEATURE_WP_ASYNC), pm;
	char *alias, *p = map_shared(1, &alias);
	struct page_region v[NPAGES] = { { 0, 0, 0 } };
	struct pm_scan_arg a = { .size = sizeof a, .vec = (uintptr_t)v, .vec_len = NPAGES,
				 .return_mask = PAGE_IS_WPALLOWED | PAGE_IS_WRITTEN | PAGE_IS_FILE |
						PAGE_IS_PRESENT | PAGE_IS_SWAPPED };
	int n;

	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	T_REQUIRE(pm >= 0);
	p[0] = 1;
	p[ps] = 1;
	CHECK_OK(t_register_mode(fd, p, NPAGES * ps, UFFDIO_REGISTER_MODE_WP, NULL));
	CHECK_OK(t_wprotect(fd, p, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	p[ps] = 2;
	p[4 * ps] = 2;
	T_NO_MSG(fd, 10);
	a.start = (uintptr_t)p;
	a.end = (uintptr_t)(p + NPAGES * ps);
	n = uf_ioctl(pm, PAGEMAP_SCAN, &a);
	CHECK_EQ(n, 5);
	if (n == 5) {
		/* page 0 protected, present; 1 written; 2-3 protected markers;
		 * 4 written; 5-7 markers */
		CHECK_EQ(v[0].end, (uintptr_t)(p + ps));
		CHECK_EQ(v[0].categories, PAGE_IS_WPALLOWED | PAGE_IS_FILE | PAGE_IS_PRESENT);
		CHECK_EQ(v[1].categories,
			 PAGE_IS_WPALLOWED | PAGE_IS_FILE | PAGE_IS_PRESENT | PAGE_IS_WRITTEN);
		CHECK_EQ(v[2].start, (uintptr_t)(p + 2 * ps));
		CHECK_EQ(v[2].end, (uintptr_t)(p + 4 * ps));
		CHECK_EQ(v[2].categories, PAGE_IS_WPALLOWED | PAGE_IS_SWAPPED);
		CHECK_EQ(v[4].start, (uintptr_t)(p + 5 * ps));
	}
	a.flags = PM_SCAN_WP_MATCHING;
	a.category_mask = PAGE_IS_WRITTEN;
	a.return_mask = PAGE_IS_WRITTEN;
	CHECK_EQ(uf_ioctl(pm, PAGEMAP_SCAN, &a), 2);
	CHECK_EQ(uf_ioctl(pm, PAGEMAP_SCAN, &a), 0);
	close(pm);
	uf_close(fd);
	munmap(p, NPAGES * ps);
	munmap(alias, NPAGES * ps);
}

int main(void)
{
	t_start(60);
	ps = (size_t)t_ps;
	if (t_emulated() && !(t_features() & UFFD_FEATURE_MISSING_SHMEM))
		T_SKIP_TEST("no MISSING_SHMEM on the emulation here (guard markers on shared memory)");
	if (t_emulated() && !(t_features() & UFFD_FEATURE_WP_ASYNC))
		T_SKIP_TEST("no write protection on the emulation here (guard markers)");
	for (int kind = 0; kind < 3; kind++) {
		if (kind == 0 && t_shared_anon_unreachable())
			continue;
		wp_only(kind);
		missing_wp(kind);
	}
	remode();
	fork_plain();
	async_scan();
	return t_done();
}
