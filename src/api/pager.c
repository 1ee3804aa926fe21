/* SPDX-License-Identifier: MIT */
/*
 * The in-thread pager (uf_pager_open): faults resolved by a callback in the
 * faulting thread, on either back-end.
 *
 * Emulated: the uffd's context carries the callback, and the SIGSEGV
 * handler calls it instead of queueing a message (src/emu/fault.c).
 *
 * Kernel: a uffd with UFFD_FEATURE_SIGBUS; our SIGBUS handler finds the
 * pager whose range holds the address in a small lock-free table (the
 * seqlock) and calls its callback.  A SIGBUS that is not ours goes to the
 * program's handler (src/base/sigchain.c).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include "base/arch/fault.h"
#include "base/seqlock.h"
#include "base/sigchain.h"
#include "emu/emu.h"

#define PAGER_RANGES_MAX 256

/* A registered range of a kernel-back-end pager (end == 0: a free entry),
 * changed under g_lock, read by the SIGBUS handler. */
struct prange {
	struct seqlock seq;
	_Atomic uintptr_t start, end;
	_Atomic int fd;
	_Atomic uintptr_t fn, arg;
};
static struct prange g_ranges[PAGER_RANGES_MAX];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t g_page_mask;

/* The pagers themselves: fd -> callback, for uf_pager_register. */
#define PAGERS_MAX 64
static struct { int fd; uf_pager_fn fn; void *arg; int emulated; } g_pagers[PAGERS_MAX];
static int g_npagers;

static int pager_find_locked(int fd)
{
	for (int i = 0; i < g_npagers; i++)
		if (g_pagers[i].fd == fd)
			return i;
	return -1;
}

/* ---- the range table ---- */

static void range_set(struct prange *r, uintptr_t start, uintptr_t end, int fd, uintptr_t fn,
		      uintptr_t arg)
{
	sigset_t old;

	/* Masked: a SIGBUS handler of this thread may read the entry. */
	seq_write_begin_masked(&r->seq, &old);
	atomic_store(&r->start, start);
	atomic_store(&r->fd, fd);
	atomic_store(&r->fn, fn);
	atomic_store(&r->arg, arg);
	atomic_store(&r->end, end);
	seq_write_end_masked(&r->seq, &old);
}

static int range_add_locked(uintptr_t start, uintptr_t end, int fd, uintptr_t fn, uintptr_t arg)
{
	for (int i = 0; i < PAGER_RANGES_MAX; i++)
		if (atomic_load(&g_ranges[i].end) == 0) {
			range_set(&g_ranges[i], start, end, fd, fn, arg);
			return 0;
		}
	return -ENOMEM;
}

/* Can [start, end) be removed from fd's ranges: -ENOMEM if a split needs
 * an entry and none is free, else 0. */
static int range_can_remove_locked(int fd, uintptr_t start, uintptr_t end)
{
	int need = 0, free_entries = 0;

	for (int i = 0; i < PAGER_RANGES_MAX; i++) {
		struct prange *r = &g_ranges[i];
		uintptr_t s = atomic_load(&r->start), e = atomic_load(&r->end);
		if (!e) {
			free_entries++;
			continue;
		}
		if (atomic_load(&r->fd) == fd && s < start && e > end)
			need++;
	}
	return need > free_entries ? -ENOMEM : 0;
}

/* Remove [start, end) of fd's ranges (all of fd's with start = 0, end =
 * UINTPTR_MAX), keeping what lies outside.  Fails only when a split needs
 * an entry and none is free, before changing anything. */
static int range_remove_locked(int fd, uintptr_t start, uintptr_t end)
{
	if (range_can_remove_locked(fd, start, end) < 0)
		return -ENOMEM;
	for (int i = 0; i < PAGER_RANGES_MAX; i++) {
		struct prange *r = &g_ranges[i];
		uintptr_t s = atomic_load(&r->start), e = atomic_load(&r->end);
		uintptr_t fn = atomic_load(&r->fn), arg = atomic_load(&r->arg);
		if (!e || atomic_load(&r->fd) != fd || e <= start || s >= end)
			continue;
		if (s < start && e > end) {
			range_set(r, s, start, fd, fn, arg);
			range_add_locked(end, e, fd, fn, arg);
		} else if (s < start) {
			range_set(r, s, start, fd, fn, arg);
		} else if (e > end) {
			range_set(r, end, e, fd, fn, arg);
		} else {
			range_set(r, 0, 0, -1, 0, 0);
		}
	}
	return 0;
}

/* The range holding addr, read consistently.  async-signal-safe */
SIG_SAFE static int range_lookup(uintptr_t addr, int *fd, uf_pager_fn *fn, void **arg)
{
	for (int i = 0; i < PAGER_RANGES_MAX; i++) {
		struct prange *r = &g_ranges[i];
		uintptr_t s, e;
		uint32_t q;

		do {
			q = seq_read_begin(&r->seq);
			s = atomic_load(&r->start);
			e = atomic_load(&r->end);
			*fd = atomic_load(&r->fd);
			*fn = (uf_pager_fn)atomic_load(&r->fn);
			*arg = (void *)atomic_load(&r->arg);
		} while (seq_read_retry(&r->seq, q));
		if (e && addr >= s && addr < e)
			return 1;
	}
	return 0;
}

/* ---- the SIGBUS handler (kernel back-end) ---- */

