/* cancel-read: pthread_cancel ends a thread blocked in read() on a uffd, and on a plain pipe, as the kernel's read is a cancellation point. */
/*
 * SPDX-License-Identifier: MIT
 *
 * Raw kernel ABI only.  The kernel's selftests stop their reader threads
 * this way (pthread_cancel, then pthread_join): a read() that could not be
 * cancelled would leave the program waiting in pthread_join for ever.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <userfault/uapi.h>	/* our copy of <linux/userfaultfd.h> */

static void *reader(void *arg)
{
	char buf[sizeof(struct uffd_msg)];

	for (;;)
		if (read(*(int *)arg, buf, sizeof buf) < 0)
			return NULL;
}

static int cancel_reader(int fd)
{
	pthread_t t;
	void *r;

	pthread_create(&t, NULL, reader, &fd);
	nanosleep(&(struct timespec){ 0, 50000000L }, NULL);	/* blocked in read() by now */
	pthread_cancel(t);
	pthread_join(t, &r);
	return r == PTHREAD_CANCELED;
}

int main(void)
{
	int p[2];
	int uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC);	/* blocking */
	struct uffdio_api api = { .api = UFFD_API };

	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0) {
		perror("userfaultfd");
		return 1;
	}
	printf("uffd reader cancelled: %s\n", cancel_reader(uffd) ? "yes" : "no");
	if (pipe(p) < 0)
		return 1;
	printf("pipe reader cancelled: %s\n", cancel_reader(p[0]) ? "yes" : "no");
	close(p[0]);
	close(p[1]);
	close(uffd);
	return 0;
}
