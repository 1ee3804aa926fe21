/* SPDX-License-Identifier: MIT */
/* Argument validation shared by the range ioctls: every bad range (unaligned
 * start, unaligned len, len 0, start beyond the address space, too long,
 * wrapping) is EINVAL for REGISTER, UNREGISTER, WAKE, ZEROPAGE and COPY dst,
 * with the output field untouched; COPY src may be unaligned but not out of
 * range; unknown mode bits are EINVAL; a bad argument pointer is EFAULT;
 * unknown commands (or a known nr with the wrong size/direction) are EINVAL. */
#include "t.h"

#define SENTINEL 0x5a5a

struct range { uint64_t start, len; const char *what; };

static void bad_range(int fd, const struct range *r, const char *src)
{
	struct uffdio_register reg = {
		.range = { r->start, r->len },
		.mode = UFFDIO_REGISTER_MODE_MISSING, .ioctls = SENTINEL,
	};
	struct uffdio_range rg = { r->start, r->len };
	struct uffdio_zeropage z = { .range = rg, .zeropage = SENTINEL };
	struct uffdio_copy c = {
		.dst = r->start, .src = (uintptr_t)src, .len = r->len,
		.copy = SENTINEL,
	};
	int before = t_failures;

	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_REGISTER, &reg), EINVAL);
	CHECK_EQ(reg.ioctls, SENTINEL);
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_UNREGISTER, &rg), EINVAL);
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_WAKE, &rg), EINVAL);
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_ZEROPAGE, &z), EINVAL);
	CHECK_EQ(z.zeropage, SENTINEL);
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_COPY, &c), EINVAL);
	CHECK_EQ(c.copy, SENTINEL);
	if (t_failures != before)
		fprintf(stderr, "  (range %s: start %#llx len %#llx)\n", r->what,
			(unsigned long long)r->start, (unsigned long long)r->len);
}

static void copy_src(int fd, char *p, char *src)
{
	int64_t out;

	/* Unaligned src is fine. */
	CHECK_EQ(t_copy(fd, p, src + 3, (size_t)t_ps, 0, &out), 0);
	CHECK_EQ(out, t_ps);
	CHECK_EQ(p[0], src[3]);
	CHECK_EQ(p[t_ps - 1], src[t_ps + 2]);
	/* src beyond the address space / wrapping: EINVAL, copy untouched. */
	CHECK_ERRNO(t_copy(fd, p + t_ps, (void *)(1ULL << 63), (size_t)t_ps, 0, &out),
		    EINVAL);
	CHECK_EQ(out, SENTINEL);
	CHECK_ERRNO(t_copy(fd, p + t_ps, (void *)(uintptr_t)-(uint64_t)t_ps,
			   (size_t)t_ps * 2, 0, &out), EINVAL);
	CHECK_EQ(out, SENTINEL);
}

static void modes(int fd, char *p)
{
	uint64_t ioctls = SENTINEL;
	int64_t out;

	CHECK_ERRNO(t_register_mode(fd, p, (size_t)t_ps, 0, &ioctls), EINVAL);
	CHECK_EQ(ioctls, SENTINEL);
	CHECK_ERRNO(t_register_mode(fd, p, (size_t)t_ps, 8, &ioctls), EINVAL);
	CHECK_EQ(ioctls, SENTINEL);
	CHECK_ERRNO(t_register_mode(fd, p, (size_t)t_ps,
				    UFFDIO_REGISTER_MODE_MISSING | (1ULL << 40),
				    &ioctls), EINVAL);
	CHECK_EQ(ioctls, SENTINEL);
	CHECK_ERRNO(t_copy(fd, p + 2 * t_ps, p, (size_t)t_ps, 4, &out), EINVAL);
	CHECK_EQ(out, SENTINEL);
	CHECK_ERRNO(t_copy(fd, p + 2 * t_ps, p, (size_t)t_ps, 1ULL << 40, &out), EINVAL);
	CHECK_EQ(out, SENTINEL);
	CHECK_ERRNO(t_zeropage(fd, p + 2 * t_ps, (size_t)t_ps, 2, &out), EINVAL);
	CHECK_EQ(out, SENTINEL);
	CHECK_ERRNO(t_zeropage(fd, p + 2 * t_ps, (size_t)t_ps, 4, &out), EINVAL);
	CHECK_EQ(out, SENTINEL);
}

