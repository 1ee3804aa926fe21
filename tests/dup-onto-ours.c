/* SPDX-License-Identifier: MIT */
/* A program that dup2()s or dup3()s its own files onto descriptor numbers
 * it did not open (it believes them free): on the emulation those are the
 * emulation's own (the pipe's write end, the memfd, the listening socket,
 * the watcher's epoll).  The program gets each number with its file; the
 * uffd goes on: faults are served with the right data, poll reports
 * messages, and closing the uffd still releases it (a waiting thread gets
 * a zero page: the watcher saw the release through its moved epoll).  None
 * of the program's files gains a byte or is closed under it. */
#include "t.h"

#include <dirent.h>
#include <sys/stat.h>

#define MAXN 64

/* The open descriptors other than 0-2, keep and the directory's own. */
static int others(int keep, int *fds)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	T_REQUIRE(d);
	while ((e = readdir(d)) && n < MAXN) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] != '.' && fd > 2 && fd != keep && fd != dirfd(d))
			fds[n++] = fd;
	}
	closedir(d);
	return n;
}

int main(void)
{
	struct t_handler h;
	struct t_touch t;
	struct uffd_msg m;
	int fd, nums[MAXN], n;
	char *p;

	t_start(30);
	fd = t_uffd(0);
	p = t_map_reg(fd, 8);
	CHECK_EQ(t_copy_byte(fd, p, 0x11, 1, 0), 0);
	n = others(fd, nums);
	fprintf(stderr, "%d descriptors not opened by the program\n", n);
	if (t_emulated())
		CHECK(n >= 3);	/* at least the write end, the memfd, the epoll */
	/* Its own files onto each of those numbers. */
	for (int i = 0; i < n; i++) {
		int f = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

		T_REQUIRE(f >= 0);
		if (i & 1)
			CHECK_EQ(dup3(f, nums[i], O_CLOEXEC), nums[i]);
		else
			CHECK_EQ(dup2(f, nums[i]), nums[i]);
		CHECK_OK(close(f));
	}
	/* Faults are served, with the right data. */
	t_handler_start(&h, fd, 1);
	for (int i = 1; i < 6; i++)
		CHECK_EQ(*(uint64_t *)(p + (size_t)i * (size_t)t_ps),
			 (uint64_t)(uintptr_t)(p + (size_t)i * (size_t)t_ps));
	CHECK_EQ(p[0], 0x11);
	t_handler_stop(&h);
	CHECK_EQ(h.errors, 0);
	CHECK_EQ(h.msgs, 5);
	/* A waiter, then the uffd closed with close(): it is released. */
	t_touch_start(&t, p + 6 * t_ps + 3, 0, 0);
	if (T_MSG(fd, &m, 2000))
		CHECK_FAULT(&m, p + 6 * t_ps, 0);
	CHECK_OK(close(fd));
	CHECK(t_touch_wait(&t, 3000));
	CHECK_EQ(t.val, 0);
	/* The program's files are where it put them, untouched. */
	for (int i = 0; i < n; i++) {
		struct stat st;
		CHECK_EQ(fstat(nums[i], &st), 0);
		CHECK(S_ISREG(st.st_mode));
		CHECK_EQ(st.st_size, 0);
		CHECK_OK(close(nums[i]));
	}
	/* A new uffd works. */
	fd = t_uffd(0);
	CHECK_OK(t_register(fd, p + 7 * t_ps, (size_t)t_ps));
	T_EXPECT_FAULT(fd, p + 7 * t_ps + 1, 1, 0x22);
	CHECK_OK(uf_close(fd));
	return t_done();
}
