/* SPDX-License-Identifier: MIT */
/* Write-protect mode on private anonymous memory: REGISTER_MODE_WP alone and
 * with MISSING, its ioctls answer; UFFDIO_WRITEPROTECT's errors, set and
 * clear, DONTWAKE; a write to a protected page is a message with WP|WRITE
 * and waits, a read never faults; WAKE without clearing faults again;
 * COPY_MODE_WP; mprotect does not undo the protection; UNREGISTER,
 * MADV_DONTNEED, a fork without EVENT_FORK and a move without EVENT_REMAP
 * drop it, EVENT_FORK and EVENT_REMAP keep it (and COPY_MODE_WP through the
 * FORK event's uffd copies the monitor's bytes); UFFD_FEATURE_SIGBUS;
 * unpopulated pages are not protected (no WP_UNPOPULATED). */
#include "t.h"

#define NPAGES 8
#define WPF (UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_WRITE)

static size_t ps;

/* A write to addr by another thread: a WP message for its page, the
 * thread waits; clearing the protection (with a wake) lets it write. */
#define expect_wp_fault(fd, addr, val) T_EXPECT_WRITE_FAULT((fd), (addr), (val), WPF, ps, 2000)

static char *map_filled(size_t pages)
{
	char *p = t_map(pages);

	for (size_t i = 0; i < pages; i++)
		p[i * ps] = (char)(0x10 + i);
	return p;
}

