/* SPDX-License-Identifier: MIT */
/*
 * Areas: registered pieces of private anonymous memory, turned into shared
 * memfd mappings so that pages can be installed atomically, with a guard
 * marker on every missing page.  Registration, unregistration and the
 * atomic page installation live here.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include "emu/emu.h"

struct store g_stores[UF_MAX_BACKING];
struct area g_areas[UF_MAX_AREAS];
_Atomic int g_areas_hw;
_Atomic uint32_t g_busy_gen;

/* ---------------------------------------------------------------------- */
/* Lock-free reading (the signal handler's side).                          */
/* ---------------------------------------------------------------------- */

/* The fields are stored and loaded sequentially consistent (UF_ST/UF_LD), so
 * the counter needs no separate fences (which TSan cannot model). */
/* Bumped around every change of any area (always under g_table_lock): a lookup
 * that found nothing while it moved must look again, since an area being
 * split may have been missed between its two halves. */
static _Atomic uint32_t g_table_seq;

void area_begin(struct area *a)
{
	atomic_fetch_add(&g_table_seq, 1);
	atomic_fetch_add(&a->seq, 1);		/* odd: readers retry */
}

void area_end(struct area *a)
{
	atomic_fetch_add(&a->seq, 1);
	atomic_fetch_add(&g_table_seq, 1);
}

/* async-signal-safe */
static int area_read(struct area *a, struct area_view *v)
{
	for (;;) {
		uint32_t s1 = atomic_load(&a->seq);
		int live;

		if (s1 & 1) {
			sched_yield();
			continue;
		}
		live = atomic_load(&a->live);
		v->start = UF_LD(a->start);
		v->end = UF_LD(a->end);
		v->backing = UF_LD(a->backing);
		v->off = UF_LD(a->off);
		v->prot = UF_LD(a->prot);
		v->ctx = UF_LD(a->ctx);
		v->mode = UF_LD(a->mode);
		v->busy = atomic_load(&a->busy);
		if (atomic_load(&a->seq) == s1)
			return live;
	}
}

/* async-signal-safe */
int area_find(uintptr_t addr, struct area_view *v)
{
	for (;;) {
		uint32_t t = atomic_load(&g_table_seq);
		int hw = atomic_load(&g_areas_hw);

		if (t & 1) {
			sched_yield();
			continue;
		}
		for (int i = 0; i < hw; i++) {
			struct area *a = &g_areas[i];
			if (!atomic_load(&a->live))
				continue;
			if (addr < UF_LD(a->start) || addr >= UF_LD(a->end))
				continue;
			if (area_read(a, v) && addr >= v->start && addr < v->end) {
				v->idx = i;
				return 1;
			}
		}
		if (atomic_load(&g_table_seq) == t)
			return 0;
	}
}

/* Has the area changed since v was read?  async-signal-safe */
int area_still(const struct area_view *v)
{
	struct area_view now;

	if (!area_read(&g_areas[v->idx], &now))
		return 0;
	return now.start == v->start && now.end == v->end && now.ctx == v->ctx &&
	       now.busy == v->busy && now.mode == v->mode;
}

static inline uint64_t page_index(const struct area_view *v, uintptr_t addr)
{
	return (v->off + (addr - v->start)) >> caps.page_shift;
}

/* async-signal-safe */
bool area_page_present(const struct area_view *v, uintptr_t addr)
{
	uint64_t pg = page_index(v, addr);
	_Atomic uint64_t *bits = g_stores[v->backing].bits;

	return (atomic_load(&bits[pg >> 6]) >> (pg & 63)) & 1;
}

/* async-signal-safe */
void area_wait_busy(uint32_t gen)
{
	struct timespec ts = { 0, 50L * 1000 * 1000 };
	sys_futex_wait(&g_busy_gen, gen, &ts);
}

static void busy_clear(struct area *a)
{
	area_begin(a);
	atomic_store(&a->busy, 0);
	area_end(a);
	atomic_fetch_add(&g_busy_gen, 1);
	sys_futex_wake(&g_busy_gen, 0x7fffffff);
}

static void busy_set(struct area *a)
{
	area_begin(a);
	atomic_store(&a->busy, 1);
	area_end(a);
	atomic_fetch_add(&g_busy_gen, 1);
}

/* ---------------------------------------------------------------------- */
/* The area and backing tables (g_table_lock held).                              */
/* ---------------------------------------------------------------------- */

static pthread_once_t g_tables_once = PTHREAD_ONCE_INIT;
static void tables_init(void)
{
	for (int i = 0; i < UF_MAX_BACKING; i++)
		g_stores[i].fd = -1;
}

