/* SPDX-License-Identifier: MIT */
/* /dev/userfaultfd: USERFAULTFD_IOC_NEW creates a working uffd with the given
 * flags; bad flags are EINVAL; high bits of the argument are ignored; any
 * other ioctl on the device descriptor is EINVAL, but for those the VFS
 * answers for any file (FIONBIO, FIOCLEX, FIONCLEX, FIOASYNC); the open
 * flags count: read() is EBADF on a descriptor opened O_WRONLY, EINVAL
 * otherwise, O_NONBLOCK shows in F_GETFL; poll() finds it always ready. */
#include "t.h"

#include <sys/ioctl.h>

int main(void)
{
	int dev, fd, fd2;
	char *p;

	t_start(20);
	dev = uf_open_dev(O_RDWR | O_CLOEXEC);
	if (dev < 0 && errno == ENOENT)
		T_SKIP_TEST("no /dev/userfaultfd on this machine");
	T_REQUIRE(dev >= 0);

	/* Bad flags. */
	CHECK_ERRNO(uf_ioctl(dev, USERFAULTFD_IOC_NEW, 2UL), EINVAL);
	CHECK_ERRNO(uf_ioctl(dev, USERFAULTFD_IOC_NEW, 4UL), EINVAL);
	CHECK_ERRNO(uf_ioctl(dev, USERFAULTFD_IOC_NEW, (unsigned long)O_RDWR), EINVAL);
	CHECK_ERRNO(uf_ioctl(dev, USERFAULTFD_IOC_NEW,
			     (unsigned long)(O_NONBLOCK | 0x40000000)), EINVAL);

	/* The ioctls the VFS answers for any file. */
	{
		int on = 1;

		CHECK_EQ(uf_ioctl(dev, FIONBIO, &on), 0);
		CHECK(fcntl(dev, F_GETFL) & O_NONBLOCK);
		on = 0;
		CHECK_EQ(uf_ioctl(dev, FIONBIO, &on), 0);
		CHECK(!(fcntl(dev, F_GETFL) & O_NONBLOCK));
		CHECK_EQ(uf_ioctl(dev, FIONCLEX, 0UL), 0);
		CHECK_EQ(fcntl(dev, F_GETFD) & FD_CLOEXEC, 0);
		CHECK_EQ(uf_ioctl(dev, FIOCLEX, 0UL), 0);
		CHECK_EQ(fcntl(dev, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
		on = 1;
		CHECK_ERRNO(uf_ioctl(dev, FIOASYNC, &on), ENOTTY);
		CHECK_ERRNO(uf_ioctl(dev, FIONREAD, &on), EINVAL);
	}

	/* Other commands on the device. */
	{
		struct uffdio_api api = { .api = UFFD_API };

		CHECK_ERRNO(uf_ioctl(dev, UFFDIO_API, &api), EINVAL);
		CHECK_ERRNO(uf_ioctl(dev, _IO(USERFAULTFD_IOC, 0x01), 0UL), EINVAL);
		CHECK_ERRNO(uf_ioctl(dev, _IOW(USERFAULTFD_IOC, 0x00, int), 0UL), EINVAL);
	}

	/* High bits of the (by-value) argument are ignored. */
	fd2 = uf_ioctl(dev, USERFAULTFD_IOC_NEW, (1UL << 32) | O_NONBLOCK);
	CHECK(fd2 >= 0);
	if (fd2 >= 0) {
		CHECK(fcntl(fd2, F_GETFL) & O_NONBLOCK);
		CHECK_EQ(uf_close(fd2), 0);
	}

	/* A good one: flags honoured, fully usable. */
	fd = uf_ioctl(dev, USERFAULTFD_IOC_NEW, (unsigned long)(O_CLOEXEC | O_NONBLOCK));
	T_REQUIRE(fd >= 0);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
	fd2 = uf_ioctl(dev, USERFAULTFD_IOC_NEW, 0UL);
	CHECK(fd2 >= 0);
	if (fd2 >= 0) {
		CHECK(!(fcntl(fd2, F_GETFD) & FD_CLOEXEC));
		CHECK(!(fcntl(fd2, F_GETFL) & O_NONBLOCK));
		CHECK_EQ(uf_close(fd2), 0);
	}
	/* Closing the device does not affect the uffds made from it. */
	CHECK_EQ(uf_close(dev), 0);
	CHECK_EQ(t_api_fd(fd, 0), 0);
	p = t_map_reg(fd, 2);
	T_EXPECT_FAULT(fd, p + 5, 0, 0x3c);
	T_EXPECT_FAULT(fd, p + t_ps + 7, 1, 0x4d);
	CHECK_EQ(p[5], 0x3c);
	CHECK_EQ(p[t_ps + 7], 0x4d);
	CHECK_EQ(uf_close(fd), 0);

	/* The open flags: the access mode decides read() (EINVAL where the
	 * device could be read, which it cannot, else EBADF); O_NONBLOCK
	 * shows; poll() always finds it ready (no poll method); USERFAULTFD_IOC_NEW
	 * works whatever the mode.  open(2)'s own checks for a device file. */
	{
		static const int modes[4] = { O_RDONLY, O_WRONLY, O_RDWR, O_RDWR | O_NONBLOCK };
		static const int rerr[4] = { EINVAL, EBADF, EINVAL, EINVAL };
		char b[64];

		for (int i = 0; i < 4; i++) {
			int d = uf_open_dev(modes[i] | O_CLOEXEC), u;
			struct pollfd pfd = { .events = POLLIN };

			T_REQUIRE(d >= 0);
			CHECK_ERRNO(uf_read(d, b, sizeof b), rerr[i]);
			CHECK_EQ(fcntl(d, F_GETFL) & O_NONBLOCK, modes[i] & O_NONBLOCK);
			pfd.fd = d;
			CHECK_EQ(poll(&pfd, 1, 0), 1);
			CHECK_EQ(pfd.revents, POLLIN);
			u = uf_ioctl(d, USERFAULTFD_IOC_NEW, (unsigned long)O_CLOEXEC);
			CHECK(u >= 0);
			if (u >= 0)
				CHECK_EQ(uf_close(u), 0);
			CHECK_EQ(uf_close(d), 0);
		}
		CHECK_ERRNO(uf_open_dev(O_RDWR | O_CLOEXEC | O_DIRECTORY), ENOTDIR);
		CHECK_ERRNO(uf_open_dev(O_RDWR | O_CLOEXEC | O_CREAT | O_EXCL), EEXIST);
		CHECK_ERRNO(uf_open_dev(O_RDWR | O_CLOEXEC | O_DIRECT), EINVAL);
	}

	/* Opening and closing the device (and a uffd from it) many times
	 * leaks nothing: no EMFILE after a few hundred rounds. */
	for (int i = 0; i < 300; i++) {
		int d = uf_open_dev(O_RDWR | O_CLOEXEC), u;

		if (d < 0) {
			CHECK_OK(d);
			break;
		}
		u = uf_ioctl(d, USERFAULTFD_IOC_NEW, (unsigned long)O_CLOEXEC);
		if (u < 0) {
			CHECK_OK(u);
			uf_close(d);
			break;
		}
		uf_close(u);
		uf_close(d);
	}
	t_count();
	return t_done();
}
