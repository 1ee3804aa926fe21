/* SPDX-License-Identifier: MIT */
/* The emulation's own descriptors: one bit per number (see fdreg.h).
 * Numbers past FD_MAX are not recorded (and not protected). */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "base/fdreg.h"
#include "base/sys.h"

#define FD_MAX (1 << 20)
static _Atomic uint64_t g_bits[FD_MAX / 64];

void fd_own(int fd)
{
	if (fd >= 0 && fd < FD_MAX)
		atomic_fetch_or(&g_bits[fd / 64], 1ULL << (fd % 64));
}

/* Not instrumented: the close interposer asks it before a sanitizer's
 * runtime may be up. */
__attribute__((no_sanitize("thread", "address", "undefined"))) int fd_ours(int fd)
{
	return fd >= 0 && fd < FD_MAX && (atomic_load_explicit(&g_bits[fd / 64], memory_order_relaxed) >> (fd % 64)) & 1;
}

void fd_disown(int fd)
{
	if (fd >= 0 && fd < FD_MAX)
		atomic_fetch_and(&g_bits[fd / 64], ~(1ULL << (fd % 64)));
}

int fd_close_own(int fd)
{
	fd_disown(fd);
	return sys_close(fd);
}

static _Atomic uint32_t g_numbers_gen;

/* Not instrumented, as fd_ours.  async-signal-safe */
__attribute__((no_sanitize("thread", "address", "undefined"))) void fd_numbers_changed(void)
{
	atomic_fetch_add(&g_numbers_gen, 1);
}

/* async-signal-safe */
SIG_SAFE uint32_t fd_numbers_gen(void)
{
	return atomic_load(&g_numbers_gen);
}

static pthread_rwlock_t g_pins = PTHREAD_RWLOCK_INITIALIZER;

void fd_pin(void)
{
	pthread_rwlock_rdlock(&g_pins);
}

void fd_unpin(void)
{
	pthread_rwlock_unlock(&g_pins);
}

void fd_relocation_begin(void)
{
	pthread_rwlock_wrlock(&g_pins);
}

void fd_relocation_end(void)
{
	pthread_rwlock_unlock(&g_pins);
}

/* The kernel's highest signal (no C library reserves it) once UFFDIO_API
 * is done, the one below before. */
#define UFFD_MARK 64
#define UFFD_MARK_NEW 63

void fd_mark_uffd(int rd, int api_done)
{
	sys_fcntl(rd, F_SETSIG, api_done ? UFFD_MARK : UFFD_MARK_NEW);
}

int fd_marked_uffd(int fd)
{
	int sig = sys_fcntl(fd, F_GETSIG, 0);

	return sig == UFFD_MARK ? 1 : sig == UFFD_MARK_NEW ? 2 : 0;
}

void fd_reset_after_fork(void)
{
	pthread_rwlock_init(&g_pins, NULL);
	fd_numbers_changed();	/* (the child's contexts are its own) */
}
