/* SPDX-License-Identifier: MIT */
/*
 * cmd-stress.c - "userfault stress": bounce pages between two regions
 * through page faults, and check every byte.
 *
 * Round r copies region SRC into region DST (the roles swap each round):
 *
 *   1. copy:    DST is emptied (MADV_DONTNEED) and registered for missing
 *               pages; faulting threads read every page in a random order
 *               and check it; handler threads serve the faults with
 *               UFFDIO_COPY of a random size (4 KiB to 2 MiB) around the
 *               address.  Midway the main thread forks: the child checks
 *               that each page is either whole or missing (zero).
 *   2. drop:    random ranges of DST are dropped (MADV_DONTNEED) while it
 *               is registered; the faulting threads read them again, so
 *               they fault and are served again.
 *   3. write:   the faulting threads write the next round's pattern into
 *               every page of DST.
 *   4. check:   DST is unregistered and every byte compared.
 *
 * --memory picks the regions' memory: private anonymous (the default),
 * shared anonymous (shmem: emptied and dropped with MADV_REMOVE, since
 * MADV_DONTNEED leaves shared pages in place; no fork, whose child would
 * fill the shared file with zeros), or private anonymous huge pages
 * (hugetlb: 2 MiB pages, COPY of whole huge pages), or shared ones
 * (hugetlb-shared).
 *
 * With --wp DST is registered for MISSING and WP: the
 * copies install the pages write-protected (UFFDIO_COPY_MODE_WP), so the
 * write phase takes a WP fault per protected page, which the handlers serve
 * by lifting the protection (UFFDIO_WRITEPROTECT) of a random range around
 * it, while the main thread protects random ranges again.
 *
 * With --move (private anonymous memory) the handlers serve the faults
 * with UFFDIO_MOVE from SRC instead of COPY: SRC's pages go to DST (a page
 * moved away already, by a drop of step 2, is copied from the pattern; one
 * shared with the fork child, EBUSY, is copied from SRC).
 *
 * With --minor (shmem or hugetlb-shared) each region is a memfd mapped
 * twice, and DST's view is registered for MINOR and MISSING: a missing
 * page is written into the file through the other mapping, then mapped
 * with UFFDIO_CONTINUE; step 2 drops with MADV_DONTNEED, which leaves the
 * pages in the file, so they come back as minor faults, which CONTINUE
 * alone serves.
 *
 * With --events the uffd asks for UFFD_FEATURE_EVENT_REMOVE and EVENT_FORK:
 * each drop of step 2 waits until a handler has read its REMOVE (COPY gives
 * EAGAIN meanwhile: the handler wakes the page and the faulter comes
 * back), and the fork of step 1 gives a FORK event whose new uffd serves
 * the child's missing pages (with zeros) from a thread of ours.
 *
 * Exit status 0 only if every byte checked out.  The last line says how
 * many bytes were checked and how many corruptions were found.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char stress_help[] =
	"usage: " CLI_NAME " stress [--backend B] [--seconds N] [--threads T]\n"
	"                        [--handlers H] [--size MIB] [--rounds R] [--seed S] [--no-fork]\n"
	"                        [--events] [--memory anon|shmem|hugetlb|hugetlb-shared] [--wp]\n"
	"                        [--move | --minor]\n"
	"\n"
	"Bounce pages between two regions through page faults: each round\n"
	"registers the destination, faulting threads read its pages in random\n"
	"order while handler threads serve them with UFFDIO_COPY of random sizes\n"
	"(4 KiB to 2 MiB); random ranges are then dropped with MADV_DONTNEED and\n"
	"faulted again; the faulting threads write the next round's pattern; the\n"
	"destination is unregistered and every byte checked; the regions swap\n"
	"roles.  A child forked in the middle of each copy checks that every page\n"
	"it sees is whole or missing.\n"
	"\n"
	"  --seconds N    run rounds for about N seconds (default 10)\n"
	"  --rounds R     stop after R rounds (default: no limit)\n"
	"  --threads T    faulting threads (default 4)\n"
	"  --handlers H   handler threads (default 2)\n"
	"  --size MIB     size of each region in MiB (default 32)\n"
	"  --seed S       random seed (default: from the clock; printed)\n"
	"  --no-fork      do not fork during the copies\n"
	"  --memory M     anon (default), shmem (MAP_SHARED|MAP_ANONYMOUS; emptied\n"
	"                 with MADV_REMOVE; no fork), hugetlb (private 2 MiB huge\n"
	"                 pages) or hugetlb-shared (shared ones; no fork): the\n"
	"                 huge pages come from vm.nr_hugepages\n"
	"  --events       ask for UFFD_FEATURE_EVENT_REMOVE and EVENT_FORK: the drops\n"
	"                 send REMOVE events, the forks FORK events (the child's\n"
	"                 uffd is served with zero pages)\n"
	"  --move         serve with UFFDIO_MOVE from the other region (anon only)\n"
	"  --minor        each region a memfd mapped twice, registered for MINOR\n"
	"                 too: pages are written through the other mapping and\n"
	"                 mapped with UFFDIO_CONTINUE; drops make minor faults\n"
	"                 (shmem and hugetlb-shared only)\n"
	"  --wp           register for WP too: pages are copied in\n"
	"                 write-protected, the writes take WP faults that lift the\n"
	"                 protection of random ranges, and random ranges are\n"
	"                 protected again meanwhile\n"
	"\n"
	"Exit status: 0 if every byte checked out; 1 if one did not, or the run\n"
	"could not be set up (no such memory, no back-end); 2 for a command-line\n"
	"error.\n";

#define MAX_FAULTERS 64
#define MAX_HANDLERS 16
#define PHASE_LIMIT_S 120	/* a phase that takes longer has hung */

