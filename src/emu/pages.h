/* SPDX-License-Identifier: MIT */
/*
 * Layer 1, pages: the stores that hold the emulation's pages (a memfd and
 * one presence bit per page, store.c), how a missing page is made to fault
 * (guard markers or protection), and the atomic installation of COPY and
 * ZEROPAGE (pages.c).  Only the area layer and the layers above call in
 * here; this layer calls only src/base/.
 */
#ifndef UF_EMU_PAGES_H
#define UF_EMU_PAGES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "base/caps.h"

/* ---- stores (store.c): a memfd and its presence bitmap ---- */
#define STORE_MAX 1024		/* stores per process */

/* A store for len bytes (room to grow in place, for mremap, in the
 * bitmap): its number, or a negative errno.  Table changes are serialised
 * by the area layer's lock. */
int store_new(size_t len);
/* A store for the program's own shared memory file (fd, now ours, of len
 * bytes): its pages live in the file, and the bitmap only remembers those
 * known present ("file store").  Its number, or a negative errno. */
int store_attach_file(int fd, size_t len);
int store_is_file(int s);		/* async-signal-safe */
/* A store for hugetlb memory with pages of 1 << shift bytes: of a shared
 * mapping (fd: its file), or of a private one (fd: /proc/self/mem; ino: the
 * mapping's file; ffd: a descriptor of it, or -1, which the store takes;
 * file_off: the file offset of the store's start). */
int store_attach_huge(int fd, size_t len, int shift, int shared, unsigned long ino, int ffd,
		      uint64_t file_off);
/* Kinds of stores. */
enum { STORE_MEMFD, STORE_SHMEM, STORE_HUGE_SHARED, STORE_HUGE_PRIVATE, STORE_SHMEM_PRIVATE };
/* A store for a MAP_PRIVATE mapping of a shared memory file (fd), one per
 * registered piece: bit i stands for the piece's page i (a private copy,
 * or a page of the file opened here), at file offset file_off + i pages. */
int store_attach_private(int fd, size_t len, uint64_t file_off);
uint64_t store_file_off(int s);		/* async-signal-safe */
int store_kind(int s);			/* async-signal-safe */
int store_huge_shift(int s);		/* hugetlb: its page shift, else 0; a-s-s */
/* The file store (shared memory, or shared hugetlb) of inode ino in use,
 * or -1. */
int store_file_by_ino(unsigned long ino);
void store_ref(int s);
void store_put(int s);		/* the last reference closes the memfd */
int store_fd(int s);		/* async-signal-safe */
/* The file whose pages a store's mappings show: its fd, but for private
 * hugetlb (fd is /proc/self/mem) the mapped file, or -1.  a-s-s */
int store_file_fd(int s);
/* A memfd numbered from is now numbered to (the area lock held, installs
 * paused: see fdreg.h). */
void store_fd_relocate(int from, int to);
ino_t store_ino(int s);
_Atomic uint64_t *store_bits(int s);	/* async-signal-safe */
/* Its write-protect bits (UFFDIO_WRITEPROTECT), as many, same numbering:
 * used by stores of ours (STORE_MEMFD) only.  async-signal-safe */
_Atomic uint64_t *store_wp_bits(int s);
/* Its pages placed by ZEROPAGE (set there, cleared by COPY): a hint for
 * PAGEMAP_SCAN's PAGE_IS_PFNZERO, which also checks that the page still
 * reads as zeros.  Stores of ours only.  async-signal-safe */
_Atomic uint64_t *store_zero_bits(int s);
/* Its poisoned pages (UFFDIO_POISON), every kind of store, numbered as
 * its presence bits: a poisoned page is missing, and its access raises
 * SIGBUS until MADV_DONTNEED or a COPY replaces it.  async-signal-safe */
_Atomic uint64_t *store_poison_bits(int s);
/* Its pages mapped in the registered mappings of a MINOR area (shared
 * memory, shared hugetlb), numbered as its presence bits: a page the file
 * has whose bit is clear faults as a minor fault.  async-signal-safe */
