/* SPDX-License-Identifier: MIT */
/*
 * The fault recorder (record.h).
 *
 * The table: UF_STAT_MAX records of struct uf_stat, in a shared mapping
 * (anonymous for uf_stat_enable, a memfd for uf_stat_create and
 * USERFAULT_STAT_FD), so that forked and executed children add to the same
 * table and the process that made it reads it even after they crashed.
 * Counters are relaxed atomic adds.
 *
 * Which uffd a descriptor names: a byte per descriptor number (index + 1),
 * kept by creation, dup and close.
 *
 * Latency: a fault is pending from the moment it is seen (the emulation's
 * fault path, else the read of its message) until an ioctl of its uffd
 * resolves a range that holds its page.  Pending faults live in a small
 * open-addressed table of this process, keyed by page and tag:
 *   page | T_FAULT               faulted here, message not read yet
 *   page | T_READ | slot [| T_F] message read from uffd slot (T_F: the
 *                                time is the fault's)
 * A fault that finds no room within PROBE entries is not timed
 * (untracked).
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "base/fdreg.h"
#include "base/options.h"
#include "base/record.h"

#define REC_MAGIC 0x75667374u	/* "ufst" */
#define REC_VERSION 1

struct rec_table *_Atomic g_rec;

static unsigned g_page_shift = 12;

/* Descriptor number -> slot + 1. */
#define FDS 65536
static _Atomic uint8_t g_fdslot[FDS];

#define PEND 1024		/* a power of two */
#define PROBE 8
#define T_FAULT 0x1u
#define T_CLAIM 0x2u		/* (key alone: an entry being filled) */
#define T_READ 0x100u
#define T_F 0x200u
#define T_SLOT 0x3fu
struct pend {
	_Atomic uint64_t key;
	_Atomic uint64_t t;
};
static struct pend g_pend[PEND];
static _Atomic int g_live;

#define ADD(field, n) __atomic_fetch_add(&(field), (uint64_t)(n), __ATOMIC_RELAXED)

static size_t table_size(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	return (sizeof(struct rec_table) + pg - 1) / pg * pg;
}

static void set_page_shift(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned s = 0;

	while (pg > 1) {
		pg >>= 1;
		s++;
	}
	g_page_shift = s;
}

static struct rec_table *map_table(int fd)
{
	void *p = sys_mmap(NULL, table_size(), PROT_READ | PROT_WRITE,
		       MAP_SHARED | (fd < 0 ? MAP_ANONYMOUS : 0), fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void init_table(struct rec_table *t)
{
	t->magic = REC_MAGIC;
	t->version = REC_VERSION;
	t->size = (uint32_t)sizeof *t;
}

static int valid(const struct rec_table *t)
{
	return t->magic == REC_MAGIC && t->version == REC_VERSION && t->size == sizeof *t;
}

int rec_enable(void)
{
	struct rec_table *t, *none = NULL;

	if (rec_on())
		return 0;
	if (!(t = map_table(-1)))
		return -errno;
	init_table(t);
	set_page_shift();
	if (!atomic_compare_exchange_strong(&g_rec, &none, t))
		sys_munmap(t, table_size());
	return 0;
}

int rec_create(void)
{
	int fd = memfd_create("userfault-stat", 0);
	struct rec_table *t;
	int e;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)table_size()) < 0 || !(t = map_table(fd))) {
		e = errno;
		sys_close(fd);
		return -e;
	}
	init_table(t);
	sys_munmap(t, table_size());
	return fd;
}

int rec_attach(int fd)
{
	struct stat st;
	struct rec_table *t, *old;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)table_size())
		return -EINVAL;
	if (!(t = map_table(fd)))
		return errno == EACCES || errno == ENODEV ? -EINVAL : -errno;
	if (!valid(t)) {
		sys_munmap(t, table_size());
		return -EINVAL;
	}
	set_page_shift();
	old = atomic_exchange(&g_rec, t);
	(void)old;	/* (left mapped: a thread may still be adding to it) */
	return 0;
}

/* A table inherited from the process that will read it.  (Before the
 * drop-in's constructor, which records the uffds inherited across exec.)
 * Not in a set-user-ID or set-group-ID program: its environment is its
 * caller's, and no descriptor it names is trusted. */