struct stress {
	size_t ps, npages, len;
	char *reg[2];
	int uffd, stopfd;
	unsigned nfaulters, nhandlers;
	uint64_t seed;

	/* The round: DST = reg[dst], whose pages should hold pattern(round)
	 * after the copy, then pattern(round + 1) after the write phase. */
	_Atomic int dst;
	unsigned round;

	/* The current phase's work: a list of pages shared out by index. */
	uint64_t *order;
	size_t norder;
	_Atomic size_t next;
	_Atomic int phase;		/* PH_* */
	_Atomic unsigned busy;		/* faulters still in the phase */
	_Atomic unsigned gen;		/* bumped to start a phase */
	_Atomic int quit;

	_Atomic uint64_t checked;	/* bytes compared */
	_Atomic uint64_t corrupt;	/* pages found wrong */
	_Atomic uint64_t faults, copies, eexist, partial;
	int events;			/* --events */
	int wp;				/* --wp */
	int move, minor;		/* --move, --minor */
	char *alias[2];			/* --minor: the regions' other mappings */
	_Atomic unsigned *filled[2];	/* --minor: the round + 1 that wrote each page
					 * into the file (a stale message must not
					 * write over a later phase's data) */
	_Atomic uint64_t moves, busy_moves, minor_faults, continues;
	_Atomic uint64_t wp_faults, reprotects;
	int drop_advice;		/* MADV_DONTNEED, or MADV_REMOVE (shared) */
	_Atomic uint64_t removes, forks, retries;
	_Atomic int child_uffd;		/* a FORK event's uffd, -1 if none */
	_Atomic int child_started, child_stop;
	pthread_t child_th;
	_Atomic int err;		/* first unexpected errno */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Held (read) by a handler while it serves a message, (write) by the
	 * main thread while it swaps the regions and empties the new DST: a
	 * stale message's COPY must not read a region being emptied. */
	pthread_rwlock_t swap;
};

enum { PH_READ = 1, PH_WRITE };

/* ---- the pattern: one 64-bit word per 8 bytes ---- */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t word(const struct stress *s, unsigned round, uint64_t page, size_t w)
{
	return mix(s->seed ^ ((uint64_t)round << 44) ^ (page << 12) ^ w);
}

static void fill_page(const struct stress *s, char *p, unsigned round, uint64_t page)
{
	uint64_t *q = (uint64_t *)p;
	for (size_t w = 0; w < s->ps / 8; w++)
		q[w] = word(s, round, page, w);
}

/* 1 if page holds pattern(round).  Async-signal-safe (the fork child). */
static int page_ok(const struct stress *s, const char *p, unsigned round, uint64_t page)
{
	const volatile uint64_t *q = (const volatile uint64_t *)p;
	for (size_t w = 0; w < s->ps / 8; w++)
		if (q[w] != word(s, round, page, w))
			return 0;
	return 1;
}

static int page_zero(const struct stress *s, const char *p)
{
	const volatile uint64_t *q = (const volatile uint64_t *)p;
	for (size_t w = 0; w < s->ps / 8; w++)
		if (q[w])
			return 0;
	return 1;
}

static void note_err(struct stress *s, int e)
{
	int z = 0;
	atomic_compare_exchange_strong(&s->err, &z, e);
}

static uint64_t rnd(uint64_t *st)
{
	*st = mix(*st);
	return *st;
}

/* ---- handlers ---- */

static void wake_page(struct stress *s, uintptr_t page)
{
	struct uffdio_range r = { page, s->ps };
	if (uf_ioctl(s->uffd, UFFDIO_WAKE, &r) < 0)
		note_err(s, errno);
}

/* --move: the page at dst (of region DST, page index pg) from SRC; where
 * SRC has no page any more (moved before a drop), a COPY of the pattern;
 * where it is shared with the fork child (EBUSY), a COPY of it. */
static void serve_move_page(struct stress *s, uintptr_t dst, const char *src, uint64_t pg)
{
	struct uffdio_move mv = { dst, (uintptr_t)src, s->ps, 0, 0 };
	struct uffdio_copy c = { dst, (uintptr_t)src, s->ps, 0, 0 };
	char *buf = NULL;

	if (uf_ioctl(s->uffd, UFFDIO_MOVE, &mv) == 0) {
		atomic_fetch_add(&s->moves, 1);
		return;
	}
	if (errno == EEXIST || errno == EAGAIN) {
		if (errno == EAGAIN)
			atomic_fetch_add(&s->retries, 1);
		wake_page(s, dst);
		return;
	}
	if (errno == EBUSY) {
		atomic_fetch_add(&s->busy_moves, 1);
	} else if (errno == ENOENT && (buf = malloc(s->ps))) {
		fill_page(s, buf, s->round, pg);
		c.src = (uintptr_t)buf;
	} else {
		if (errno != ENOENT)
			note_err(s, errno);
		return;
	}
	if (uf_ioctl(s->uffd, UFFDIO_COPY, &c) < 0) {
		if (errno != EEXIST && errno != EAGAIN && errno != ENOENT)
			note_err(s, errno);
		wake_page(s, dst);
	}
	free(buf);
}

/* --minor: write the page at offset off of region dst into its file, from
 * SRC, once per round. */
static void fill_file(struct stress *s, int dst, uintptr_t off)
{
	/* 2 * (round + 1): being written; + 1: written.  Whoever maps the
	 * page must wait until it is written whole. */
	unsigned busy = 2 * (s->round + 1), done = busy + 1;
	_Atomic unsigned *f = &s->filled[dst][off / s->ps];
	unsigned v = atomic_load(f);

	while (v != done) {
		if (v == busy) {
			sched_yield();
			v = atomic_load(f);
		} else if (atomic_compare_exchange_strong(f, &v, busy)) {
			memcpy(s->alias[dst] + off, s->reg[!dst] + off, s->ps);
			atomic_store(f, done);
			return;
		}
	}
}

