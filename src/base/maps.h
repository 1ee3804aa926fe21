/* SPDX-License-Identifier: MIT */
/* Reading /proc/self/maps (maps.c).  Not async-signal-safe (malloc, stdio). */
#ifndef UF_BASE_MAPS_H
#define UF_BASE_MAPS_H

#include <stdint.h>

enum vma_kind {
	VMA_ANON,	/* private anonymous, [heap], [anon:name] */
	VMA_OURS,	/* an area of the emulation (set by the area layer) */
	VMA_SHMEM,	/* memfd, /dev/zero, SysV, /dev/shm */
	VMA_STACK,	/* [stack] */
	VMA_OTHER,
};
struct vma {
	uintptr_t start, end;
	int prot;
	int shared;
	enum vma_kind kind;
	unsigned long ino;
};
/* The mappings that intersect [start, end), in address order: their count
 * (*out is malloc'ed) or a negative errno. */
int maps_in(uintptr_t start, uintptr_t end, struct vma **out);

/* Does any mapping that meets [start, end) have this flag among its
 * VmFlags in /proc/self/smaps ("lo": locked, "wf": wipe on fork)?  1, 0,
 * or a negative errno. */
int maps_flag(uintptr_t start, uintptr_t end, const char *flag);

#endif