static int backing_new(size_t len)
{
	size_t npages = len >> caps.page_shift;
	/* Room for the area to grow in place (mremap): address space only. */
	size_t cap = npages * 4 + (1u << 20);
	size_t bytes = ((cap + 63) / 64) * 8;
	int fd;

	bytes = (bytes + caps.page_size - 1) & ~(caps.page_size - 1);
	for (int i = 0; i < UF_MAX_BACKING; i++) {
		struct store *b = &g_stores[i];
		struct stat st;
		if (b->fd >= 0)
			continue;
		fd = memfd_create("userfault", MFD_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (ftruncate(fd, (off_t)len) < 0 || fstat(fd, &st) < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		/* A bitmap mapping is never unmapped (a signal handler may still
		 * be reading it); a freed slot keeps it for the next user. */
		if (b->bits_bytes < bytes) {
			void *m = sys_mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (m == MAP_FAILED) {
				close(fd);
				return -ENOMEM;
			}
			b->bits = m;
			b->bits_bytes = bytes;
		}	/* else: zero since backing_put's MADV_DONTNEED */
		b->npages = npages;
		b->ino = st.st_ino;
		b->refs = 0;
		b->fd = fd;
		return i;
	}
	return -ENOMEM;
}

static void backing_put(int i)
{
	struct store *b = &g_stores[i];

	if (--b->refs > 0)
		return;
	close(b->fd);
	b->fd = -1;
	sys_madvise((void *)b->bits, b->bits_bytes, MADV_DONTNEED);
}

static struct area *area_new(void)
{
	for (int i = 0; i < UF_MAX_AREAS; i++) {
		struct area *a = &g_areas[i];
		if (atomic_load(&a->live))
			continue;
		if (i + 1 > atomic_load(&g_areas_hw))
			atomic_store(&g_areas_hw, i + 1);
		return a;
	}
	return NULL;
}

static void area_publish(struct area *a, uintptr_t start, uintptr_t end, int backing,
			 uint64_t off, int prot, uint32_t ctx, uint64_t mode, int busy)
{
	area_begin(a);
	UF_ST(a->start, start);
	UF_ST(a->end, end);
	UF_ST(a->backing, backing);
	UF_ST(a->off, off);
	UF_ST(a->prot, prot);
	UF_ST(a->ctx, ctx);
	UF_ST(a->mode, mode);
	atomic_store(&a->busy, busy);
	atomic_store(&a->live, 1);
	area_end(a);
	g_stores[backing].refs++;
}

static void area_drop(struct area *a)
{
	int b = UF_LD(a->backing);

	area_begin(a);
	atomic_store(&a->live, 0);
	area_end(a);
	backing_put(b);
}

/* Split a at addr (strictly inside): a keeps [start, addr).  0 or -ENOMEM. */
static int area_split(struct area *a, uintptr_t addr)
{
	struct area *n = area_new();
	uintptr_t start = UF_LD(a->start), end = UF_LD(a->end);

	if (!n)
		return -ENOMEM;
	area_publish(n, addr, end, UF_LD(a->backing), UF_LD(a->off) + (addr - start),
		     UF_LD(a->prot), UF_LD(a->ctx), UF_LD(a->mode), 0);
	area_begin(a);
	UF_ST(a->end, addr);
	area_end(a);
	return 0;
}

static int backing_by_ino(unsigned long ino)
{
	for (int i = 0; i < UF_MAX_BACKING; i++)
		if (g_stores[i].fd >= 0 && g_stores[i].ino == ino && g_stores[i].refs)
			return i;
	return -1;
}

/* The mappings of [start, end), ours (areas' memfds) told apart. */
static int vmas_in(uintptr_t start, uintptr_t end, struct vma **out)
{
	int n = maps_in(start, end, out);

	for (int i = 0; i < n; i++)
		if ((*out)[i].shared && (*out)[i].ino && backing_by_ino((*out)[i].ino) >= 0)
			(*out)[i].kind = VMA_OURS;
	return n;
}

/* Is the area still mapped as we made it?  (The program may have unmapped
 * or replaced it: without events we are not told.) */
static int area_mapped(struct area *a)
{
	struct vma *v;
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end), at = s;
	unsigned long ino = g_stores[UF_LD(a->backing)].ino;
	int n = vmas_in(s, e, &v), ok = n > 0;

	for (int i = 0; ok && i < n; i++) {
		if (v[i].start > at || v[i].ino != ino)
			ok = 0;
		at = v[i].end;
	}
	free(v);
	return ok && at >= e;
}

/* Forget the areas in [start, end) that are no longer mapped. */
static void drop_stale(uintptr_t start, uintptr_t end)
{
	int hw = atomic_load(&g_areas_hw);

	for (int i = 0; i < hw; i++) {
		struct area *a = &g_areas[i];
		if (!atomic_load(&a->live) || UF_LD(a->end) <= start || UF_LD(a->start) >= end)
			continue;
		if (!area_mapped(a)) {
			pg_disarm(UF_LD(a->start), UF_LD(a->end) - UF_LD(a->start), UF_LD(a->prot));
			area_drop(a);
		}
	}
}

/* ---------------------------------------------------------------------- */
/* Conversion of private anonymous memory into an area.                    */
/* ---------------------------------------------------------------------- */

/* Copy the pages of [addr, addr+len) that exist (present or swapped) into
 * the memfd at the same offsets, and mark them present.  The range is not
 * writable meanwhile, so what we copy is final. */
static int copy_present(uintptr_t addr, size_t len, int readable, int mfd, _Atomic uint64_t *bits)
{
	size_t ps = caps.page_size, npages = len / ps, chunk = 65536;
	uint64_t *pm = malloc(chunk * sizeof *pm);
	int pmfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), memfd = -1, err = 0;
	char *bounce = NULL;

	if (!pm || pmfd < 0) {
		err = pm ? -errno : -ENOMEM;
		goto out;
	}
	if (!readable) {
		memfd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
		bounce = malloc(ps);
		if (memfd < 0 || !bounce) {
			err = -EACCES;
			goto out;
		}
	}
	for (size_t base = 0; base < npages; base += chunk) {
		size_t n = npages - base < chunk ? npages - base : chunk;
		off_t off = (off_t)(((addr >> caps.page_shift) + base) * sizeof *pm);
		ssize_t r = pread(pmfd, pm, n * sizeof *pm, off);
		if (r < (ssize_t)(n * sizeof *pm)) {
			err = r < 0 ? -errno : -EIO;
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			size_t j = i;
			if (!(pm[i] & (3ULL << 62)))
				continue;
			while (j < n && (pm[j] & (3ULL << 62)))
				j++;
			/* run [i, j) */
			for (size_t k = i; k < j; k++)
				pg_bit_set(bits, base + k);
			if (readable) {
				size_t want = (j - i) * ps;
				/* A raw system call: the range is write-protected, so
				 * no thread writes it meanwhile, which a race detector
				 * watching pwrite's interceptor cannot know. */
				if (sys_call4(SYS_pwrite64, mfd, (long)(addr + (base + i) * ps),
						    (long)want, (long)((base + i) * ps)) != (long)want) {
					err = -EIO;
					goto out;
				}
			} else {
				for (size_t k = i; k < j; k++) {
					if (pread(memfd, bounce, ps, (off_t)(addr + (base + k) * ps)) != (ssize_t)ps ||
					    pwrite(mfd, bounce, ps, (off_t)((base + k) * ps)) != (ssize_t)ps) {
						err = -EIO;
						goto out;
					}
				}
			}
			i = j - 1;
		}
	}
out:
	free(pm);
	free(bounce);
	if (pmfd >= 0)
		close(pmfd);
	if (memfd >= 0)
		close(memfd);
	return err;
}

