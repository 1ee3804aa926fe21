/* SPDX-License-Identifier: MIT */
/* UFFDIO_MOVE on private anonymous memory: a fault answered by MOVE sees
 * the source's data and the source reads zero after (or faults, when it is
 * registered itself); the output field and partial counts; EEXIST (a
 * present destination), ENOENT (a source hole, no mapping), ALLOW_SRC_HOLES
 * (holes move as holes), overlapping ranges (page by page), EBUSY (a page shared with a fork child), EINVAL
 * (alignment, mode, protections, a destination not registered by
 * this uffd, shared memory); a 2 MiB move; a writer of the source during
 * moves loses no increment; the feature bit and REGISTER's ioctls. */
#include "t.h"
#include <stdatomic.h>

#define SENTINEL 0x5a5a
#define ANY_HOLES UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES

static size_t ps;

static int t_move(int fd, void *dst, void *src, size_t len, uint64_t mode, int64_t *out)
{
	struct uffdio_move m = {
		.dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len, .mode = mode, .move = SENTINEL,
	};
	int r = uf_ioctl(fd, UFFDIO_MOVE, &m);

	if (out)
		*out = m.move;
	return r;
}

static char *filled(size_t pages, int byte)
{
	char *p = t_map(pages);

	memset(p, byte, pages * ps);
	return p;
}

static void basics(void)
{
	int fd = t_uffd(0);
	char *dst = t_map_reg(fd, 8);
	char *src = filled(8, 0x11);
	int64_t out;
	struct t_touch t;
	struct uffd_msg m;

	/* A fault answered by MOVE. */
	src[5] = 0x55;
	t_touch_start(&t, dst + 5, 0, 0);
	if (T_MSG(fd, &m, 2000)) {
		CHECK_FAULT(&m, dst, 0);
		CHECK_OK(t_move(fd, dst, src, ps, 0, &out));
		CHECK_EQ(out, (int64_t)ps);
	}
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(t.val, 0x55);
	CHECK_EQ(src[5], 0);		/* the source is empty: a zero page */
	CHECK_EQ(dst[ps - 1], 0x11);
	/* Several pages, DONTWAKE: no fault after. */
	CHECK_OK(t_move(fd, dst + ps, src + ps, 3 * ps, UFFDIO_MOVE_MODE_DONTWAKE, &out));
	CHECK_EQ(out, (int64_t)(3 * ps));
	T_EXPECT_NO_FAULT(fd, dst + 3 * ps + 7, 0, 0x11);
	CHECK_EQ(src[3 * ps + 7], 0);
	/* The destination present: EEXIST. */
	CHECK_ERRNO(t_move(fd, dst, src + 4 * ps, ps, 0, &out), EEXIST);
	CHECK_EQ(out, -EEXIST);
	/* A source hole (moved away above): ENOENT; with ALLOW_SRC_HOLES it
	 * moves as a hole, and the destination still faults. */
	CHECK_OK(madvise(src, ps, MADV_DONTNEED));	/* (the read above mapped a zero page) */
	CHECK_ERRNO(t_move(fd, dst + 4 * ps, src, ps, 0, &out), ENOENT);
	CHECK_EQ(out, -ENOENT);
	CHECK_OK(t_move(fd, dst + 4 * ps, src, ps, ANY_HOLES, &out));
	CHECK_EQ(out, (int64_t)ps);
	T_EXPECT_FAULT(fd, dst + 4 * ps, 0, 0x44);
	/* A page then a hole: partial, EAGAIN with the bytes done. */
	CHECK_OK(madvise(src + 5 * ps, ps, MADV_DONTNEED));	/* hole at 5 */
	CHECK_ERRNO(t_move(fd, dst + 5 * ps, src + 4 * ps, 2 * ps, 0, &out), EAGAIN);
	CHECK_EQ(out, (int64_t)ps);
	CHECK_EQ(dst[5 * ps], 0x11);
	/* Arguments: the output field untouched. */
	CHECK_ERRNO(t_move(fd, dst + 6 * ps, src + 6 * ps + 1, ps, 0, &out), EINVAL);
	CHECK_EQ(out, SENTINEL);
	CHECK_ERRNO(t_move(fd, dst + 6 * ps + 8, src + 6 * ps, ps, 0, &out), EINVAL);
	CHECK_ERRNO(t_move(fd, dst + 6 * ps, src + 6 * ps, ps, 4, &out), EINVAL);
	CHECK_EQ(out, SENTINEL);
	CHECK_ERRNO(t_move(fd, dst + 6 * ps, src + 6 * ps, 0, 0, &out), EINVAL);
	/* Nothing mapped at the source: ENOENT. */
	{
		char *gone = t_map(1);
		munmap(gone, ps);
		CHECK_ERRNO(t_move(fd, dst + 6 * ps, gone, ps, 0, &out), ENOENT);
	}
	/* A read-only source (other protection than the destination's). */
	{
		char *ro = filled(1, 0x22);
		CHECK_OK(mprotect(ro, ps, PROT_READ));
		CHECK_ERRNO(t_move(fd, dst + 6 * ps, ro, ps, 0, &out), EINVAL);
		munmap(ro, ps);
	}
	/* The destination not registered: EINVAL; not mapped: ENOENT. */
	{
		char *plain = t_map(1);
		CHECK_ERRNO(t_move(fd, plain, src + 6 * ps, ps, 0, &out), EINVAL);
		munmap(plain, ps);
		CHECK_ERRNO(t_move(fd, plain, src + 6 * ps, ps, 0, &out), ENOENT);
	}
	/* Overlapping ranges, in one mapping: page by page, 5 to 6, then 6
	 * (just arrived) to 7. */
	dst[5 * ps] = 0x5f;
	CHECK_OK(t_move(fd, dst + 6 * ps, dst + 5 * ps, 2 * ps, 0, &out));
	CHECK_EQ(out, (int64_t)(2 * ps));
	CHECK_EQ(dst[7 * ps], 0x5f);
	/* Nothing else went wrong: source pages 6 and 7 still move, to the
	 * destination's pages 5 and 6, empty again. */
	CHECK_OK(t_move(fd, dst + 5 * ps, src + 6 * ps, 2 * ps, 0, &out));
	CHECK_EQ(dst[6 * ps + 1], 0x11);
	CHECK_EQ(uf_close(fd), 0);
	munmap(dst, 8 * ps);
	munmap(src, 8 * ps);
}

