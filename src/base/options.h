/* SPDX-License-Identifier: MIT */
/* Options, each also an environment variable, read when asked (options.c). */
#ifndef UF_BASE_OPTIONS_H
#define UF_BASE_OPTIONS_H

#include "userfault.h"

enum uf_backend opt_backend(void);	/* USERFAULT_BACKEND (default auto) */
int opt_guard_markers(void);		/* USERFAULT_GUARD_MARKERS (default 1) */
long opt_spin_us(void);			/* USERFAULT_SPIN_US (default 100) */
/* USERFAULT_EVENT_WAIT: how a thread waits for its event to be read:
 * "vfork" (default; shows as D, killable only, as the kernel's) or "futex"
 * (default under valgrind, whose vfork does not share memory, and in a
 * TSan build).  1 vfork. */
int opt_event_vfork(void);
int opt_altstack(void);			/* USERFAULT_ALTSTACK (default 1) */
/* USERFAULT_SHARED_ANON: auto (default): shared anonymous memory is made a
 * memfd of ours where the emulation could not reach it otherwise; memfd:
 * always on the emulation; kernel: never.  Returns 1 auto, 2 memfd, 0. */
int opt_shared_anon(void);
/* USERFAULT_STAT_FD: the descriptor of a statistics table to record into
 * (uf_stat_create), or -1 (unset or not a number: recording stays off). */
int opt_stat_fd(void);

#endif
