/* SPDX-License-Identifier: MIT */
/* UFFDIO_COPY: resolves and wakes; DONTWAKE keeps the faulter blocked until
 * UFFDIO_WAKE; EEXIST (copy = -17) on a present page; partial COPY → EAGAIN
 * with copy = bytes done; bad src → EFAULT (copy = -14); dst outside a
 * registered VMA, in a hole or spanning two VMAs → ENOENT (copy = -2);
 * MODE_WP without WP registration → EINVAL (copy = -22); COPY into a
 * PROT_READ registered VMA installs a readable page; COPY of many pages;
 * COPY through another uffd into a range registered by the first works but
 * wakes only that other uffd's faulters (the first's need a WAKE on it);
 * a result field that cannot be written gives EFAULT after the install,
 * and then nobody is woken; ranges registered side by side (one VMA for the
 * kernel) can be filled by one COPY or ZEROPAGE. */
#include "t.h"

static void wake_and_dontwake(int fd, char *p)
{
	struct t_touch t;
	struct uffd_msg m;
	int64_t out;

	/* COPY wakes. */
	T_EXPECT_FAULT(fd, p + 9, 1, 0x21);
	CHECK_EQ(p[9], 0x21);
	CHECK_EQ(p[10], 0x21);

	/* DONTWAKE: installed but the faulter sleeps until WAKE. */
	t_touch_start(&t, p + t_ps + 1, 0, 0);
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, p + t_ps, 0);
	CHECK_EQ(t_copy_byte(fd, p + t_ps, 0x22, 1, UFFDIO_COPY_MODE_DONTWAKE), 0);
	CHECK_EQ(p[t_ps], 0x22);		/* present for us */
	CHECK(!t_touch_wait(&t, 300));
	T_NO_MSG(fd, 0);
	CHECK_EQ(t_wake(fd, p + t_ps, (size_t)t_ps), 0);
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(t.val, 0x22);
	T_NO_MSG(fd, 100);

	/* Present page: EEXIST, copy = -EEXIST, content unchanged. */
	CHECK_ERRNO(t_copy_byte(fd, p + t_ps, 0x23, 1, 0), EEXIST);
	{
		/* A whole readable source page: the kernel reads the source
		 * before it looks at the destination, so a short buffer could
		 * turn EEXIST into EFAULT. */
		char *src = t_map(1);

		memset(src, 0x24, (size_t)t_ps);
		CHECK_ERRNO(t_copy(fd, p + t_ps, src, (size_t)t_ps, 0, &out), EEXIST);
		CHECK_EQ(out, -EEXIST);
		munmap(src, (size_t)t_ps);
	}
	CHECK_EQ(p[t_ps], 0x22);
}

static void partial(int fd, char *p)
{
	char *src = t_map(3);
	int64_t out;

	/* Pages 0 1 2 of the window, page 1 present: EAGAIN, copy = 1 page. */
	memset(src, 0x31, 3 * (size_t)t_ps);
	CHECK_EQ(t_copy_byte(fd, p + t_ps, 0x30, 1, 0), 0);
	CHECK_ERRNO(t_copy(fd, p, src, 3 * (size_t)t_ps, 0, &out), EAGAIN);
	CHECK_EQ(out, t_ps);
	CHECK_EQ(p[0], 0x31);
	CHECK_EQ(p[t_ps], 0x30);
	/* Repeating from dst + copy tells the error. */
	CHECK_ERRNO(t_copy(fd, p + t_ps, src, 2 * (size_t)t_ps, 0, &out), EEXIST);
	CHECK_EQ(out, -EEXIST);
	/* Page 2 is still missing and still faults. */
	T_EXPECT_FAULT(fd, p + 2 * t_ps, 0, 0x32);
	munmap(src, 3 * (size_t)t_ps);
}

