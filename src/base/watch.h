/* SPDX-License-Identifier: MIT */
/*
 * The watcher (watch.c): one thread per process, started on first use,
 * waiting in epoll for the descriptors the emulation must act on without
 * being called (a uffd closed in another process, a connection from a
 * monitor process).  Each descriptor comes with a function, called on the
 * watcher thread with its data (< 2^56) and the epoll events.  No signal is
 * ever handled on that thread.
 */
#ifndef UF_BASE_WATCH_H
#define UF_BASE_WATCH_H

#include <stdint.h>

typedef void (*watch_fn)(uint64_t data, uint32_t events);

/* Watch fd for events (EPOLL* bits, EPOLLONESHOT allowed): 0 or -1. */
int watch_add(int fd, uint32_t events, watch_fn fn, uint64_t data);
/* Stop watching fd (before closing it). */
void watch_del(int fd);
/* Fork child: the watcher thread is the parent's; start anew. */
void watch_reset_after_fork(void);
/* Wait for the function being called, if any, to return, and call none
 * until watch_resume(); the epoll descriptor numbered from becomes to
 * (fdreg.h's relocation; either may be -1 for none). */
void watch_pause(void);
void watch_relocate(int from, int to);
void watch_resume(void);

#endif