/* The destination registered by another uffd, or shared memory. */
static void other_destinations(void)
{
	int fd = t_uffd(0), fd2 = t_uffd(0);
	char *dst = t_map_reg(fd2, 2);
	char *src = filled(2, 0x33);
	int64_t out;

	CHECK_ERRNO(t_move(fd, dst, src, ps, 0, &out), EINVAL);
	CHECK_OK(t_move(fd2, dst, src, ps, 0, &out));
	CHECK_EQ(dst[1], 0x33);
	if (t_features() & UFFD_FEATURE_MISSING_SHMEM) {
		char *sh = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		int mfd = memfd_create("uf-move", MFD_CLOEXEC);
		T_REQUIRE(sh != MAP_FAILED && mfd >= 0 && ftruncate(mfd, (off_t)ps) == 0);
		munmap(sh, ps);
		sh = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
		T_REQUIRE(sh != MAP_FAILED);
		CHECK_OK(t_register(fd, sh, ps));
		CHECK_ERRNO(t_move(fd, sh, src + ps, ps, 0, &out), EINVAL);
		munmap(sh, ps);
		close(mfd);
	}
	uf_close(fd);
	uf_close(fd2);
	munmap(dst, 2 * ps);
	munmap(src, 2 * ps);
}

/* A source page shared with a fork child: EBUSY; once the child is gone
 * (and the page was written since: exclusive again), it moves. */
/* Does /proc/self/pagemap show page frame numbers (CAP_SYS_ADMIN)? */
static int pfns_visible(void)
{
	static volatile char probe = 1;
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	T_REQUIRE(fd >= 0);
	(void)probe;
	T_REQUIRE(pread(fd, &e, sizeof e, (off_t)((uintptr_t)&probe / ps * sizeof e)) == (ssize_t)sizeof e);
	close(fd);
	return (e & (((uint64_t)1 << 55) - 1)) != 0;
}

static void shared_after_fork(void)
{
	int fd = t_uffd(0);
	char *dst = t_map_reg(fd, 3);
	char *src = filled(1, 0x66);
	char *zeros = filled(1, 0);	/* a page of ours, all zeros */
	int pfd[2];
	pid_t pid;
	int64_t out;
	char c;

	T_REQUIRE(pipe(pfd) == 0);
	pid = fork();
	T_REQUIRE(pid >= 0);
	if (pid == 0) {
		close(pfd[1]);
		if (read(pfd[0], &c, 1) < 0)	/* until the parent is done */
			_exit(1);
		_exit(0);
	}
	close(pfd[0]);
	CHECK_ERRNO(t_move(fd, dst, src, ps, 0, &out), EBUSY);
	CHECK_EQ(out, -EBUSY);
	/* A page of zeros shared with the child: EBUSY too; but without the
	 * page frame numbers of /proc/self/pagemap (CAP_SYS_ADMIN) the
	 * emulation cannot tell it from the shared zero page, which moves
	 * (README, compatibility). */
	if (t_emulated() && !pfns_visible()) {
		T_NOTE("no page frame numbers in /proc/self/pagemap: a shared page of zeros moves");
		CHECK_OK(t_move(fd, dst + 2 * ps, zeros, ps, 0, &out));
		CHECK_EQ(dst[2 * ps + 9], 0);
	} else {
		CHECK_ERRNO(t_move(fd, dst + 2 * ps, zeros, ps, 0, &out), EBUSY);
	}
	close(pfd[1]);
	waitpid(pid, NULL, 0);
	src[0] = 0x67;			/* our own copy now */
	CHECK_OK(t_move(fd, dst, src, ps, 0, &out));
	CHECK_EQ(dst[0], 0x67);
	uf_close(fd);
	munmap(dst, 3 * ps);
	munmap(src, ps);
	munmap(zeros, ps);
}