static void bad_src(int fd, char *p)
{
	char *none = t_map_prot(1, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
	char *two = t_map(2);
	int64_t out;

	munmap(two + t_ps, (size_t)t_ps);
	CHECK_ERRNO(t_copy(fd, p, none, (size_t)t_ps, 0, &out), EFAULT);
	CHECK_EQ(out, -EFAULT);
	/* src running off the end of its mapping. */
	CHECK_ERRNO(t_copy(fd, p, two + 100, (size_t)t_ps, 0, &out), EFAULT);
	CHECK_EQ(out, -EFAULT);
	/* src in the hole. */
	CHECK_ERRNO(t_copy(fd, p, two + t_ps, (size_t)t_ps, 0, &out), EFAULT);
	CHECK_EQ(out, -EFAULT);
	/* Nothing was installed: the page still faults. */
	T_EXPECT_FAULT(fd, p + 5, 1, 0x41);
	munmap(none, (size_t)t_ps);
	munmap(two, (size_t)t_ps);
}

static void enoent(int fd)
{
	char *src = t_map(2);
	/* [0 1] RW registered | [2 3] PROT_READ registered | 4 unregistered */
	char *p = t_map(5);
	int64_t out;

	memset(src, 0x51, 2 * (size_t)t_ps);
	/* cppcheck-suppress leakReturnValNotUsed ; MAP_FIXED over part of p */
	T_REQUIRE(mmap(p + 2 * t_ps, 2 * (size_t)t_ps, PROT_READ,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED);
	T_REQUIRE(t_register(fd, p, 4 * (size_t)t_ps) == 0);

	/* Not registered. */
	CHECK_ERRNO(t_copy(fd, p + 4 * t_ps, src, (size_t)t_ps, 0, &out), ENOENT);
	CHECK_EQ(out, -ENOENT);
	/* Registered + unregistered. */
	CHECK_ERRNO(t_copy(fd, p + 3 * t_ps, src, 2 * (size_t)t_ps, 0, &out), ENOENT);
	CHECK_EQ(out, -ENOENT);
	/* Two registered VMAs. */
	CHECK_ERRNO(t_copy(fd, p + t_ps, src, 2 * (size_t)t_ps, 0, &out), ENOENT);
	CHECK_EQ(out, -ENOENT);
	/* In a hole. */
	munmap(p + 4 * t_ps, (size_t)t_ps);
	CHECK_ERRNO(t_copy(fd, p + 4 * t_ps, src, (size_t)t_ps, 0, &out), ENOENT);
	CHECK_EQ(out, -ENOENT);
	/* MODE_WP on a MISSING-only registration. */
	CHECK_ERRNO(t_copy(fd, p, src, (size_t)t_ps, UFFDIO_COPY_MODE_WP, &out), EINVAL);
	CHECK_EQ(out, -EINVAL);
	/* MODE_WP where the destination is not one registered VMA: the VMA
	 * is looked up (ENOENT) before the mode is checked against it. */
	CHECK_ERRNO(t_copy(fd, p + 4 * t_ps, src, (size_t)t_ps, UFFDIO_COPY_MODE_WP, &out), ENOENT);
	CHECK_EQ(out, -ENOENT);
	CHECK_ERRNO(t_copy(fd, p + 3 * t_ps, src, 2 * (size_t)t_ps,
			   UFFDIO_COPY_MODE_WP | UFFDIO_COPY_MODE_DONTWAKE, &out), ENOENT);
	CHECK_EQ(out, -ENOENT);

	/* Nothing happened to the pages: COPY into the PROT_READ VMA works
	 * and gives a readable page; the RW pages still fault. */
	CHECK_EQ(t_copy(fd, p + 2 * t_ps, src, (size_t)t_ps, 0, &out), 0);
	CHECK_EQ(out, t_ps);
	CHECK_EQ(p[2 * t_ps + 7], 0x51);
	T_EXPECT_FAULT(fd, p + 3 * t_ps, 0, 0x52);
	T_EXPECT_FAULT(fd, p + t_ps, 1, 0x53);
	T_EXPECT_FAULT(fd, p, 0, 0x54);
	t_unmap_reg(fd, p, 4);
	munmap(src, 2 * (size_t)t_ps);
}

static void big(int fd)
{
	size_t n = 64;
	char *p = t_map_reg(fd, n);
	char *src = t_map(n);
	int64_t out;

	for (size_t i = 0; i < n * (size_t)t_ps; i++)
		src[i] = (char)(i * 31 + i / (size_t)t_ps);
	CHECK_EQ(t_copy(fd, p, src, n * (size_t)t_ps, 0, &out), 0);
	CHECK_EQ(out, (int64_t)n * t_ps);
	CHECK(memcmp(p, src, n * (size_t)t_ps) == 0);
	T_NO_MSG(fd, 0);
	t_unmap_reg(fd, p, n);
	munmap(src, n * (size_t)t_ps);
}

static void other_ctx(int fd)
{
	int fd2 = t_uffd(0);
	char *p = t_map_reg(fd, 2);
	struct t_touch t;
	struct uffd_msg m;
	int64_t out;

	t_touch_start(&t, p + 3, 0, 0);
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, p, 0);
	CHECK_EQ(t_copy_byte(fd2, p, 0x61, 1, 0), 0);
	CHECK_EQ(p[4], 0x61);
	CHECK(!t_touch_wait(&t, 300));
	CHECK_EQ(t_wake(fd2, p, (size_t)t_ps), 0);
	CHECK(!t_touch_wait(&t, 100));
	T_NO_MSG(fd2, 0);
	CHECK_EQ(t_wake(fd, p, (size_t)t_ps), 0);
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(t.val, 0x61);
	CHECK_EQ(t_zeropage(fd2, p + t_ps, (size_t)t_ps, 0, &out), 0);
	CHECK_EQ(out, t_ps);
	T_NO_MSG(fd, 0);
	CHECK_EQ(uf_close(fd2), 0);
	t_unmap_reg(fd, p, 2);
}

/* Ranges registered side by side by one uffd, with the same mode and
 * protection, are one VMA for the kernel (it merges them): COPY and
 * ZEROPAGE may span them, partial copies stop at the first present page
 * wherever it is, and the faulters in both are woken. */
static void adjacent(int fd)
{
	char *p = t_map(6);
	char *src = t_map(4);
	struct t_touch t1, t2;
	struct uffd_msg m;
	int64_t out;

	memset(src, 0x81, 4 * (size_t)t_ps);
	T_REQUIRE(t_register(fd, p, 2 * (size_t)t_ps) == 0);
	T_REQUIRE(t_register(fd, p + 2 * t_ps, 2 * (size_t)t_ps) == 0);
	T_REQUIRE(t_register(fd, p + 4 * t_ps, 2 * (size_t)t_ps) == 0);
	t_touch_start(&t1, p + t_ps + 1, 0, 0);
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, p + t_ps, 0);
	t_touch_start(&t2, p + 2 * t_ps + 2, 0, 0);
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, p + 2 * t_ps, 0);
	/* Pages 1 and 2: one page in each of the first two registrations. */
	CHECK_EQ(t_copy(fd, p + t_ps, src, 2 * (size_t)t_ps, 0, &out), 0);
	CHECK_EQ(out, 2 * t_ps);
	CHECK(t_touch_wait(&t1, 2000));
	CHECK(t_touch_wait(&t2, 2000));
	CHECK_EQ(t1.val, (char)0x81);
	CHECK_EQ(t2.val, (char)0x81);
	/* Pages 0 to 3: page 1 is present, so one page is done. */
	CHECK_ERRNO(t_copy(fd, p, src, 4 * (size_t)t_ps, 0, &out), EAGAIN);
	CHECK_EQ(out, t_ps);
	/* Pages 3 to 5 (across the second boundary), zeros. */
	CHECK_EQ(t_zeropage(fd, p + 3 * t_ps, 3 * (size_t)t_ps, 0, &out), 0);
	CHECK_EQ(out, 3 * t_ps);
	CHECK_EQ(p[5 * t_ps + 9], 0);
	T_NO_MSG(fd, 0);
	CHECK_EQ(t_unregister(fd, p, 6 * (size_t)t_ps), 0);

	/* Not one VMA: another uffd, or another protection.  ENOENT. */
	{
		int fd2 = t_uffd(0);

		T_REQUIRE(t_register(fd, p, 2 * (size_t)t_ps) == 0);
		T_REQUIRE(t_register(fd2, p + 2 * t_ps, 2 * (size_t)t_ps) == 0);
		CHECK_ERRNO(t_copy(fd, p + t_ps, src, 2 * (size_t)t_ps, 0, &out), ENOENT);
		CHECK_EQ(out, -ENOENT);
		CHECK_ERRNO(t_zeropage(fd2, p + t_ps, 2 * (size_t)t_ps, 0, &out), ENOENT);
		CHECK_EQ(out, -ENOENT);
		CHECK_EQ(uf_close(fd2), 0);
		T_REQUIRE(mprotect(p + 2 * t_ps, 2 * (size_t)t_ps, PROT_READ) == 0);
		T_REQUIRE(t_register(fd, p + 2 * t_ps, 2 * (size_t)t_ps) == 0);
		CHECK_ERRNO(t_copy(fd, p + t_ps, src, 2 * (size_t)t_ps, 0, &out), ENOENT);
		CHECK_EQ(out, -ENOENT);
	}
	t_unmap_reg(fd, p, 6);
	munmap(src, 4 * (size_t)t_ps);
}