static int convert(struct ctx *c, uintptr_t start, uintptr_t end, int prot, uint64_t mode)
{
	size_t len = end - start;
	struct area *a;
	struct store *b;
	int bi, err;
	void *tmp;

	a = area_new();
	if (!a)
		return -ENOMEM;
	bi = backing_new(len);
	if (bi < 0)
		return bi;
	b = &g_stores[bi];
	/* From here faults in the range wait until we are done. */
	area_publish(a, start, end, bi, 0, prot, 0, 0, 1);
	atomic_fetch_add(&g_busy_gen, 1);
	if ((prot & PROT_WRITE) && sys_mprotect((void *)start, len, prot & ~PROT_WRITE) < 0) {
		err = -errno;
		goto fail;
	}
	err = copy_present(start, len, prot & PROT_READ, b->fd, b->bits);
	if (err)
		goto fail_prot;
	/* The memfd goes in place in one step, already armed: with markers,
	 * armed aside then moved over the old pages; with protection, mapped
	 * inaccessible over them, then the present pages opened (faults wait
	 * for us meanwhile, the area being busy). */
	tmp = sys_mmap(caps.guard_markers ? NULL : (void *)start, len, pg_arm_entry_prot(prot),
		   MAP_SHARED | (caps.guard_markers ? 0 : MAP_FIXED), b->fd, 0);
	if (tmp == MAP_FAILED) {
		err = -errno;
		goto fail_prot;
	}
	err = pg_arm((uintptr_t)tmp, len, b->bits, 0, prot);
	if (caps.guard_markers) {
		if (err || sys_mremap(tmp, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)start) == MAP_FAILED) {
			err = err ? err : -errno;
			sys_munmap(tmp, len);
			goto fail_prot;
		}
	} else if (err) {
		/* Out of mappings: the bytes are in the memfd now, so the area
		 * stays, unregistered and whole. */
		pg_disarm(start, len, prot);
		busy_clear(a);
		return err;
	}
	area_begin(a);
	UF_ST(a->ctx, atomic_load(&c->id));
	UF_ST(a->mode, mode);
	area_end(a);
	busy_clear(a);
	return 0;
