/* SPDX-License-Identifier: MIT */
/* Back-end selection: uf_get_backend() is the one asked for by
 * USERFAULT_EXPECT_BACKEND (set by the runner's seccomp pass, where the kernel
 * userfaultfd is blocked and "auto" must pick the emulation, surviving even a
 * filter that kills on the system call), else by USERFAULT_BACKEND when that
 * names one; and a uffd made now works end to end. */
#include "t.h"

int main(void)
{
	const char *expect = getenv("USERFAULT_EXPECT_BACKEND");
	const char *forced = getenv("USERFAULT_BACKEND");
	const char *name;
	struct uf_probe pr;
	int fd;
	char *p;

	/* Before t_start(), which skips when the kernel back-end is chosen
	 * but the kernel has no userfaultfd: here that is a failure. */
	name = uf_backend_name(uf_get_backend());
	T_REQUIRE(name != NULL);
	if (uf_probe(&pr) == 0)
		fprintf(stderr, "probe: syscall_errno %d killed %d dev_errno %d kernel_usable %d "
			"emulated_usable %d auto_choice %s\n", pr.syscall_errno,
			pr.syscall_killed, pr.dev_errno, pr.kernel_usable,
			pr.emulated_usable, uf_backend_name(pr.auto_choice));
	if (!expect && forced && strcmp(forced, "auto") != 0)
		expect = forced;
	t_count();
	if (expect && strcmp(name, expect) != 0)
		t_fail(__FILE__, __LINE__, "back-end: expected %s, got %s", expect, name);
	CHECK(strcmp(name, "kernel") == 0 || strcmp(name, "emulated") == 0);
	/* Stable. */
	CHECK_EQ(uf_get_backend(), uf_get_backend());
	if (t_failures)
		return t_done();
	t_start(20);

	fd = t_uffd(0);
	p = t_map_reg(fd, 1);
	T_EXPECT_FAULT(fd, p + 1, 1, 0x2e);
	CHECK_EQ(p[0], 0x2e);
	CHECK_EQ(uf_close(fd), 0);
	return t_done();
}
