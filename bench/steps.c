/* SPDX-License-Identifier: MIT */
/*
 * steps.c - the pieces a fault's round trip is made of, each timed alone on
 * this machine, so that the round trips of the two back-ends can be read
 * as sums: what the kernel does (an exception, the hand-off to the
 * handler thread, read, UFFDIO_COPY) and what the emulation adds (a signal
 * and its return, a readiness byte through a pipe, a futex hand-off, the
 * identity checks, the page written into a memfd, the guard marker removed,
 * the page table entry filled), and the emulation's system calls for a
 * round trip made alone, without the library.  Every step is the median-friendly mean of
 * `n` repetitions, in nanoseconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <userfault.h>
#include "bench.h"

/* The C library's own sigaction and raw madvise: the library linked into
 * this program interposes both (its handler chain, its checks of emulated
 * ranges), which would be timed too.  The steps run on the program's only
 * thread at the time, between cases: no emulated fault can happen while
 * our own handler is out of the way. */
/* NOLINTNEXTLINE(bugprone-reserved-identifier): glibc's own name for it */
extern int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);
static int raw_madvise(void *addr, size_t len, int advice)
{
	return (int)syscall(SYS_madvise, addr, len, advice);
}

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* ---- A signal: raised at the thread itself, an empty handler ---- */

static void empty_handler(int sig)
{
	(void)sig;
}

static int step_signal(long n, double *ns)
{
	struct sigaction sa, old;
	pid_t tid = (pid_t)syscall(SYS_gettid);
	uint64_t t0;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = empty_handler;
	if (__sigaction(SIGUSR2, &sa, &old) < 0)
		return -errno;
	t0 = bench_now_ns();
	for (long i = 0; i < n; i++)
		syscall(SYS_tgkill, getpid(), tid, SIGUSR2);
	*ns = (double)(bench_now_ns() - t0) / (double)n;
	__sigaction(SIGUSR2, &old, NULL);
	return 0;
}

/* ---- Page steps on one page of a memfd mapping ---- */

struct page {
	int fd;
	char *p;
	size_t ps;
};

/* 0, or a negative errno (and nothing left open). */
static int page_open(struct page *pg, size_t pages)
{
	void *p;
	int e;

	pg->ps = (size_t)sysconf(_SC_PAGESIZE);
	pg->p = NULL;
	pg->fd = memfd_create("userfault-steps", MFD_CLOEXEC);
	if (pg->fd < 0)
		return errno ? -errno : -EIO;
	if (ftruncate(pg->fd, (off_t)(pages * pg->ps)) < 0 ||
	    (p = mmap(NULL, pages * pg->ps, PROT_READ | PROT_WRITE, MAP_SHARED, pg->fd, 0)) == MAP_FAILED) {
		e = errno ? errno : EIO;
		close(pg->fd);
		return -e;
	}
	pg->p = p;
	return 0;
}

static void page_close(struct page *pg, size_t pages)
{
	munmap(pg->p, pages * pg->ps);
	close(pg->fd);
}

/* 4 KiB written into a memfd at a new offset each time (the page cache
 * page allocated and filled), as an emulated COPY installs its page. */
