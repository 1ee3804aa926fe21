/* SPDX-License-Identifier: MIT */
/* The number of uffds a process holds is bounded by its descriptor limit
 * (RLIMIT_NOFILE), not by a table: with a limit of 2048, uffds are made
 * until userfaultfd() fails, with EMFILE as on the kernel, when (almost) no
 * descriptor is left; there are then more than 256 (the emulation spends
 * three descriptors per uffd, the kernel one).  The last one works.  The
 * difference, as the README's compatibility table says: the emulation
 * needs a descriptor per registered piece, so with none left its REGISTER
 * fails with ENOMEM (the kernel's needs none); once one uffd is closed it
 * succeeds.  Closing them all lets a new one be made. */
#include "t.h"
#include <sys/resource.h>

#define LIMIT 2048

/* Descriptors still free under the limit (each taken, then given back). */
static int free_fds(void)
{
	int fds[LIMIT], n = 0;

	while (n < LIMIT && (fds[n] = dup(2)) >= 0)
		n++;
	for (int i = 0; i < n; i++)
		close(fds[i]);
	return n;
}

int main(void)
{
	static int fd[LIMIT];
	struct rlimit old, rl;
	int n = 0, err = 0;
	char *p;

	t_start(60);
	T_REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
	if (old.rlim_max < LIMIT)
		T_SKIP_TEST("the hard descriptor limit is %lu, under %d\n", (unsigned long)old.rlim_max, LIMIT);
	rl.rlim_cur = LIMIT;
	rl.rlim_max = old.rlim_max;
	T_REQUIRE(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	p = t_map(1);
	for (;;) {
		int f = uf_userfaultfd(O_CLOEXEC | O_NONBLOCK);
		if (f < 0) {
			err = errno;
			break;
		}
		T_REQUIRE(n < LIMIT);
		fd[n++] = f;
	}
	fprintf(stderr, "%d uffds, then %s\n", n, t_errname(err));
	CHECK_EQ(err, EMFILE);
	CHECK(n > 256);
	CHECK(free_fds() < 3);
	/* The last one is a working uffd. */
	CHECK_OK(t_api_fd(fd[n - 1], 0));
	if (t_emulated()) {
		CHECK_ERRNO(t_register(fd[n - 1], p, (size_t)t_ps), ENOMEM);
		CHECK_OK(uf_close(fd[0]));
		fd[0] = -1;
	}
	CHECK_OK(t_register(fd[n - 1], p, (size_t)t_ps));
	T_EXPECT_FAULT(fd[n - 1], p + 5, 0, 0x42);
	for (int i = 0; i < n; i++)
		if (fd[i] >= 0)
			CHECK_OK(uf_close(fd[i]));
	{
		int f = t_uffd(0);
		CHECK(f >= 0);
		CHECK_OK(uf_close(f));
	}
	munmap(p, (size_t)t_ps);
	T_REQUIRE(setrlimit(RLIMIT_NOFILE, &old) == 0);
	return t_done();
}
