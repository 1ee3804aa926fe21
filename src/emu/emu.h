/* SPDX-License-Identifier: MIT */
/*
 * The emulated back-end: shared state and internal interfaces.
 *
 * Model.  A registered range of private anonymous memory is turned into an
 * "area": a MAP_SHARED mapping of a memfd (its "backing") at the same address,
 * with the bytes it held.  A missing page is a hole in the memfd with a guard
 * marker (MADV_GUARD_INSTALL) on its page-table entry, so any user-mode access
 * raises SIGSEGV without splitting the mapping (without markers, it is
 * PROT_NONE instead: see pages.c).  UFFDIO_COPY writes the page
 * into the memfd with pwrite() (complete before anyone can see it), then
 * removes the marker (MADV_GUARD_REMOVE) and populates the entry, so the page
 * appears whole, at once, to every thread.  The SIGSEGV handler turns a
 * fault on a missing page into a uffd_msg in a waiter slot and sleeps on a
 * futex until a wake covers it.  The uffd itself is the read end of a pipe
 * (read-only, like the kernel's: write() gives EBADF): we keep the write end
 * and write a byte whenever messages wait, so poll/select/epoll work on it;
 * our end reports POLLERR once the last read end is closed, in whatever
 * process, which is how release is detected.
 *
 * Concurrency.  Everything the signal handler and COPY/ZEROPAGE/WAKE touch is
 * lock-free (atomics, seqlocks, futexes), so they are async-signal-safe.
 * Changes of the area table (REGISTER, UNREGISTER, release, fork, and the
 * program's own munmap/mremap/mprotect/madvise over areas, see vmops.c) are
 * serialised by one mutex, never taken in a signal handler.
 */
#ifndef UF_EMU_H
#define UF_EMU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <setjmp.h>
#include <sys/types.h>
#include "internal.h"

#define UF_MAX_CTX	256	/* emulated uffds per process */
#define UF_MAX_DEV	64	/* emulated /dev/userfaultfd descriptors */
#define UF_MAX_AREAS	1024	/* areas (registered pieces) per process */
#define UF_MAX_BACKING	1024	/* memfds per process */
#define UF_MAX_WAITERS	1024	/* threads waiting on a fault at once */

/* The features the emulation implements. */
#define EMU_FEATURES	(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | \
			 UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_SIGBUS | \
			 UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EXACT_ADDRESS)
/* REGISTER's ioctls answer for an emulated MISSING range. */
#define EMU_RANGE_IOCTLS ((__u64)1 << _UFFDIO_WAKE | (__u64)1 << _UFFDIO_COPY | \
			     (__u64)1 << _UFFDIO_ZEROPAGE)

/* ---- platform capabilities (probed once) ---- */
struct caps {
	size_t page_size;
	unsigned page_shift;
	uintptr_t task_size;	/* first address user space cannot map */
	int guard_markers;	/* MADV_GUARD_INSTALL works on shmem */
	int populate;		/* MADV_POPULATE_READ/WRITE work */
	int max_spinners;	/* faulting threads that may spin at once */
	long spin_ns;		/* longest spin before sleeping (0: never) */
};
extern struct caps caps;
UF_HIDDEN int caps_init(void);

/* ---- contexts (one per emulated uffd) ---- */
enum { CTX_FREE = 0, CTX_NEW, CTX_RUNNING, CTX_ORPHAN };
struct ctx {
	_Atomic int state;
	_Atomic uint32_t id;	/* (generation << 8) | index; 0 when free */
	dev_t dev;		/* identity of the user's end */
	ino_t ino;
	_Atomic int ourfd;	/* our end: the pipe's write end */
	_Atomic int users;	/* threads writing to ourfd right now */
	int flags;		/* creation flags */
	_Atomic uint64_t features;
	_Atomic int npending;	/* unread messages (faults and events) */
	_Atomic int changing;	/* events raised and not yet read: COPY and
				 * ZEROPAGE give EAGAIN (the kernel's
				 * mmap_changing) */
	_Atomic int api_busy;	/* UFFDIO_API in progress */
	/* An in-thread pager (uf_pager_open): faults call pager_fn in the
	 * faulting thread instead of queueing messages. */
	_Atomic uintptr_t pager_fn, pager_arg;
	_Atomic int pager_fd;
	_Atomic int lsock;	/* listening for other processes (remote.c) */
	int orphan_tried;	/* fork child: tried to reach the owner */
};
extern struct ctx g_ctxs[UF_MAX_CTX];
extern pthread_mutex_t g_table_lock;	/* serialises table changes */

UF_HIDDEN struct ctx *ctx_by_id(uint32_t id);	/* async-signal-safe */
UF_HIDDEN uint32_t ctx_make(int slot, dev_t dev, ino_t ino, int ourfd, int flags,
			       uint64_t features);
UF_HIDDEN void ctx_sync_ready(struct ctx *c, int userfd); /* async-signal-safe */
UF_HIDDEN void ctx_notify(struct ctx *c);		/* async-signal-safe */
UF_HIDDEN void ctx_release(struct ctx *c, uint32_t id);	/* takes g_table_lock */

