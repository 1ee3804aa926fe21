/* SPDX-License-Identifier: MIT */
/*
 * inthread.c - faults resolved inside the faulting thread: the in-thread
 * pager (uf_pager_open) on either back-end, and UFFD_FEATURE_SIGBUS with the
 * program's own SIGBUS handler doing UFFDIO_COPY, which on the kernel
 * back-end is the kernel's own in-thread mode.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <userfault.h>
#include "bench.h"

static char g_src[1 << 16] __attribute__((aligned(4096)));
static int g_uffd = -1;
static size_t g_ps;
static _Atomic long g_sigbus_err;

/* async-signal-safe */
static int pager(const struct uf_pager_fault *f, void *arg)
{
	(void)arg;
	return uf_pager_copy(f->uffd, f->page, g_src, g_ps);
}

/* async-signal-safe */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	struct uffdio_copy c;
	int saved = errno;

	(void)sig;
	(void)uc;
	c.dst = (uintptr_t)si->si_addr & ~(uintptr_t)(g_ps - 1);
	c.src = (uintptr_t)g_src;
	c.len = g_ps;
	c.mode = 0;
	c.copy = 0;
	if (uf_ioctl(g_uffd, UFFDIO_COPY, &c) < 0 && errno != EEXIST) {
		atomic_store(&g_sigbus_err, errno);
		/* Give up on this page: make it plain memory so the access ends
		 * (should that fail too, the access faults again: a new try). */
		/* cppcheck-suppress leakReturnValNotUsed ; MAP_FIXED, at c.dst */
		(void)mmap((void *)(uintptr_t)c.dst, g_ps, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	}
	errno = saved;
}

static int sigbus_setup(size_t len, char *region, struct sigaction *old)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_SIGBUS };
	struct uffdio_register reg = { .range = { (uintptr_t)region, len },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct sigaction sa;

	g_uffd = uf_userfaultfd(O_CLOEXEC | O_NONBLOCK);
	if (g_uffd < 0)
		return -errno;
	if (uf_ioctl(g_uffd, UFFDIO_API, &api) < 0 || uf_ioctl(g_uffd, UFFDIO_REGISTER, &reg) < 0)
		return -errno;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, old) < 0)
		return -errno;
	return 0;
}

int bench_inthread(int target, int how, long faults, double *ns)
{
	size_t len;
	char *region;
	struct sigaction old;
	int r, have_old = 0;
	uint64_t t0, t1;

	g_ps = (size_t)sysconf(_SC_PAGESIZE);
	memset(g_src, 0x6b, sizeof g_src);
	len = (size_t)faults * g_ps;
	region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		return -errno;
	if ((r = uf_set_backend((enum uf_backend)target)) < 0)
		goto out;
	if (how == INT_PAGER) {
		g_uffd = uf_pager_open(pager, NULL);
		if (g_uffd < 0) {
			r = g_uffd;
			g_uffd = -1;
			goto out;
		}
		if ((r = uf_pager_register(g_uffd, region, len)) < 0)
			goto out;
	} else {
		if ((r = sigbus_setup(len, region, &old)) < 0)
			goto out;
		have_old = 1;
	}
	atomic_store(&g_sigbus_err, 0);
	t0 = bench_now_ns();
	for (long i = 0; i < faults; i++)
		(void)*(volatile char *)(region + (size_t)i * g_ps);
	t1 = bench_now_ns();
	*ns = (double)(t1 - t0) / (double)faults;
	if (atomic_load(&g_sigbus_err))
		r = -(int)atomic_load(&g_sigbus_err);
	else if (region[(size_t)(faults - 1) * g_ps] != 0x6b)
		r = -EIO;	/* the page did not come from the handler */
out:
	if (have_old)
		sigaction(SIGBUS, &old, NULL);
	if (g_uffd >= 0) {
		if (how == INT_PAGER)
			uf_pager_close(g_uffd);
		else
			uf_close(g_uffd);
	}
	g_uffd = -1;
	munmap(region, len);
	return r;
}
