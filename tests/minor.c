/* SPDX-License-Identifier: MIT */
/* MINOR mode and UFFDIO_CONTINUE on shared memory (a memfd) and shared
 * hugetlb (a hugetlb memfd), each mapped twice: a registered view and an
 * unregistered alias that fills the file.  A page the file has and the view
 * has not mapped faults with UFFD_PAGEFAULT_FLAG_MINOR (and WRITE for a
 * write); CONTINUE maps it, with what the alias wrote just before; pages
 * mapped before the registration do not fault; MINOR alone makes a page
 * the file lacks silently, MINOR|MISSING faults as missing (COPY); the
 * errors of CONTINUE (EEXIST, EFAULT, EINVAL past the end of the file, bad
 * mode, MODE_WP without WP mode, private anonymous memory, ENOENT) and its
 * partial count; CONTINUE_MODE_WP; MADV_DONTNEED makes the pages fault
 * again; UNREGISTER; REGISTER's ioctls and the feature bits; MINOR on
 * private anonymous memory is EINVAL; on a private mapping of shared
 * memory, minor faults and CONTINUE as on a shared one (a write after it
 * makes a private copy). */
#include "t.h"

#define HPS ((size_t)2 << 20)
#define SENTINEL 0x5a5a
#define NU 8		/* units (pages or huge pages) of the file */

static size_t unit;

static int t_continue(int fd, void *addr, size_t len, uint64_t mode, int64_t *out)
{
	struct uffdio_continue c = {
		.range = { (uintptr_t)addr, len }, .mode = mode, .mapped = SENTINEL,
	};
	int r = uf_ioctl(fd, UFFDIO_CONTINUE, &c);

	if (out)
		*out = c.mapped;
	return r;
}

struct file2 {
	int mfd;
	char *view, *alias;
};

/* A file of NU units (the view maps one more, past its end). */
static struct file2 open2(int huge)
{
	struct file2 f;

	f.mfd = memfd_create("uf-minor", MFD_CLOEXEC | (huge ? MFD_HUGETLB : 0));
	T_REQUIRE(f.mfd >= 0 && ftruncate(f.mfd, (off_t)(NU * unit)) == 0);
	f.view = mmap(NULL, (NU + 1) * unit, PROT_READ | PROT_WRITE, MAP_SHARED, f.mfd, 0);
	f.alias = mmap(NULL, NU * unit, PROT_READ | PROT_WRITE, MAP_SHARED, f.mfd, 0);
	T_REQUIRE(f.view != MAP_FAILED && f.alias != MAP_FAILED);
	return f;
}

static void close2(struct file2 *f)
{
	munmap(f->view, (NU + 1) * unit);
	munmap(f->alias, NU * unit);
	close(f->mfd);
}

/* An access of addr by another thread must fault with flags; the alias
 * writes `fill` at the same offset of the file, CONTINUE maps the page,
 * and the access sees it (a read) or writes over it. */
#define EXPECT_MINOR(fd, f, addr, write, flags, fill) \
	expect_minor_(__LINE__, (fd), (f), (addr), (write), (flags), (fill))
static void expect_minor_(int line, int fd, struct file2 *f, char *addr, int write, uint64_t flags, int fill)
{
	struct t_touch t;
	struct uffd_msg m;
	char *page = (char *)((uintptr_t)addr & ~(uintptr_t)(unit - 1));

	t_touch_start(&t, addr, write, 0x7e);
	if (t_want_msg_(__FILE__, line, fd, &m, 3000)) {
		t_check_fault_(__FILE__, line, &m, (uintptr_t)page, flags);
		f->alias[addr - f->view] = (char)fill;
		if (t_continue(fd, page, unit, 0, NULL))
			t_fail(__FILE__, line, "CONTINUE: %s", t_errname(errno));
	} else {
		t_continue(fd, page, unit, 0, NULL);
	}
	t_count();
	if (!t_touch_wait(&t, 3000))
		t_fail(__FILE__, line, "the access did not complete");
	else if (write ? f->alias[addr - f->view] != 0x7e : t.val != (char)fill)
		t_fail(__FILE__, line, "the access did not see the page");
}

