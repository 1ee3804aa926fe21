/* SPDX-License-Identifier: MIT */
/*
 * Layer 2, areas: the registered ranges.  A registered range of private
 * anonymous memory becomes an area, a MAP_SHARED mapping of a store (layer
 * 1) at the same address, holding the bytes it held; it is found by address
 * without a lock (seqlock), so the signal handler can look it up.
 *
 *   area.c           the table, lookup, splits and merges, "busy"
 *   area-register.c  conversion of memory into an area, REGISTER, UNREGISTER
 *   area-vm.c        the program's munmap/mremap/mprotect/madvise over areas
 *   area-fork.c      fork: freeze and thaw (parent), private copies (child)
 *
 * The table is private (area-impl.h).  Changes happen with the area lock
 * held (area_lock), never in a signal handler; the functions marked
 * async-signal-safe take no lock.  This layer calls only layer 1 and
 * src/base/.
 */
#ifndef UF_EMU_AREA_H
#define UF_EMU_AREA_H

#include <stdbool.h>
#include <stdint.h>
#include "base/sys.h"
#include "emu/pages.h"
#include "userfault/uapi.h"

#define AREA_MAX 1024		/* areas (registered pieces) per process */

/* A consistent copy of an area, read without locks. */
struct area_view {
	int idx;
	uintptr_t start, end;
	int store;
	uint64_t off;		/* offset of start in the store */
	int prot;
	uint32_t ctx;		/* the owner uffd's id, 0 when unregistered */
	uint64_t mode;		/* UFFDIO_REGISTER_MODE_* */
	int busy;		/* being converted or frozen: faults wait */
};

/* The area holding addr: 1 and *v, or 0.  async-signal-safe */
int area_find(uintptr_t addr, struct area_view *v);
/* The area with the lowest start in (addr, end): 1 and *v, or 0.  a-s-s */
int area_next_after(uintptr_t addr, uintptr_t end, struct area_view *v);
/* The area holding addr, else the lowest one in (addr, end): 1 and *v, or
 * 0.  Areas are few: a walk over a large gap asks the table, not each
 * page.  async-signal-safe */
SIG_SAFE static inline int area_at_or_after(uintptr_t addr, uintptr_t end, struct area_view *v)
{
	return area_find(addr, v) || area_next_after(addr, end, v);
}
/* Is the area of v still as v says?  async-signal-safe */
int area_still(const struct area_view *v);
/* Does a mapping registered with mode on store raise minor faults?  MINOR
 * mode, on shared memory and hugetlb, shared or private mappings (a private
 * hugetlb one only where we could open its file: README).  a-s-s */
SIG_SAFE static inline int area_minor(uint64_t mode, int store)
{
	int k = store_kind(store);
	return (mode & UFFDIO_REGISTER_MODE_MINOR) &&
	       (k == STORE_SHMEM || k == STORE_SHMEM_PRIVATE || k == STORE_HUGE_SHARED ||
		(k == STORE_HUGE_PRIVATE && store_file_fd(store) >= 0));
}
/* The store piece of v, for layer 1. */
SIG_SAFE static inline struct pg_span area_span(const struct area_view *v)
{
	struct pg_span s = { v->start, v->end, v->store, v->off, v->prot, 0,
			     !!(v->mode & UFFDIO_REGISTER_MODE_MISSING), area_minor(v->mode, v->store) };
	return s;
}
/* Is the page of addr (in v) present (pg_present)?  async-signal-safe */
SIG_SAFE static inline bool area_page_present(const struct area_view *v, uintptr_t addr)
{
	struct pg_span s = area_span(v);
	return pg_present(&s, addr);
}
/* Is the page of addr (in v) poisoned (UFFDIO_POISON)?  As the kernel's
 * marker, it belongs to this mapping: a page the file got meanwhile
 * (another mapping's write) does not lift it.  async-signal-safe */
SIG_SAFE static inline bool area_page_poisoned(const struct area_view *v, uintptr_t addr)
{
	struct pg_span s = area_span(v);
	return pg_poisoned(&s, addr);
}
/* Busy areas: the generation to wait on, and the wait (bounded, 50 ms).
 * async-signal-safe */
