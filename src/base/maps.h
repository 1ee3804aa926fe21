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
	VMA_HUGE,	/* hugetlb (set by maps_page_sizes) */
};
struct vma {
	uintptr_t start, end;
	int prot;
	int shared;
	enum vma_kind kind;
	unsigned long ino;
	uint64_t off;		/* offset of start in the mapped file */
	size_t pagesize;	/* hugetlb: its page size (maps_page_sizes), else 0 */
};
/* The mappings that intersect [start, end), in address order: their count
 * (*out is malloc'ed) or a negative errno. */
int maps_in(uintptr_t start, uintptr_t end, struct vma **out);

/* Fill pagesize for the n mappings of v (sorted, from maps_in) that are
 * hugetlb, and make their kind VMA_HUGE (one read of /proc/self/smaps):
 * 0 or a negative errno. */
int maps_page_sizes(struct vma *v, int n);

/* Which of the VmFlags of /proc/self/smaps the mappings that meet
 * [start, end) have, among these (one read of the file): */
#define MAPS_LOCKED	1	/* "lo": mlock() */
#define MAPS_WIPE	2	/* "wf": MADV_WIPEONFORK */
int maps_flags(uintptr_t start, uintptr_t end);	/* or a negative errno */

#endif
