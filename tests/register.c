/* SPDX-License-Identifier: MIT */
/* UFFDIO_REGISTER / UNREGISTER: returned ioctls; a range entirely in a hole
 * is EINVAL (ioctls untouched); a range with holes is fine; PROT_NONE and
 * PROT_READ ranges register (a read of PROT_READ faults, COPY makes it
 * readable); MAP_NORESERVE; EBUSY across two uffds (all-or-nothing) and
 * UNREGISTER through the other uffd is EINVAL; re-register rules (same mode
 * again, superset, sub-range unregister, unregistered range → 0, hole →
 * EINVAL); incompatible VMAs (regular file) → EINVAL with nothing registered;
 * the by-design differences of the emulated back-end: shmem / memfd / WP
 * registrations and MOVE / POISON / WRITEPROTECT / CONTINUE are EINVAL. */
#include "t.h"

#define SENTINEL 0x5a5aULL
#define KERNEL_ANON_MISSING_IOCTLS 0x13cULL
#define KERNEL_ANON_WP_IOCTLS 0x17cULL
/* Does this back-end have WP mode on anonymous memory?  (The emulation
 * needs guard markers for it.) */
#define HAS_WP (!t_emulated() || (t_features() & UFFD_FEATURE_PAGEFAULT_FLAG_WP))
/* (the same on both back-ends) */
#define ANON_WP_IOCTLS KERNEL_ANON_WP_IOCTLS

static uint64_t missing_ioctls(void)
{
	return KERNEL_ANON_MISSING_IOCTLS;
}

