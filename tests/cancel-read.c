/* SPDX-License-Identifier: MIT */
/* pthread_cancel ends a thread blocked in uf_read() on a blocking uffd with
 * nothing to read, as the kernel's read() is a cancellation point (the
 * kernel's selftests stop their readers so; examples/cancel-read does it
 * through the drop-in). */
#include "t.h"

static void *reader(void *arg)
{
	struct uffd_msg m;

	for (;;)
		if (uf_read((int)(intptr_t)arg, &m, sizeof m) < 0 && errno != EINTR)
			return NULL;
}

int main(void)
{
	pthread_t t;
	void *r;
	int fd;

	t_start(20);
	fd = t_uffd_flags(O_CLOEXEC, 0);	/* blocking */
	char *p = t_map_reg(fd, 2);	/* something registered */

	t = t_thread(reader, (void *)(intptr_t)fd);
	t_msleep(50);
	CHECK_EQ(pthread_cancel(t), 0);
	CHECK_EQ(pthread_join(t, &r), 0);
	CHECK(r == PTHREAD_CANCELED);
	t_unmap_reg(fd, p, 2);
	uf_close(fd);
	return t_done();
}
