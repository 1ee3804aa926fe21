/* SPDX-License-Identifier: MIT */
/* MISSING mode on shared memory (MAP_SHARED|MAP_ANONYMOUS, a memfd, a tmpfs
 * file; and a memfd mapped MAP_PRIVATE, private_kind()): "missing" is absent from the file; COPY and ZEROPAGE put the page
 * into the file, where an unregistered alias mapping sees it; a page made
 * through the alias, by pwrite or by fallocate is present (no fault, and
 * COPY/ZEROPAGE give EEXIST); MADV_REMOVE makes pages missing again,
 * MADV_DONTNEED does not; REMOVE events; the feature bit and REGISTER's
 * answer. */
#include "t.h"
#include <dirent.h>
#include <sys/stat.h>

#define NPAGES 16

/* A shared mapping of `pages` pages of memory type `kind`, and (for the
 * file kinds) an alias mapping of the same file: 0 anonymous, 1 memfd,
 * 2 tmpfs file. */
static char *map_kind(int kind, size_t pages, char **alias, int *fdp)
{
	size_t len = pages * (size_t)t_ps;
	int fd = -1;
	char *p;

	*alias = NULL;
	if (kind == 0) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		T_REQUIRE(p != MAP_FAILED);
		*fdp = -1;
		return p;
	}
	if (kind == 1)
		fd = memfd_create("uf-shmem", MFD_CLOEXEC);
	else
		fd = open("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && kind == 2)
		T_SKIP_TEST("no tmpfs at /dev/shm for an O_TMPFILE: %s", t_errname(errno));
	T_REQUIRE(fd >= 0);
	T_REQUIRE(ftruncate(fd, (off_t)len) == 0);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	*alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	T_REQUIRE(p != MAP_FAILED && *alias != MAP_FAILED);
	*fdp = fd;
	return p;
}

