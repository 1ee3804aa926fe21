/* SPDX-License-Identifier: MIT */
/* The area layer's own view of its table: for area*.c only (area.h is what
 * the layers above see). */
#ifndef UF_EMU_AREA_IMPL_H
#define UF_EMU_AREA_IMPL_H

#include <stdatomic.h>
#include "base/maps.h"
#include "base/seqlock.h"
#include "emu/area.h"

struct area {
	struct seqlock seq;	/* the fields below, for lock-free readers */
	_Atomic int live;
	_Atomic int busy;	/* conversion/fork in progress: faults wait */
	_Atomic uintptr_t start, end;
	_Atomic int store;
	_Atomic uint64_t off;	/* offset of start in the store */
	_Atomic int prot;
	_Atomic uint32_t ctx;	/* owner id, 0 when unregistered */
	_Atomic uint64_t mode;
	_Atomic int wipe;	/* MADV_WIPEONFORK: a fork child gets no page */
};
#define UF_LD(x) atomic_load(&(x))
#define UF_ST(x, v) atomic_store(&(x), (v))

extern struct area g_areas[AREA_MAX];
extern _Atomic int g_areas_hw;		/* slots ever used */

/* Bracket every change of an area (lock held). */
void area_begin(struct area *a);
void area_end(struct area *a);
/* busy: faults in the area wait (and COPY into it); clearing wakes them. */
void area_busy_set(struct area *a);
void area_busy_clear(struct area *a);
void area_busy_bump(void);		/* a freeze or conversion began */
struct area *area_new(void);
void area_publish(struct area *a, uintptr_t start, uintptr_t end, int store, uint64_t off,
		  int prot, uint32_t ctx, uint64_t mode, int busy);
void area_drop(struct area *a);
/* Split areas so that none straddles start or end.  0 or -ENOMEM. */
int area_split_at_bounds(uintptr_t start, uintptr_t end);
/* Join neighbours the kernel would see as one mapping. */
void area_merge_adjacent(void);
/* Forget the areas in [start, end) that are no longer mapped as we made them. */
void area_drop_stale(uintptr_t start, uintptr_t end);
/* The mappings of [start, end), ours (areas' memfds) told apart. */
int area_vmas_in(uintptr_t start, uintptr_t end, struct vma **out);
/* The protection of an area's present pages (missing ones keep faulting;
 * write-protected ones stay read-only). */
void area_protect_present(struct area *a, int prot);
/* The store piece of a, for layer 1. */
struct pg_span area_span_of(const struct area *a);
/* Every page of a writable, no write-protect bit left. */
void area_wp_clear(struct area *a);

#endif