/* --minor: map [from, to) of DST's view, after writing it into the file
 * through the other mapping (a missing fault: the file lacks a page; a
 * minor fault: the file has them all). */
static void serve_minor(struct stress *s, int dst, uintptr_t from, uintptr_t to, uintptr_t page, int minor)
{
	uintptr_t base = (uintptr_t)s->reg[dst];
	struct uffdio_continue c = { { from, to - from }, s->wp ? UFFDIO_CONTINUE_MODE_WP : 0, 0 };

	if (minor)
		atomic_fetch_add(&s->minor_faults, 1);
	/* (a minor fault too: a page of the range may be half written into
	 * the file by another handler, which must finish before CONTINUE maps
	 * it and wakes its faulters) */
	for (uintptr_t a = from; a < to; a += s->ps)
		fill_file(s, dst, a - base);
	if (uf_ioctl(s->uffd, UFFDIO_CONTINUE, &c) == 0) {
		atomic_fetch_add(&s->continues, 1);
		return;
	}
	if (errno == EAGAIN && c.mapped > 0)
		atomic_fetch_add(&s->partial, 1);
	else if (errno == EAGAIN)
		atomic_fetch_add(&s->retries, 1);
	else if (errno == EEXIST)
		atomic_fetch_add(&s->eexist, 1);
	else if (errno != ENOENT && errno != EFAULT)	/* (EFAULT: a page the file lacks) */
		note_err(s, errno);
	/* Part of the range was mapped, or a page was missing from the file
	 * (a minor fault's neighbour): make sure of the faulting page. */
	c.range.start = page;
	c.range.len = s->ps;
	if (uf_ioctl(s->uffd, UFFDIO_CONTINUE, &c) < 0 && errno != ENOENT && errno != EEXIST && errno != EAGAIN)
		note_err(s, errno);
	wake_page(s, page);
}

/* Serve a fault at addr with a COPY of a random size around it (a MOVE
 * with --move, a CONTINUE with --minor). */
static void serve(struct stress *s, uintptr_t addr, uint64_t *st, int minor)
{
	static const size_t sizes[] = { 4096, 8192, 16384, 65536, 262144, 2097152 };
	/* DST read once: the main thread swaps the regions between rounds,
	 * and a stale message (two faulters on one page: the first COPY
	 * served both) may be read late, even rounds later. */
	int dst = atomic_load(&s->dst);
	uintptr_t base = (uintptr_t)s->reg[dst], end = base + s->len;
	const char *src = s->reg[!dst];
	size_t sz = sizes[rnd(st) % (sizeof sizes / sizeof sizes[0])];
	uintptr_t page = addr & ~(uintptr_t)(s->ps - 1);
	uintptr_t from, to;
	struct uffdio_copy c;

	if (addr < base || addr >= end)
		return;		/* a stale message for the other region */
	if (sz < s->ps)
		sz = s->ps;
	if (sz < s->ps)
		sz = s->ps;	/* hugetlb: whole huge pages */
	from = base + ((page - base) & ~(uintptr_t)(sz - 1));
	to = from + sz < end ? from + sz : end;
	if (s->minor) {
		serve_minor(s, dst, from, to, page, minor);
		return;
	}
	if (s->move) {
		struct uffdio_move mv = { from, (uintptr_t)src + (from - base), to - from, 0, 0 };
		if (uf_ioctl(s->uffd, UFFDIO_MOVE, &mv) == 0) {
			atomic_fetch_add(&s->moves, 1);
			return;
		}
		if (errno == EAGAIN && mv.move > 0)
			atomic_fetch_add(&s->partial, 1);
		serve_move_page(s, page, src + (page - base), (page - base) / s->ps);
		return;
	}
	c.dst = from;
	c.src = (uintptr_t)src + (from - base);
	c.len = to - from;
	c.mode = s->wp ? UFFDIO_COPY_MODE_WP : 0;
	c.copy = 0;
	if (uf_ioctl(s->uffd, UFFDIO_COPY, &c) == 0) {
		atomic_fetch_add(&s->copies, 1);
		return;
	}
	if (errno == EAGAIN && c.copy == -EAGAIN) {
		/* An event is unread (the mm is changing): let the faulter
		 * come back once it is. */
		atomic_fetch_add(&s->retries, 1);
		wake_page(s, page);
		return;
	}
	if (errno == ENOENT)
		return;		/* a stale message (see below), after UNREGISTER */
	if (errno == EAGAIN && c.copy > 0)
		atomic_fetch_add(&s->partial, 1);
	else if (errno == EEXIST)
		atomic_fetch_add(&s->eexist, 1);
	else {
		note_err(s, errno);
		return;
	}
	/* Part of the range was present: make sure of the faulting page. */
	c.dst = page;
	c.src = (uintptr_t)src + (page - base);
	c.len = s->ps;
	c.copy = 0;
	if (uf_ioctl(s->uffd, UFFDIO_COPY, &c) < 0) {
		/* A stale message (two threads faulted on one page, and the
		 * first COPY served both) may be read after the range was
		 * unregistered: ENOENT, and nobody to wake. */
		if (errno == ENOENT)
			return;
		if (errno == EAGAIN)
			atomic_fetch_add(&s->retries, 1);
		else if (errno != EEXIST)
			note_err(s, errno);
		wake_page(s, page);
	}
}

/* WRITEPROTECT of [from, to) of the region now DST (on or off).  A stale
 * range (the regions swapped, DST unregistered) gives ENOENT; an unread
 * event EAGAIN.  0 or the errno. */