static void one_kind(int kind)
{
	char *p, *alias;
	int mfd, fd = t_uffd(UFFD_FEATURE_MISSING_SHMEM);
	uint64_t ioctls = 0;
	struct uffd_msg m;
	int64_t out;
	size_t ps = (size_t)t_ps;

	p = map_kind(kind, NPAGES, &alias, &mfd);
	if (kind == 0 && t_shared_anon_unreachable()) {
		T_NOTE("USERFAULT_SHARED_ANON=kernel without /proc/self/map_files: EINVAL (README)");
		CHECK_ERRNO(t_register(fd, p, NPAGES * ps), EINVAL);
		munmap(p, NPAGES * ps);
		close(fd);
		return;
	}
	/* A page present before REGISTER stays present. */
	p[0] = 0x11;
	CHECK_EQ(t_register_mode(fd, p, NPAGES * ps, UFFDIO_REGISTER_MODE_MISSING, &ioctls), 0);
	CHECK(ioctls & ((uint64_t)1 << _UFFDIO_COPY));
	CHECK(ioctls & ((uint64_t)1 << _UFFDIO_ZEROPAGE));
	CHECK(ioctls & ((uint64_t)1 << _UFFDIO_WAKE));
	T_EXPECT_NO_FAULT(fd, p + 1, 0, 0);
	CHECK_EQ(p[0], 0x11);

	/* A missing page faults; COPY puts it into the file. */
	CHECK(T_EXPECT_FAULT(fd, p + ps + 5, 0, 0x21));
	CHECK_EQ(p[ps], 0x21);
	if (alias)
		CHECK_EQ(alias[ps + 7], 0x21);
	/* Writes through the registered mapping reach the file. */
	p[ps + 1] = 0x22;
	if (alias)
		CHECK_EQ(alias[ps + 1], 0x22);
	/* A write fault, resolved by ZEROPAGE: a zero page in the file. */
	{
		struct t_touch t;
		t_touch_start(&t, p + 2 * ps + 3, 1, 0x23);
		if (T_MSG(fd, &m, 2000))
			CHECK_FAULT(&m, p + 2 * ps, UFFD_PAGEFAULT_FLAG_WRITE);
		CHECK_EQ(t_zeropage(fd, p + 2 * ps, ps, 0, &out), 0);
		CHECK_EQ(out, (int64_t)ps);
		CHECK(t_touch_wait(&t, 2000));
		CHECK_EQ(p[2 * ps + 3], 0x23);
		CHECK_EQ(p[2 * ps], 0);
		if (alias)
			CHECK_EQ(alias[2 * ps + 3], 0x23);
	}
	/* Present pages: EEXIST, content kept. */
	CHECK_ERRNO(t_copy_byte(fd, p + ps, 0x24, 1, 0), EEXIST);
	CHECK_ERRNO(t_zeropage(fd, p + 2 * ps, ps, 0, &out), EEXIST);
	CHECK_EQ(out, -EEXIST);
	CHECK_EQ(p[ps], 0x21);

	if (alias) {
		/* A page made through the unregistered alias is present: no
		 * fault here, and COPY onto it is EEXIST. */
		alias[3 * ps + 9] = 0x31;
		T_EXPECT_NO_FAULT(fd, p + 3 * ps + 9, 0, 0x31);
		CHECK_ERRNO(t_copy_byte(fd, p + 3 * ps, 0x32, 1, 0), EEXIST);
		/* A two-page COPY whose first page is present copies nothing. */
		alias[4 * ps] = 0x33;
		CHECK_ERRNO(t_copy_byte(fd, p + 4 * ps, 0x34, 2, 0), EEXIST);
		T_EXPECT_FAULT(fd, p + 5 * ps, 0, 0x35);
		/* pwrite and fallocate make pages too. */
		{
			char b = 0x36;
			CHECK_EQ(pwrite(mfd, &b, 1, (off_t)(6 * ps + 2)), 1);
		}
		T_EXPECT_NO_FAULT(fd, p + 6 * ps + 2, 0, 0x36);
		CHECK_OK(fallocate(mfd, 0, (off_t)(7 * ps), (off_t)ps));
		T_EXPECT_NO_FAULT(fd, p + 7 * ps, 0, 0);
		CHECK_ERRNO(t_zeropage(fd, p + 7 * ps, ps, 0, &out), EEXIST);
		/* Hole punching through the file makes a page missing again
		 * (no event: fallocate is not madvise). */
		CHECK_OK(fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)(7 * ps), (off_t)ps));
		CHECK(T_EXPECT_FAULT(fd, p + 7 * ps, 0, 0x37));
		/* A hole that only cuts into a page zeroes part of it: present. */
		CHECK_OK(fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)(7 * ps + 8), (off_t)ps - 16));
		T_EXPECT_NO_FAULT(fd, p + 7 * ps + 4, 0, 0x37);
		CHECK_EQ(p[7 * ps + 8], 0);
	}

	/* MADV_DONTNEED leaves the page in the file: present, data kept. */
	CHECK_OK(madvise(p + ps, ps, MADV_DONTNEED));
	T_EXPECT_NO_FAULT(fd, p + ps, 0, 0x21);
	/* MADV_REMOVE takes it out: missing again, faults. */
	CHECK_OK(madvise(p + ps, ps, MADV_REMOVE));
	CHECK(T_EXPECT_FAULT(fd, p + ps, 1, 0x25));
	CHECK_EQ(p[ps], 0x25);
	if (alias)
		CHECK_EQ(alias[ps], 0x25);

	/* Many pages at once, seen whole through the alias. */
	{
		size_t n = 6;
		char *src = malloc(n * ps);
		T_REQUIRE(src);
		for (size_t i = 0; i < n * ps; i++)
			src[i] = (char)(i / ps + 0x40);
		CHECK_EQ(t_copy(fd, p + 10 * ps, src, n * ps, 0, &out), 0);
		CHECK_EQ(out, (int64_t)(n * ps));
		for (size_t i = 0; i < n; i++) {
			CHECK_EQ(p[(10 + i) * ps + 17], (char)(0x40 + i));
			if (alias)
				CHECK_EQ(alias[(10 + i) * ps + 100], (char)(0x40 + i));
		}
		free(src);
	}
	T_NO_MSG(fd, 0);

	/* UNREGISTER: missing pages read as zero, no fault. */
	CHECK_EQ(t_unregister(fd, p, NPAGES * ps), 0);
	CHECK_EQ(p[8 * ps], 0);
	T_NO_MSG(fd, 0);
	munmap(p, NPAGES * ps);
	if (alias)
		munmap(alias, NPAGES * ps);
	if (mfd >= 0)
		close(mfd);
	close(fd);
}