fail_prot:
	if (prot & PROT_WRITE)
		sys_mprotect((void *)start, len, prot);
fail:
	busy_clear(a);
	area_drop(a);
	return err;
}

/* The next run of data in [*pos, end) of a memfd, from its page: returns
 * its start and moves *pos to its end, or -1 when there is none. */
static off_t next_data(int fd, off_t *pos, off_t end)
{
	off_t d, h;

	if (*pos >= end || (d = lseek(fd, *pos, SEEK_DATA)) < 0 || d >= end)
		return -1;
	h = lseek(fd, d, SEEK_HOLE);
	*pos = (h < 0 || h > end) ? end : h;
	return d & ~(off_t)(caps.page_size - 1);
}

/* Re-register an area that was unregistered: the memfd tells which pages
 * hold data (anything touched meanwhile); the holes get guards again.  The
 * area is inaccessible meanwhile, so no page appears behind our back. */
static int rearm(struct area *a, struct ctx *c, uint64_t mode)
{
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
	size_t ps = caps.page_size;
	struct store *b = &g_stores[UF_LD(a->backing)];
	uint64_t off = UF_LD(a->off), pg0 = off / ps, npages = (e - s) / ps;
	int prot = UF_LD(a->prot), err;
	off_t pos = (off_t)off, endoff = (off_t)(off + (e - s));

	busy_set(a);
	if (sys_mprotect((void *)s, e - s, PROT_NONE) < 0) {
		err = -errno;
		busy_clear(a);
		return err;
	}
	for (uint64_t i = 0; i < npages; i++)
		pg_bit_clear(b->bits, pg0 + i);
	for (off_t d; (d = next_data(b->fd, &pos, endoff)) >= 0;)
		for (off_t p = d; p < pos; p += (off_t)ps)
			pg_bit_set(b->bits, (uint64_t)p / ps);
	/* Arm while nothing is accessible (markers do not mind the
	 * protection), then open: no page can appear behind our back. */
	err = pg_arm(s, e - s, b->bits, pg0, prot);
	if (caps.guard_markers)
		sys_mprotect((void *)s, e - s, prot);
	else if (err)
		pg_disarm(s, e - s, prot);	/* stays unregistered */
	if (!err) {
		area_begin(a);
		UF_ST(a->ctx, atomic_load(&c->id));
		UF_ST(a->mode, mode);
		area_end(a);
	}
	busy_clear(a);
	return err;
}

/* Split areas so that none straddles start or end. */
static int split_at(uintptr_t addr)
{
	int hw = atomic_load(&g_areas_hw);

	for (int i = 0; i < hw; i++) {
		struct area *a = &g_areas[i];
		if (atomic_load(&a->live) && UF_LD(a->start) < addr && UF_LD(a->end) > addr)
			return area_split(a, addr);	/* areas do not overlap: one at most */
	}
	return 0;
}

/* Join neighbours that the kernel would see as one mapping (same memfd at
 * contiguous offsets, same owner, modes and protection), so that splits
 * made for a sub-range do not outlive it: COPY may span them again. */
static void merge_adjacent(void)
{
	int hw = atomic_load(&g_areas_hw);
	long extra = 0;

	for (int i = 0; i < hw; i++) {
		struct area *a = &g_areas[i];
		int again = 1;
		if (!atomic_load(&a->live) || atomic_load(&a->busy))
			continue;
		while (again) {
			again = 0;
			for (int k = 0; k < hw; k++) {
				struct area *b = &g_areas[k];
				if (b == a || !atomic_load(&b->live) || atomic_load(&b->busy) ||
				    UF_LD(b->start) != UF_LD(a->end) ||
				    UF_LD(b->backing) != UF_LD(a->backing) ||
				    UF_LD(b->off) != UF_LD(a->off) + (UF_LD(a->end) - UF_LD(a->start)) ||
				    UF_LD(b->ctx) != UF_LD(a->ctx) || UF_LD(b->mode) != UF_LD(a->mode) ||
				    UF_LD(b->prot) != UF_LD(a->prot))
					continue;
				area_begin(a);
				UF_ST(a->end, UF_LD(b->end));
				area_end(a);
				area_drop(b);
				again = 1;
			}
		}
	}
	/* Protection mode: recount the mappings the registered areas use. */
	if (!caps.guard_markers) {
		for (int i = 0; i < hw; i++) {
			struct area *a = &g_areas[i];
			if (atomic_load(&a->live) && UF_LD(a->ctx))
				extra += pg_extra_maps(g_stores[UF_LD(a->backing)].bits,
							     UF_LD(a->off) >> caps.page_shift,
							     (UF_LD(a->end) - UF_LD(a->start)) >> caps.page_shift);
		}
		pg_set_used(extra);
	}
}