static int step_pwrite(long n, double *ns)
{
	int fd = memfd_create("userfault-steps", MFD_CLOEXEC);
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	char *buf = malloc(ps);
	uint64_t t0;
	int r = 0;

	if (fd < 0 || !buf) {
		r = fd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	memset(buf, 0x5a, ps);
	t0 = bench_now_ns();
	for (long i = 0; i < n; i++)
		if (pwrite(fd, buf, ps, (off_t)((size_t)i * ps)) != (ssize_t)ps) {
			r = -errno;
			goto out;
		}
	*ns = (double)(bench_now_ns() - t0) / (double)n;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return r;
}

enum { PG_GUARD_REMOVE, PG_POPULATE, PG_MINOR, PG_SEGV };

static struct page g_segv_page;

/* SIGSEGV on a guard marker: the handler removes the marker and returns
 * (the access then maps the page: a minor fault). */
static void segv_remove(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	raw_madvise((void *)((uintptr_t)si->si_addr & ~(uintptr_t)(g_segv_page.ps - 1)), g_segv_page.ps,
		    MADV_GUARD_REMOVE);
}

/* One page step, n times on one page whose file page exists: the time of
 * the step alone (the set-up of each repetition is not timed). */
static int step_page(int how, long n, double *ns)
{
	struct page pg;
	struct sigaction sa, old;
	uint64_t total = 0;
	int r;

	if ((r = page_open(&pg, 1)) < 0 || !pg.p)
		return r < 0 ? r : -EIO;
	pg.p[0] = 1;		/* the file page exists from now on */
	if (how == PG_SEGV) {
		g_segv_page = pg;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = segv_remove;
		sa.sa_flags = SA_SIGINFO;
		if (__sigaction(SIGSEGV, &sa, &old) < 0) {
			r = -errno;
			goto out;
		}
	}
	for (long i = 0; i < n; i++) {
		volatile char *c = pg.p;
		uint64_t t0;

		raw_madvise(pg.p, pg.ps, MADV_DONTNEED);	/* (keeps the file page) */
		if ((how == PG_GUARD_REMOVE || how == PG_SEGV) && raw_madvise(pg.p, pg.ps, MADV_GUARD_INSTALL) < 0) {
			r = -errno;
			break;
		}
		t0 = bench_now_ns();
		switch (how) {
		case PG_GUARD_REMOVE:
			r = raw_madvise(pg.p, pg.ps, MADV_GUARD_REMOVE);
			break;
		case PG_POPULATE:
			r = raw_madvise(pg.p, pg.ps, MADV_POPULATE_READ);
			break;
		case PG_MINOR:
		case PG_SEGV:
			(void)c[0];
			break;
		}
		total += bench_now_ns() - t0;
		if (r < 0) {
			r = -errno;
			break;
		}
	}
	*ns = (double)total / (double)n;
	if (how == PG_SEGV)
		__sigaction(SIGSEGV, &old, NULL);
out:
	page_close(&pg, 1);
	return r;
}

/* ---- Two threads on one CPU ---- */

struct pingpong {
	int how;
	long n;
	_Atomic uint32_t turn;	/* futex word: 0 the caller's turn, 1 the other's */
	int pipe[2];
	_Atomic int err;
};

static void futex_wait(_Atomic uint32_t *w, uint32_t val)
{
	syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

enum { PP_FUTEX, PP_PIPE };

/* The other thread: for PP_FUTEX, waits for its turn and gives it back;
 * for PP_PIPE, as a handler does: poll the pipe, drain it, wake the
 * writer by futex. */
static void *pp_other(void *arg)
{
	struct pingpong *pp = arg;

	for (long i = 0; i < pp->n; i++) {
		if (pp->how == PP_FUTEX) {
			while (atomic_load(&pp->turn) != 1)
				futex_wait(&pp->turn, 0);
		} else {
			struct pollfd pf = { .fd = pp->pipe[0], .events = POLLIN };
			char b[256];
			struct iovec iov = { b, sizeof b };
			if (poll(&pf, 1, -1) != 1 || preadv2(pp->pipe[0], &iov, 1, -1, RWF_NOWAIT) < 1) {
				atomic_store(&pp->err, EIO);
				return NULL;
			}
		}
		atomic_store(&pp->turn, 0);
		futex_wake(&pp->turn);
	}
	return NULL;
}

/* One hand-off there and back per repetition, both threads on the CPU this
 * one is on. */
static int step_pingpong(int how, long n, double *ns)
{
	struct pingpong pp = { .how = how, .n = n, .pipe = { -1, -1 } };
	cpu_set_t old_set;
	pthread_t th;
	uint64_t t0;
	int r, u;

	if ((r = bench_pin_here(&old_set)) < 0)
		return r;
	if (how == PP_PIPE && pipe2(pp.pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = -errno;
		goto out;
	}
	if (pthread_create(&th, NULL, pp_other, &pp)) {
		r = -EAGAIN;
		goto out;
	}
	t0 = bench_now_ns();
	for (long i = 0; i < n; i++) {
		atomic_store(&pp.turn, 1);
		if (how == PP_FUTEX)
			futex_wake(&pp.turn);
		else if (write(pp.pipe[1], "m", 1) != 1)
			atomic_store(&pp.err, errno);
		while (atomic_load(&pp.turn) != 0 && !atomic_load(&pp.err))
			futex_wait(&pp.turn, 1);
	}
	*ns = (double)(bench_now_ns() - t0) / (double)n;
	pthread_join(th, NULL);
	if (atomic_load(&pp.err))
		r = -atomic_load(&pp.err);
out:
	if (pp.pipe[0] >= 0) {
		close(pp.pipe[0]);
		close(pp.pipe[1]);
	}
	u = bench_unpin(&old_set);
	return r ? r : u;
}

/* ---- The emulated round trip's system calls, without the library ----
 *
 * The faulting thread reads pages of a memfd mapping under guard markers;
 * its SIGSEGV handler does what the emulation's does, and nothing else: a
 * readiness byte into a pipe (pwritev2 with RWF_NOSIGNAL where the kernel
 * takes it), a futex sleep until the page is there, MADV_POPULATE_READ,
 * return.  The handler thread: poll, the byte drained (preadv2 RWF_NOWAIT),
 * pwrite of the page into the memfd, MADV_GUARD_REMOVE, futex wake.  Both
 * threads on one CPU.  What this costs is the floor of the emulation's
 * design on this machine: the library's round trip minus this is its own
 * work (lookups, queue, messages, checks). */

struct emu_calls {
	struct page pg;
	long n;
	int pipe[2];
	int nosignal;		/* RWF_NOSIGNAL taken */
	char *src;
	_Atomic uint32_t state;	/* futex: 1 waiting, 2 installed */
	_Atomic uintptr_t addr;
	_Atomic int err;
};
static struct emu_calls *g_calls;

#ifndef RWF_NOSIGNAL
#define RWF_NOSIGNAL 0x00000100
#endif

static void calls_segv(int sig, siginfo_t *si, void *uc)
{
	struct emu_calls *ec = g_calls;
	uintptr_t a = (uintptr_t)si->si_addr & ~(uintptr_t)(ec->pg.ps - 1);
	struct iovec iov = { (void *)"m", 1 };

	(void)sig;
	(void)uc;
	atomic_store(&ec->addr, a);
	atomic_store(&ec->state, 1);
	if (ec->nosignal)
		syscall(SYS_pwritev2, ec->pipe[1], &iov, 1, -1L, -1L, RWF_NOSIGNAL);
	else if (write(ec->pipe[1], "m", 1) != 1)
		atomic_store(&ec->err, EIO);
	while (atomic_load(&ec->state) == 1 && !atomic_load(&ec->err))
		futex_wait(&ec->state, 1);
	raw_madvise((void *)a, ec->pg.ps, MADV_POPULATE_READ);
}

static void *calls_handler(void *arg)
{
	struct emu_calls *ec = arg;
	char b[256];

	for (long i = 0; i < ec->n; i++) {
		struct pollfd pf = { .fd = ec->pipe[0], .events = POLLIN };
		/* cppcheck-suppress legacyUninitvar ; b is where the call writes */
		struct iovec iov = { b, sizeof b };
		uintptr_t a;

		if (poll(&pf, 1, 10000) != 1 || syscall(SYS_preadv2, ec->pipe[0], &iov, 1, -1L, -1L, RWF_NOWAIT) < 1) {
			atomic_store(&ec->err, EIO);
			futex_wake(&ec->state);
			return NULL;
		}
		a = atomic_load(&ec->addr);
		if (pwrite(ec->pg.fd, ec->src, ec->pg.ps, (off_t)(a - (uintptr_t)ec->pg.p)) != (ssize_t)ec->pg.ps ||
		    raw_madvise((void *)a, ec->pg.ps, MADV_GUARD_REMOVE) < 0)
			atomic_store(&ec->err, errno ? errno : EIO);
		atomic_store(&ec->state, 2);
		futex_wake(&ec->state);
	}
	return NULL;
}

static int step_emu_calls(long n, double *ns)
{
	struct emu_calls ec = { .n = n, .pipe = { -1, -1 } };
	struct iovec iov = { (void *)"p", 1 };
	struct sigaction sa, old;
	cpu_set_t old_set;
	char probe;
	pthread_t th;
	uint64_t t0;
	long sum = 0;
	int r, u;

	if ((r = page_open(&ec.pg, (size_t)n)) < 0)
		return r;
	if ((r = bench_pin_here(&old_set)) < 0)
		goto out_page;
	if (!(ec.src = malloc(ec.pg.ps)) || pipe2(ec.pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = ec.src ? -errno : -ENOMEM;
		goto out;
	}
	memset(ec.src, 0x5a, ec.pg.ps);
	ec.nosignal = syscall(SYS_pwritev2, ec.pipe[1], &iov, 1, -1L, -1L, RWF_NOSIGNAL) == 1;
	if (ec.nosignal && read(ec.pipe[0], &probe, 1) != 1) {
		r = -EIO;
		goto out;
	}
	if (raw_madvise(ec.pg.p, (size_t)n * ec.pg.ps, MADV_GUARD_INSTALL) < 0) {
		r = -errno;
		goto out;
	}
	g_calls = &ec;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = calls_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	if (__sigaction(SIGSEGV, &sa, &old) < 0) {
		r = -errno;
		goto out;
	}
	if (pthread_create(&th, NULL, calls_handler, &ec)) {
		r = -EAGAIN;
		__sigaction(SIGSEGV, &old, NULL);
		goto out;
	}
	t0 = bench_now_ns();
	for (long i = 0; i < n && !atomic_load(&ec.err); i++)
		sum += ((volatile char *)ec.pg.p)[(size_t)i * ec.pg.ps];
	*ns = (double)(bench_now_ns() - t0) / (double)n;
	pthread_join(th, NULL);
	__sigaction(SIGSEGV, &old, NULL);
	if (atomic_load(&ec.err))
		r = -atomic_load(&ec.err);
	else if (sum != 0x5aL * n)
		r = -EIO;
out:
	if (ec.pipe[0] >= 0) {
		close(ec.pipe[0]);
		close(ec.pipe[1]);
	}
	free(ec.src);
	u = bench_unpin(&old_set);
	r = r ? r : u;
out_page:
	page_close(&ec.pg, (size_t)n);
	return r;
}

/* ---- System calls the emulation makes per fault ---- */

static int step_fstat(long n, double *ns)
{
	int p[2];
	struct stat st;
	uint64_t t0;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	t0 = bench_now_ns();
	for (long i = 0; i < n; i++)
		fstat(p[0], &st);
	*ns = (double)(bench_now_ns() - t0) / (double)n;
	close(p[0]);
	close(p[1]);
	return 0;
}

static int step_sigmask(long n, double *ns)
{
	sigset_t pipe_only, old;
	uint64_t t0;

	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	t0 = bench_now_ns();
	for (long i = 0; i < n; i++) {
		syscall(SYS_rt_sigprocmask, SIG_BLOCK, &pipe_only, &old, 8);
		syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
	}
	*ns = (double)(bench_now_ns() - t0) / (double)n;
	return 0;
}

/* ---- The kernel's install: UFFDIO_COPY / ZEROPAGE of a missing page no
 * thread waits for (its page table entry included) ---- */

static int step_kernel_install(int zero, long n, double *ns)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), len = (size_t)n * ps;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	char *area, *src = malloc(ps);
	uint64_t t0;
	int fd, r = 0;

	if (!src)
		return -ENOMEM;
	memset(src, 0x5a, ps);
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0) {
		free(src);
		return -errno;
	}
	area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) {
		r = -errno;
		goto out;
	}
	reg.range.start = (uintptr_t)area;
	reg.range.len = len;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(fd, UFFDIO_API, &api) < 0 || ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
		r = -errno;
		goto out_map;
	}
	t0 = bench_now_ns();
	for (long i = 0; i < n; i++) {
		uintptr_t dst = (uintptr_t)area + (size_t)i * ps;
		if (zero) {
			struct uffdio_zeropage z = { .range = { dst, ps } };
			r = ioctl(fd, UFFDIO_ZEROPAGE, &z);
		} else {
			struct uffdio_copy c = { .dst = dst, .src = (uintptr_t)src, .len = ps };
			r = ioctl(fd, UFFDIO_COPY, &c);
		}
		if (r < 0) {
			r = -errno;
			break;
		}
	}
	*ns = (double)(bench_now_ns() - t0) / (double)n;