/* A MAP_PRIVATE mapping of a memfd: missing means no private copy and
 * nothing in the file; COPY installs a private page whatever the file has
 * (EEXIST once the mapping has the page); MADV_DONTNEED drops the private
 * copies. */
static void private_kind(void)
{
	size_t ps = (size_t)t_ps, len = NPAGES * ps;
	int fd = t_uffd(0), mfd = memfd_create("uf-shmem-private", MFD_CLOEXEC);
	char *p, *alias;
	int64_t out;

	T_REQUIRE(mfd >= 0 && ftruncate(mfd, (off_t)len) == 0);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	T_REQUIRE(p != MAP_FAILED && alias != MAP_FAILED);
	alias[0] = 0x41;		/* page 0: in the file */
	p[ps] = 0x42;			/* page 1: a private copy */
	alias[2 * ps] = 0x43;		/* page 2: in the file, read here */
	CHECK_EQ(p[2 * ps], 0x43);
	CHECK_EQ(t_register(fd, p, len), 0);
	T_EXPECT_NO_FAULT(fd, p + 1, 0, 0);
	CHECK_EQ(p[0], 0x41);
	CHECK_EQ(p[ps], 0x42);
	CHECK_EQ(alias[ps], 0);
	CHECK_EQ(p[2 * ps], 0x43);
	/* Missing: neither a private copy nor in the file. */
	CHECK(T_EXPECT_FAULT(fd, p + 3 * ps + 5, 0, 0x44));
	CHECK_EQ(p[3 * ps], 0x44);
	{
		char b = 1;	/* a private page: not in the file (read without
				 * making it: pread of a hole makes no page) */
		CHECK_EQ(pread(mfd, &b, 1, (off_t)(3 * ps + 5)), 1);
		CHECK_EQ(b, 0);
	}
	/* The mapping has pages 1, 2 and 3: EEXIST. */
	CHECK_ERRNO(t_copy_byte(fd, p + ps, 0x45, 1, 0), EEXIST);
	CHECK_ERRNO(t_copy_byte(fd, p + 2 * ps, 0x45, 1, 0), EEXIST);
	CHECK_ERRNO(t_zeropage(fd, p + 3 * ps, ps, 0, &out), EEXIST);
	CHECK_EQ(p[2 * ps + 1], 0);
	/* In the file but never mapped here: COPY installs a private page
	 * (the file keeps its own). */
	alias[4 * ps] = 0x46;
	CHECK_EQ(t_copy_byte(fd, p + 4 * ps, 0x47, 1, 0), 0);
	CHECK_EQ(p[4 * ps], 0x47);
	CHECK_EQ(alias[4 * ps], 0x46);
	/* A page made in the file after REGISTER: no fault here. */
	alias[5 * ps + 9] = 0x48;
	T_EXPECT_NO_FAULT(fd, p + 5 * ps + 9, 0, 0x48);
	/* Writing here makes a private copy: the file does not see it. */
	p[5 * ps + 9] = 0x49;
	CHECK_EQ(alias[5 * ps + 9], 0x48);
	/* ZEROPAGE of two missing pages. */
	CHECK_EQ(t_zeropage(fd, p + 6 * ps, 2 * ps, 0, &out), 0);
	CHECK_EQ(out, (int64_t)(2 * ps));
	CHECK_EQ(p[7 * ps + 3], 0);
	/* MADV_DONTNEED: the private copies go; page 3 (private only) is
	 * missing again, page 5 reads the file again. */
	CHECK_OK(madvise(p + 3 * ps, 3 * ps, MADV_DONTNEED));
	if (t_emulated()) {
		/* The emulation's COPY wrote the private page through
		 * /proc/self/mem, which made the file allocate the page it
		 * copies from: a zero page, read here now (README). */
		char b = 1;
		CHECK_EQ(pread(mfd, &b, 1, (off_t)(3 * ps)), 1);
		CHECK_EQ(b, 0);
		T_EXPECT_NO_FAULT(fd, p + 3 * ps, 0, 0);
		p[3 * ps] = 0x4a;
	} else {
		CHECK(T_EXPECT_FAULT(fd, p + 3 * ps, 1, 0x4a));
	}
	T_EXPECT_NO_FAULT(fd, p + 5 * ps + 9, 0, 0x48);
	/* MADV_REMOVE on a private mapping: EACCES. */
	CHECK_ERRNO(madvise(p, ps, MADV_REMOVE), EACCES);
	T_NO_MSG(fd, 0);
	CHECK_EQ(t_unregister(fd, p, len), 0);
	CHECK_EQ(p[ps], 0x42);
	CHECK_EQ(p[3 * ps], 0x4a);
	CHECK_EQ(p[8 * ps], 0);
	munmap(p, len);
	munmap(alias, len);
	close(mfd);
	close(fd);
}