_Atomic uint64_t *store_map_bits(int s);
size_t store_bits_pages(int s);
/* Can pages of store s be write-protected: stores of ours (private
 * anonymous memory), shared memory files (its bits then stand for the
 * pages of this process's registered mappings of the file) and hugetlb
 * (a bit per huge page).  a-s-s */
SIG_SAFE static inline int store_has_wp(int s)
{
	int k = store_kind(s);
	return k == STORE_MEMFD || k == STORE_SHMEM || k == STORE_SHMEM_PRIVATE || k == STORE_HUGE_SHARED ||
	       k == STORE_HUGE_PRIVATE;
}	/* pages the bitmap can describe (a-s-s) */
/* The store (not a file store) whose memfd is inode ino and is in use, or -1. */
int store_by_ino(unsigned long ino);
/* Fork child: a copy of store s's memfd (its data only), or -1. */
int store_clone_fd(int s);
/* Fork child: give up one reference without closing anything. */
void store_forget_ref(int s);
/* Fork child: every store's memfd is replaced by newfd[s] (kept, with its
 * references), or closed and freed (newfd[s] < 0). */
void store_after_fork(const int *newfd);
/* The next run of data in [*pos, end) of memfd fd, from its page: returns
 * its start and moves *pos to its end, or -1 when there is none. */
off_t store_next_data(int fd, off_t *pos, off_t end);

/* ---- presence bits (async-signal-safe) ---- */
int pg_bit_get(_Atomic uint64_t *bits, uint64_t pg);
int pg_bit_claim(_Atomic uint64_t *bits, uint64_t pg);	/* 1 if we set it */
void pg_bit_clear(_Atomic uint64_t *bits, uint64_t pg);
void pg_bit_set(_Atomic uint64_t *bits, uint64_t pg);
/* The next run at or after page *i of n (bit pg0 + page) whose bit equals
 * `present`: 1 with *i its first page and *len its length, or 0. */
int pg_next_run(_Atomic uint64_t *bits, uint64_t pg0, size_t n, size_t *i, int present,
		size_t *len);

/* A piece of a store mapped at [start, end), with the program's
 * protection: what the functions below act on. */
struct pg_span {
	uintptr_t start, end;
	int store;
	uint64_t off;		/* offset of start in the store */
	int prot;
	int wp_install;		/* pg_install: the pages appear write-protected */
	int armed;		/* registered for MISSING (hugetlb: missing pages
				 * are PROT_NONE, whatever their protection) */
	int minor;		/* registered for MINOR, on a store that raises
				 * minor faults (shared memory, shared hugetlb):
				 * the pages not mapped here fault */
};

/* Is the page of addr present?  For a store of ours, its bit (set from the
 * moment an install claims it); for a file store, the file's page cache
 * (swapped-out pages count), as the kernel decides.  async-signal-safe */
bool pg_present(const struct pg_span *s, uintptr_t addr);

/* A fault on a page that faults (marker or protection): what it is. */
enum pg_fault_state {
	PG_MISSING,		/* a MISSING fault */
	PG_INSTALLING,		/* being installed: it appears soon, retry */
	PG_OPENED,		/* present in a file store: opened, retry now */
	PG_MINOR,		/* in the file, not mapped here: a MINOR fault */
};
enum pg_fault_state pg_fault_state(const struct pg_span *s, uintptr_t addr);	/* a-s-s */

/* ---- making missing pages fault ---- */
/* Arm [addr, addr+len): missing pages (bit clear) fault, present ones are
 * accessible with prot.  The range must be mapped with pg_arm_entry_prot
 * (prot) on entry.  0 or a negative errno (ENOMEM past the mapping budget). */