static int split_at_bounds(uintptr_t start, uintptr_t end)
{
	int r = split_at(start);
	return r ? r : split_at(end);
}

/* Look up the mappings of [start, end) and check them all before anything
 * changes (the kernel's all-or-nothing validation): no mapping at all, or
 * one of a kind outside `allowed`, is EINVAL; a piece of ours owned by
 * another uffd is `foreign_err`.  Returns the count of mappings (the
 * array is the caller's to free) or a negative errno (*out is NULL). */
static int check_range(uint32_t me, uintptr_t start, uintptr_t end, unsigned allowed,
		       int foreign_err, struct vma **out)
{
	struct vma *v;
	int n, err = 0;

	*out = NULL;
	pthread_once(&g_tables_once, tables_init);
	drop_stale(start, end);
	n = vmas_in(start, end, &v);
	if (n <= 0) {
		free(v);
		return n < 0 ? n : -EINVAL;
	}
	for (int i = 0; i < n && !err; i++) {
		uintptr_t s = v[i].start > start ? v[i].start : start;
		uintptr_t e = v[i].end < end ? v[i].end : end;
		int hw = atomic_load(&g_areas_hw);

		if (allowed & (1u << v[i].kind))
			continue;
		if (v[i].kind != VMA_OURS) {
			err = -EINVAL;
			break;
		}
		for (int k = 0; k < hw; k++) {
			struct area *a = &g_areas[k];
			uint32_t owner = UF_LD(a->ctx);
			if (atomic_load(&a->live) && UF_LD(a->start) < e && UF_LD(a->end) > s &&
			    owner && owner != me)
				err = foreign_err;
		}
	}
	if (!err)
		err = split_at_bounds(start, end);
	if (err) {
		free(v);
		return err;
	}
	*out = v;
	return n;
}

int area_register_locked(struct ctx *c, uintptr_t start, uintptr_t end, uint64_t mode)
{
	struct vma *v;
	uint32_t me = atomic_load(&c->id);
	int n, err = 0;

	n = check_range(me, start, end, 1u << VMA_ANON, -EBUSY, &v);
	if (n < 0)
		return n;
	for (int i = 0; i < n && !err; i++) {
		uintptr_t s = v[i].start > start ? v[i].start : start;
		uintptr_t e = v[i].end < end ? v[i].end : end;
		int hw = atomic_load(&g_areas_hw);

		if (v[i].kind == VMA_ANON) {
			err = convert(c, s, e, v[i].prot, mode);
			continue;
		}
		for (int k = 0; k < hw && !err; k++) {
			struct area *a = &g_areas[k];
			if (!atomic_load(&a->live) || UF_LD(a->start) < s || UF_LD(a->end) > e)
				continue;
			if (UF_LD(a->ctx) == me) {
				/* Same uffd: the modes are replaced, unless it already
				 * has all of them. */
				if ((UF_LD(a->mode) & mode) != mode) {
					area_begin(a);
					UF_ST(a->mode, mode);
					area_end(a);
				}
			} else {
				err = rearm(a, c, mode);
			}
		}
	}
	free(v);
	merge_adjacent();
	return err;
}

static void unregister_area(struct area *a)
{
	uint32_t id = UF_LD(a->ctx);
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
	struct ctx *c = ctx_by_id(id);

	/* Faulters re-check the owner after queueing; then the markers go, so
	 * their retry finds an ordinary page; then the wake. */
	area_begin(a);
	UF_ST(a->ctx, 0);
	UF_ST(a->mode, 0);
	area_end(a);
	pg_disarm(s, e - s, UF_LD(a->prot));
	if (c)
		wq_wake_range(c, s, e, NULL);
}

