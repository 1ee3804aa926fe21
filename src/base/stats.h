/* SPDX-License-Identifier: MIT */
/* The emulation's counters (uf_emu_stats).  Updated with relaxed atomic
 * adds: async-signal-safe. */
#ifndef UF_BASE_STATS_H
#define UF_BASE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

struct stats {
	_Atomic uint64_t faults, sigbus, pages_installed;
};
extern struct stats g_stats;

#define STATS_ADD(field, n) atomic_fetch_add_explicit(&g_stats.field, (n), memory_order_relaxed)

#endif