/* async-signal-safe */
SIG_SAFE static void sigbus_handler(int sig, siginfo_t *si, void *uctx)
{
	int saved = errno, fd;
	uintptr_t addr = (uintptr_t)si->si_addr;
	uf_pager_fn fn;
	void *arg;

	if (si->si_code == BUS_ADRERR && range_lookup(addr, &fd, &fn, &arg)) {
		struct uf_pager_fault f;
		f.uffd = fd;
		f.flags = arch_fault_is_write(uctx) ? UFFD_PAGEFAULT_FLAG_WRITE : 0;
		f.address = (void *)addr;
		f.page = (void *)(addr & g_page_mask);
		if (fn(&f, arg) >= 0) {
			errno = saved;
			return;
		}
	}
	errno = saved;
	sigchain_forward(sig, si, uctx);
}

/* ---- the API ---- */

int uf_pager_open(uf_pager_fn fn, void *arg)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd, r, emulated = uf_get_backend() == UF_BACKEND_EMULATED;

	if (!fn)
		return -EINVAL;
	g_page_mask = ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1);
	if (!emulated) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = sigbus_handler;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK | SA_RESTART;
		if ((r = sigchain_install(SIGBUS, &sa)) < 0)
			return r;
		api.features = UFFD_FEATURE_SIGBUS;
	}
	fd = uf_userfaultfd(O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (uf_ioctl(fd, UFFDIO_API, &api) < 0) {
		r = -errno;
		goto fail;
	}
	if (emulated && (r = emu_set_pager(fd, fn, arg)) < 0)
		goto fail;
	pthread_mutex_lock(&g_lock);
	if (g_npagers == PAGERS_MAX) {
		pthread_mutex_unlock(&g_lock);
		r = -EMFILE;
		goto fail;
	}
	g_pagers[g_npagers].fd = fd;
	g_pagers[g_npagers].fn = fn;
	g_pagers[g_npagers].arg = arg;
	g_pagers[g_npagers].emulated = emulated;
	g_npagers++;
	pthread_mutex_unlock(&g_lock);
	return fd;
fail:
	uf_close(fd);
	return r;
}

int uf_pager_register(int uffd, void *addr, size_t len)
{
	struct uffdio_register reg = { .range = { (uintptr_t)addr, len },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	int i, r = 0;

	pthread_mutex_lock(&g_lock);
	i = pager_find_locked(uffd);
	if (i < 0) {
		r = -EBADF;
	} else if (uf_ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
		r = -errno;
	} else if (!g_pagers[i].emulated) {
		/* Replace whatever part of it was registered before. */
		uintptr_t s = (uintptr_t)addr, e = s + len;
		r = range_remove_locked(uffd, s, e);
		if (r == 0)
			r = range_add_locked(s, e, uffd, (uintptr_t)g_pagers[i].fn,
					     (uintptr_t)g_pagers[i].arg);
		if (r < 0) {
			struct uffdio_range rg = { s, len };
			uf_ioctl(uffd, UFFDIO_UNREGISTER, &rg);
		}
	}
	pthread_mutex_unlock(&g_lock);
	return r;
}

int uf_pager_unregister(int uffd, void *addr, size_t len)
{
	struct uffdio_range rg = { (uintptr_t)addr, len };
	int i, r = 0;

	/* The kernel first: a request it refuses (unaligned, say) must leave
	 * the table alone, or faults in ranges still registered would find no
	 * pager.  Removing from the table cannot fail once checked, under the
	 * lock. */
	pthread_mutex_lock(&g_lock);
	i = pager_find_locked(uffd);
	if (i < 0)
		r = -EBADF;
	else if (!g_pagers[i].emulated &&
		 (r = range_can_remove_locked(uffd, rg.start, rg.start + len)) < 0)
		;
	else if (uf_ioctl(uffd, UFFDIO_UNREGISTER, &rg) < 0)
		r = -errno;
	else if (!g_pagers[i].emulated)
		range_remove_locked(uffd, rg.start, rg.start + len);
	pthread_mutex_unlock(&g_lock);
	return r;
}

/* async-signal-safe */
int uf_pager_copy(int uffd, void *dst, const void *src, size_t len)
{
	struct uffdio_copy c = { .dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len };
	int saved = errno, r = 0;

	if (uf_ioctl(uffd, UFFDIO_COPY, &c) < 0)
		r = -errno;
	errno = saved;
	return r;
}

/* async-signal-safe */
int uf_pager_zero(int uffd, void *dst, size_t len)
{
	struct uffdio_zeropage z = { .range = { (uintptr_t)dst, len } };
	int saved = errno, r = 0;

	if (uf_ioctl(uffd, UFFDIO_ZEROPAGE, &z) < 0)
		r = -errno;
	errno = saved;
	return r;
}

int uf_pager_close(int uffd)
{
	int i, r = 0;

	pthread_mutex_lock(&g_lock);
	i = pager_find_locked(uffd);
	if (i < 0) {
		r = -EBADF;
	} else {
		if (!g_pagers[i].emulated)
			range_remove_locked(uffd, 0, UINTPTR_MAX);
		g_pagers[i] = g_pagers[--g_npagers];
		if (uf_close(uffd) < 0)
			r = -errno;
	}
	pthread_mutex_unlock(&g_lock);
	return r;
}