__attribute__((constructor(101))) static void rec_inherit(void)
{
	int fd = getauxval(AT_SECURE) ? -1 : opt_stat_fd();

	if (fd >= 0 && rec_attach(fd) == 0)
		fd_own(fd);	/* (a program closing every descriptor keeps it) */
}

static struct uf_stat *slot_at(int fd)
{
	struct rec_table *t = atomic_load_explicit(&g_rec, memory_order_acquire);
	int s;

	if (!t || fd < 0 || fd >= FDS || !(s = atomic_load_explicit(&g_fdslot[fd], memory_order_relaxed)))
		return NULL;
	return &t->slot[s - 1];
}

/* async-signal-safe */
int rec_fd(int fd)
{
	return rec_on() && fd >= 0 && fd < FDS && atomic_load_explicit(&g_fdslot[fd], memory_order_relaxed);
}

void rec_new(int fd, int backend, int parent)
{
	struct rec_table *t = atomic_load_explicit(&g_rec, memory_order_acquire);
	uint32_t n;
	struct uf_stat *s;

	if (!t || fd < 0 || fd >= FDS)
		return;
	n = atomic_fetch_add(&t->nslots, 1);
	if (n >= UF_STAT_MAX) {
		n = UF_STAT_MAX - 1;	/* (shared by every further uffd) */
	} else {
		s = &t->slot[n];
		s->pid = (int32_t)getpid();
		s->fd = fd;
		s->backend = backend;
		s->parent = parent;
	}
	atomic_store(&g_fdslot[fd], (uint8_t)(n + 1));
}

void rec_dup(int oldfd, int newfd)
{
	if (!rec_on() || newfd < 0 || newfd >= FDS)
		return;
	atomic_store(&g_fdslot[newfd], oldfd >= 0 && oldfd < FDS ? atomic_load(&g_fdslot[oldfd]) : 0);
}

void rec_close(int fd)
{
	if (rec_on() && fd >= 0 && fd < FDS)
		atomic_store(&g_fdslot[fd], 0);
}

/* ---- pending faults ---- */

SIG_SAFE static unsigned pend_hash(uint64_t page)
{
	return (unsigned)(((page >> 12) * 0x9e3779b97f4a7c15ull) >> 54) & (PEND - 1);
}