static int protect(struct stress *s, uintptr_t from, uintptr_t to, int on)
{
	struct uffdio_writeprotect w = { { from, to - from }, on ? UFFDIO_WRITEPROTECT_MODE_WP : 0 };

	return uf_ioctl(s->uffd, UFFDIO_WRITEPROTECT, &w) == 0 ? 0 : errno;
}

/* Serve a WP fault: lift the protection of a random range around it. */
static void serve_wp(struct stress *s, uintptr_t addr, uint64_t *st)
{
	static const size_t sizes[] = { 4096, 8192, 65536, 1048576 };
	int dst = atomic_load(&s->dst), e;
	uintptr_t base = (uintptr_t)s->reg[dst], end = base + s->len;
	size_t sz = sizes[rnd(st) % (sizeof sizes / sizeof sizes[0])];
	uintptr_t page = addr & ~(uintptr_t)(s->ps - 1), from, to;

	atomic_fetch_add(&s->wp_faults, 1);
	if (addr < base || addr >= end)
		return;		/* stale */
	if (sz < s->ps)
		sz = s->ps;	/* hugetlb: whole huge pages */
	from = base + ((page - base) & ~(uintptr_t)(sz - 1));
	to = from + sz < end ? from + sz : end;
	e = protect(s, from, to, 0);
	if (e == EAGAIN) {
		atomic_fetch_add(&s->retries, 1);
		wake_page(s, page);
	} else if (e && e != ENOENT) {
		note_err(s, e);
	}
}

/* The fork child's uffd (EVENT_FORK): its missing pages get zeros, which
 * its check accepts, until the child is gone. */
static void *child_server(void *arg)
{
	struct stress *s = arg;
	int fd = atomic_load(&s->child_uffd);
	char *zeros = s->ps > 4096 ? calloc(1, s->ps) : NULL;

	while (!atomic_load(&s->child_stop)) {
		struct pollfd pf = { fd, POLLIN, 0 };
		struct uffd_msg m;

		if (poll(&pf, 1, 20) <= 0)
			continue;
		if (uf_read(fd, &m, sizeof m) != sizeof m)
			continue;
		if (m.event != UFFD_EVENT_PAGEFAULT) {
			note_err(s, EPROTO);
			continue;
		}
		struct uffdio_zeropage z = { .range = { m.arg.pagefault.address & ~(uintptr_t)(s->ps - 1),
						        s->ps } };
		/* (hugetlb has no ZEROPAGE: a COPY of zeros) */
		struct uffdio_copy c = { .dst = z.range.start, .src = (uintptr_t)zeros, .len = s->ps };
		if ((zeros ? uf_ioctl(fd, UFFDIO_COPY, &c) : uf_ioctl(fd, UFFDIO_ZEROPAGE, &z)) < 0 &&
		    errno != EEXIST && errno != ESRCH)
			note_err(s, errno);
	}
	free(zeros);
	return NULL;
}

/* A REMOVE must name a range of DST that step 2 drops. */
static void on_remove(struct stress *s, const struct uffd_msg *m)
{
	uintptr_t base = (uintptr_t)s->reg[s->dst];

	atomic_fetch_add(&s->removes, 1);
	if (m->arg.remove.start < base || m->arg.remove.end > base + s->len ||
	    m->arg.remove.start >= m->arg.remove.end || (m->arg.remove.start & (s->ps - 1)))
		note_err(s, EPROTO);
}

static void on_fork(struct stress *s, const struct uffd_msg *m)
{
	atomic_fetch_add(&s->forks, 1);
	atomic_store(&s->child_uffd, (int)m->arg.fork.ufd);
	if (pthread_create(&s->child_th, NULL, child_server, s)) {
		note_err(s, EAGAIN);
		return;
	}
	atomic_store(&s->child_started, 1);
}

static void *handler_main(void *arg)
{
	struct stress *s = arg;
	struct uffd_msg m[16];
	struct pollfd pf[2] = { { s->uffd, POLLIN, 0 }, { s->stopfd, POLLIN, 0 } };
	uint64_t st = s->seed ^ (uint64_t)(uintptr_t)&st;

	for (;;) {
		ssize_t n;
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			note_err(s, errno);
			break;
		}
		if (pf[1].revents)
			break;
		n = uf_read(s->uffd, m, sizeof m);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				note_err(s, errno);
			continue;
		}
		for (ssize_t i = 0; i < n / (ssize_t)sizeof m[0]; i++) {
			if (s->events && m[i].event == UFFD_EVENT_REMOVE) {
				on_remove(s, &m[i]);
				continue;
			}
			if (s->events && m[i].event == UFFD_EVENT_FORK) {
				on_fork(s, &m[i]);
				continue;
			}
			if (m[i].event != UFFD_EVENT_PAGEFAULT) {
				note_err(s, EPROTO);
				continue;
			}
			atomic_fetch_add(&s->faults, 1);
			pthread_rwlock_rdlock(&s->swap);
			if (m[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)
				serve_wp(s, m[i].arg.pagefault.address, &st);
			else
				serve(s, m[i].arg.pagefault.address, &st,
				      !!(m[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR));
			pthread_rwlock_unlock(&s->swap);
		}
	}
	return NULL;
}

/* ---- faulters ---- */

static void do_page(struct stress *s, uint64_t pg, int phase)
{
	char *p = s->reg[s->dst] + pg * s->ps;

	if (phase == PH_READ) {
		if (!page_ok(s, p, s->round, pg))
			atomic_fetch_add(&s->corrupt, 1);
		atomic_fetch_add(&s->checked, s->ps);
	} else {
		fill_page(s, p, s->round + 1, pg);
	}
}

