/* SPDX-License-Identifier: MIT */
/* A program that closes every descriptor it did not open (close_range,
 * closefrom, a loop over /proc/self/fd) after making and registering a
 * uffd: it keeps only its uffd, opens files of its own, and goes on.
 * Faults are still served, poll on the uffd reports messages (no POLLHUP),
 * and none of the program's new files gains a byte (the emulation's own
 * descriptors stay open, so their numbers never come to name them). */
#include "t.h"

#include <dirent.h>
#include <sys/stat.h>

static void close_all_but(int keep)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int fds[4096], n = 0;

	T_REQUIRE(d);
	while ((e = readdir(d)) && n < 4096) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] != '.' && fd > 2 && fd != keep && fd != dirfd(d))
			fds[n++] = fd;
	}
	closedir(d);
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

int main(void)
{
	struct t_handler h;
	int fd, files[16];
	char *p;

	t_start(30);
	fd = t_uffd(0);
	p = t_map_reg(fd, 8);
	CHECK_EQ(t_copy_byte(fd, p, 0x11, 1, 0), 0);
	/* The three ways a daemon closes what it did not open. */
	CHECK_EQ(close_range(3, (unsigned)fd - 1, 0) == 0 || fd == 3, 1);
	CHECK_EQ(close_range((unsigned)fd + 1, ~0U, 0), 0);
	closefrom(fd + 1);
	close_all_but(fd);
	/* Files of its own, at whatever numbers are free now. */
	for (int i = 0; i < 16; i++) {
		files[i] = open("/tmp", O_TMPFILE | O_RDWR, 0600);
		T_REQUIRE(files[i] >= 0);
	}
	t_handler_start(&h, fd, 1);
	for (int i = 1; i < 8; i++)
		CHECK_EQ(*(uint64_t *)(p + (size_t)i * (size_t)t_ps), (uint64_t)(uintptr_t)(p + (size_t)i * (size_t)t_ps));
	CHECK_EQ(p[0], 0x11);
	t_handler_stop(&h);
	CHECK_EQ(h.errors, 0);
	CHECK_EQ(h.msgs, 7);
	for (int i = 0; i < 16; i++) {
		struct stat st;
		CHECK_EQ(fstat(files[i], &st), 0);
		CHECK_EQ(st.st_size, 0);	/* nothing of ours went into it */
		close(files[i]);
	}
	uf_close(fd);
	return t_done();
}
