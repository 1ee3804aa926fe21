/* SPDX-License-Identifier: MIT */
/* Shared memory across processes, on a memfd and on a hugetlb memfd (2 MiB
 * pages, reserved by the test): a fork child maps the same file (its writes
 * are seen by the parent's registered mapping, without a fault; its own
 * mapping is unregistered without EVENT_FORK, registered to the new uffd
 * with it, where a COPY through the child's uffd is seen by the parent);
 * and a uffd passed to a monitor process with SCM_RIGHTS, whose COPY into
 * the client's mapping of a memfd lands in the file. */
#include "t.h"
#include <sys/wait.h>

#define NPAGES 8

static size_t ps;		/* the memory's page: 4 KiB or 2 MiB */
static int g_huge;		/* hugetlb memfds */

/* COPY of one page (ps bytes) of `byte`. */
static int copy_unit(int fd, void *dst, int byte)
{
	char *buf = malloc(ps);
	int r, e;

	T_REQUIRE(buf);
	memset(buf, byte, ps);
	r = t_copy(fd, dst, buf, ps, 0, NULL);
	e = errno;
	free(buf);
	errno = e;
	return r;
}

/* An access to addr faults (one message, the page's address), and a COPY
 * of `byte` resolves it.  1 if all went so. */
static int expect_fault(int fd, char *addr, int write, int byte)
{
	char *page = (char *)((uintptr_t)addr & ~(uintptr_t)(ps - 1));
	struct t_touch t;
	struct uffd_msg m;
	int ok = 1;

	t_touch_start(&t, addr, write, (char)byte);
	if (T_MSG(fd, &m, 3000))
		CHECK_FAULT(&m, page, write ? UFFD_PAGEFAULT_FLAG_WRITE : 0);
	else
		ok = 0;
	CHECK_EQ(copy_unit(fd, page, byte), 0);
	CHECK(t_touch_wait(&t, 3000));
	CHECK_EQ(t.val, (char)byte);
	return ok && t.val == (char)byte;
}

/* Wait for a child; 1 if it exited 0. */
static int child_ok(pid_t pid)
{
	int st = 0;

	if (waitpid(pid, &st, 0) != pid)
		return 0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fprintf(stderr, "child status %#x\n", st);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static char *map_file(int *mfd)
{
	char *p;

	*mfd = memfd_create("uf-shmem-procs", MFD_CLOEXEC | (g_huge ? MFD_HUGETLB : 0));
	T_REQUIRE(*mfd >= 0);
	T_REQUIRE(ftruncate(*mfd, (off_t)(NPAGES * ps)) == 0);
	p = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE, MAP_SHARED, *mfd, 0);
	T_REQUIRE(p != MAP_FAILED);
	return p;
}

/* Without EVENT_FORK: the child's mapping is unregistered (missing pages
 * read as zero there, which makes them present for the parent too). */
static void fork_plain(int anon)
{
	int fd = t_uffd(0), mfd = -1;
	char *p = anon ? mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS | (g_huge ? MAP_HUGETLB : 0), -1, 0)
		       : map_file(&mfd);
	pid_t pid;

	T_REQUIRE(p != MAP_FAILED);
	if (anon && t_shared_anon_unreachable()) {
		T_NOTE("USERFAULT_SHARED_ANON=kernel without /proc/self/map_files: EINVAL (README)");
		CHECK_ERRNO(t_register(fd, p, NPAGES * ps), EINVAL);
		munmap(p, NPAGES * ps);
		close(fd);
		return;
	}
	CHECK_EQ(t_register(fd, p, NPAGES * ps), 0);
	CHECK(expect_fault(fd, p, 0, 0x61));
	pid = fork();
	T_REQUIRE(pid >= 0);
	if (pid == 0) {
		int bad = 0;
		t_child_watchdog(10);
		bad |= p[5] != 0x61;
		bad |= p[ps + 3] != 0;		/* missing: zero, no fault */
		p[2 * ps + 1] = 0x62;		/* a new page of the file */
		p[5] = 0x63;			/* seen by the parent */
		_exit(bad);
	}
	CHECK(child_ok(pid));
	CHECK_EQ(p[5], 0x63);
	T_EXPECT_NO_FAULT(fd, p + ps, 0, 0);
	T_EXPECT_NO_FAULT(fd, p + 2 * ps + 1, 0, 0x62);
	CHECK(expect_fault(fd, p + 3 * ps, 1, 0x64));
	T_NO_MSG(fd, 0);
	CHECK_EQ(t_unregister(fd, p, NPAGES * ps), 0);
	munmap(p, NPAGES * ps);
	if (mfd >= 0)
		close(mfd);
	close(fd);
}

static char *g_fork_page;
static pid_t g_fork_pid;