static void basics(void)
{
	int fd = t_uffd(0);
	char *p = t_map(4);
	char *ro = t_map_prot(2, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
	char *none = t_map_prot(2, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
	char *nr = t_map_prot(8, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
	uint64_t io = SENTINEL;

	CHECK_EQ(t_register_mode(fd, p, 4 * (size_t)t_ps,
				 UFFDIO_REGISTER_MODE_MISSING, &io), 0);
	CHECK_EQ(io, missing_ioctls());
	/* Same range and mode again: fine, same answer. */
	io = SENTINEL;
	CHECK_EQ(t_register_mode(fd, p, 4 * (size_t)t_ps,
				 UFFDIO_REGISTER_MODE_MISSING, &io), 0);
	CHECK_EQ(io, missing_ioctls());
	T_EXPECT_FAULT(fd, p + 1, 0, 0x01);

	io = SENTINEL;
	CHECK_EQ(t_register_mode(fd, ro, 2 * (size_t)t_ps,
				 UFFDIO_REGISTER_MODE_MISSING, &io), 0);
	CHECK_EQ(io, missing_ioctls());
	/* A read of a missing PROT_READ page faults; COPY makes it readable. */
	T_EXPECT_FAULT(fd, ro + t_ps + 3, 0, 0x02);
	CHECK_EQ(ro[t_ps], 0x02);

	io = SENTINEL;
	CHECK_EQ(t_register_mode(fd, none, 2 * (size_t)t_ps,
				 UFFDIO_REGISTER_MODE_MISSING, &io), 0);
	CHECK_EQ(io, missing_ioctls());
	CHECK_EQ(t_unregister(fd, none, 2 * (size_t)t_ps), 0);

	io = SENTINEL;
	CHECK_EQ(t_register_mode(fd, nr, 8 * (size_t)t_ps,
				 UFFDIO_REGISTER_MODE_MISSING, &io), 0);
	CHECK_EQ(io, missing_ioctls());
	T_EXPECT_FAULT(fd, nr + 7 * t_ps, 1, 0x03);
	CHECK_EQ(nr[7 * t_ps + 1], 0x03);
	CHECK_EQ(uf_close(fd), 0);
}

static void holes(void)
{
	int fd = t_uffd(0);
	char *p = t_map(5);
	uint64_t io = SENTINEL;

	/* [0] [hole] [2 3] [hole] */
	munmap(p + t_ps, (size_t)t_ps);
	munmap(p + 4 * t_ps, (size_t)t_ps);
	CHECK_ERRNO(t_register_mode(fd, p + t_ps, (size_t)t_ps,
				    UFFDIO_REGISTER_MODE_MISSING, &io), EINVAL);
	CHECK_EQ(io, SENTINEL);
	CHECK_ERRNO(t_register_mode(fd, p + 4 * t_ps, (size_t)t_ps,
				    UFFDIO_REGISTER_MODE_MISSING, &io), EINVAL);
	CHECK_EQ(io, SENTINEL);
	CHECK_ERRNO(t_unregister(fd, p + t_ps, (size_t)t_ps), EINVAL);
	/* Spanning holes: only the mapped parts get registered. */
	CHECK_EQ(t_register_mode(fd, p, 5 * (size_t)t_ps,
				 UFFDIO_REGISTER_MODE_MISSING, &io), 0);
	CHECK_EQ(io, missing_ioctls());
	T_EXPECT_FAULT(fd, p, 1, 0x04);
	T_EXPECT_FAULT(fd, p + 3 * t_ps, 0, 0x05);
	/* Partly in a hole: fine as well. */
	CHECK_EQ(t_unregister(fd, p + 2 * t_ps, 3 * (size_t)t_ps), 0);
	T_EXPECT_NO_FAULT(fd, p + 2 * t_ps, 0, 0);
	CHECK_EQ(t_register(fd, p + 2 * t_ps, 3 * (size_t)t_ps), 0);
	/* Page 2 is present now (zero page or not, it does not fault). */
	T_EXPECT_NO_FAULT(fd, p + 2 * t_ps, 0, 0);
	CHECK_EQ(t_unregister(fd, p, 5 * (size_t)t_ps), 0);
	CHECK_EQ(uf_close(fd), 0);
}

static void rereg(void)
{
	int fd = t_uffd(0);
	char *p = t_map(6);
	uint64_t io = SENTINEL;

	/* Sub-range first, then a superset. */
	CHECK_EQ(t_register(fd, p + t_ps, (size_t)t_ps), 0);
	CHECK_EQ(t_register_mode(fd, p, 6 * (size_t)t_ps,
				 UFFDIO_REGISTER_MODE_MISSING, &io), 0);
	CHECK_EQ(io, missing_ioctls());
	T_EXPECT_FAULT(fd, p + 5 * t_ps, 0, 0x06);
	/* Unregister a middle page: it becomes ordinary memory, the
	 * neighbours stay registered. */
	CHECK_EQ(t_unregister(fd, p + 2 * t_ps, (size_t)t_ps), 0);
	T_EXPECT_NO_FAULT(fd, p + 2 * t_ps + 8, 0, 0);
	T_EXPECT_NO_FAULT(fd, p + 2 * t_ps + 9, 1, 0x07);
	T_EXPECT_FAULT(fd, p + t_ps, 1, 0x08);
	T_EXPECT_FAULT(fd, p + 3 * t_ps, 0, 0x09);
	/* Unregistering again, or an unregistered range: 0. */
	CHECK_EQ(t_unregister(fd, p + 2 * t_ps, (size_t)t_ps), 0);
	{
		char *q = t_map(1);

		CHECK_EQ(t_unregister(fd, q, (size_t)t_ps), 0);
		munmap(q, (size_t)t_ps);
	}
	/* Register it again: present pages stay present, page 4 faults. */
	CHECK_EQ(t_register(fd, p, 6 * (size_t)t_ps), 0);
	T_EXPECT_NO_FAULT(fd, p + 2 * t_ps + 9, 0, 0x07);
	T_EXPECT_FAULT(fd, p + 4 * t_ps, 0, 0x0a);

	/* Re-register with another mode. */
	munmap(p, 6 * (size_t)t_ps);
	p = t_map_reg(fd, 2);
	io = SENTINEL;
	if (!HAS_WP) {
		/* WP is not supported: EINVAL and the MISSING registration
		 * stays. */
		CHECK_ERRNO(t_register_mode(fd, p, 2 * (size_t)t_ps,
					    UFFDIO_REGISTER_MODE_WP, &io), EINVAL);
		CHECK_EQ(io, SENTINEL);
		CHECK_ERRNO(t_register_mode(fd, p, 2 * (size_t)t_ps,
					    UFFDIO_REGISTER_MODE_MISSING |
					    UFFDIO_REGISTER_MODE_WP, &io), EINVAL);
		T_EXPECT_FAULT(fd, p, 0, 0x0b);
	} else {
		/* Modes are replaced, not OR-ed: WP only, reads of missing
		 * pages no longer fault. */
		CHECK_EQ(t_register_mode(fd, p, 2 * (size_t)t_ps,
					 UFFDIO_REGISTER_MODE_WP, &io), 0);
		CHECK_EQ(io, ANON_WP_IOCTLS);
		T_EXPECT_NO_FAULT(fd, p, 0, 0);
		/* Back to MISSING: page 1 faults again. */
		CHECK_EQ(t_register(fd, p, 2 * (size_t)t_ps), 0);
		T_EXPECT_FAULT(fd, p + t_ps, 0, 0x0b);
	}
	/* MINOR on anonymous memory: EINVAL everywhere. */
	io = SENTINEL;
	CHECK_ERRNO(t_register_mode(fd, p, 2 * (size_t)t_ps,
				    UFFDIO_REGISTER_MODE_MINOR, &io), EINVAL);
	CHECK_EQ(io, SENTINEL);
	CHECK_EQ(uf_close(fd), 0);
}

static void two_ctxs(void)
{
	int fd1 = t_uffd(0), fd2 = t_uffd(0);
	char *p = t_map(4);
	uint64_t io = SENTINEL;

	CHECK_EQ(t_register(fd1, p + t_ps, 2 * (size_t)t_ps), 0);
	/* Same, overlapping, containing: EBUSY, ioctls untouched. */
	CHECK_ERRNO(t_register_mode(fd2, p + t_ps, 2 * (size_t)t_ps,
				    UFFDIO_REGISTER_MODE_MISSING, &io), EBUSY);
	CHECK_ERRNO(t_register_mode(fd2, p + 2 * t_ps, 2 * (size_t)t_ps,
				    UFFDIO_REGISTER_MODE_MISSING, &io), EBUSY);
	CHECK_ERRNO(t_register_mode(fd2, p, 4 * (size_t)t_ps,
				    UFFDIO_REGISTER_MODE_MISSING, &io), EBUSY);
	CHECK_EQ(io, SENTINEL);
	/* A mode the mapping cannot have (MINOR on private anonymous memory)
	 * is EINVAL before the other uffd's EBUSY: the kernel checks each
	 * mapping's modes before its owner. */
	CHECK_ERRNO(t_register_mode(fd2, p + 2 * t_ps, 2 * (size_t)t_ps,
				    UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR, &io), EINVAL);
	CHECK_EQ(io, SENTINEL);
	/* Unregister through the other uffd: EINVAL. */
	CHECK_ERRNO(t_unregister(fd2, p + t_ps, (size_t)t_ps), EINVAL);
	CHECK_ERRNO(t_unregister(fd2, p, 4 * (size_t)t_ps), EINVAL);
	/* The failed EBUSY over [0, 4) registered nothing (all-or-nothing):
	 * pages 0 and 3 are ordinary memory. */
	T_EXPECT_NO_FAULT(fd2, p, 0, 0);
	T_EXPECT_NO_FAULT(fd2, p + 3 * t_ps, 1, 0x0c);
	T_NO_MSG(fd1, 0);
	/* Disjoint ranges coexist; each fault goes to its own uffd. */
	munmap(p, 4 * (size_t)t_ps);
	p = t_map(4);
	CHECK_EQ(t_register(fd1, p, 2 * (size_t)t_ps), 0);
	CHECK_EQ(t_register(fd2, p + 2 * t_ps, 2 * (size_t)t_ps), 0);
	T_EXPECT_FAULT(fd1, p + 1, 0, 0x0d);
	T_EXPECT_FAULT(fd2, p + 3 * t_ps, 1, 0x0e);
	T_NO_MSG(fd1, 0);
	T_NO_MSG(fd2, 0);
	CHECK_EQ(uf_close(fd1), 0);
	/* fd1's release leaves fd2's range alone. */
	T_EXPECT_FAULT(fd2, p + 2 * t_ps, 0, 0x0f);
	CHECK_EQ(uf_close(fd2), 0);
}

/* Register a mapping of another kind: ok on the kernel (with its ioctls),
 * EINVAL (ioctls untouched) on emulated. */
static void kernel_only_kind(int fd, char *p, size_t len, uint64_t mode,
			     uint64_t kernel_ioctls, const char *what)
{
	uint64_t io = SENTINEL;
	int before = t_failures;

	if (t_emulated()) {
		CHECK_ERRNO(t_register_mode(fd, p, len, mode, &io), EINVAL);
		CHECK_EQ(io, SENTINEL);
	} else {
		CHECK_EQ(t_register_mode(fd, p, len, mode, &io), 0);
		CHECK_EQ(io, kernel_ioctls);
		CHECK_EQ(t_unregister(fd, p, len), 0);
	}
	if (t_failures != before)
		fprintf(stderr, "  (%s)\n", what);
}

/* Register shared memory: ok on both back-ends with each one's ioctls,
 * where the back-end advertises MISSING_SHMEM; else EINVAL. */
static void shared_kind(int fd, char *p, size_t len, int anon, const char *what)
{
	uint64_t io = SENTINEL;
	int before = t_failures;

	/* (the emulation reaches shared anonymous memory's file through
	 * /proc/self/map_files, or, without it, through the memfd its mmap
	 * made instead, unless USERFAULT_SHARED_ANON=kernel) */
	if (!(t_features() & UFFD_FEATURE_MISSING_SHMEM) || (anon && t_shared_anon_unreachable())) {
		CHECK(t_emulated());
		CHECK_ERRNO(t_register_mode(fd, p, len, UFFDIO_REGISTER_MODE_MISSING, &io), EINVAL);
		CHECK_EQ(io, SENTINEL);
	} else {
		CHECK_EQ(t_register_mode(fd, p, len, UFFDIO_REGISTER_MODE_MISSING, &io), 0);
		CHECK_EQ(io, missing_ioctls());
		CHECK_EQ(t_unregister(fd, p, len), 0);
	}
	if (t_failures != before)
		fprintf(stderr, "  (%s)\n", what);
}

static void kinds(void)
{
	int fd = t_uffd(0);
	size_t len = 2 * (size_t)t_ps;
	char *shm = t_map_prot(2, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
	char *anon = t_map(2);
	int mfd = memfd_create("uf-test", MFD_CLOEXEC);
	char path[] = "/tmp/uf-test-XXXXXX";
	int ffd = mkstemp(path);
	char *memfd_sh, *memfd_pr, *file, *mixed;
	uint64_t io = SENTINEL;

	T_REQUIRE(mfd >= 0 && ffd >= 0);
	unlink(path);
	T_REQUIRE(ftruncate(mfd, (off_t)len) == 0 && ftruncate(ffd, (off_t)len) == 0);
	memfd_sh = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	memfd_pr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	file = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, ffd, 0);
	T_REQUIRE(memfd_sh != MAP_FAILED && memfd_pr != MAP_FAILED && file != MAP_FAILED);

	shared_kind(fd, shm, len, 1, "MAP_SHARED|MAP_ANONYMOUS");
	shared_kind(fd, memfd_sh, len, 0, "memfd MAP_SHARED");
	shared_kind(fd, memfd_pr, len, 0, "memfd MAP_PRIVATE");
	if (HAS_WP) {
		uint64_t wio = SENTINEL;
		CHECK_EQ(t_register_mode(fd, anon, len, UFFDIO_REGISTER_MODE_WP, &wio), 0);
		CHECK_EQ(wio, ANON_WP_IOCTLS);
		wio = SENTINEL;
		CHECK_EQ(t_register_mode(fd, anon, len, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
					 &wio), 0);
		CHECK_EQ(wio, ANON_WP_IOCTLS);
		CHECK_EQ(t_unregister(fd, anon, len), 0);
	} else {
		kernel_only_kind(fd, anon, len, UFFDIO_REGISTER_MODE_WP,
				 KERNEL_ANON_WP_IOCTLS, "anonymous, mode WP");
		kernel_only_kind(fd, anon, len, UFFDIO_REGISTER_MODE_MISSING |
				 UFFDIO_REGISTER_MODE_WP, KERNEL_ANON_WP_IOCTLS,
				 "anonymous, mode MISSING|WP");
	}

	/* A regular file: EINVAL on both. */
	CHECK_ERRNO(t_register_mode(fd, file, len, UFFDIO_REGISTER_MODE_MISSING, &io),
		    EINVAL);
	CHECK_EQ(io, SENTINEL);
	/* anonymous [0 1] + file [2 3]: EINVAL, and the anonymous part is not
	 * registered either. */
	mixed = t_map(4);
	/* cppcheck-suppress leakReturnValNotUsed ; MAP_FIXED over part of mixed */
	T_REQUIRE(mmap(mixed + 2 * t_ps, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_FIXED, ffd, 0) != MAP_FAILED);
	CHECK_ERRNO(t_register_mode(fd, mixed, 4 * (size_t)t_ps,
				    UFFDIO_REGISTER_MODE_MISSING, &io), EINVAL);
	CHECK_EQ(io, SENTINEL);
	T_EXPECT_NO_FAULT(fd, mixed, 0, 0);
	T_EXPECT_NO_FAULT(fd, mixed + t_ps, 1, 0x10);
	/* Unregister over the file part: EINVAL as well. */
	CHECK_ERRNO(t_unregister(fd, mixed, 4 * (size_t)t_ps), EINVAL);
	CHECK_ERRNO(t_unregister(fd, file, len), EINVAL);
	close(mfd);
	close(ffd);
	CHECK_EQ(uf_close(fd), 0);
}

/* The emulated back-end has no MOVE / POISON / CONTINUE (and WRITEPROTECT
 * only with guard markers). */
static void emulated_unsupported(void)
{
	int fd = t_uffd(0);
	char *p = t_map_reg(fd, 2);
	char *src = t_map(1);
	struct uffdio_writeprotect wp = {
		.range = { (uintptr_t)p, (uint64_t)t_ps },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};
	struct uffdio_continue co = {
		.range = { (uintptr_t)p, (uint64_t)t_ps }, .mapped = SENTINEL,
	};

	src[0] = 1;
	/* WRITEPROTECT on a range without WP mode: ENOENT, as the kernel's. */
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_WRITEPROTECT, &wp), ENOENT);
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_CONTINUE, &co), EINVAL);
	/* Nothing was done: page 0 still faults. */
	T_EXPECT_FAULT(fd, p, 0, 0x12);
	CHECK_EQ(uf_close(fd), 0);
}

int main(void)
{
	t_start(30);
	basics();
	holes();
	rereg();
	two_ctxs();
	kinds();
	if (t_emulated())
		emulated_unsupported();
	else
		T_NOTE("MOVE/POISON/WRITEPROTECT/CONTINUE: kernel features, not tested here");
	return t_done();
}