int pg_arm(uintptr_t addr, size_t len, _Atomic uint64_t *bits, uint64_t pg0, int prot);
int pg_arm_entry_prot(int prot);
/* Every page of [addr, addr+len) accessible with prot.  a-s-s */
int pg_disarm(uintptr_t addr, size_t len, int prot);
/* The protection of the present pages only (missing ones keep faulting). */
int pg_protect_present(uintptr_t addr, size_t len, _Atomic uint64_t *bits, uint64_t pg0, int prot);
/* Protection mode: the mappings n pages need beyond one, and what the
 * registered areas use now (set after each change, the area lock held). */
long pg_extra_maps(_Atomic uint64_t *bits, uint64_t pg0, size_t n);
void pg_set_used(long extra);

/* ---- hugetlb (no markers: missing huge pages are PROT_NONE) ---- */
/* Arm [addr, addr+len) (pages of 1 << shift bytes, bits per huge page from
 * pg0): the whole range PROT_NONE, then the present pages prot.  0, or
 * -ENOMEM past the mapping budget. */
int pg_huge_arm(uintptr_t addr, size_t len, _Atomic uint64_t *bits, uint64_t pg0, unsigned shift,
		int prot);
long pg_huge_extra_maps(_Atomic uint64_t *bits, uint64_t pg0, size_t n);
int pg_huge_protect_present(uintptr_t addr, size_t len, _Atomic uint64_t *bits, uint64_t pg0,
			    unsigned shift, int prot);

/* ---- write protection (stores of ours only) ----
 * A write-protected page has its bit in store_wp_bits and is read-only in
 * the area's mapping (mprotect): a run of them among writable pages is a
 * mapping of its own, counted against the mapping budget.  Missing pages
 * keep their markers whatever their protection. */
/* Is the page of addr write-protected?  async-signal-safe */
bool pg_wp_get(const struct pg_span *s, uintptr_t addr);
/* on: write-protect the present pages of [addr, addr+len) (bits set, then
 * read-only), every page if `all` (UFFD_FEATURE_WP_UNPOPULATED: a missing
 * one keeps its marker, and faults as missing first); off: every page of it
 * writable again (as s->prot says), bits clear.  0, or -ENOMEM past the
 * mapping budget (nothing changed).  async-signal-safe */
int pg_wp_set(const struct pg_span *s, uintptr_t addr, size_t len, int on, int all);
/* UFFD_FEATURE_WP_ASYNC: a write to the protected page of addr unprotects
 * it (no message); past the mapping budget, the protected run around it.
 * 0 or -errno.  async-signal-safe */
int pg_wp_async(const struct pg_span *s, uintptr_t addr);
/* Does UFFDIO_WRITEPROTECT protect the missing pages of store s too (the
 * kernel's marker on empty entries)?  Shared memory and hugetlb always; a
 * store of ours with UFFD_FEATURE_WP_UNPOPULATED (unpopulated).  a-s-s */
SIG_SAFE static inline int pg_wp_all(int s, int unpopulated)
{
	return store_kind(s) != STORE_MEMFD || unpopulated;
}
/* A number that changes after every change of write protection.  a-s-s */
uint32_t pg_wp_gen(void);
/* The same, as UFFDIO_WRITEPROTECT does it (a fork waits for it). */
int pg_wp_protect(const struct pg_span *s, uintptr_t addr, size_t len, int on, int all);
/* The whole span was given s->prot (mprotect, a re-arm): its protected
 * pages read-only again.  async-signal-safe */
int pg_wp_reapply(const struct pg_span *s);
/* The mappings the protected runs of n pages (bits from pg0) need. */
long pg_wp_extra_maps(_Atomic uint64_t *wp, uint64_t pg0, size_t n);
/* Presence bits of [addr, addr+len) from the memfd itself (SEEK_DATA): for
 * a span whose missing pages have no markers (registered for WP alone),
 * where the kernel fills holes without asking.  async-signal-safe */
void pg_refresh(const struct pg_span *s, uintptr_t addr, size_t len);
/* Take (d > 0) or give back mappings of the budget: 0 or -ENOMEM, once
 * pg_budget_init() has read it (not in a signal handler).  a-s-s */
void pg_budget_init(void);
int pg_budget_take(long d);