/* Add key with time t: 1, or 0 if there was no room.  a-s-s */
SIG_SAFE static int pend_add(uint64_t key, uint64_t t)
{
	unsigned h = pend_hash(key & ~0xfffull);

	for (unsigned i = 0; i < PROBE; i++) {
		struct pend *e = &g_pend[(h + i) & (PEND - 1)];
		uint64_t free_key = 0;
		if (atomic_load_explicit(&e->key, memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_strong(&e->key, &free_key, T_CLAIM)) {
			atomic_store_explicit(&e->t, t, memory_order_relaxed);
			atomic_store_explicit(&e->key, key, memory_order_release);
			atomic_fetch_add(&g_live, 1);
			return 1;
		}
	}
	return 0;
}

/* async-signal-safe */
SIG_SAFE void rec_fault_slow(uintptr_t addr)
{
	uint64_t page = (uint64_t)addr >> g_page_shift << g_page_shift;

	if (page)
		pend_add(page | T_FAULT, (uint64_t)sys_now_ns());
}

/* A fault message of slot for page was read: its pending entry. */
static void pend_read(struct uf_stat *s, unsigned slot, uint64_t page, uint64_t now)
{
	unsigned h = pend_hash(page);

	if (atomic_load(&g_live) > 0) {
		for (unsigned i = 0; i < PROBE; i++) {
			struct pend *e = &g_pend[(h + i) & (PEND - 1)];
			uint64_t k = page | T_FAULT;
			if (atomic_compare_exchange_strong(&e->key, &k, page | T_READ | T_F | slot))
				return;
		}
	}
	if (!pend_add(page | T_READ | slot, now))
		ADD(s->untracked, 1);
}

static unsigned bucket_of(uint64_t ns)
{
	unsigned e, b;

	if (ns < 16)
		return (unsigned)ns;
	e = 63u - (unsigned)__builtin_clzll(ns);
	b = 16 + (e - 4) * 8 + (unsigned)((ns >> (e - 3)) & 7);
	return b < UF_STAT_BUCKETS ? b : UF_STAT_BUCKETS - 1;
}

static void sample(struct uf_stat *s, uint64_t ns, int from_fault)
{
	uint64_t max = __atomic_load_n(&s->latency_max_ns, __ATOMIC_RELAXED);

	ADD(s->resolved, 1);
	if (from_fault)
		ADD(s->latency_from_fault, 1);
	ADD(s->latency_sum_ns, ns);
	ADD(s->latency[bucket_of(ns)], 1);
	while (ns > max && !__atomic_compare_exchange_n(&s->latency_max_ns, &max, ns, 0,
							__ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* Is e a fault of slot (or not read yet) within [lo, hi)?  Then take it
 * and, if timed, count its latency. */
static void pend_try(struct pend *e, struct uf_stat *s, unsigned slot, uint64_t lo, uint64_t hi,
		     uint64_t now, int timed)
{
	uint64_t k = atomic_load_explicit(&e->key, memory_order_acquire);
	uint64_t page = k & ~0xfffull, tag = k & 0xfffull;
	uint64_t t;

	if (!k || page < lo || page >= hi)
		return;
	if (tag != T_FAULT && !((tag & T_READ) && (tag & T_SLOT) == slot))
		return;
	t = atomic_load_explicit(&e->t, memory_order_relaxed);
	if (!atomic_compare_exchange_strong(&e->key, &k, 0))
		return;
	atomic_fetch_sub(&g_live, 1);
	if (timed)
		sample(s, now > t ? now - t : 0, tag == T_FAULT || (tag & T_F));
}

/* Faults of slot within [start, start + len) are resolved. */
static void pend_resolve(struct uf_stat *s, unsigned slot, uint64_t start, uint64_t len, int timed)
{
	uint64_t lo = start >> g_page_shift << g_page_shift, hi = start + len;
	uint64_t now, pages;

	if (!len || atomic_load(&g_live) <= 0)
		return;
	now = (uint64_t)sys_now_ns();
	pages = (hi - lo + (1ull << g_page_shift) - 1) >> g_page_shift;
	if (pages > PEND / PROBE) {
		for (unsigned i = 0; i < PEND; i++)
			pend_try(&g_pend[i], s, slot, lo, hi, now, timed);
		return;
	}
	for (uint64_t p = lo; p < hi; p += 1ull << g_page_shift) {
		unsigned h = pend_hash(p);
		for (unsigned i = 0; i < PROBE; i++)
			pend_try(&g_pend[(h + i) & (PEND - 1)], s, slot, p, p + 1, now, timed);
	}
}

/* ---- the entry points' records ---- */

static unsigned event_index(unsigned ev)
{
	switch (ev) {
	case UFFD_EVENT_PAGEFAULT: return UF_STAT_EV_PAGEFAULT;
	case UFFD_EVENT_FORK: return UF_STAT_EV_FORK;
	case UFFD_EVENT_REMAP: return UF_STAT_EV_REMAP;
	case UFFD_EVENT_REMOVE: return UF_STAT_EV_REMOVE;
	case UFFD_EVENT_UNMAP: return UF_STAT_EV_UNMAP;
	default: return UF_STAT_EV_OTHER;
	}
}

void rec_read(int fd, const void *buf, ssize_t n)
{
	struct uf_stat *s = slot_at(fd);
	struct rec_table *t = atomic_load(&g_rec);
	uint64_t now;

	if (!s || n < (ssize_t)sizeof(struct uffd_msg))
		return;
	now = (uint64_t)sys_now_ns();
	for (ssize_t i = 0; i + (ssize_t)sizeof(struct uffd_msg) <= n; i += sizeof(struct uffd_msg)) {
		struct uffd_msg m;
		memcpy(&m, (const char *)buf + i, sizeof m);
		ADD(s->messages, 1);
		ADD(s->events[event_index(m.event)], 1);
		if (m.event == UFFD_EVENT_PAGEFAULT) {
			uint64_t f = m.arg.pagefault.flags;
			if (f & UFFD_PAGEFAULT_FLAG_WRITE)
				ADD(s->faults_write, 1);
			if (f & UFFD_PAGEFAULT_FLAG_WP)
				ADD(s->faults_wp, 1);
			if (f & UFFD_PAGEFAULT_FLAG_MINOR)
				ADD(s->faults_minor, 1);
			pend_read(s, (unsigned)(s - t->slot), m.arg.pagefault.address >> g_page_shift << g_page_shift, now);
		} else if (m.event == UFFD_EVENT_FORK) {
			rec_new((int)m.arg.fork.ufd, s->backend, (int)(s - t->slot));
		}
	}
}

/* A call of kind k did len bytes of its work at start; if `resolves`, the
 * faults there are resolved. */
static void counted(struct uf_stat *s, unsigned slot, int k, uint64_t start, uint64_t len, int resolves)
{
	ADD(s->ioctls[k], 1);
	ADD(s->bytes[k], len);
	ADD(s->pages[k], (len + (1ull << g_page_shift) - 1) >> g_page_shift);
	if (resolves)
		pend_resolve(s, slot, start, len, 1);
}

/* A call of kind k did done bytes of its work at dst (resolving them), or
 * failed with err. */
static void resolved(struct uf_stat *s, unsigned slot, int k, uint64_t dst, int64_t done, long r, int err)
{
	/* The count field is written by a call that succeeded or did a part
	 * (EAGAIN); a call refused at once leaves the caller's value there. */
	if (r < 0 && err != EAGAIN)
		done = 0;
	if (done > 0)
		counted(s, slot, k, dst, (uint64_t)done, 1);
	if (r >= 0)
		return;
	if (err == EEXIST) {
		/* Its first page was there already: the fault was resolved
		 * before (not timed). */
		ADD(s->eexist, 1);
		pend_resolve(s, slot, dst, 1, 0);
	} else if (err != EAGAIN) {
		ADD(s->errors, 1);
	}
}

void rec_ioctl(int fd, unsigned long req, unsigned long arg, long r, int err)
{
	struct uf_stat *s = slot_at(fd);
	struct rec_table *t = atomic_load(&g_rec);
	unsigned slot;

	if (!s)
		return;
	if (!arg || (r < 0 && err == EFAULT)) {
		/* (the arguments may not be readable) */
		if (r < 0 && (req == UFFDIO_COPY || req == UFFDIO_ZEROPAGE || req == UFFDIO_CONTINUE ||
			      req == UFFDIO_POISON || req == UFFDIO_MOVE || req == UFFDIO_WRITEPROTECT ||
			      req == UFFDIO_WAKE))
			ADD(s->errors, 1);
		return;
	}
	slot = (unsigned)(s - t->slot);
	switch (req) {
	case UFFDIO_API:
		if (r == 0)
			__atomic_store_n(&s->features, ((const struct uffdio_api *)arg)->features, __ATOMIC_RELAXED);
		break;
	case UFFDIO_REGISTER:
		if (r == 0)
			ADD(s->registered, ((const struct uffdio_register *)arg)->range.len);
		break;
	case UFFDIO_COPY: {
		const struct uffdio_copy *c = (const void *)arg;
		resolved(s, slot, UF_STAT_COPY, c->dst, c->copy, r, err);
		break;
	}
	case UFFDIO_ZEROPAGE: {
		const struct uffdio_zeropage *z = (const void *)arg;
		resolved(s, slot, UF_STAT_ZEROPAGE, z->range.start, z->zeropage, r, err);
		break;
	}
	case UFFDIO_CONTINUE: {
		const struct uffdio_continue *c = (const void *)arg;
		resolved(s, slot, UF_STAT_CONTINUE, c->range.start, c->mapped, r, err);
		break;
	}
	case UFFDIO_POISON: {
		const struct uffdio_poison *p = (const void *)arg;
		resolved(s, slot, UF_STAT_POISON, p->range.start, p->updated, r, err);
		break;
	}
	case UFFDIO_MOVE: {
		const struct uffdio_move *m = (const void *)arg;
		resolved(s, slot, UF_STAT_MOVE, m->dst, m->move, r, err);
		break;
	}
	case UFFDIO_WRITEPROTECT: {
		/* (A range that succeeded is whole pages.) */
		const struct uffdio_writeprotect *w = (const void *)arg;
		if (r < 0)
			ADD(s->errors, 1);
		else
			counted(s, slot, UF_STAT_WRITEPROTECT, w->range.start, w->range.len,
				!(w->mode & (UFFDIO_WRITEPROTECT_MODE_WP | UFFDIO_WRITEPROTECT_MODE_DONTWAKE)));
		break;
	}
	case UFFDIO_WAKE: {
		const struct uffdio_range *w = (const void *)arg;
		if (r < 0)
			ADD(s->errors, 1);
		else
			counted(s, slot, UF_STAT_WAKE, w->start, w->len, 1);
		break;
	}
	default:
		break;
	}
}
