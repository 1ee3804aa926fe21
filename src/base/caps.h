/* SPDX-License-Identifier: MIT */
/* What this machine offers the emulation, probed once (caps.c). */
#ifndef UF_BASE_CAPS_H
#define UF_BASE_CAPS_H

#include <stddef.h>
#include <stdint.h>
#include "base/sys.h"

struct caps {
	size_t page_size;
	unsigned page_shift;
	uintptr_t task_size;	/* first address user space cannot map */
	int guard_markers;	/* MADV_GUARD_INSTALL works on shmem */
	int cachestat;		/* cachestat(2) works (Linux 6.5+, not filtered) */
	int populate;		/* MADV_POPULATE_READ/WRITE work, and pay */
	int max_spinners;	/* faulting threads that may spin at once */
	long spin_ns;		/* longest spin before sleeping (0: never) */
	int event_vfork;	/* wait for an event's reading in a vfork */
	int write_nosignal;	/* pwritev2 takes RWF_NOSIGNAL (Linux 6.18+) */
};
/* Read-only once caps_init() has returned 0. */
extern struct caps caps;

/* Probe once (thread-safe): 0, or a negative errno if the emulation cannot
 * work here (no memfd, no shared mapping). */
int caps_init(void);

/* Can this process open /proc/self/map_files (CAP_SYS_ADMIN or
 * CAP_CHECKPOINT_RESTORE)?  Probed again when the effective user changes. */
int caps_map_files(void);

/* async-signal-safe */
SIG_SAFE static inline uintptr_t page_down(uintptr_t a)
{
	return a & ~(uintptr_t)(caps.page_size - 1);
}

#endif