/* ---- poison (UFFDIO_POISON) ---- */
/* Poison the missing pages of [addr, addr+len) (huge pages for hugetlb):
 * the bytes done, stopping at the first page that is present, poisoned or
 * write-protected, or -EEXIST if that is the first.  async-signal-safe */
long pg_poison(const struct pg_span *s, uintptr_t addr, size_t len);
/* Is the page of addr poisoned?  async-signal-safe */
bool pg_poisoned(const struct pg_span *s, uintptr_t addr);
/* [addr, addr+len) is not poisoned any more.  async-signal-safe */
void pg_poison_clear(const struct pg_span *s, uintptr_t addr, size_t len);
/* Mark the poisoned pages of [addr, addr+len) so that they fault, where
 * missing pages do not (s is registered for neither MISSING nor MINOR:
 * WP alone, or not at all): a guard marker or PROT_NONE.  a-s-s */
void pg_poison_mark(const struct pg_span *s, uintptr_t addr, size_t len);
/* Unpoison [addr, addr+len), marks included (MADV_DONTNEED).  a-s-s */
void pg_poison_drop(const struct pg_span *s, uintptr_t addr, size_t len);
/* Is a page of [addr, addr+len) poisoned?  async-signal-safe */
bool pg_poison_any(const struct pg_span *s, uintptr_t addr, size_t len);

/* ---- UFFDIO_MOVE ---- */
/* Move [src, src+len), present pages all (of private memory mapped with
 * src_prot, or of area span s, a store of ours), to [dst, dst+len) of span
 * d, where they are missing: the bytes moved (the source's pages missing
 * from then on), stopping where a destination page is present, or
 * -errno.  Writers of the source wait meanwhile.  async-signal-safe */
long pg_move(const struct pg_span *d, uintptr_t dst, uintptr_t src, size_t len, int src_prot,
	     const struct pg_span *s);
/* Is addr in a source being moved right now?  async-signal-safe */
bool pg_moving(uintptr_t addr);
/* A number that changes at the end of every move: a protection fault seen
 * after a move ended may have been its source's.  async-signal-safe */
uint32_t pg_move_gen(void);

/* ---- UFFDIO_CONTINUE ---- */
/* Map the pages of [addr, addr+len) that the file has (huge pages for
 * hugetlb), write-protected if wp: the bytes done, stopping at the first
 * page the file lacks (EFAULT), or past its end (EINVAL), or mapped here
 * already (EEXIST), or -errno if that is the first.  async-signal-safe */
long pg_continue(const struct pg_span *s, uintptr_t addr, size_t len, int wp);
/* Is the page of addr mapped in a MINOR area (pg_continue, an install, an
 * open)?  async-signal-safe */
bool pg_mapped(const struct pg_span *s, uintptr_t addr);
/* Arm the pages of [addr, addr+len) of a MINOR span that are not mapped
 * here, as the page tables say (/proc/self/pagemap), and set their mapped
 * bits: 0 or -errno. */
int pg_minor_arm(const struct pg_span *s, uintptr_t addr, size_t len);
/* [addr, addr+len) of a MINOR span is not mapped any more (MADV_DONTNEED):
 * armed again, bits clear. */
void pg_minor_unmap(const struct pg_span *s, uintptr_t addr, size_t len);

/* ---- installing ---- */
/* Install [dst, dst+len) of span s from src, or zeros if `zeros` (src is
 * then not read: a COPY from address 0 reads address 0), and populate the
 * entries if asked.  Returns the bytes installed (> 0) or a negative errno
 * (EEXIST, EFAULT, ENOMEM).  async-signal-safe */
long pg_install(const struct pg_span *s, uintptr_t dst, const void *src, int zeros, size_t len,
		int populate);
/* Fill the entries of installed pages (speed only).  async-signal-safe */
void pg_populate(int prot, uintptr_t addr, size_t len);
/* A fork waits for the installs in flight and holds new ones back. */
void pg_install_pause(void);
void pg_install_resume(void);

#endif