out_map:
	munmap(area, len);
out:
	close(fd);
	free(src);
	return r;
}

int bench_step(int step, long n, double *ns)
{
	if (n < 1)
		return -EINVAL;
	switch (step) {
	case STEP_SIGNAL: return step_signal(n, ns);
	case STEP_SEGV_GUARD: return step_page(PG_SEGV, n, ns);
	case STEP_GUARD_REMOVE: return step_page(PG_GUARD_REMOVE, n, ns);
	case STEP_POPULATE: return step_page(PG_POPULATE, n, ns);
	case STEP_MINOR: return step_page(PG_MINOR, n, ns);
	case STEP_PWRITE: return step_pwrite(n, ns);
	case STEP_FSTAT: return step_fstat(n, ns);
	case STEP_SIGMASK: return step_sigmask(n, ns);
	case STEP_FUTEX_PINGPONG: return step_pingpong(PP_FUTEX, n, ns);
	case STEP_PIPE_PINGPONG: return step_pingpong(PP_PIPE, n, ns);
	case STEP_KERNEL_COPY: return step_kernel_install(0, n, ns);
	case STEP_KERNEL_ZEROPAGE: return step_kernel_install(1, n, ns);
	case STEP_EMU_CALLS: return step_emu_calls(n, ns);
	default: return -EINVAL;
	}
}