static void *faulter_main(void *arg)
{
	struct stress *s = arg;
	unsigned seen = 0;

	for (;;) {
		int phase;
		size_t i;

		pthread_mutex_lock(&s->lock);
		while (atomic_load(&s->gen) == seen && !atomic_load(&s->quit))
			pthread_cond_wait(&s->cond, &s->lock);
		pthread_mutex_unlock(&s->lock);
		if (atomic_load(&s->quit))
			return NULL;
		seen = atomic_load(&s->gen);
		phase = atomic_load(&s->phase);
		while ((i = atomic_fetch_add(&s->next, 1)) < s->norder)
			do_page(s, s->order[i], phase);
		pthread_mutex_lock(&s->lock);
		if (atomic_fetch_sub(&s->busy, 1) == 1)
			pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
}

/* ---- the main thread ---- */

static void shuffle(uint64_t *v, size_t n, uint64_t *st)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = rnd(st) % i;
		uint64_t t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
}

/* The fork child: every page of DST is whole (this round's pattern) or
 * missing (zero), never anything else.  Only reads and _exit. */
static void child_check(const struct stress *s)
{
	const char *d = s->reg[s->dst];
	unsigned bad = 0;

	for (uint64_t pg = 0; pg < s->npages; pg++) {
		const char *p = d + pg * s->ps;
		if (!page_ok(s, p, s->round, pg) && !page_zero(s, p))
			bad++;
	}
	_exit(bad > 250 ? 250 : (int)bad);
}

/* --wp: while the faulters write, protect random ranges of DST again,
 * until they are done (or the deadline: the wait below reports it). */
static void reprotect(struct stress *s, time_t deadline)
{
	uintptr_t base = (uintptr_t)s->reg[s->dst];
	uint64_t st = s->seed ^ ((uint64_t)s->round << 20);

	while (atomic_load(&s->busy) && time(NULL) < deadline) {
		uint64_t first = rnd(&st) % s->npages, n = 1 + rnd(&st) % 64;
		int e;
		if (first + n > s->npages)
			n = s->npages - first;
		e = protect(s, base + first * s->ps, base + (first + n) * s->ps, 1);
		if (e && e != EAGAIN)
			note_err(s, e);
		else if (!e)
			atomic_fetch_add(&s->reprotects, 1);
		nanosleep(&(struct timespec){ .tv_nsec = 200000 }, NULL);
	}
}

/* Start a phase over order[0..n) and wait for it; with fork_at, fork once
 * that many pages are done.  0, or -1 if it hung. */
static int run_phase(struct stress *s, int phase, size_t n, int do_fork)
{
	struct timespec deadline;
	int forked = 0, r = 0;

	s->norder = n;
	atomic_store(&s->next, 0);
	atomic_store(&s->phase, phase);
	pthread_mutex_lock(&s->lock);
	atomic_store(&s->busy, s->nfaulters);
	atomic_fetch_add(&s->gen, 1);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);

	if (do_fork) {
		pid_t pid;
		int st;

		while (atomic_load(&s->next) < n / 2 && atomic_load(&s->busy))
			sched_yield();
		pid = fork();
		if (pid == 0)
			child_check(s);
		if (pid < 0) {
			note_err(s, errno);
		} else {
			forked = 1;
			if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) {
				fprintf(stderr, CLI_NAME " stress: fork child died (status 0x%x)\n", st);
				atomic_fetch_add(&s->corrupt, 1);
			} else {
				atomic_fetch_add(&s->corrupt, (uint64_t)WEXITSTATUS(st));
				atomic_fetch_add(&s->checked, s->len);
			}
			if (s->events) {
				/* Its FORK event was read before fork() returned. */
				while (!atomic_load(&s->child_started) && !atomic_load(&s->err))
					sched_yield();
				if (atomic_load(&s->child_started)) {
					atomic_store(&s->child_stop, 1);
					pthread_join(s->child_th, NULL);
					uf_close(atomic_load(&s->child_uffd));
				}
				atomic_store(&s->child_uffd, -1);
				atomic_store(&s->child_started, 0);
				atomic_store(&s->child_stop, 0);
			}
		}
	}
	(void)forked;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += PHASE_LIMIT_S;
	if (s->wp && phase == PH_WRITE)
		reprotect(s, deadline.tv_sec);
	pthread_mutex_lock(&s->lock);
	while (atomic_load(&s->busy) && r == 0)
		if (pthread_cond_timedwait(&s->cond, &s->lock, &deadline) == ETIMEDOUT)
			r = -1;
	pthread_mutex_unlock(&s->lock);
	return r;
}

static int reg_range(struct stress *s, int which, int on)
{
	struct uffdio_register rg = { .range = { (uintptr_t)s->reg[which], s->len },
				      .mode = UFFDIO_REGISTER_MODE_MISSING |
					      (s->wp ? UFFDIO_REGISTER_MODE_WP : 0) |
					      (s->minor ? UFFDIO_REGISTER_MODE_MINOR : 0) };
	if (uf_ioctl(s->uffd, on ? UFFDIO_REGISTER : UFFDIO_UNREGISTER, on ? (void *)&rg : (void *)&rg.range) < 0) {
		note_err(s, errno);
		return -1;
	}
	return 0;
}

