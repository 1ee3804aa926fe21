/* SPDX-License-Identifier: MIT */
/*
 * The fault recorder behind uf_stat_* (record.c): per-uffd counters and a
 * latency histogram in a table that may be shared with other processes
 * (a memfd inherited through USERFAULT_STAT_FD), kept up to date by the
 * ABI entry points.  Everything here is cheap when recording is off (one
 * load), and async-signal-safe where marked.
 */
#ifndef UF_BASE_RECORD_H
#define UF_BASE_RECORD_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include "userfault.h"
#include "base/sys.h"

struct rec_table {
	uint32_t magic, version, size;
	_Atomic uint32_t nslots;	/* slots taken (may exceed UF_STAT_MAX) */
	struct uf_stat slot[UF_STAT_MAX];
};
extern struct rec_table *_Atomic g_rec;

/* Is recording on?  async-signal-safe */
SIG_SAFE static inline int rec_on(void)
{
	return atomic_load_explicit(&g_rec, memory_order_relaxed) != NULL;
}

/* uf_stat_enable, uf_stat_create, uf_stat_attach: 0 / fd, or -errno. */
int rec_enable(void);
int rec_create(void);
int rec_attach(int fd);

/* Is fd a recorded uffd?  async-signal-safe */
int rec_fd(int fd);
/* fd is a new uffd of this back-end (parent: the index of the uffd whose
 * FORK event brought it, or -1). */
void rec_new(int fd, int backend, int parent);
/* newfd now names what oldfd names (dup); fd is closed. */
void rec_dup(int oldfd, int newfd);
void rec_close(int fd);
/* A thread of this process faulted at addr, the address its message will
 * carry (the emulation's fault path).  async-signal-safe */
void rec_fault_slow(uintptr_t addr);
SIG_SAFE static inline void rec_fault(uintptr_t addr)
{
	if (rec_on())
		rec_fault_slow(addr);
}
/* read() of fd returned n bytes of messages into buf. */
void rec_read(int fd, const void *buf, ssize_t n);
/* ioctl(fd, req, arg) returned r (errno err when r < 0). */
void rec_ioctl(int fd, unsigned long req, unsigned long arg, long r, int err);

#endif
