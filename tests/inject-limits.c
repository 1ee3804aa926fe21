/* SPDX-License-Identifier: MIT */
/*
 * inject-limits: the system says no inside the emulation.
 *
 *  - No descriptor left (RLIMIT_NOFILE): creating a uffd fails with EMFILE
 *    on both back-ends.  REGISTER needs a memfd on the emulation (not on the
 *    kernel): there it fails with ENOMEM (the kernel's REGISTER answer when
 *    it cannot allocate; EMFILE is none of its), the range stays
 *    unregistered with its bytes, and works once a descriptor is free
 *    again.
 *  - No address space left (RLIMIT_AS): REGISTER with guard markers maps
 *    the range a second time: ENOMEM, the range intact and unregistered;
 *    the kernel, and the emulation without markers, register.
 * Nothing crashes, nothing is lost, and the errno says why.
 */
#include "t.h"
#include <sys/resource.h>

#define PAGES 64

static void fill(char *p, size_t pages, int salt)
{
	for (size_t i = 0; i < pages * (size_t)t_ps; i++)
		p[i] = (char)(i * 7 + (size_t)salt);
}

static int same(const char *p, size_t pages, int salt)
{
	for (size_t i = 0; i < pages * (size_t)t_ps; i++)
		if (p[i] != (char)(i * 7 + (size_t)salt))
			return 0;
	return 1;
}

/* Use up every descriptor; returns how many were taken (closed by
 * release_fds). */
static int g_taken[4096], g_ntaken;
static void take_all_fds(void)
{
	int fd;
	while (g_ntaken < 4096 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		g_taken[g_ntaken++] = fd;
}

static void release_fds(void)
{
	while (g_ntaken)
		close(g_taken[--g_ntaken]);
}

static void no_descriptors(void)
{
	struct rlimit old, lim;
	int fd, fd2, r, err;
	char *p;

	fd = t_uffd(0);
	p = t_map(PAGES);
	fill(p, PAGES, 1);
	T_REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
	lim = old;
	lim.rlim_cur = 256;
	T_REQUIRE(setrlimit(RLIMIT_NOFILE, &lim) == 0);
	take_all_fds();

	/* A new uffd: EMFILE everywhere. */
	errno = 0;
	fd2 = uf_userfaultfd(O_CLOEXEC | O_NONBLOCK);
	CHECK_EQ(fd2, -1);
	CHECK_EQ(errno, EMFILE);

	errno = 0;
	r = t_register(fd, p, PAGES * (size_t)t_ps);
	err = errno;
	if (t_emulated()) {
		CHECK_EQ(r, -1);
		CHECK_EQ(err, ENOMEM);
	} else {
		CHECK_EQ(r, 0);
	}
	release_fds();
	T_REQUIRE(setrlimit(RLIMIT_NOFILE, &old) == 0);
	if (r == 0) {
		/* Kernel: registered.  Its pages are present: no fault. */
		CHECK(same(p, PAGES, 1));
		CHECK_EQ(t_unregister(fd, p, PAGES * (size_t)t_ps), 0);
	} else {
		/* Not registered: the bytes are there, and a second try works. */
		CHECK(same(p, PAGES, 1));
		CHECK_EQ(t_unregister(fd, p, PAGES * (size_t)t_ps), 0);
		CHECK_EQ(t_register(fd, p, PAGES * (size_t)t_ps), 0);
		CHECK(same(p, PAGES, 1));
		CHECK_EQ(t_unregister(fd, p, PAGES * (size_t)t_ps), 0);
	}
	munmap(p, PAGES * (size_t)t_ps);
	uf_close(fd);
}

/* Does the emulation use guard markers (not turned off for the test)? */
static int markers(void)
{
	struct uf_probe pr;
	const char *v = getenv("USERFAULT_GUARD_MARKERS");
	if (v && !strcmp(v, "0"))
		return 0;
	return uf_probe(&pr) == 0 && pr.guard_markers;
}

static void no_address_space(void)
{
	struct rlimit old, lim;
	int fd, r, err;
	char *p;
	size_t big = 256 * (size_t)t_ps * 1024;	/* 1 GiB with 4 KiB pages */

	fd = t_uffd(0);
	p = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	T_REQUIRE(p != MAP_FAILED);
	fill(p, PAGES, 2);
	T_REQUIRE(getrlimit(RLIMIT_AS, &old) == 0);
	lim = old;
	/* Room for what is mapped now, but not for a second copy of the
	 * range, which the emulation's conversion maps. */
	{
		FILE *f = fopen("/proc/self/status", "r");
		char line[256];
		unsigned long long vm_kb = 0;
		T_REQUIRE(f);
		while (fgets(line, sizeof line, f))
			if (sscanf(line, "VmSize: %llu kB", &vm_kb) == 1)
				break;
		fclose(f);
		T_REQUIRE(vm_kb > 0);
		lim.rlim_cur = vm_kb * 1024 + big / 2;
	}
	T_REQUIRE(setrlimit(RLIMIT_AS, &lim) == 0);
	errno = 0;
	r = t_register(fd, p, big);
	err = errno;
	T_REQUIRE(setrlimit(RLIMIT_AS, &old) == 0);
	if (t_emulated() && markers()) {
		/* The conversion maps the range a second time. */
		CHECK_EQ(r, -1);
		CHECK_EQ(err, ENOMEM);
	} else {
		/* The kernel, and the emulation without markers (it protects
		 * the range in place), need no room. */
		CHECK_EQ(r, 0);
	}
	CHECK(same(p, PAGES, 2));
	/* Unregistered (or registered and present): nothing faults, and a
	 * missing page of a failed registration reads zero. */
	CHECK_EQ(t_unregister(fd, p, big), 0);
	CHECK_EQ(p[big - 1], 0);
	CHECK(same(p, PAGES, 2));
	munmap(p, big);
	uf_close(fd);
}

int main(void)
{
	t_start(60);
	no_descriptors();
	no_address_space();
	return t_done();
}