static void minor_alone(int huge)
{
	int fd = t_uffd(0);
	struct file2 f = open2(huge);
	uint64_t ioctls = 0;
	int64_t out;

	f.view[0] = 1;			/* unit 0 mapped before the registration */
	for (int i = 1; i < NU - 2; i++)
		f.alias[(size_t)i * unit] = (char)(0x10 + i);	/* in the file, not in the view */
	CHECK_OK(t_register_mode(fd, f.view, (NU + 1) * unit, UFFDIO_REGISTER_MODE_MINOR, &ioctls));
	CHECK(ioctls & ((uint64_t)1 << _UFFDIO_CONTINUE));
	CHECK(!(ioctls & ((uint64_t)1 << _UFFDIO_WRITEPROTECT)));
	CHECK_EQ(ioctls & ((uint64_t)1 << _UFFDIO_ZEROPAGE), huge ? 0 : (uint64_t)1 << _UFFDIO_ZEROPAGE);
	T_EXPECT_NO_FAULT(fd, f.view + 5, 0, 0);
	EXPECT_MINOR(fd, &f, f.view + unit + 3, 0, UFFD_PAGEFAULT_FLAG_MINOR, 0x21);
	EXPECT_MINOR(fd, &f, f.view + 2 * unit + 9, 1, UFFD_PAGEFAULT_FLAG_MINOR | UFFD_PAGEFAULT_FLAG_WRITE, 0);
	/* Mapped now: no more faults; CONTINUE is EEXIST. */
	T_EXPECT_NO_FAULT(fd, f.view + unit + 3, 0, 0x21);
	CHECK_ERRNO(t_continue(fd, f.view + unit, unit, 0, &out), EEXIST);
	CHECK_EQ(out, -EEXIST);
	/* A page the file lacks: made silently (MINOR alone), in the file. */
	T_EXPECT_NO_FAULT(fd, f.view + (NU - 1) * unit, 1, 0x44);
	CHECK_EQ(f.alias[(NU - 1) * unit], 0x44);
	/* CONTINUE ahead of the fault; then partial: unit 4 is in the file,
	 * unit NU - 2 is not (EFAULT alone). */
	CHECK_OK(t_continue(fd, f.view + 3 * unit, unit, UFFDIO_CONTINUE_MODE_DONTWAKE, &out));
	CHECK_EQ(out, (int64_t)unit);
	T_EXPECT_NO_FAULT(fd, f.view + 3 * unit, 0, 0x13);
	CHECK_ERRNO(t_continue(fd, f.view + (NU - 2) * unit, unit, 0, &out), EFAULT);
	CHECK_EQ(out, -EFAULT);
	CHECK_ERRNO(t_continue(fd, f.view + (NU - 3) * unit, 2 * unit, 0, &out), EAGAIN);
	CHECK_EQ(out, (int64_t)unit);
	/* Past the end of the file: EINVAL.  (hugetlbfs grew the file to
	 * the writable mapping's size: a page it lacks, EFAULT.) */
	CHECK_ERRNO(t_continue(fd, f.view + NU * unit, unit, 0, &out), huge ? EFAULT : EINVAL);
	CHECK_EQ(out, huge ? -EFAULT : -EINVAL);
	/* Arguments. */
	CHECK_ERRNO(t_continue(fd, f.view + 4 * unit, unit, 4, &out), EINVAL);
	CHECK_EQ(out, SENTINEL);
	CHECK_ERRNO(t_continue(fd, f.view + 4 * unit + (size_t)4096 * !huge + 1, unit, 0, &out), EINVAL);
	CHECK_ERRNO(t_continue(fd, f.view + 4 * unit, unit, UFFDIO_CONTINUE_MODE_WP, &out), EINVAL);
	if (huge)
		CHECK_ERRNO(t_continue(fd, f.view + 4 * unit + 4096, 4096, 0, &out), EINVAL);
	/* MADV_DONTNEED: the view's pages are not mapped any more. */
	CHECK_OK(madvise(f.view + unit, unit, MADV_DONTNEED));
	EXPECT_MINOR(fd, &f, f.view + unit + 3, 0, UFFD_PAGEFAULT_FLAG_MINOR, 0x31);
	/* UNREGISTER: nothing faults. */
	CHECK_OK(t_unregister(fd, f.view, (NU + 1) * unit));
	T_EXPECT_NO_FAULT(fd, f.view + 4 * unit, 0, 0x14);
	T_NO_MSG(fd, 10);
	uf_close(fd);
	close2(&f);
}