/* A source registered itself: after the move it faults as missing. */
static void registered_source(void)
{
	int fd = t_uffd(0);
	char *dst = t_map_reg(fd, 2);
	char *src = t_map_reg(fd, 2);
	int64_t out;

	CHECK_OK(t_copy_byte(fd, src, 0x77, 2, 0));
	CHECK_OK(t_move(fd, dst, src, 2 * ps, 0, &out));
	CHECK_EQ(out, (int64_t)(2 * ps));
	CHECK_EQ(dst[ps + 3], 0x77);
	T_EXPECT_FAULT(fd, src + ps, 0, 0x78);
	CHECK_EQ(src[ps], 0x78);
	uf_close(fd);
	munmap(dst, 2 * ps);
	munmap(src, 2 * ps);
}

/* 2 MiB at once, aligned. */
static void big(void)
{
	size_t n = (2u << 20) / ps, len = n * ps;
	int fd = t_uffd(0);
	char *d0 = t_map_reg(fd, 2 * n), *s0 = t_map(2 * n);
	char *dst = (char *)(((uintptr_t)d0 + len - 1) & ~(uintptr_t)(len - 1));
	char *src = (char *)(((uintptr_t)s0 + len - 1) & ~(uintptr_t)(len - 1));
	int64_t out;
	size_t bad = 0;

	for (size_t i = 0; i < n; i++)
		src[i * ps] = (char)i;
	CHECK_OK(t_move(fd, dst, src, len, 0, &out));
	CHECK_EQ(out, (int64_t)len);
	for (size_t i = 0; i < n; i++)
		bad += dst[i * ps] != (char)i || src[i * ps] != 0;
	CHECK_EQ(bad, 0);
	uf_close(fd);
	munmap(d0, 2 * len);
	munmap(s0, 2 * len);
}

/* A thread adds to a word of the source while it is moved, again and
 * again: every addition is in one of the destination's pages (before a
 * move) or in the source's new page (after the last); none is lost.  The
 * adder runs until every move is done, and counts its additions. */
struct adder {
	_Atomic long *word;
	_Atomic int stop;
	int yield;		/* under valgrind: its lock is not fair */
	long adds;		/* written by the adder before it ends */
};

static void *adder_fn(void *arg)
{
	struct adder *a = arg;
	long n = 0;

	while (!atomic_load(&a->stop)) {
		atomic_fetch_add(a->word, 1);
		/* (valgrind runs one thread at a time and hands its lock back
		 * to a thread that never blocks: the mover would wait seconds
		 * for each round) */
		if (++n % 256 == 0 && a->yield)
			sched_yield();
	}
	a->adds = n;
	return NULL;
}

static void concurrent_writer(void)
{
	enum { ROUNDS = 64 };
	int fd = t_uffd(0);
	char *dst = t_map_reg(fd, ROUNDS);
	char *src = filled(1, 0);
	struct adder a = { (_Atomic long *)src, 0, getenv("USERFAULT_TEST_VALGRIND") != NULL, 0 };
	pthread_t th;
	long sum = 0;
	int moved = 0;

	th = t_thread(adder_fn, &a);
	/* (the first move always finds the source's page: filled() wrote it) */
	for (int r = 0; r < ROUNDS; r++) {
		int64_t out;
		if (r)
			t_msleep(1);
		if (t_move(fd, dst + (size_t)r * ps, src, ps, 0, &out) == 0)
			moved++;
		else
			CHECK(errno == ENOENT);	/* not written since the last */
	}
	atomic_store(&a.stop, 1);
	t_join(th);
	for (int r = 0; r < ROUNDS; r++) {
		long v;
		struct uffdio_zeropage z = { .range = { (uintptr_t)dst + (size_t)r * ps, ps } };
		/* (a page never moved to reads as a zero page) */
		(void)uf_ioctl(fd, UFFDIO_ZEROPAGE, &z);
		memcpy(&v, dst + (size_t)r * ps, sizeof v);
		sum += v;
	}
	sum += *(long *)src;
	CHECK(moved > 0);
	CHECK(a.adds > 0);
	CHECK_EQ(sum, a.adds);
	uf_close(fd);
	munmap(dst, ROUNDS * ps);
	munmap(src, ps);
}

int main(void)
{
	int fd;
	uint64_t ioctls = 0;
	char *p;

	t_start(60);
	ps = (size_t)t_ps;
	fd = t_uffd(0);
	CHECK(t_features() & UFFD_FEATURE_MOVE);
	p = t_map(1);
	CHECK_OK(t_register_mode(fd, p, ps, UFFDIO_REGISTER_MODE_MISSING, &ioctls));
	CHECK(ioctls & ((uint64_t)1 << _UFFDIO_MOVE));
	uf_close(fd);
	munmap(p, ps);
	basics();
	other_destinations();
	shared_after_fork();
	registered_source();
	big();
	/* TSan performs an atomic inside its runtime, where a fault (the
	 * emulation's read-only source) is taken for its own crash. */
	if (T_UNDER_TSAN)
		T_NOTE("the writer during moves: not under TSan (its atomics fault inside its runtime)");
	else
		concurrent_writer();
	return t_done();
}