static void basics(void)
{
	int fd = t_uffd(0);
	char *p = map_filled(NPAGES), *q = t_map(NPAGES);
	uint64_t ioctls = 0;
	struct t_touch t;
	struct uffd_msg m;

	/* Errors before any registration. */
	CHECK_ERRNO(t_wprotect(fd, p, ps, UFFDIO_WRITEPROTECT_MODE_WP), ENOENT);
	CHECK_EQ(t_register_mode(fd, p, NPAGES * ps, UFFDIO_REGISTER_MODE_WP, &ioctls), 0);
	CHECK(ioctls & ((uint64_t)1 << _UFFDIO_WRITEPROTECT));
	CHECK(ioctls & ((uint64_t)1 << _UFFDIO_COPY));
	CHECK(ioctls & ((uint64_t)1 << _UFFDIO_WAKE));
	CHECK_ERRNO(t_wprotect(fd, p, ps, UFFDIO_WRITEPROTECT_MODE_WP | UFFDIO_WRITEPROTECT_MODE_DONTWAKE),
		    EINVAL);
	CHECK_ERRNO(t_wprotect(fd, p, ps, 4), EINVAL);
	CHECK_ERRNO(t_wprotect(fd, p + 1, ps, UFFDIO_WRITEPROTECT_MODE_WP), EINVAL);
	CHECK_ERRNO(t_wprotect(fd, p, 0, UFFDIO_WRITEPROTECT_MODE_WP), EINVAL);
	/* An unregistered mapping in the range: ENOENT. */
	CHECK_ERRNO(t_wprotect(fd, q, ps, UFFDIO_WRITEPROTECT_MODE_WP), ENOENT);

	/* Registering protects nothing. */
	T_EXPECT_NO_FAULT(fd, p + 3, 1, 0x33);
	CHECK_OK(t_wprotect(fd, p, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	/* Reads never fault. */
	T_EXPECT_NO_FAULT(fd, p + ps + 1, 0, 0);
	CHECK_EQ(p[ps], 0x11);
	/* A write does, and waits until the protection goes. */
	expect_wp_fault(fd, p + 2 * ps + 9, 0x42);
	/* The other pages are still protected: WAKE without clearing makes
	 * the write fault again (a new message). */
	t_touch_start(&t, p + 4 * ps, 1, 0x44);
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, p + 4 * ps, WPF);
	CHECK_OK(t_wake(fd, p + 4 * ps, ps));
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, p + 4 * ps, WPF);
	CHECK(!__atomic_load_n(&t.done, __ATOMIC_SEQ_CST));
	/* DONTWAKE: the protection goes, the thread sleeps until a WAKE. */
	CHECK_OK(t_wprotect(fd, p + 4 * ps, ps, UFFDIO_WRITEPROTECT_MODE_DONTWAKE));
	t_msleep(30);
	CHECK(!__atomic_load_n(&t.done, __ATOMIC_SEQ_CST));
	CHECK_OK(t_wake(fd, p + 4 * ps, ps));
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(p[4 * ps], 0x44);
	T_NO_MSG(fd, 0);

	/* mprotect read-only then writable again keeps the protection. */
	CHECK_OK(mprotect(p, NPAGES * ps, PROT_READ));
	CHECK_OK(mprotect(p, NPAGES * ps, PROT_READ | PROT_WRITE));
	expect_wp_fault(fd, p + 5 * ps, 0x55);
	/* Unprotecting a part splits nothing visible: neighbours fault. */
	CHECK_OK(t_wprotect(fd, p + 6 * ps, ps, 0));
	T_EXPECT_NO_FAULT(fd, p + 6 * ps, 1, 0x66);
	expect_wp_fault(fd, p + 7 * ps, 0x77);

	/* UNREGISTER drops the protection. */
	CHECK_OK(t_wprotect(fd, p, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	CHECK_OK(t_unregister(fd, p, NPAGES * ps));
	p[0] = 0x70;
	CHECK_EQ(p[0], 0x70);
	CHECK_ERRNO(t_wprotect(fd, p, ps, UFFDIO_WRITEPROTECT_MODE_WP), ENOENT);
	T_NO_MSG(fd, 0);
	munmap(p, NPAGES * ps);
	munmap(q, NPAGES * ps);
	close(fd);
}

/* WP alone: pages never touched are not protected (no WP_UNPOPULATED):
 * they read zero and a write fills them, no message.  MADV_DONTNEED drops
 * the protection with the page. */
static void unpopulated(void)
{
	int fd = t_uffd(0);
	char *p = t_map(NPAGES);

	p[0] = 1;
	CHECK_EQ(t_register_mode(fd, p, NPAGES * ps, UFFDIO_REGISTER_MODE_WP, NULL), 0);
	CHECK_OK(t_wprotect(fd, p, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	T_EXPECT_NO_FAULT(fd, p + ps, 0, 0);
	T_EXPECT_NO_FAULT(fd, p + 2 * ps, 1, 0x22);
	expect_wp_fault(fd, p, 0x11);
	CHECK_OK(t_wprotect(fd, p, ps, UFFDIO_WRITEPROTECT_MODE_WP));
	CHECK_OK(madvise(p, ps, MADV_DONTNEED));
	T_EXPECT_NO_FAULT(fd, p, 0, 0);
	T_EXPECT_NO_FAULT(fd, p, 1, 0x12);
	/* COPY into a page nobody touched works; onto a page that exists
	 * (written without a fault), EEXIST. */
	CHECK_EQ(t_copy_byte(fd, p + 3 * ps, 0x33, 1, 0), 0);
	CHECK_EQ(p[3 * ps], 0x33);
	CHECK_ERRNO(t_copy_byte(fd, p + 2 * ps, 0x34, 1, 0), EEXIST);
	CHECK_EQ(p[2 * ps], 0x22);
	T_NO_MSG(fd, 0);
	munmap(p, NPAGES * ps);
	close(fd);
}

/* MISSING|WP: a missing page is a MISSING fault (flags 1 for a write);
 * COPY_MODE_WP installs it protected; COPY_MODE_WP on a range without WP
 * mode is EINVAL. */
static void missing_wp(void)
{
	int fd = t_uffd(0);
	char *p = t_map(NPAGES), *r = t_map(NPAGES);
	struct t_touch t;
	struct uffd_msg m;
	int64_t out;

	CHECK_EQ(t_register_mode(fd, p, NPAGES * ps,
				 UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP, NULL), 0);
	t_touch_start(&t, p + 5, 1, 0x21);
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, p, UFFD_PAGEFAULT_FLAG_WRITE);
	{
		char *src = malloc(ps);
		T_REQUIRE(src);
		memset(src, 0x20, ps);
		CHECK_EQ(t_copy(fd, p, src, ps, UFFDIO_COPY_MODE_WP, &out), 0);
		free(src);
	}
	CHECK_EQ(out, (int64_t)ps);
	/* The writer woke into a protected page: a WP fault now. */
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, p, WPF);
	CHECK_EQ(p[100], 0x20);
	CHECK_OK(t_wprotect(fd, p, ps, 0));
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(p[5], 0x21);
	/* A missing page stays a MISSING fault after WRITEPROTECT. */
	CHECK_OK(t_wprotect(fd, p, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	CHECK(T_EXPECT_FAULT(fd, p + 2 * ps, 1, 0x23));
	/* (resolved by a plain COPY: writable) */
	T_EXPECT_NO_FAULT(fd, p + 2 * ps, 1, 0x24);
	expect_wp_fault(fd, p + 1, 0x25);

	CHECK_EQ(t_register(fd, r, NPAGES * ps), 0);
	CHECK_ERRNO(t_copy_byte(fd, r, 0x30, 1, UFFDIO_COPY_MODE_WP), EINVAL);
	CHECK_ERRNO(t_wprotect(fd, r, ps, UFFDIO_WRITEPROTECT_MODE_WP), ENOENT);
	CHECK_EQ(t_copy_byte(fd, r, 0x31, 1, 0), 0);
	/* MISSING, then WP alone: the modes are replaced, nothing is
	 * missing any more. */
	CHECK_EQ(t_register_mode(fd, r, NPAGES * ps, UFFDIO_REGISTER_MODE_WP, NULL), 0);
	T_EXPECT_NO_FAULT(fd, r + 4 * ps, 1, 0x34);
	CHECK_OK(t_wprotect(fd, r, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	expect_wp_fault(fd, r + 3, 0x32);
	expect_wp_fault(fd, r + 4 * ps + 1, 0x35);
	/* WP alone, then MISSING|WP: pages never touched are missing again,
	 * protected ones stay protected; WP alone again changes nothing (it
	 * has all of them). */
	CHECK_OK(t_wprotect(fd, r, ps, UFFDIO_WRITEPROTECT_MODE_WP));
	CHECK_EQ(t_register_mode(fd, r, NPAGES * ps,
				 UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP, NULL), 0);
	CHECK(T_EXPECT_FAULT(fd, r + 6 * ps, 0, 0x36));
	expect_wp_fault(fd, r + 7, 0x37);
	CHECK_EQ(t_register_mode(fd, r, NPAGES * ps, UFFDIO_REGISTER_MODE_WP, NULL), 0);
	CHECK(T_EXPECT_FAULT(fd, r + 7 * ps, 1, 0x38));
	T_NO_MSG(fd, 0);
	munmap(p, NPAGES * ps);
	munmap(r, NPAGES * ps);
	close(fd);
}

/* Without EVENT_FORK the child's memory is not protected; the parent's
 * still is. */
static void fork_plain(void)
{
	int fd = t_uffd(0), st;
	char *p = map_filled(NPAGES);
	pid_t pid;

	CHECK_EQ(t_register_mode(fd, p, NPAGES * ps, UFFDIO_REGISTER_MODE_WP, NULL), 0);
	CHECK_OK(t_wprotect(fd, p, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	pid = fork();
	T_REQUIRE(pid >= 0);
	if (pid == 0) {
		volatile char *vp = p;
		t_child_watchdog(10);
		vp[ps] = 0x61;		/* no fault: unprotected here */
		_exit(vp[ps] == 0x61 && vp[0] == 0x10 ? 0 : 1);
	}
	T_REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_EQ(p[ps], 0x11);
	expect_wp_fault(fd, p + ps, 0x62);
	T_NO_MSG(fd, 0);
	munmap(p, NPAGES * ps);
	close(fd);
}

static char *g_page;
static pid_t g_pid;

static void *forker(void *arg)
{
	char *p = g_page;
	pid_t pid = fork();

	(void)arg;
	if (pid == 0) {
		int bad = 0;
		t_child_watchdog(10);
		bad |= p[0] != 0x10;		/* reads do not fault */
		p[ps + 1] = (char)0x81;		/* a WP fault to the child's uffd */
		bad |= p[ps + 1] != (char)0x81;
		_exit(bad);
	}
	g_pid = pid;
	return NULL;
}

/* With EVENT_FORK the child's pages keep their protection, now served by
 * the child's uffd; the parent's stay protected. */
static void fork_event(void)
{
	int fd = t_uffd(UFFD_FEATURE_EVENT_FORK), cfd = -1, st;
	char *p = map_filled(NPAGES);
	struct uffd_msg m;
	pthread_t th;

	CHECK_EQ(t_register_mode(fd, p, NPAGES * ps, UFFDIO_REGISTER_MODE_WP, NULL), 0);
	CHECK_OK(t_wprotect(fd, p, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	/* The fork waits until its event is read: fork in a thread. */
	g_page = p;
	th = t_thread(forker, NULL);
	T_REQUIRE(T_MSG(fd, &m, 2000));
	CHECK_EQ(m.event, UFFD_EVENT_FORK);
	cfd = (int)m.arg.fork.ufd;
	T_REQUIRE(cfd >= 0);
	if (T_MSG(cfd, &m, 3000)) {
		CHECK_FAULT(&m, p + ps, WPF);
		CHECK_OK(t_wprotect(cfd, p + ps, ps, 0));
	}
	t_join(th);
	T_REQUIRE(waitpid(g_pid, &st, 0) == g_pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_EQ(p[ps + 1], 0);
	expect_wp_fault(fd, p + ps + 1, 0x82);
	T_NO_MSG(fd, 0);
	close(cfd);
	munmap(p, NPAGES * ps);
	close(fd);
}

static void *forker_copy(void *arg)
{
	char *p = g_page;
	pid_t pid = fork();

	(void)arg;
	if (pid == 0) {
		int bad = 0;
		t_child_watchdog(10);
		volatile char *v = p;
		bad |= v[2 * ps + 5] != 0x5c;	/* MISSING: the parent's COPY */
		v[2 * ps + 1] = 0x5d;		/* then a WP fault (MODE_WP) */
		bad |= v[2 * ps + 1] != 0x5d;
		_exit(bad);
	}
	g_pid = pid;
	return NULL;
}

/* The child's missing page, served through the FORK event's uffd with
 * COPY_MODE_WP from the monitor's own buffer: the child gets those bytes,
 * protected. */
static void fork_event_copy_wp(void)
{
	int fd = t_uffd(UFFD_FEATURE_EVENT_FORK), cfd = -1, st;
	char *p = t_map(NPAGES), *buf = malloc(ps);
	struct uffd_msg m;
	pthread_t th;

	T_REQUIRE(buf != NULL);
	memset(buf, 0x11, ps);
	CHECK_EQ(t_register_mode(fd, p, NPAGES * ps, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
				 NULL), 0);
	g_page = p;
	th = t_thread(forker_copy, NULL);
	T_REQUIRE(T_MSG(fd, &m, 2000));
	CHECK_EQ(m.event, UFFD_EVENT_FORK);
	memset(buf, 0x5c, ps);		/* (the child's copy of buf is 0x11) */
	cfd = (int)m.arg.fork.ufd;
	T_REQUIRE(cfd >= 0);
	if (T_MSG(cfd, &m, 3000)) {
		CHECK_FAULT(&m, p + 2 * ps, 0);
		CHECK_OK(t_copy(cfd, p + 2 * ps, buf, ps, UFFDIO_COPY_MODE_WP, NULL));
	}
	if (T_MSG(cfd, &m, 3000)) {
		CHECK_FAULT(&m, p + 2 * ps, WPF);
		CHECK_OK(t_wprotect(cfd, p + 2 * ps, ps, 0));
	}
	t_join(th);
	T_REQUIRE(waitpid(g_pid, &st, 0) == g_pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	T_NO_MSG(fd, 0);
	free(buf);
	close(cfd);
	munmap(p, NPAGES * ps);
	close(fd);
}

static void *mover(void *arg)
{
	char **pq = arg;

	pq[2] = mremap(pq[0], NPAGES * ps, NPAGES * ps, MREMAP_MAYMOVE | MREMAP_FIXED, pq[1]);
	return NULL;
}

/* A move with EVENT_REMAP keeps the protection at the new place; without
 * it the moved range is unregistered and writable. */
static void remap(int event)
{
	int fd = t_uffd(event ? UFFD_FEATURE_EVENT_REMAP : 0);
	char *p = map_filled(NPAGES), *q = t_map(NPAGES), *pq[3] = { p, q, NULL };
	struct uffd_msg m;
	pthread_t th;

	CHECK_EQ(t_register_mode(fd, p, NPAGES * ps, UFFDIO_REGISTER_MODE_WP, NULL), 0);
	CHECK_OK(t_wprotect(fd, p, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	th = t_thread(mover, pq);
	if (event && T_MSG(fd, &m, 2000)) {
		CHECK_EQ(m.event, UFFD_EVENT_REMAP);
		CHECK_EQ(m.arg.remap.from, (uintptr_t)p);
		CHECK_EQ(m.arg.remap.to, (uintptr_t)q);
	}
	t_join(th);
	T_REQUIRE(pq[2] == q);
	CHECK_EQ(q[2 * ps], 0x12);
	if (event) {
		expect_wp_fault(fd, q + 2 * ps + 1, 0x83);
	} else {
		T_EXPECT_NO_FAULT(fd, q + 2 * ps + 1, 1, 0x83);
		CHECK_ERRNO(t_wprotect(fd, q, ps, UFFDIO_WRITEPROTECT_MODE_WP), ENOENT);
	}
	T_NO_MSG(fd, 0);
	munmap(q, NPAGES * ps);
	close(fd);
}

/* UFFD_FEATURE_WP_UNPOPULATED: WRITEPROTECT protects pages never touched
 * too.  WP alone: a read of one gives zeros, a write is a WP fault; a
 * discard drops the protection.  MISSING|WP: a protected missing page
 * faults as missing first; ZEROPAGE refuses it (EEXIST); COPY without
 * MODE_WP installs it writable. */
static void wp_unpopulated(void)
{
	int fd = t_uffd(UFFD_FEATURE_WP_UNPOPULATED);
	char *p = t_map(NPAGES), *r = t_map(NPAGES);
	struct t_touch t;
	struct uffd_msg m;
	int64_t out;

	p[0] = 0x10;
	CHECK_EQ(t_register_mode(fd, p, NPAGES * ps, UFFDIO_REGISTER_MODE_WP, NULL), 0);
	CHECK_OK(t_wprotect(fd, p, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	T_EXPECT_NO_FAULT(fd, p + ps + 3, 0, 0);
	expect_wp_fault(fd, p + 2 * ps + 1, 0x22);
	expect_wp_fault(fd, p + ps + 3, 0x23);		/* (read before) */
	expect_wp_fault(fd, p, 0x24);
	/* A discard drops the protection with the pages (on this kernel even
	 * with WP_UNPOPULATED). */
	CHECK_OK(t_wprotect(fd, p, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	CHECK_OK(madvise(p, 2 * ps, MADV_DONTNEED));
	T_EXPECT_NO_FAULT(fd, p, 0, 0);
	T_EXPECT_NO_FAULT(fd, p + ps, 1, 0x25);
	expect_wp_fault(fd, p + 2 * ps, 0x26);

	CHECK_EQ(t_register_mode(fd, r, NPAGES * ps,
				 UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP, NULL), 0);
	CHECK_OK(t_wprotect(fd, r, NPAGES * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	CHECK_ERRNO(t_zeropage(fd, r + 3 * ps, ps, 0, &out), EEXIST);
	CHECK_EQ(out, -EEXIST);
	t_touch_start(&t, r + ps + 1, 1, 0x31);
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, r + ps, UFFD_PAGEFAULT_FLAG_WRITE);
	CHECK_ERRNO(t_zeropage(fd, r + ps, ps, 0, &out), EEXIST);
	CHECK_EQ(t_copy_byte(fd, r + ps, 0x30, 1, 0), 0);
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(r[ps + 1], 0x31);
	T_EXPECT_NO_FAULT(fd, r + ps + 2, 1, 0x32);	/* writable now */
	/* COPY_MODE_WP onto one: protected. */
	CHECK_EQ(t_copy_byte(fd, r + 2 * ps, 0x40, 1, UFFDIO_COPY_MODE_WP), 0);
	expect_wp_fault(fd, r + 2 * ps, 0x41);
	T_NO_MSG(fd, 0);
	munmap(p, NPAGES * ps);
	munmap(r, NPAGES * ps);
	close(fd);
}

/* UFFD_FEATURE_SIGBUS: a write to a protected page is SIGBUS. */
static void sigbus(void)
{
	int fd = t_uffd(UFFD_FEATURE_SIGBUS), code = 0;
	char *p = map_filled(2);
	void *at = NULL;

	CHECK_EQ(t_register_mode(fd, p, 2 * ps, UFFDIO_REGISTER_MODE_WP, NULL), 0);
	CHECK_OK(t_wprotect(fd, p, 2 * ps, UFFDIO_WRITEPROTECT_MODE_WP));
	CHECK_EQ(t_access_signal(p + ps + 3, 1, &code, &at), SIGBUS);
	CHECK_EQ(code, BUS_ADRERR);
	CHECK(at == p + ps + 3);
	CHECK_EQ(t_access_signal(p + ps + 3, 0, &code, &at), 0);
	CHECK_OK(t_wprotect(fd, p + ps, ps, 0));
	CHECK_EQ(t_access_signal(p + ps + 3, 1, &code, &at), 0);
	T_NO_MSG(fd, 0);
	munmap(p, 2 * ps);
	close(fd);
}

int main(void)
{
	t_start(60);
	ps = (size_t)t_ps;
	if (!(t_features() & UFFD_FEATURE_PAGEFAULT_FLAG_WP))
		T_SKIP_TEST("UFFD_FEATURE_PAGEFAULT_FLAG_WP not advertised (the emulation needs guard markers)");
	basics();
	unpopulated();
	missing_wp();
	fork_plain();
	fork_event();
	fork_event_copy_wp();
	remap(1);
	remap(0);
	if (t_features() & UFFD_FEATURE_WP_UNPOPULATED)
		wp_unpopulated();
	else
		T_NOTE("no UFFD_FEATURE_WP_UNPOPULATED here: its part is skipped");
	sigbus();
	return t_done();
}