static void minor_missing(int huge)
{
	int fd = t_uffd(0);
	struct file2 f = open2(huge);
	char *buf = malloc(unit);
	struct t_touch t;
	struct uffd_msg m;

	T_REQUIRE(buf != NULL);
	f.alias[unit] = 0x11;
	CHECK_OK(t_register_mode(fd, f.view, NU * unit, UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_MISSING,
				 NULL));
	/* In the file: minor.  Not: missing, which COPY answers. */
	EXPECT_MINOR(fd, &f, f.view + unit, 0, UFFD_PAGEFAULT_FLAG_MINOR, 0x12);
	t_touch_start(&t, f.view + 2 * unit + 1, 0, 0);
	if (T_MSG(fd, &m, 3000)) {
		CHECK_FAULT(&m, f.view + 2 * unit, 0);
		memset(buf, 0x22, unit);
		CHECK_OK(t_copy(fd, f.view + 2 * unit, buf, unit, 0, NULL));
	}
	CHECK(t_touch_wait(&t, 3000));
	CHECK_EQ(t.val, 0x22);
	CHECK_EQ(f.alias[2 * unit], 0x22);
	/* A page COPY installed is mapped: CONTINUE says EEXIST. */
	CHECK_ERRNO(t_continue(fd, f.view + 2 * unit, unit, 0, NULL), EEXIST);
	/* COPY into a page the file has: EEXIST. */
	f.alias[3 * unit] = 0x33;
	CHECK_ERRNO(t_copy(fd, f.view + 3 * unit, buf, unit, 0, NULL), EEXIST);
	EXPECT_MINOR(fd, &f, f.view + 3 * unit, 1, UFFD_PAGEFAULT_FLAG_MINOR | UFFD_PAGEFAULT_FLAG_WRITE, 0);
	uf_close(fd);
	close2(&f);
	free(buf);
}

/* MINOR|WP: CONTINUE_MODE_WP maps the page write-protected. */
static void minor_wp(int huge)
{
	int fd = t_uffd(0);
	struct file2 f = open2(huge);
	struct t_touch t;
	struct uffd_msg m;

	f.alias[unit] = 0x41;
	CHECK_OK(t_register_mode(fd, f.view, NU * unit, UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP, NULL));
	CHECK_OK(t_continue(fd, f.view + unit, unit, UFFDIO_CONTINUE_MODE_WP, NULL));
	T_EXPECT_NO_FAULT(fd, f.view + unit, 0, 0x41);
	t_touch_start(&t, f.view + unit + 1, 1, 0x42);
	if (T_MSG(fd, &m, 3000)) {
		CHECK_FAULT(&m, f.view + unit, UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_WRITE);
		CHECK_OK(t_wprotect(fd, f.view + unit, unit, 0));
	}
	CHECK(t_touch_wait(&t, 3000));
	CHECK_EQ(f.alias[unit + 1], 0x42);
	uf_close(fd);
	close2(&f);
}