static void *forker(void *arg)
{
	char *p = g_fork_page;
	pid_t pid = fork();

	(void)arg;
	if (pid == 0) {
		int bad = 0;
		t_child_watchdog(10);
		bad |= p[9] != 0x71;
		bad |= p[4 * ps + 2] != 0x72;	/* faults to the child's uffd */
		_exit(bad);
	}
	g_fork_pid = pid;
	return NULL;
}

/* With EVENT_FORK: the child's mapping is registered to the new uffd; a
 * COPY through it puts the page into the file the parent maps too. */
static void fork_event(void)
{
	int fd = t_uffd(UFFD_FEATURE_EVENT_FORK), mfd, cfd;
	char *p = map_file(&mfd);
	struct uffd_msg m;
	pid_t pid;

	pthread_t th;

	CHECK_EQ(t_register(fd, p, NPAGES * ps), 0);
	CHECK(expect_fault(fd, p, 0, 0x71));
	/* The fork waits until its event is read: fork in a thread. */
	g_fork_page = p;
	th = t_thread(forker, NULL);
	T_REQUIRE(T_MSG(fd, &m, 2000));
	CHECK_EQ(m.event, UFFD_EVENT_FORK);
	cfd = (int)m.arg.fork.ufd;
	T_REQUIRE(cfd >= 0);
	if (T_MSG(cfd, &m, 3000)) {
		CHECK_FAULT(&m, p + 4 * ps, 0);
		CHECK_EQ(copy_unit(cfd, p + 4 * ps, 0x72), 0);
	}
	t_join(th);
	pid = g_fork_pid;
	T_REQUIRE(pid > 0);
	CHECK(child_ok(pid));
	/* The child's COPY went into the file: present here, no fault. */
	T_EXPECT_NO_FAULT(fd, p + 4 * ps + 7, 0, 0x72);
	T_NO_MSG(fd, 0);
	close(cfd);
	CHECK_EQ(t_unregister(fd, p, NPAGES * ps), 0);
	munmap(p, NPAGES * ps);
	close(mfd);
	close(fd);
}

/* A client registers its mapping of a memfd and passes the uffd to this
 * process, the monitor, which maps the same memfd. */
static void monitor(void)
{
	int sv[2], mfd, ufd;
	char *p = map_file(&mfd);
	struct uffd_msg m;
	pid_t pid;

	T_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	p[0] = 0x01;			/* present before the client registers */
	pid = fork();
	T_REQUIRE(pid >= 0);
	if (pid == 0) {
		int fd, bad = 0;
		char *q;
		t_child_watchdog(10);
		close(sv[0]);
		q = mmap(NULL, NPAGES * ps, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
		fd = uf_userfaultfd(O_CLOEXEC);
		if (q == MAP_FAILED || fd < 0 || t_api_fd(fd, 0) || t_register(fd, q, NPAGES * ps))
			_exit(2);
		t_send_fd(sv[1], fd);
		bad |= q[0] != 0x01;		/* present: no fault */
		bad |= q[3 * ps + 1] != 0x73;	/* served by the monitor */
		bad |= q[6 * ps] != 0x74;	/* made by the monitor's own write */
		_exit(bad);
	}
	close(sv[1]);
	ufd = t_recv_fd(sv[0], O_CLOEXEC);
	T_REQUIRE(ufd >= 0);
	p[6 * ps] = 0x74;		/* before the client gets there */
	if (T_MSG(ufd, &m, 3000)) {
		CHECK_FAULT(&m, (char *)(uintptr_t)m.arg.pagefault.address, 0);
		CHECK_EQ(m.arg.pagefault.address & (ps - 1), 0);
		CHECK_EQ(copy_unit(ufd, (void *)(uintptr_t)m.arg.pagefault.address, 0x73), 0);
	}
	CHECK(child_ok(pid));
	CHECK_EQ(p[3 * ps + 5], 0x73);
	close(ufd);
	close(sv[0]);
	munmap(p, NPAGES * ps);
	close(mfd);
}

/* As an ordinary user (no /proc/self/map_files), shared anonymous memory
 * across fork, on both back-ends. */
static void as_user(void)
{
	CHECK(!t_map_files_ok());
	fork_plain(1);
}

int main(void)
{
	t_start(90);
	if (t_features() & UFFD_FEATURE_MISSING_SHMEM) {
		ps = (size_t)t_ps;
		fork_plain(0);
		fork_plain(1);
		fork_event();
		monitor();
		t_as_user("shared anonymous memory across fork", as_user);
	} else {
		T_NOTE("no UFFD_FEATURE_MISSING_SHMEM here: the memfd part is skipped, hugetlb runs");
	}
	/* The same on 2 MiB huge pages. */
	T_REQUIRE(t_features() & UFFD_FEATURE_MISSING_HUGETLBFS);
	t_need_hugepages(4L * NPAGES);
	g_huge = 1;
	ps = (size_t)2 << 20;
	fork_plain(0);
	fork_plain(1);
	fork_event();
	monitor();
	t_as_user("shared anonymous huge pages across fork", as_user);
	return t_done();
}