/* One round.  0, or -1 on a hang or an error. */
static int round_run(struct stress *s, int do_fork, uint64_t *st)
{
	char *d = s->reg[s->dst];
	size_t ndrop = 0;

	/* 1. copy */
	pthread_rwlock_wrlock(&s->swap);
	if (madvise(d, s->len, s->drop_advice) < 0 || reg_range(s, s->dst, 1) < 0) {
		pthread_rwlock_unlock(&s->swap);
		return -1;
	}
	pthread_rwlock_unlock(&s->swap);
	for (uint64_t i = 0; i < s->npages; i++)
		s->order[i] = i;
	shuffle(s->order, s->npages, st);
	if (run_phase(s, PH_READ, s->npages, do_fork) < 0)
		return -1;
	/* 2. drop random ranges while registered, and fault them again */
	for (int k = 0; k < 8; k++) {
		uint64_t first = rnd(st) % s->npages;
		uint64_t n = 1 + rnd(st) % (s->npages / 16 + 1);
		if (first + n > s->npages)
			n = s->npages - first;
		/* (--minor: the file keeps them, they come back as minor faults) */
		if (madvise(d + first * s->ps, n * s->ps, s->minor ? MADV_DONTNEED : s->drop_advice) < 0) {
			note_err(s, errno);
			return -1;
		}
		for (uint64_t i = 0; i < n; i++)
			s->order[ndrop++] = first + i;
	}
	shuffle(s->order, ndrop, st);
	if (run_phase(s, PH_READ, ndrop, 0) < 0)
		return -1;
	/* 3. write the next round's pattern */
	for (uint64_t i = 0; i < s->npages; i++)
		s->order[i] = i;
	shuffle(s->order, s->npages, st);
	if (run_phase(s, PH_WRITE, s->npages, 0) < 0)
		return -1;
	/* 4. unregister and check every byte */
	if (reg_range(s, s->dst, 0) < 0)
		return -1;
	for (uint64_t pg = 0; pg < s->npages; pg++) {
		if (!page_ok(s, d + pg * s->ps, s->round + 1, pg))
			atomic_fetch_add(&s->corrupt, 1);
		atomic_fetch_add(&s->checked, s->ps);
	}
	return 0;
}

/* The command line. */
struct stress_opts {
	long seconds, threads, handlers, size_mib, rounds, seed;
	int do_fork, events, wp, move, minor;
	int memory;			/* MEM_* */
};

enum { MEM_ANON, MEM_SHMEM, MEM_HUGETLB, MEM_HUGETLB_SHARED };
static const char *const mem_names[] = { "anon", "shmem", "hugetlb", "hugetlb-shared" };

enum {
	OPT_SECONDS = CLI_OPT_COMMAND, OPT_THREADS, OPT_HANDLERS, OPT_SIZE, OPT_ROUNDS, OPT_SEED,
	OPT_NO_FORK, OPT_EVENTS, OPT_MEMORY, OPT_WP, OPT_MOVE, OPT_MINOR,
};

static const struct option stress_options[] = {
	CLI_LONGOPT_HELP,
	CLI_LONGOPT_BACKEND,
	{ "seconds", required_argument, NULL, OPT_SECONDS },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "handlers", required_argument, NULL, OPT_HANDLERS },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "rounds", required_argument, NULL, OPT_ROUNDS },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "no-fork", no_argument, NULL, OPT_NO_FORK },
	{ "events", no_argument, NULL, OPT_EVENTS },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "wp", no_argument, NULL, OPT_WP },
	{ "move", no_argument, NULL, OPT_MOVE },
	{ "minor", no_argument, NULL, OPT_MINOR },
	CLI_LONGOPT_END,
};

/* The numeric options: their range, and where the value goes. */
static const struct {
	int opt;
	long min, max;
	size_t offset;		/* in struct stress_opts */
} stress_numbers[] = {
	{ OPT_SECONDS, 1, 86400, offsetof(struct stress_opts, seconds) },
	{ OPT_THREADS, 1, MAX_FAULTERS, offsetof(struct stress_opts, threads) },
	{ OPT_HANDLERS, 1, MAX_HANDLERS, offsetof(struct stress_opts, handlers) },
	{ OPT_SIZE, 4, 65536, offsetof(struct stress_opts, size_mib) },
	{ OPT_ROUNDS, 1, 1000000000, offsetof(struct stress_opts, rounds) },
	{ OPT_SEED, 0, 0x7fffffffffffffffL, offsetof(struct stress_opts, seed) },
};
#define N_STRESS_NUMBERS (sizeof stress_numbers / sizeof stress_numbers[0])

/* The value of numeric option opt (NULL: missing) into o: CLI_OK, or
 * CLI_USAGE after printing why; -1 if opt is not a numeric option. */
static int take_number(struct stress_opts *o, int opt, const char *value)
{
	for (size_t k = 0; k < N_STRESS_NUMBERS; k++) {
		long *out = (long *)((char *)o + stress_numbers[k].offset);

		if (stress_numbers[k].opt != opt)
			continue;
		if (!value || cli_parse_count(value, stress_numbers[k].min, stress_numbers[k].max, out) < 0)
			return cli_usage_error("stress", "--%s needs a number from %ld to %ld",
					       cli_option_name(stress_options, opt),
					       stress_numbers[k].min, stress_numbers[k].max);
		return CLI_OK;
	}
	return -1;
}

/* The arguments: CLI_OK after --help, CLI_USAGE for a bad command line (the
 * error printed), or -1 to go on. */
