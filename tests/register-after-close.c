/* SPDX-License-Identifier: MIT */
/* A uffd whose last descriptor went with a child that has just exited is
 * gone: another uffd may register its range at once, as on the kernel
 * (the emulation sees such a release on its watcher thread, which may not
 * have run yet; REGISTER must not say EBUSY meanwhile).  The kernel's old
 * selftest does this between its signal and events parts. */
#include "t.h"

#include <sys/wait.h>

int main(void)
{
	char *p;

	t_start(60);
	p = t_map(4);
	for (int i = 0; i < 40; i++) {
		int fd = t_uffd(0), fd2, st;
		pid_t pid;

		T_REQUIRE(t_register(fd, p, 4 * (size_t)t_ps) == 0);
		pid = fork();
		T_REQUIRE(pid >= 0);
		if (pid == 0) {
			t_msleep(5);	/* holds its copy of the uffd a moment */
			_exit(0);
		}
		uf_close(fd);		/* the child's copy is the last */
		T_REQUIRE(waitpid(pid, &st, 0) == pid);
		fd2 = t_uffd(0);
		CHECK_EQ(t_register(fd2, p, 4 * (size_t)t_ps), 0);
		CHECK_EQ(t_unregister(fd2, p, 4 * (size_t)t_ps), 0);
		uf_close(fd2);
	}
	return t_done();
}