/* The result field cannot be written: EFAULT, the page is installed, and
 * nobody is woken (the kernel returns before its wake when put_user of
 * .copy / .zeropage fails); a WAKE then resumes the faulter. */
static void unwritable_result(int fd)
{
	char *p = t_map_reg(fd, 2);
	char *src = t_map(1);
	char *arg = t_map(1);
	struct t_touch t;
	struct uffd_msg m;

	memset(src, 0x71, (size_t)t_ps);
	t_touch_start(&t, p + 5, 0, 0);
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, p, 0);
	{
		struct uffdio_copy c = { .dst = (uintptr_t)p, .src = (uintptr_t)src,
					 .len = (size_t)t_ps, .copy = 0x5a5a };
		memcpy(arg, &c, sizeof c);
	}
	T_REQUIRE(mprotect(arg, (size_t)t_ps, PROT_READ) == 0);
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_COPY, arg), EFAULT);
	CHECK_EQ(p[7], 0x71);			/* installed */
	CHECK(!t_touch_wait(&t, 300));		/* not woken */
	T_NO_MSG(fd, 0);
	CHECK_EQ(t_wake(fd, p, (size_t)t_ps), 0);
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(t.val, 0x71);

	t_touch_start(&t, p + t_ps + 5, 1, 0x72);
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, p + t_ps, UFFD_PAGEFAULT_FLAG_WRITE);
	T_REQUIRE(mprotect(arg, (size_t)t_ps, PROT_READ | PROT_WRITE) == 0);
	{
		struct uffdio_zeropage z = { .range = { (uintptr_t)p + (uintptr_t)t_ps,
							(size_t)t_ps }, .zeropage = 0x5a5a };
		memcpy(arg, &z, sizeof z);
	}
	T_REQUIRE(mprotect(arg, (size_t)t_ps, PROT_READ) == 0);
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_ZEROPAGE, arg), EFAULT);
	CHECK_EQ(p[t_ps + 7], 0);		/* installed */
	CHECK(!t_touch_wait(&t, 300));		/* not woken */
	CHECK_EQ(t_wake(fd, p + t_ps, (size_t)t_ps), 0);
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(p[t_ps + 5], 0x72);
	T_NO_MSG(fd, 100);
	munmap(arg, (size_t)t_ps);
	munmap(src, (size_t)t_ps);
	t_unmap_reg(fd, p, 2);
}

int main(void)
{
	int fd;
	char *p;

	t_start(30);
	fd = t_uffd(0);
	p = t_map_reg(fd, 3);
	wake_and_dontwake(fd, p);
	t_unmap_reg(fd, p, 3);
	p = t_map_reg(fd, 3);
	partial(fd, p);
	t_unmap_reg(fd, p, 3);
	p = t_map_reg(fd, 1);
	bad_src(fd, p);
	enoent(fd);
	big(fd);
	other_ctx(fd);
	unwritable_result(fd);
	adjacent(fd);
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