static void anon_and_private(void)
{
	int fd = t_uffd(0);
	char *p = t_map(2);
	int mfd = memfd_create("uf-minor-private", MFD_CLOEXEC);
	char *pv;
	uint64_t ioctls = 0;

	/* Private anonymous memory: EINVAL, for REGISTER and CONTINUE. */
	CHECK_ERRNO(t_register_mode(fd, p, 2 * (size_t)t_ps, UFFDIO_REGISTER_MODE_MINOR, NULL), EINVAL);
	CHECK_OK(t_register(fd, p, 2 * (size_t)t_ps));
	CHECK_ERRNO(t_continue(fd, p, (size_t)t_ps, 0, NULL), EINVAL);
	/* Not registered at all: ENOENT. */
	CHECK_OK(t_unregister(fd, p, 2 * (size_t)t_ps));
	CHECK_ERRNO(t_continue(fd, p, (size_t)t_ps, 0, NULL), ENOENT);
	if (!(t_features() & UFFD_FEATURE_MINOR_SHMEM)) {
		uf_close(fd);
		munmap(p, 2 * (size_t)t_ps);
		close(mfd);
		return;
	}
	/* A private mapping of shared memory registers, with CONTINUE. */
	T_REQUIRE(mfd >= 0 && ftruncate(mfd, 2 * t_ps) == 0);
	pv = mmap(NULL, 2 * (size_t)t_ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	T_REQUIRE(pv != MAP_FAILED);
	pv[0] = 0;	/* (page 0 in the file now; page 1 never touched) */
	CHECK_OK(t_register_mode(fd, pv, 2 * (size_t)t_ps, UFFDIO_REGISTER_MODE_MINOR, &ioctls));
	CHECK(ioctls & ((uint64_t)1 << _UFFDIO_CONTINUE));
	/* A page the file lacks: EFAULT. */
	CHECK_ERRNO(t_continue(fd, pv + t_ps, (size_t)t_ps, 0, NULL), EFAULT);
	/* Page 0, which this mapping has (its private copy): no fault, EEXIST. */
	CHECK_EQ(pv[0], 0);
	CHECK_ERRNO(t_continue(fd, pv, (size_t)t_ps, 0, NULL), EEXIST);
	{
		char one = 1, two = 2, got = 0;
		struct t_touch t;
		struct uffd_msg m;

		/* A page the file has and the mapping has not mapped: CONTINUE
		 * maps the file's page; again, EEXIST. */
		T_REQUIRE(pwrite(mfd, &one, 1, t_ps) == 1);	/* page 1 in the file */
		CHECK_OK(madvise(pv + t_ps, (size_t)t_ps, MADV_DONTNEED));
		CHECK_OK(t_continue(fd, pv + t_ps, (size_t)t_ps, 0, NULL));
		CHECK_EQ(pv[t_ps], 1);
		CHECK_ERRNO(t_continue(fd, pv + t_ps, (size_t)t_ps, 0, NULL), EEXIST);
		/* Unmapped again: a write faults as minor, and after CONTINUE
		 * lands in a private copy (the file keeps its page). */
		CHECK_OK(madvise(pv + t_ps, (size_t)t_ps, MADV_DONTNEED));
		T_REQUIRE(pwrite(mfd, &two, 1, t_ps) == 1);
		t_touch_start(&t, pv + t_ps + 1, 1, 0x7e);
		if (T_MSG(fd, &m, 3000)) {
			CHECK_FAULT(&m, pv + t_ps, UFFD_PAGEFAULT_FLAG_MINOR | UFFD_PAGEFAULT_FLAG_WRITE);
			CHECK_OK(t_continue(fd, pv + t_ps, (size_t)t_ps, 0, NULL));
		}
		CHECK(t_touch_wait(&t, 3000));
		CHECK_EQ(pv[t_ps], 2);
		CHECK_EQ(pv[t_ps + 1], 0x7e);
		T_REQUIRE(pread(mfd, &got, 1, t_ps + 1) == 1);
		CHECK_EQ(got, 0);
		/* And a read faults as minor. */
		CHECK_OK(madvise(pv + t_ps, (size_t)t_ps, MADV_DONTNEED));
		t_touch_start(&t, pv + t_ps, 0, 0);
		if (T_MSG(fd, &m, 3000)) {
			CHECK_FAULT(&m, pv + t_ps, UFFD_PAGEFAULT_FLAG_MINOR);
			CHECK_OK(t_continue(fd, pv + t_ps, (size_t)t_ps, 0, NULL));
		}
		CHECK(t_touch_wait(&t, 3000));
		CHECK_EQ(t.val, 2);
		T_NO_MSG(fd, 10);
		/* MINOR|MISSING: a page the file lacks faults as missing. */
		CHECK_OK(t_unregister(fd, pv, 2 * (size_t)t_ps));
		CHECK_OK(madvise(pv + t_ps, (size_t)t_ps, MADV_DONTNEED));
		T_REQUIRE(fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, t_ps, t_ps) == 0);
		CHECK_OK(t_register_mode(fd, pv, 2 * (size_t)t_ps,
					 UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR, NULL));
		T_EXPECT_FAULT(fd, pv + t_ps, 0, 0x31);
		CHECK_EQ(pv[t_ps], 0x31);
		CHECK_EQ(pv[0], 0);
		T_NO_MSG(fd, 10);
	}
	uf_close(fd);
	munmap(p, 2 * (size_t)t_ps);
	munmap(pv, 2 * (size_t)t_ps);
	close(mfd);
}