static int parse_args(int argc, char **argv, struct cli_global *global, struct stress_opts *o)
{
	int c, r;

	/* '-': in order, the other arguments returned as 1 (there are none). */
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, "-:h", stress_options, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(stress_help, stdout);
			return CLI_OK;
		case CLI_OPT_BACKEND:
			if (cli_take_backend(optarg, global, "stress") != CLI_OK)
				return CLI_USAGE;
			break;
		case OPT_NO_FORK:
			o->do_fork = 0;
			break;
		case OPT_EVENTS:
			o->events = 1;
			break;
		case OPT_WP:
			o->wp = 1;
			break;
		case OPT_MOVE:
			o->move = 1;
			break;
		case OPT_MINOR:
			o->minor = 1;
			break;
		case OPT_MEMORY:
			o->memory = -1;
			for (int k = 0; k < (int)(sizeof mem_names / sizeof mem_names[0]); k++)
				if (!strcmp(optarg, mem_names[k]))
					o->memory = k;
			if (o->memory < 0)
				return cli_usage_error("stress", "--memory takes anon, shmem, hugetlb or hugetlb-shared, not '%s'",
						       optarg);
			break;
		case 1:
			return cli_usage_error("stress", "unexpected argument '%s'", optarg);
		case ':':	/* a value missing: a number's gets the same message as a bad one */
			if ((r = take_number(o, optopt, NULL)) >= 0)
				return r;
			return cli_option_error("stress", c, argv, stress_options);
		default:
			if ((r = take_number(o, c, optarg)) < 0)
				return cli_option_error("stress", c, argv, stress_options);
			if (r != CLI_OK)
				return r;
			break;
		}
	}
	if (optind < argc)	/* after "--" */
		return cli_usage_error("stress", "unexpected argument '%s'", argv[optind]);
	if (o->move && o->memory != MEM_ANON)
		return cli_usage_error("stress", "--move needs --memory anon (UFFDIO_MOVE moves private anonymous pages)");
	if (o->minor && o->memory != MEM_SHMEM && o->memory != MEM_HUGETLB_SHARED)
		return cli_usage_error("stress", "--minor needs --memory shmem or hugetlb-shared");
	if (o->move && o->minor)
		return cli_usage_error("stress", "--move and --minor do not go together");
	return -1;
}