int area_unregister_locked(struct ctx *c, uintptr_t start, uintptr_t end)
{
	struct vma *v;
	uint32_t me = atomic_load(&c->id);
	int n, hw;

	/* Unregistered memory of a kind that could be registered is skipped. */
	n = check_range(me, start, end, 1u << VMA_ANON | 1u << VMA_SHMEM | 1u << VMA_STACK,
			-EINVAL, &v);
	if (n < 0)
		return n;
	free(v);
	hw = atomic_load(&g_areas_hw);
	for (int k = 0; k < hw; k++) {
		struct area *a = &g_areas[k];
		if (atomic_load(&a->live) && UF_LD(a->ctx) == me && UF_LD(a->start) >= start &&
		    UF_LD(a->end) <= end)
			unregister_area(a);
	}
	merge_adjacent();
	return 0;
}

void area_unregister_all_locked(uint32_t ctx_id)
{
	int hw = atomic_load(&g_areas_hw);

	for (int k = 0; k < hw; k++) {
		struct area *a = &g_areas[k];
		if (atomic_load(&a->live) && UF_LD(a->ctx) == ctx_id)
			unregister_area(a);
	}
}

/* ---------------------------------------------------------------------- */
/* The program's own memory calls over areas (vmops.c drives these; all   */
/* with g_table_lock held).                                                      */
/* ---------------------------------------------------------------------- */

static void protect_present(struct area *a, int prot);

/* The areas inside [start, end), after splitting at its bounds: calls fn on
 * each.  0 or the first error. */
static int each_inside(uintptr_t start, uintptr_t end, int (*fn)(struct area *, void *), void *arg)
{
	int hw, r = split_at_bounds(start, end);

	if (r)
		return r;
	hw = atomic_load(&g_areas_hw);
	for (int k = 0; k < hw && !r; k++) {
		struct area *a = &g_areas[k];
		if (atomic_load(&a->live) && UF_LD(a->start) >= start && UF_LD(a->end) <= end)
			r = fn(a, arg);
	}
	return r;
}

static int forget_one(struct area *a, void *arg)
{
	(void)arg;
	area_drop(a);
	return 0;
}

/* [start, end) is about to be unmapped or replaced: its areas go (their
 * waiters stay asleep until a wake, as in the kernel). */
void area_forget_locked(uintptr_t start, uintptr_t end)
{
	each_inside(start, end, forget_one, NULL);
	merge_adjacent();
}

struct prot_arg { int prot; };

static int protect_one(struct area *a, void *arg)
{
	int prot = ((struct prot_arg *)arg)->prot;

	area_begin(a);
	UF_ST(a->prot, prot);
	area_end(a);
	protect_present(a, prot);
	return 0;
}

/* mprotect() over areas: the area keeps its registration and takes the new
 * protection; only its present pages become accessible.  The caller does
 * the parts of the range that are not areas. */
int area_protect_locked(uintptr_t start, uintptr_t end, int prot)
{
	struct prot_arg pa = { prot };
	int r = each_inside(start, end, protect_one, &pa);

	merge_adjacent();
	return r;
}

static int discard_one(struct area *a, void *arg)
{
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
	struct store *b = &g_stores[UF_LD(a->backing)];
	uint64_t off = UF_LD(a->off), pg0 = off >> caps.page_shift;
	size_t n = (e - s) >> caps.page_shift;

	(void)arg;
	if (UF_LD(a->ctx)) {
		/* Registered: the pages fault again from now on.  Hide them
		 * first (a fault on a page whose bit is still set retries), then
		 * drop the content, then the bits. */
		if (caps.guard_markers)
			sys_madvise((void *)s, e - s, MADV_GUARD_INSTALL);
		else
			sys_mprotect((void *)s, e - s, PROT_NONE);
		fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)(e - s));
		for (size_t i = 0; i < n; i++)
			pg_bit_clear(b->bits, pg0 + i);
	} else {
		/* Unregistered: read as zero from now on, as private memory. */
		fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)(e - s));
	}
	return 0;
}

/* MADV_DONTNEED / FREE / REMOVE over areas: the content goes, as it would
 * from private memory. */
int area_discard_locked(uintptr_t start, uintptr_t end)
{
	int r;

	pg_install_pause();
	r = each_inside(start, end, discard_one, NULL);
	pg_install_resume();
	merge_adjacent();
	return r;
}

/* The single area that is exactly [start, end) after splitting, or NULL. */
struct area *area_exact_locked(uintptr_t start, uintptr_t end)
{
	int hw;

	if (split_at_bounds(start, end))
		return NULL;
	hw = atomic_load(&g_areas_hw);
	for (int k = 0; k < hw; k++) {
		struct area *a = &g_areas[k];
		if (atomic_load(&a->live) && UF_LD(a->start) == start && UF_LD(a->end) == end)
			return a;
	}
	return NULL;
}