/* A private hugetlb mapping of a file whose huge page a shared alias
 * wrote: CONTINUE maps that page (EFAULT for one the file lacks, EEXIST
 * once mapped), a write then makes a private copy, MADV_DONTNEED unmaps it
 * and the next access is a minor fault. */
static void huge_private(void)
{
	int fd = t_uffd(0), mfd = memfd_create("uf-minor-hp", MFD_CLOEXEC | MFD_HUGETLB);
	char *pv, *alias;
	uint64_t ioctls = 0;

	T_REQUIRE(mfd >= 0 && ftruncate(mfd, (off_t)(2 * HPS)) == 0);
	pv = mmap(NULL, 2 * HPS, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	alias = mmap(NULL, 2 * HPS, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	T_REQUIRE(pv != MAP_FAILED && alias != MAP_FAILED);
	alias[HPS + 3] = 0x29;
	CHECK_OK(t_register_mode(fd, pv, 2 * HPS, UFFDIO_REGISTER_MODE_MINOR, &ioctls));
	CHECK(ioctls & ((uint64_t)1 << _UFFDIO_CONTINUE));
	/* Not in the file: EFAULT. */
	CHECK_ERRNO(t_continue(fd, pv, HPS, 0, NULL), EFAULT);
	CHECK_OK(t_continue(fd, pv + HPS, HPS, 0, NULL));
	CHECK_EQ(pv[HPS + 3], 0x29);
	CHECK_ERRNO(t_continue(fd, pv + HPS, HPS, 0, NULL), EEXIST);
	{
		struct t_touch t;
		struct uffd_msg m;
		char got = 0;

		/* A write after it makes the private copy. */
		pv[HPS + 4] = 0x2a;
		CHECK_EQ(alias[HPS + 4], 0);
		/* Unmapped: a read faults as minor. */
		CHECK_OK(madvise(pv + HPS, HPS, MADV_DONTNEED));
		alias[HPS + 3] = 0x2b;
		t_touch_start(&t, pv + HPS + 3, 0, 0);
		if (T_MSG(fd, &m, 3000)) {
			CHECK_FAULT(&m, pv + HPS, UFFD_PAGEFAULT_FLAG_MINOR);
			CHECK_OK(t_continue(fd, pv + HPS, HPS, 0, NULL));
		}
		CHECK(t_touch_wait(&t, 3000));
		CHECK_EQ(t.val, 0x2b);
		CHECK_EQ(pv[HPS + 4], 0);	/* the private copy is gone */
		/* MINOR alone: a huge page the file lacks is made silently. */
		got = pv[5];
		CHECK_EQ(got, 0);
		T_NO_MSG(fd, 10);
	}
	uf_close(fd);
	munmap(pv, 2 * HPS);
	munmap(alias, 2 * HPS);
	close(mfd);
}

int main(void)
{
	uint64_t feat;

	t_start(90);
	feat = t_features();
	CHECK(feat & UFFD_FEATURE_MINOR_HUGETLBFS);
	anon_and_private();
	if (feat & UFFD_FEATURE_MINOR_SHMEM) {
		unit = (size_t)t_ps;
		T_NOTE("shared memory");
		minor_alone(0);
		minor_missing(0);
		if (feat & UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
			minor_wp(0);
	} else {
		T_NOTE("shared memory: UFFD_FEATURE_MINOR_SHMEM missing on this back-end");
	}
	t_need_hugepages(2 * NU + 4);
	unit = HPS;
	T_NOTE("hugetlb");
	minor_alone(1);
	minor_missing(1);
	if (feat & UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
		minor_wp(1);
	huge_private();
	return t_done();
}