/* ---- backings (memfds) and areas (registered or once-registered pieces) ---- */
struct store {
	int fd;			/* memfd, -1 when free */
	ino_t ino;
	size_t npages;
	_Atomic uint64_t *bits;	/* present bitmap, one bit per page */
	size_t bits_bytes;
	int refs;
};
extern struct store g_stores[UF_MAX_BACKING];

struct area {
	_Atomic uint32_t seq;	/* seqlock: odd while changing */
	_Atomic int live;
	_Atomic int busy;	/* conversion/fork in progress: faults wait */
	_Atomic uintptr_t start, end;
	_Atomic int backing;
	_Atomic uint64_t off;	/* offset of start in the memfd */
	_Atomic int prot;
	_Atomic uint32_t ctx;	/* owner id, 0 when unregistered */
	_Atomic uint64_t mode;
};
#define UF_LD(x) atomic_load(&(x))
#define UF_ST(x, v) atomic_store(&(x), (v))
extern struct area g_areas[UF_MAX_AREAS];
extern _Atomic int g_areas_hw;		/* slots ever used */
extern _Atomic uint32_t g_busy_gen;	/* futex: bumped when busy clears */

/* A consistent copy of an area, read without locks (async-signal-safe). */
struct area_view {
	int idx;
	uintptr_t start, end;
	int backing;
	uint64_t off;
	int prot;
	uint32_t ctx;
	uint64_t mode;
	int busy;
};
UF_HIDDEN int area_find(uintptr_t addr, struct area_view *v);	/* async-signal-safe */
UF_HIDDEN int area_still(const struct area_view *v);		/* async-signal-safe */
UF_HIDDEN bool area_page_present(const struct area_view *v, uintptr_t addr); /* a-s-s */
UF_HIDDEN void area_wait_busy(uint32_t gen);				/* a-s-s */
UF_HIDDEN void area_begin(struct area *a);
UF_HIDDEN void area_end(struct area *a);

/* ---- pages (pages.c) ---- */
/* Presence bits.  async-signal-safe */
UF_HIDDEN int pg_bit_claim(_Atomic uint64_t *bits, uint64_t pg);
UF_HIDDEN void pg_bit_clear(_Atomic uint64_t *bits, uint64_t pg);
UF_HIDDEN void pg_bit_set(_Atomic uint64_t *bits, uint64_t pg);
UF_HIDDEN int pg_next_run(_Atomic uint64_t *bits, uint64_t pg0, size_t n, size_t *i,
			  int present, size_t *len);
/* Making missing pages fault (markers or protection, see pages.c). */
UF_HIDDEN int pg_arm(uintptr_t addr, size_t len, _Atomic uint64_t *bits, uint64_t pg0, int prot);
UF_HIDDEN int pg_arm_entry_prot(int prot);
UF_HIDDEN long pg_extra_maps(_Atomic uint64_t *bits, uint64_t pg0, size_t n);
UF_HIDDEN void pg_set_used(long extra);
UF_HIDDEN int pg_disarm(uintptr_t addr, size_t len, int prot);	/* a-s-s */
UF_HIDDEN int pg_protect_present(uintptr_t addr, size_t len, _Atomic uint64_t *bits,
				       uint64_t pg0, int prot);
/* Install pages [dst, dst+len) of one area from src, or zeros if `zeros`
 * (src is then not used: a COPY from address 0 reads address 0), and
 * populate their entries if asked.  Returns bytes installed (> 0) or a
 * negative errno.  async-signal-safe */
UF_HIDDEN long pg_install(const struct area_view *v, uintptr_t dst, const void *src, int zeros,
			  size_t len, int populate);
/* Fill the entries of installed pages (speed only).  async-signal-safe */
UF_HIDDEN void pg_populate(const struct area_view *v, uintptr_t addr, size_t len);

/* fork waits for installs in flight and holds new ones back. */
UF_HIDDEN void pg_install_pause(void);
UF_HIDDEN void pg_install_resume(void);

/* ---- /proc/self/maps (maps.c) ---- */
enum vma_kind { VMA_ANON, VMA_OURS, VMA_SHMEM, VMA_STACK, VMA_OTHER };
struct vma {
	uintptr_t start, end;
	int prot;
	int shared;
	enum vma_kind kind;
	unsigned long ino;
};
/* The mappings that intersect [start, end), in address order: their count
 * (*out is malloc'ed) or a negative errno. */
UF_HIDDEN int maps_in(uintptr_t start, uintptr_t end, struct vma **out);

/* Table changes, with g_table_lock held. */
UF_HIDDEN int area_register_locked(struct ctx *c, uintptr_t start, uintptr_t end, uint64_t mode);
UF_HIDDEN int area_unregister_locked(struct ctx *c, uintptr_t start, uintptr_t end);
UF_HIDDEN void area_unregister_all_locked(uint32_t ctx_id);

