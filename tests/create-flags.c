/* SPDX-License-Identifier: MIT */
/* userfaultfd(2) creation flags: O_CLOEXEC / O_NONBLOCK / UFFD_USER_MODE_ONLY
 * and their combinations work and show up in F_GETFD / F_GETFL (O_RDONLY);
 * any other bit is EINVAL; write() on the descriptor is EBADF, pread() ESPIPE,
 * mmap() ENODEV. */
#include "t.h"

static void check_flags(int flags)
{
	int fd = uf_userfaultfd(flags);
	char c = 0;

	CHECK(fd >= 0);
	if (fd < 0) {
		fprintf(stderr, "  (flags %#x: %s)\n", flags, t_errname(errno));
		return;
	}
	CHECK_EQ(!!(fcntl(fd, F_GETFD) & FD_CLOEXEC), !!(flags & O_CLOEXEC));
	CHECK_EQ(!!(fcntl(fd, F_GETFL) & O_NONBLOCK), !!(flags & O_NONBLOCK));
	CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	CHECK_ERRNO(write(fd, &c, 1), EBADF);
	CHECK_EQ(t_api_fd(fd, 0), 0);
	CHECK_ERRNO(write(fd, &c, 1), EBADF);
	{
		struct uffd_msg m;
		void *map;

		CHECK_ERRNO(pread(fd, &m, sizeof m, 0), ESPIPE);
		map = mmap(NULL, (size_t)t_ps, PROT_READ, MAP_PRIVATE, fd, 0);
		CHECK(map == MAP_FAILED);
		CHECK_EQ(map == MAP_FAILED ? errno : 0, ENODEV);
	}
	CHECK_EQ(uf_close(fd), 0);
}

int main(void)
{
	static const int good[] = {
		0, O_CLOEXEC, O_NONBLOCK, UFFD_USER_MODE_ONLY,
		O_CLOEXEC | O_NONBLOCK, O_CLOEXEC | UFFD_USER_MODE_ONLY,
		O_NONBLOCK | UFFD_USER_MODE_ONLY,
		O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY,
	};
	static const int bad[] = {
		O_RDWR, 4, 8, O_CREAT, O_APPEND, O_DIRECT,
		O_NONBLOCK | O_RDWR, UFFD_USER_MODE_ONLY | 2,
		O_CLOEXEC | 0x40000000, (int)0x80000000u, -1,
	};

	t_start(20);
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		check_flags(good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_ERRNO(uf_userfaultfd(bad[i]), EINVAL);
		if (errno != EINVAL)
			fprintf(stderr, "  (flags %#x)\n", bad[i]);
	}
	return t_done();
}