/* REMOVE events on MADV_REMOVE and MADV_DONTNEED of shared memory: the
 * madvise waits until the event is read. */
struct madv {
	char *addr;
	size_t len;
	int advice, ret, done;
};

static void *madv_fn(void *arg)
{
	struct madv *ma = arg;

	ma->ret = madvise(ma->addr, ma->len, ma->advice);
	__atomic_store_n(&ma->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void remove_events(void)
{
	char *p, *alias;
	int mfd, fd = t_uffd(UFFD_FEATURE_EVENT_REMOVE);
	size_t ps = (size_t)t_ps;
	struct uffd_msg m;

	p = map_kind(1, NPAGES, &alias, &mfd);
	CHECK_EQ(t_register(fd, p, NPAGES * ps), 0);
	CHECK(T_EXPECT_FAULT(fd, p, 0, 0x51));
	CHECK(T_EXPECT_FAULT(fd, p + ps, 0, 0x52));
	for (int k = 0; k < 2; k++) {
		struct madv ma = { p, 2 * ps, k ? MADV_REMOVE : MADV_DONTNEED, -2, 0 };
		pthread_t th = t_thread(madv_fn, &ma);

		if (T_MSG(fd, &m, 2000)) {
			CHECK_EQ(m.event, UFFD_EVENT_REMOVE);
			CHECK_EQ(m.arg.remove.start, (uintptr_t)p);
			CHECK_EQ(m.arg.remove.end, (uintptr_t)p + 2 * ps);
		}
		t_join(th);
		CHECK_EQ(ma.ret, 0);
		if (k == 0) {
			/* DONTNEED: still in the file. */
			T_EXPECT_NO_FAULT(fd, p + 1, 0, 0x51);
			CHECK_EQ(alias[ps], 0x52);
		} else {
			/* REMOVE: missing again, here and for the alias (zero). */
			CHECK_EQ(alias[ps + 1], 0);	/* (makes page 1 present) */
			T_EXPECT_NO_FAULT(fd, p + ps, 0, 0);
			CHECK(T_EXPECT_FAULT(fd, p, 1, 0x53));
		}
	}
	T_NO_MSG(fd, 0);
	munmap(p, NPAGES * ps);
	munmap(alias, NPAGES * ps);
	close(mfd);
	close(fd);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	T_REQUIRE(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static char *map_anon(size_t pages)
{
	char *p = mmap(NULL, pages * (size_t)t_ps, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	T_REQUIRE(p != MAP_FAILED);
	return p;
}

/* The emulation keeps a descriptor per shared anonymous mapping it may have
 * to reach, at most 128 (README); one whose memory is gone is closed when
 * the table fills.  Past the bound, mappings still work; only their
 * REGISTER is refused (EINVAL) on the emulation. */
static void bounded(void)
{
	enum { MAX = 128 };
	size_t ps = (size_t)t_ps;
	int fd = t_uffd(UFFD_FEATURE_MISSING_SHMEM), n0, st;
	char *keep = map_anon(4), *many[MAX + 2];
	pid_t pid;

	n0 = count_fds();
	for (int i = 0; i < 3 * MAX; i++) {
		char *q = map_anon(1);
		q[0] = 1;
		CHECK_OK(munmap(q, ps));
	}
	CHECK(count_fds() - n0 <= MAX);
	/* The first mapping is still registered and served, and stays
	 * shared with a child (no EVENT_FORK: unregistered there). */
	CHECK_EQ(t_register(fd, keep, 4 * ps), 0);
	CHECK(T_EXPECT_FAULT(fd, keep + ps, 0, 0x5a));
	pid = fork();
	T_REQUIRE(pid >= 0);
	if (pid == 0) {
		t_child_watchdog(10);
		if (keep[ps] != 0x5a)
			_exit(1);
		keep[2 * ps + 1] = 0x5b;
		_exit(0);
	}
	T_REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	T_EXPECT_NO_FAULT(fd, keep + 2 * ps + 1, 0, 0x5b);
	/* Mappings kept past the bound. */
	for (int i = 0; i < MAX + 2; i++)
		many[i] = map_anon(1);
	CHECK(count_fds() - n0 <= MAX);
	if (t_emulated()) {
		CHECK_ERRNO(t_register(fd, many[MAX + 1], ps), EINVAL);
		T_NOTE("past 128 shared anonymous mappings: REGISTER gives EINVAL (README)");
	} else {
		CHECK_EQ(t_register(fd, many[MAX + 1], ps), 0);
	}
	for (int i = 0; i < MAX + 2; i++)
		CHECK_OK(munmap(many[i], ps));
	T_NO_MSG(fd, 0);
	CHECK_OK(munmap(keep, 4 * ps));
	close(fd);
}

/* As an ordinary user, as in a container: /proc/self/map_files is
 * refused, yet shared anonymous memory works on both back-ends (the
 * emulation makes it a memfd of its own), within bounds; with
 * USERFAULT_SHARED_ANON=kernel the emulation cannot reach it. */
static void as_user(void)
{
	int fd;
	char *p;

	CHECK(!t_map_files_ok());
	one_kind(0);
	bounded();
	setenv("USERFAULT_SHARED_ANON", "kernel", 1);
	fd = t_uffd(UFFD_FEATURE_MISSING_SHMEM);
	p = map_anon(2);
	if (t_emulated())
		CHECK_ERRNO(t_register(fd, p, 2 * (size_t)t_ps), EINVAL);
	else
		CHECK_EQ(t_register(fd, p, 2 * (size_t)t_ps), 0);
	unsetenv("USERFAULT_SHARED_ANON");
	munmap(p, 2 * (size_t)t_ps);
	close(fd);
}

int main(void)
{
	t_start(60);
	t_need_missing_shmem();
	for (int kind = 0; kind < 3; kind++)
		one_kind(kind);
	private_kind();
	remove_events();
	t_as_user("shared anonymous memory", as_user);
	/* USERFAULT_SHARED_ANON=memfd: the memfd even where map_files works. */
	setenv("USERFAULT_SHARED_ANON", "memfd", 1);
	one_kind(0);
	return t_done();
}