/* Before mremap() of area a to newlen bytes: the memfd and the bitmap must
 * be big enough for a growth; with protection, the area becomes one
 * inaccessible mapping (mremap moves one mapping only; faults wait for us
 * meanwhile).  0 or a negative errno. */
int area_move_begin_locked(struct area *a, size_t newlen)
{
	struct store *b = &g_stores[UF_LD(a->backing)];
	uint64_t need = UF_LD(a->off) + newlen;
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
	struct stat st;

	if ((need >> caps.page_shift) > b->bits_bytes * 8)
		return -ENOMEM;
	if (fstat(b->fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < need && ftruncate(b->fd, (off_t)need) < 0)
		return -errno;
	if (!caps.guard_markers) {
		busy_set(a);
		if (sys_mprotect((void *)s, e - s, PROT_NONE) < 0) {
			int err = -errno;
			busy_clear(a);
			return err;
		}
	}
	return 0;
}

/* After mremap() of area a: to is where it is now (MAP_FAILED: it did not
 * move).  In place, it keeps its registration and a grown tail is missing;
 * moved, it keeps it if `keep` (UFFD_FEATURE_EVENT_REMAP), else it is
 * unregistered, as the kernel's moved mapping, and every page is
 * accessible. */
void area_move_end_locked(struct area *a, void *to_, size_t newlen, int keep)
{
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
	uintptr_t to = to_ == MAP_FAILED ? s : (uintptr_t)to_;
	int prot = UF_LD(a->prot);
	struct store *b = &g_stores[UF_LD(a->backing)];
	uint64_t pg0 = UF_LD(a->off) >> caps.page_shift;
	size_t oldpages = (e - s) >> caps.page_shift;

	if (to_ == MAP_FAILED)
		newlen = e - s;
	area_begin(a);
	UF_ST(a->start, to);
	UF_ST(a->end, to + newlen);
	if (to != s && !keep) {
		UF_ST(a->ctx, 0);
		UF_ST(a->mode, 0);
	}
	area_end(a);
	if (UF_LD(a->ctx) && to != s) {
		/* Moved with UFFD_FEATURE_EVENT_REMAP: the registration follows.
		 * Arm the missing pages at the new place (markers are page
		 * table entries; arming again is harmless). */
		for (size_t i = oldpages; i < newlen >> caps.page_shift; i++)
			pg_bit_clear(b->bits, pg0 + i);
		pg_arm(to, newlen, b->bits, pg0, prot);
	} else if (UF_LD(a->ctx)) {
		/* A grown tail is holes of the memfd: missing.  With markers
		 * the rest kept its markers; with protection everything is
		 * inaccessible now and arming opens the present pages. */
		for (size_t i = oldpages; i < newlen >> caps.page_shift; i++)
			pg_bit_clear(b->bits, pg0 + i);
		if (!caps.guard_markers)
			pg_arm(to, newlen, b->bits, pg0, prot);
		else if (newlen > e - s)
			pg_arm(to + (e - s), newlen - (e - s), b->bits, pg0 + oldpages, prot);
	} else {
		pg_disarm(to, newlen, prot);
	}
	if (!caps.guard_markers)
		busy_clear(a);
	merge_adjacent();
}

/* Does [start, end) meet an area?  Lock-free.  async-signal-safe */
int area_meet(uintptr_t start, uintptr_t end)
{
	int hw = atomic_load(&g_areas_hw);

	for (int k = 0; k < hw; k++) {
		struct area *a = &g_areas[k];
		if (atomic_load(&a->live) && UF_LD(a->start) < end && UF_LD(a->end) > start)
			return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* fork(): the child gets private copies (fork.c drives this).             */
/* ---------------------------------------------------------------------- */

/* Parent, before fork: no area may change until the child has its copy. */
/* The protection of an area's present pages (the missing ones keep
 * faulting whatever it is). */
static void protect_present(struct area *a, int prot)
{
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
	struct store *b = &g_stores[UF_LD(a->backing)];

	if (!UF_LD(a->ctx))	/* unregistered: every page is accessible */
		sys_mprotect((void *)s, e - s, prot);
	else
		pg_protect_present(s, e - s, b->bits, UF_LD(a->off) >> caps.page_shift, prot);
}

void area_freeze_all(void)
{
	int hw = atomic_load(&g_areas_hw);

	/* The child will rebuild every area in place: forget those the
	 * program unmapped or replaced behind our back. */
	drop_stale(0, UINTPTR_MAX);
	pg_install_pause();

	for (int k = 0; k < hw; k++) {
		struct area *a = &g_areas[k];
		if (!atomic_load(&a->live))
			continue;
		busy_set(a);
		if (UF_LD(a->prot) & PROT_WRITE)
			protect_present(a, UF_LD(a->prot) & ~PROT_WRITE);
	}
}

void area_thaw_all(void)
{
	int hw = atomic_load(&g_areas_hw);

	for (int k = 0; k < hw; k++) {
		struct area *a = &g_areas[k];
		if (!atomic_load(&a->live))
			continue;
		if (UF_LD(a->prot) & PROT_WRITE)
			protect_present(a, UF_LD(a->prot));
		busy_clear(a);
	}
	pg_install_resume();
}

/* Child: a copy of memfd fd (its data only) in a new memfd, or -1. */
static int backing_clone(int fd)
{
	struct stat st;
	off_t pos = 0;
	int nfd;

	if (fstat(fd, &st) < 0 || (nfd = memfd_create("userfault", MFD_CLOEXEC)) < 0)
		return -1;
	if (ftruncate(nfd, st.st_size) < 0) {
		close(nfd);
		return -1;
	}
	for (off_t d; (d = next_data(fd, &pos, st.st_size)) >= 0;) {
		off_t in = d, out = d;
		size_t left = (size_t)(pos - d);
		while (left) {
			ssize_t k = copy_file_range(fd, &in, nfd, &out, left, 0);
			if (k <= 0) {
				close(nfd);
				return -1;
			}
			left -= (size_t)k;
		}
	}
	return nfd;
}

/*
 * Child, after fork (one thread).  An area owned by a uffd with
 * UFFD_FEATURE_EVENT_FORK (from[i]) stays registered, now to the child's
 * new uffd (to[i]), on a copy of its memfd: its missing pages stay missing.
 * Every other area becomes private anonymous memory holding the same
 * bytes: without EVENT_FORK the child's ranges are unregistered, so its
 * missing pages read as zero.
 */
void area_privatize_all(const uint32_t *from, const uint32_t *to, int nmap)
{
	int hw = atomic_load(&g_areas_hw);
	int newfd[UF_MAX_BACKING];

	for (int i = 0; i < UF_MAX_BACKING; i++)
		newfd[i] = -1;
	for (int k = 0; k < hw; k++) {
		struct area *a = &g_areas[k];
		uintptr_t s, e;
		uint64_t off;
		int fd, prot, bi, keep = -1;
		void *m;

		if (!atomic_load(&a->live))
			continue;
		s = UF_LD(a->start);
		e = UF_LD(a->end);
		off = UF_LD(a->off);
		prot = UF_LD(a->prot);
		bi = UF_LD(a->backing);
		fd = g_stores[bi].fd;
		for (int i = 0; i < nmap; i++)
			if (UF_LD(a->ctx) && UF_LD(a->ctx) == from[i])
				keep = i;
		if (keep >= 0 && newfd[bi] < 0)
			newfd[bi] = backing_clone(fd);
		if (keep >= 0 && newfd[bi] >= 0) {
			m = sys_mmap((void *)s, e - s, pg_arm_entry_prot(prot),
					MAP_SHARED | MAP_FIXED, newfd[bi], (off_t)off);
			if (m != MAP_FAILED) {
				pg_arm(s, e - s, g_stores[bi].bits, off >> caps.page_shift, prot);
				UF_ST(a->ctx, to[keep]);
				atomic_store(&a->busy, 0);
				continue;
			}
		}
		m = sys_mmap(NULL, e - s, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (m != MAP_FAILED) {
			off_t pos = (off_t)off, endoff = (off_t)(off + (e - s));
			for (off_t d; (d = next_data(fd, &pos, endoff)) >= 0;)
				if (pread(fd, (char *)m + (d - (off_t)off), (size_t)(pos - d), d) < 0)
					break;
			sys_mprotect(m, e - s, prot);
			if (sys_mremap(m, e - s, e - s, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)s) == MAP_FAILED)
				sys_munmap(m, e - s);
		}
		atomic_store(&a->live, 0);
		atomic_store(&a->busy, 0);
		if (newfd[bi] >= 0)
			g_stores[bi].refs--;
	}
	for (int i = 0; i < UF_MAX_BACKING; i++) {
		if (g_stores[i].fd < 0)
			continue;
		struct stat st;
		close(g_stores[i].fd);
		g_stores[i].fd = newfd[i];
		if (newfd[i] < 0)
			g_stores[i].refs = 0;
		else if (fstat(newfd[i], &st) == 0)
			g_stores[i].ino = st.st_ino;
	}
}