static void bad_pointers(int fd)
{
	static const unsigned long cmds[] = {
		UFFDIO_REGISTER, UFFDIO_UNREGISTER, UFFDIO_WAKE, UFFDIO_COPY,
		UFFDIO_ZEROPAGE,
	};
	char *none = t_map_prot(1, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
	/* A struct that runs off the end of its mapping. */
	char *two = t_map(2);
	char *edge = two + t_ps - 8;

	munmap(two + t_ps, (size_t)t_ps);
	memset(two, 0, 8);
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		int before = t_failures;

		CHECK_ERRNO(uf_ioctl(fd, cmds[i], (void *)8), EFAULT);
		CHECK_ERRNO(uf_ioctl(fd, cmds[i], NULL), EFAULT);
		CHECK_ERRNO(uf_ioctl(fd, cmds[i], none), EFAULT);
		CHECK_ERRNO(uf_ioctl(fd, cmds[i], edge), EFAULT);
		if (t_failures != before)
			fprintf(stderr, "  (ioctl %#lx)\n", cmds[i]);
	}
	munmap(none, (size_t)t_ps);
	munmap(two, (size_t)t_ps);
}

static void unknown_cmds(int fd, char *p)
{
	struct {
		unsigned long cmd;
		const char *what;
	} cmds[] = {
		{ _IOWR(UFFDIO, 0x09, struct uffdio_range), "nr 0x09" },
		{ _IOWR(UFFDIO, 0x20, struct uffdio_range), "nr 0x20" },
		{ _IOWR(UFFDIO, 0x3e, struct uffdio_api), "nr 0x3e" },
		{ _IOWR(UFFDIO, _UFFDIO_COPY, struct uffdio_range), "COPY, wrong size" },
		{ _IOW(UFFDIO, _UFFDIO_REGISTER, struct uffdio_register), "REGISTER, _IOW" },
		{ _IOWR(UFFDIO, _UFFDIO_UNREGISTER, struct uffdio_range), "UNREGISTER, _IOWR" },
		{ _IOWR(UFFDIO, _UFFDIO_WAKE, struct uffdio_range), "WAKE, _IOWR" },
		{ _IOR(UFFDIO, _UFFDIO_API, struct uffdio_api), "API, _IOR" },
		{ _IOWR(0xAB, _UFFDIO_REGISTER, struct uffdio_register), "type 0xAB" },
		{ 0x5401, "TCGETS" },
	};
	/* A buffer big enough for any of these, describing a valid range. */
	uint64_t arg[8] = { (uintptr_t)p, (uint64_t)t_ps, UFFDIO_REGISTER_MODE_MISSING };

	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		int before = t_failures;

		CHECK_ERRNO(uf_ioctl(fd, cmds[i].cmd, arg), EINVAL);
		if (t_failures != before)
			fprintf(stderr, "  (command %s = %#lx)\n", cmds[i].what,
				cmds[i].cmd);
	}
}

int main(void)
{
	int fd;
	char *p, *src;

	t_start(20);
	fd = t_uffd(0);
	p = t_map_reg(fd, 4);
	src = t_map(2);
	memset(src, 0, 2 * (size_t)t_ps);
	for (int i = 0; i < 2 * t_ps; i++)
		src[i] = (char)(i * 7 + 1);

	{
		uint64_t s = (uintptr_t)p, ps = (uint64_t)t_ps;
		const struct range bad[] = {
			{ s + 1, ps, "unaligned start" },
			{ s + ps / 2, ps, "half-page start" },
			{ s, ps + 1, "unaligned len" },
			{ s, ps - 1, "short len" },
			{ s, 0, "len 0" },
			{ 1ULL << 63, ps, "start beyond address space" },
			{ -ps, ps, "start at top" },
			{ s, 1ULL << 63, "len beyond address space" },
			{ s, -ps, "wrapping" },
			{ s, -s, "wrapping to 0" },
		};

		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
			bad_range(fd, &bad[i], src);
	}
	modes(fd, p);
	copy_src(fd, p, src);
	bad_pointers(fd);
	unknown_cmds(fd, p);
	/* None of that disturbed the registration: page 3 still faults. */
	T_EXPECT_FAULT(fd, p + 3 * t_ps, 0, 0x11);
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