uint32_t area_busy_gen(void);
void area_wait_busy(uint32_t gen);
/* Does [start, end) meet an area?  async-signal-safe */
int area_meet(uintptr_t start, uintptr_t end);
/* Has any area ever existed?  Not instrumented: the memory interposers ask
 * it before a sanitizer's runtime may be up. */
int area_any(void);

/* The lock of every table change (areas, and the uffds' registrations).
 * Never taken in a signal handler. */
void area_lock(void);
void area_unlock(void);
/* Fork child (one thread): the lock is free. */
void area_lock_reset_after_fork(void);

/* ---- REGISTER and UNREGISTER (area-register.c), area lock held ---- */
/* 0, or 1 when the range has hugetlb memory (no ZEROPAGE there), or a
 * negative errno. */
int area_register_locked(uint32_t ctx, uintptr_t start, uintptr_t end, uint64_t mode);
/* The caller wakes the uffd's waiters of [start, end) afterwards. */
int area_unregister_locked(uint32_t ctx, uintptr_t start, uintptr_t end);
/* Every area of ctx (its release); the caller wakes its waiters. */
void area_unregister_all_locked(uint32_t ctx);

/* ---- who owns what (for events, fork and statistics) ---- */
/* Calls fn(arg, ctx, start, end) for each registered area meeting
 * [start, end), clipped to it.  Area lock held. */
void area_each_owned_locked(uintptr_t start, uintptr_t end,
			    void (*fn)(void *arg, uint32_t ctx, uintptr_t s, uintptr_t e), void *arg);
/* Does a live area belong to ctx?  Area lock held. */
int area_owned_by_locked(uint32_t ctx);
/* Areas alive and bytes registered (uf_emu_stats). */
void area_stats(uint64_t *areas, uint64_t *registered_bytes);

/* ---- the program's memory calls over areas (area-vm.c), lock held ---- */
struct area;		/* an area, for one mremap() */
/* [start, end) is about to be unmapped or replaced: its areas go. */
void area_forget_locked(uintptr_t start, uintptr_t end);
/* mprotect() over areas: they keep their registration. */
int area_protect_locked(uintptr_t start, uintptr_t end, int prot);
/* MADV_DONTNEED/FREE over areas: their pages go (missing again if
 * registered, zero if not); shared memory keeps them in its file unless
 * `removed` (MADV_REMOVE). */
int area_discard_locked(uintptr_t start, uintptr_t end, int removed);
/* Pages [from, to) (byte offsets) of the file of inode ino left it (a hole
 * punched): missing again in the registered areas that map them. */
void area_punched_locked(unsigned long ino, uint64_t from, uint64_t to);
/* Does [start, end) meet an area of the program's own mapping (shared
 * memory, hugetlb, private mappings of shared memory)?  Area lock held. */
int area_meets_file_locked(uintptr_t start, uintptr_t end);
/* MADV_WIPEONFORK (on) / MADV_KEEPONFORK over areas. */
int area_wipe_locked(uintptr_t start, uintptr_t end, int on);
/* The single area that is exactly [start, end) after splitting, or NULL. */
struct area *area_exact_locked(uintptr_t start, uintptr_t end);
uint32_t area_owner(const struct area *a);
/* Before and after mremap() of a to newlen bytes (to: where it is now, or
 * MAP_FAILED); keep: the registration follows a move (EVENT_REMAP). */
int area_move_begin_locked(struct area *a, size_t newlen);
void area_move_end_locked(struct area *a, void *to, size_t newlen, int keep);

/* ---- fork (area-fork.c) ---- */
void area_freeze_all(void);	/* parent, before (lock held) */
void area_thaw_all(void);	/* parent, after (lock held) */
/* Child (one thread): areas of from[i] stay registered, to to[i], on
 * copies of their stores; every other area becomes private memory. */
void area_privatize_all(const uint32_t *from, const uint32_t *to, int n);

#endif
