/* SPDX-License-Identifier: MIT */
/*
 * userfault/pagemap.h - the PAGEMAP_SCAN ioctl of /proc/PID/pagemap (Linux
 * 6.7), as the kernel's <linux/fs.h> defines it: the same numbers, layouts
 * and names.  The system header on many distributions is older.  If your
 * <linux/fs.h> has PAGEMAP_SCAN, include it before this header, which then
 * defines nothing.
 *
 * With the emulated back-end, libuserfault answers PAGEMAP_SCAN itself for
 * the memory it manages (uf_ioctl(pagemap_fd, PAGEMAP_SCAN, &arg), or any
 * ioctl() under the drop-in): that is how UFFD_FEATURE_WP_ASYNC's
 * written pages are read and protected again.
 */
#ifndef USERFAULT_PAGEMAP_H
#define USERFAULT_PAGEMAP_H

#include <linux/types.h>
#include <linux/ioctl.h>

#ifndef PAGEMAP_SCAN

/* Categories: asked for in the masks, reported in page_region.categories. */
#define PAGE_IS_WPALLOWED	(1 << 0)	/* registered for asynchronous WP */
#define PAGE_IS_WRITTEN		(1 << 1)	/* not write-protected */
#define PAGE_IS_FILE		(1 << 2)
#define PAGE_IS_PRESENT		(1 << 3)
#define PAGE_IS_SWAPPED		(1 << 4)
#define PAGE_IS_PFNZERO		(1 << 5)
#define PAGE_IS_HUGE		(1 << 6)
#define PAGE_IS_SOFT_DIRTY	(1 << 7)
#define PAGE_IS_GUARD		(1 << 8)

/* A run of pages [start, end) with the same categories. */
struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

/* Flags of pm_scan_arg. */
#define PM_SCAN_WP_MATCHING	(1 << 0)	/* write-protect the pages found */
#define PM_SCAN_CHECK_WPASYNC	(1 << 1)	/* EPERM where WP_ASYNC is not on */

struct pm_scan_arg {
	__u64 size;			/* sizeof(struct pm_scan_arg) */
	__u64 flags;			/* PM_SCAN_* */
	__u64 start;			/* page aligned */
	__u64 end;			/* rounded up to a page */
	__u64 walk_end;			/* out: where the walk stopped */
	__u64 vec;			/* struct page_region[vec_len] */
	__u64 vec_len;
	__u64 max_pages;		/* 0: no limit */
	__u64 category_inverted;	/* categories to test inverted */
	__u64 category_mask;		/* all of these */
	__u64 category_anyof_mask;	/* one of these, if any */
	__u64 return_mask;		/* the categories reported */
};

#define PAGEMAP_SCAN	_IOWR('f', 16, struct pm_scan_arg)

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct pm_scan_arg) == 96, "pm_scan_arg is 96 bytes");
_Static_assert(sizeof(struct page_region) == 24, "page_region is 24 bytes");
#endif

#endif /* PAGEMAP_SCAN */

#endif /* USERFAULT_PAGEMAP_H */