/* The program's memory calls over areas (area.c, driven by vmops.c). */
UF_HIDDEN void vmops_anchor(void);
UF_HIDDEN int area_meet(uintptr_t start, uintptr_t end);	/* a-s-s */
UF_HIDDEN void area_forget_locked(uintptr_t start, uintptr_t end);
UF_HIDDEN int area_protect_locked(uintptr_t start, uintptr_t end, int prot);
UF_HIDDEN int area_discard_locked(uintptr_t start, uintptr_t end);
UF_HIDDEN struct area *area_exact_locked(uintptr_t start, uintptr_t end);
UF_HIDDEN int area_move_begin_locked(struct area *a, size_t newlen);
UF_HIDDEN void area_move_end_locked(struct area *a, void *to, size_t newlen, int keep);

/* ---- non-cooperative events (events.c) ---- */
enum { EV_UNMAP, EV_REMOVE, EV_REMAP };
#define EV_MAX 64	/* events one operation raises, at most */
struct ev {
	uint32_t ctx;
	uintptr_t start, end;
};
UF_HIDDEN int ev_collect_locked(int kind, uintptr_t start, uintptr_t end,
				       struct ev *ev, int max);
UF_HIDDEN int ev_send(int kind, const struct ev *e, uintptr_t to);
UF_HIDDEN void ev_done(const struct ev *ev, int n);

/* ---- waiters (fault.c) ---- */
UF_HIDDEN long wq_wake_range(struct ctx *c, uintptr_t start, uintptr_t end,
			    long *woken);			/* a-s-s */
UF_HIDDEN void wq_wake_all(uint32_t ctx_id);			/* a-s-s */
UF_HIDDEN int wq_take(struct ctx *c, struct uffd_msg *out, int max); /* a-s-s */
#define WQ_TAKEN_MAX 64
struct wq_taken {	/* events taken, to be completed once delivered */
	int n;
	int slot[WQ_TAKEN_MAX];
	uint32_t state[WQ_TAKEN_MAX];
};
UF_HIDDEN int wq_take_ex(struct ctx *c, struct uffd_msg *out, int max,
			      struct wq_taken *later);			/* a-s-s */
UF_HIDDEN void wq_complete(const struct wq_taken *t);		/* a-s-s */
UF_HIDDEN int wq_event_raise(struct ctx *c, const struct uffd_msg *msg);
UF_HIDDEN void wq_reset_after_fork(void);

/* ---- signals (sigchain.c) ---- */
UF_HIDDEN int fault_install(void);

/* Copying to and from caller memory that may be bad: -EFAULT instead of a
 * crash.  async-signal-safe. */
UF_HIDDEN int usercopy_in(void *dst, const void *usrc, size_t n);
UF_HIDDEN int usercopy_out(void *udst, const void *src, size_t n);
/* Called first by the SIGSEGV handler: returns only if no copy was running. */
UF_HIDDEN void usercopy_recover(void);

/* ---- statistics ---- */
struct stats {
	_Atomic uint64_t faults, sigbus, pages_installed;
};
extern struct stats g_stats;

/* ---- fork (fork.c drives, area.c acts) ---- */
UF_HIDDEN void fork_init(void);
UF_HIDDEN void area_freeze_all(void);		/* parent, before */
UF_HIDDEN void area_thaw_all(void);		/* parent, after */
UF_HIDDEN void area_privatize_all(const uint32_t *from, const uint32_t *to, int n); /* child */

/* ---- misc ---- */
UF_HIDDEN void watch_add(struct ctx *c);
/* Watch another descriptor (EPOLLIN; tag says what it is). */
UF_HIDDEN void watch_fd(int fd, uint64_t tag);
UF_HIDDEN void ctx_live_add(int n);

/* ---- a uffd used from another process (remote.c) ---- */
#define UF_TAG_MASK	(0xffULL << 56)
#define UF_TAG_RELEASE	(0ULL << 56)	/* a uffd's write end: its release */
#define UF_TAG_LISTEN	(1ULL << 56)	/* a uffd's listening socket */
#define UF_TAG_CONN	(2ULL << 56)	/* a client's connection */
#define UF_TAG_REMOTE	(3ULL << 56)	/* a foreign uffd's write end */
UF_HIDDEN int remote_listen(struct ctx *c);
UF_HIDDEN void remote_service_event(int epfd, uint64_t tag, uint32_t events);
UF_HIDDEN void remote_service_reset_after_fork(void);
UF_HIDDEN int remote_lookup(dev_t dev, ino_t ino);	/* a-s-s */
UF_HIDDEN int remote_attach(int fd);
UF_HIDDEN int remote_orphan(int fd, struct ctx *c);
UF_HIDDEN void remote_reap(void);
UF_HIDDEN int remote_ioctl(int fd, unsigned long req, unsigned long arg);
UF_HIDDEN ssize_t remote_read(int fd, void *buf, size_t count);
UF_HIDDEN void remote_reset_after_fork(void);
/* A FORK message's descriptor arrived (fd): give it the creation flags of
 * the parent uffd and make it usable from here; returns its number. */
UF_HIDDEN int remote_adopt_fork_fd(int fd, int flags);
UF_HIDDEN void watch_reset_after_fork(void);

static inline uintptr_t pg_down(uintptr_t a) { return a & ~(uintptr_t)(caps.page_size - 1); }

#endif