int cmd_stress(int argc, char **argv, struct cli_global *global)
{
	struct stress s;
	struct stress_opts o = {
		.seconds = 10, .threads = 4, .handlers = 2, .size_mib = 32, .rounds = 0, .seed = -1,
		.do_fork = 1, .events = 0,
	};
	int r, status = CLI_OK;
	pthread_t fth[MAX_FAULTERS], hth[MAX_HANDLERS];
	unsigned nf = 0, nh = 0;
	struct uffdio_api api = { .api = UFFD_API };
	time_t start;
	uint64_t st;

	if ((r = parse_args(argc, argv, global, &o)) >= 0)
		return r;
	if ((r = cli_use_backend(global, "stress")) != CLI_OK)
		return r;

	memset(&s, 0, sizeof s);
	s.ps = (size_t)sysconf(_SC_PAGESIZE);
	if (o.memory == MEM_HUGETLB || o.memory == MEM_HUGETLB_SHARED)
		s.ps = (size_t)2 << 20;
	s.drop_advice = o.memory == MEM_SHMEM || o.memory == MEM_HUGETLB_SHARED ? MADV_REMOVE : MADV_DONTNEED;
	/* The fork child's reads (or its uffd's zero pages) would put zeros
	 * into shared memory, under the parent's faults. */
	if (o.memory == MEM_SHMEM || o.memory == MEM_HUGETLB_SHARED)
		o.do_fork = 0;
	s.len = (size_t)o.size_mib << 20;
	s.npages = s.len / s.ps;
	s.nfaulters = (unsigned)o.threads;
	s.nhandlers = (unsigned)o.handlers;
	s.events = o.events;
	s.wp = o.wp;
	s.move = o.move;
	s.minor = o.minor;
	s.child_uffd = -1;
	if (o.events)
		api.features = UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_FORK;
	s.seed = o.seed >= 0 ? (uint64_t)o.seed : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	pthread_mutex_init(&s.lock, NULL);
	pthread_rwlock_init(&s.swap, NULL);
	pthread_cond_init(&s.cond, NULL);
	st = s.seed;
	printf(CLI_NAME " stress: %s back-end, 2 regions of %ld MiB of %s memory, %ld faulting + %ld handler threads, "
	       "seed %llu%s%s%s%s%s\n", uf_backend_name(uf_get_backend()), o.size_mib, mem_names[o.memory], o.threads,
	       o.handlers, (unsigned long long)s.seed, o.do_fork ? ", forks" : "", o.events ? ", events REMOVE and FORK" : "",
	       o.wp ? ", write-protect" : "", o.move ? ", MOVE" : "", o.minor ? ", MINOR and CONTINUE" : "");
	fflush(stdout);

	for (int k = 0; k < 2; k++) {
		static const int flags[] = { MAP_PRIVATE, MAP_SHARED, MAP_PRIVATE | MAP_HUGETLB,
					     MAP_SHARED | MAP_HUGETLB };
		if (o.minor) {
			/* A memfd, mapped twice. */
			int mfd = memfd_create("userfault-stress", MFD_CLOEXEC |
					       (o.memory == MEM_HUGETLB_SHARED ? MFD_HUGETLB : 0));
			s.reg[k] = s.alias[k] = MAP_FAILED;
			if (mfd >= 0 && ftruncate(mfd, (off_t)s.len) == 0) {
				s.reg[k] = mmap(NULL, s.len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
				s.alias[k] = mmap(NULL, s.len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
			}
			if (mfd >= 0)
				close(mfd);
			s.filled[k] = calloc(s.npages, sizeof *s.filled[k]);
			if (s.alias[k] == MAP_FAILED || !s.filled[k])
				s.reg[k] = MAP_FAILED;
		} else {
			s.reg[k] = mmap(NULL, s.len, PROT_READ | PROT_WRITE, flags[o.memory] | MAP_ANONYMOUS, -1, 0);
		}
		if (s.reg[k] == MAP_FAILED) {
			cli_error("mmap of %ld MiB of %s memory: %s%s", o.size_mib, mem_names[o.memory],
				  strerror(errno), s.ps > 4096 ? " (free 2 MiB huge pages: vm.nr_hugepages)" : "");
			for (int j = 0; j <= k; j++)
				free((void *)s.filled[j]);
			return CLI_FAIL;
		}
	}
	s.order = malloc(s.npages * sizeof *s.order);
	s.uffd = uf_userfaultfd(O_CLOEXEC | O_NONBLOCK);
	s.stopfd = eventfd(0, EFD_CLOEXEC);
	if (!s.order || s.uffd < 0 || s.stopfd < 0 || uf_ioctl(s.uffd, UFFDIO_API, &api) < 0) {
		cli_error("set-up: %s", strerror(errno));
		free(s.order);
		free((void *)s.filled[0]);
		free((void *)s.filled[1]);
		return CLI_FAIL;
	}
	/* Round 0's source: region 0 holds pattern(0). */
	for (uint64_t pg = 0; pg < s.npages; pg++)
		fill_page(&s, s.reg[0] + pg * s.ps, 0, pg);
	s.dst = 1;
	for (nh = 0; nh < s.nhandlers; nh++)
		if (pthread_create(&hth[nh], NULL, handler_main, &s))
			break;
	for (nf = 0; nf < s.nfaulters; nf++)
		if (pthread_create(&fth[nf], NULL, faulter_main, &s))
			break;
	s.nfaulters = nf;
	if (nh == 0 || nf == 0) {
		cli_error("cannot start threads");
		status = CLI_FAIL;
	}

	start = time(NULL);
	while (status == CLI_OK && time(NULL) - start < o.seconds && (!o.rounds || s.round < o.rounds)) {
		if (round_run(&s, o.do_fork, &st) < 0) {
			if (!atomic_load(&s.err))
				cli_error("round %u: a phase took over %d s: a fault was never served", s.round,
					  PHASE_LIMIT_S);
			status = CLI_FAIL;
			break;
		}
		pthread_rwlock_wrlock(&s.swap);
		s.round++;	/* (read by the handlers, under the lock) */
		s.dst = !s.dst;
		pthread_rwlock_unlock(&s.swap);
		if (atomic_load(&s.err) || atomic_load(&s.corrupt))
			break;
	}

	atomic_store(&s.quit, 1);
	pthread_mutex_lock(&s.lock);
	pthread_cond_broadcast(&s.cond);
	pthread_mutex_unlock(&s.lock);
	if (status == CLI_OK) {
		uint64_t one = 1;
		if (write(s.stopfd, &one, sizeof one) < 0)
			note_err(&s, errno);
		for (unsigned i = 0; i < nf; i++)
			pthread_join(fth[i], NULL);
		for (unsigned i = 0; i < nh; i++)
			pthread_join(hth[i], NULL);
	}
	if (atomic_load(&s.err)) {
		cli_error("unexpected error: %s", strerror(atomic_load(&s.err)));
		status = CLI_FAIL;
	}
	if (atomic_load(&s.corrupt))
		status = CLI_FAIL;
	printf(CLI_NAME " stress: %u rounds in %lds, %llu faults, %llu copies (%llu EEXIST, %llu partial)\n",
	       s.round, (long)(time(NULL) - start), (unsigned long long)atomic_load(&s.faults),
	       (unsigned long long)atomic_load(&s.copies), (unsigned long long)atomic_load(&s.eexist),
	       (unsigned long long)atomic_load(&s.partial));
	if (o.events)
		printf(CLI_NAME " stress: %llu REMOVE events, %llu FORK events, %llu COPYs retried (EAGAIN)\n",
		       (unsigned long long)atomic_load(&s.removes), (unsigned long long)atomic_load(&s.forks),
		       (unsigned long long)atomic_load(&s.retries));
	if (o.wp) {
		printf(CLI_NAME " stress: %llu WP faults, %llu ranges protected again\n",
		       (unsigned long long)atomic_load(&s.wp_faults), (unsigned long long)atomic_load(&s.reprotects));
		/* Every page is copied in protected: a round's writes fault. */
		if (s.round && !atomic_load(&s.wp_faults)) {
			cli_error("no WP fault in %u rounds: the write protection did not hold", s.round);
			status = CLI_FAIL;
		}
	}
	if (o.move) {
		printf(CLI_NAME " stress: %llu MOVEs, %llu refused as shared with the fork child (copied instead)\n",
		       (unsigned long long)atomic_load(&s.moves), (unsigned long long)atomic_load(&s.busy_moves));
		if (s.round && !atomic_load(&s.moves)) {
			cli_error("no MOVE succeeded in %u rounds", s.round);
			status = CLI_FAIL;
		}
	}
	if (o.minor) {
		printf(CLI_NAME " stress: %llu minor faults, %llu CONTINUEs\n",
		       (unsigned long long)atomic_load(&s.minor_faults), (unsigned long long)atomic_load(&s.continues));
		/* Every round's drops leave pages in the file: minor faults. */
		if (s.round && !atomic_load(&s.minor_faults)) {
			cli_error("no minor fault in %u rounds", s.round);
			status = CLI_FAIL;
		}
	}
	printf(CLI_NAME " stress: %llu bytes checked, %llu corruptions found\n",
	       (unsigned long long)atomic_load(&s.checked), (unsigned long long)atomic_load(&s.corrupt));
	fflush(stdout);
	/* A hung phase leaves threads blocked in faults: leave without them. */
	if (status != CLI_OK)
		_exit(CLI_FAIL);
	uf_close(s.uffd);
	close(s.stopfd);
	free(s.order);
	free((void *)s.filled[0]);
	free((void *)s.filled[1]);
	return status;
}
