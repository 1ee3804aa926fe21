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

struct uf_backing uf_backings[UF_MAX_BACKING];
struct uf_area uf_areas[UF_MAX_AREAS];
_Atomic int uf_areas_hw;
_Atomic uint32_t uf_busy_gen;

static const char g_zeros[UF_PAGE_SIZE_MAX];

/* ---------------------------------------------------------------------- */
/* Lock-free reading (the signal handler's side).                          */
/* ---------------------------------------------------------------------- */

/* The fields are stored and loaded sequentially consistent (UF_ST/UF_LD), so
 * the counter needs no separate fences (which TSan cannot model). */
void uf_area_begin(struct uf_area *a)
{
	atomic_fetch_add(&a->seq, 1);		/* odd: readers retry */
}

void uf_area_end(struct uf_area *a)
{
	atomic_fetch_add(&a->seq, 1);
}

/* async-signal-safe */
static int area_read(struct uf_area *a, struct uf_area_view *v)
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
int uf_area_find(uintptr_t addr, struct uf_area_view *v)
{
	int hw = atomic_load(&uf_areas_hw);

	for (int i = 0; i < hw; i++) {
		struct uf_area *a = &uf_areas[i];
		if (!atomic_load(&a->live))
			continue;
		if (addr < UF_LD(a->start) || addr >= UF_LD(a->end))
			continue;
		if (area_read(a, v) && addr >= v->start && addr < v->end) {
			v->idx = i;
			return 1;
		}
	}
	return 0;
}

/* Has the area changed since v was read?  async-signal-safe */
int uf_area_still(const struct uf_area_view *v)
{
	struct uf_area_view now;

	if (!area_read(&uf_areas[v->idx], &now))
		return 0;
	return now.start == v->start && now.end == v->end && now.ctx == v->ctx &&
	       now.busy == v->busy && now.mode == v->mode;
}

static inline uint64_t page_index(const struct uf_area_view *v, uintptr_t addr)
{
	return (v->off + (addr - v->start)) >> uf_caps.page_shift;
}

/* async-signal-safe */
bool uf_page_present(const struct uf_area_view *v, uintptr_t addr)
{
	uint64_t pg = page_index(v, addr);
	_Atomic uint64_t *bits = uf_backings[v->backing].bits;

	return (atomic_load(&bits[pg >> 6]) >> (pg & 63)) & 1;
}

/* async-signal-safe */
void uf_area_wait_busy(uint32_t gen)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	uf_sys_futex_wait(&uf_busy_gen, gen, &ts);
}

static void busy_clear(struct uf_area *a)
{
	uf_area_begin(a);
	atomic_store(&a->busy, 0);
	uf_area_end(a);
	atomic_fetch_add(&uf_busy_gen, 1);
	uf_sys_futex_wake(&uf_busy_gen, 0x7fffffff);
}

static void busy_set(struct uf_area *a)
{
	uf_area_begin(a);
	atomic_store(&a->busy, 1);
	uf_area_end(a);
}

/* ---------------------------------------------------------------------- */
/* Installing pages (COPY / ZEROPAGE).                                      */
/* ---------------------------------------------------------------------- */

static int bit_claim(_Atomic uint64_t *bits, uint64_t pg)
{
	uint64_t m = 1ULL << (pg & 63);
	return !(atomic_fetch_or(&bits[pg >> 6], m) & m);
}

static void bit_clear(_Atomic uint64_t *bits, uint64_t pg)
{
	atomic_fetch_and(&bits[pg >> 6], ~(1ULL << (pg & 63)));
}

static void bit_set(_Atomic uint64_t *bits, uint64_t pg)
{
	atomic_fetch_or(&bits[pg >> 6], 1ULL << (pg & 63));
}

/* Write len bytes at off of the memfd from src (NULL: zeros).  Returns the
 * bytes written; stops short at an unreadable source.  async-signal-safe */
static size_t fill(int fd, const char *src, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t w;
		if (src) {
			w = pwrite(fd, src + done, len - done, (off_t)(off + done));
		} else {
			struct iovec iov[64];
			size_t left = len - done, n = 0, ps = sizeof g_zeros;
			while (left && n < 64) {
				size_t k = left < ps ? left : ps;
				iov[n].iov_base = (void *)g_zeros;
				iov[n++].iov_len = k;
				left -= k;
			}
			w = pwritev(fd, iov, (int)n, (off_t)(off + done));
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	return done;
}

/* Make pages [addr, addr+len) visible: the content is already in the memfd.
 * Removing the guard marker is the moment the page appears, whole; the
 * populate spares the faulting thread a second exception.  a-s-s */
static void reveal(const struct uf_area_view *v, uintptr_t addr, size_t len)
{
	madvise((void *)addr, len, MADV_GUARD_REMOVE);
	if (!uf_caps.populate)
		return;
	if (v->prot & PROT_WRITE)
		madvise((void *)addr, len, MADV_POPULATE_WRITE);
	else if (v->prot & PROT_READ)
		madvise((void *)addr, len, MADV_POPULATE_READ);
}

/* Can the caller read [src, src+len)?  async-signal-safe */
static int src_readable(const char *src, size_t len)
{
	char buf[256];

	for (size_t i = 0; i < len; i += sizeof buf)
		if (uf_copy_in(buf, src + i, len - i < sizeof buf ? len - i : sizeof buf))
			return 0;
	return 1;
}

/* async-signal-safe */
long uf_install(const struct uf_area_view *v, uintptr_t dst, const void *src, size_t len)
{
	struct uf_backing *b = &uf_backings[v->backing];
	size_t ps = uf_caps.page_size, npages = len >> uf_caps.page_shift, done = 0;
	uint64_t pg0 = page_index(v, dst);

	while (done < npages) {
		size_t run = 0, bytes, w, full;

		while (done + run < npages && bit_claim(b->bits, pg0 + done + run))
			run++;
		if (run == 0) {
			/* Page already present.  The kernel reads the source
			 * before it looks at the destination: an unreadable
			 * source is EFAULT even then. */
			if (src && !src_readable((const char *)src + done * ps, ps))
				return done ? (long)(done * ps) : -EFAULT;
			break;
		}
		bytes = run * ps;
		w = fill(b->fd, src ? (const char *)src + done * ps : NULL, bytes,
			 (pg0 + done) * ps);
		full = w / ps;
		if (full < run) {
			/* Unreadable source: give back the pages not written and
			 * forget any partial page, so it still reads as missing. */
			for (size_t i = full; i < run; i++)
				bit_clear(b->bits, pg0 + done + i);
			if (w % ps)
				fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  (off_t)((pg0 + done + full) * ps), (off_t)ps);
			if (full)
				reveal(v, dst + done * ps, full * ps);
			done += full;
			atomic_fetch_add(&uf_stats.pages_installed, done);
			return done ? (long)(done * ps) : -EFAULT;
		}
		reveal(v, dst + done * ps, bytes);
		done += run;
	}
	atomic_fetch_add(&uf_stats.pages_installed, done);
	return done ? (long)(done * ps) : -EEXIST;
}

/* ---------------------------------------------------------------------- */
/* /proc/self/maps                                                          */
/* ---------------------------------------------------------------------- */

enum vma_kind { VMA_ANON, VMA_OURS, VMA_SHMEM, VMA_STACK, VMA_OTHER };
struct vma {
	uintptr_t start, end;
	int prot;
	enum vma_kind kind;
	unsigned long ino;
};

static int backing_by_ino(unsigned long ino)
{
	for (int i = 0; i < UF_MAX_BACKING; i++)
		if (uf_backings[i].fd >= 0 && uf_backings[i].ino == ino && uf_backings[i].refs)
			return i;
	return -1;
}

/* The mappings that intersect [start, end), in address order.  Returns the
 * count (the array is malloc'ed), or a negative errno. */
static int vmas_in(uintptr_t start, uintptr_t end, struct vma **out)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4096];
	struct vma *v = NULL;
	int n = 0, cap = 0;

	*out = NULL;
	if (!f)
		return -errno;
	while (fgets(line, sizeof line, f)) {
		unsigned long s, e, off, ino;
		char perm[8], dev[16], path[4096];
		struct vma x;

		path[0] = 0;
		if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %4095[^\n]", &s, &e, perm, &off, dev, &ino, path) < 6)
			continue;
		if (e <= start)
			continue;
		if (s >= end)
			break;
		x.start = s;
		x.end = e;
		x.prot = (perm[0] == 'r' ? PROT_READ : 0) | (perm[1] == 'w' ? PROT_WRITE : 0) |
			 (perm[2] == 'x' ? PROT_EXEC : 0);
		x.ino = ino;
		{
			char *p = path;
			while (*p == ' ')
				p++;
			if (perm[3] == 's' && ino && backing_by_ino(ino) >= 0)
				x.kind = VMA_OURS;
			else if (perm[3] == 'p' && ino == 0 && strcmp(p, "[stack]") != 0 &&
				 strcmp(p, "[vdso]") != 0 && strcmp(p, "[vvar]") != 0 &&
				 strcmp(p, "[vsyscall]") != 0 && strncmp(p, "[vvar", 5) != 0 &&
				 strcmp(p, "[uprobes]") != 0)
				x.kind = VMA_ANON;
			else if (!strcmp(p, "[stack]"))
				x.kind = VMA_STACK;
			else if (!strncmp(p, "/memfd:", 7) || !strncmp(p, "/dev/zero", 9) ||
				 !strncmp(p, "/SYSV", 5) || !strncmp(p, "/dev/shm/", 9))
				x.kind = VMA_SHMEM;
			else
				x.kind = VMA_OTHER;
		}
		if (n == cap) {
			struct vma *nv;
			cap = cap ? 2 * cap : 16;
			nv = realloc(v, (size_t)cap * sizeof *v);
			if (!nv) {
				free(v);
				fclose(f);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n++] = x;
	}
	fclose(f);
	*out = v;
	return n;
}

/* ---------------------------------------------------------------------- */
/* The area and backing tables (uf_lock held).                              */
/* ---------------------------------------------------------------------- */

static pthread_once_t g_tables_once = PTHREAD_ONCE_INIT;
static void tables_init(void)
{
	for (int i = 0; i < UF_MAX_BACKING; i++)
		uf_backings[i].fd = -1;
}

static int backing_new(size_t len)
{
	size_t npages = len >> uf_caps.page_shift;
	size_t bytes = ((npages + 63) / 64) * 8;
	int fd;

	bytes = (bytes + uf_caps.page_size - 1) & ~(uf_caps.page_size - 1);
	for (int i = 0; i < UF_MAX_BACKING; i++) {
		struct uf_backing *b = &uf_backings[i];
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
			void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (m == MAP_FAILED) {
				close(fd);
				return -ENOMEM;
			}
			b->bits = m;
			b->bits_bytes = bytes;
		} else {
			memset((void *)b->bits, 0, bytes);
		}
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
	struct uf_backing *b = &uf_backings[i];

	if (--b->refs > 0)
		return;
	close(b->fd);
	b->fd = -1;
	madvise((void *)b->bits, b->bits_bytes, MADV_DONTNEED);
}

static struct uf_area *area_new(void)
{
	for (int i = 0; i < UF_MAX_AREAS; i++) {
		struct uf_area *a = &uf_areas[i];
		if (atomic_load(&a->live))
			continue;
		if (i + 1 > atomic_load(&uf_areas_hw))
			atomic_store(&uf_areas_hw, i + 1);
		return a;
	}
	return NULL;
}

static void area_publish(struct uf_area *a, uintptr_t start, uintptr_t end, int backing,
			 uint64_t off, int prot, uint32_t ctx, uint64_t mode, int busy)
{
	uf_area_begin(a);
	UF_ST(a->start, start);
	UF_ST(a->end, end);
	UF_ST(a->backing, backing);
	UF_ST(a->off, off);
	UF_ST(a->prot, prot);
	UF_ST(a->ctx, ctx);
	UF_ST(a->mode, mode);
	atomic_store(&a->busy, busy);
	atomic_store(&a->live, 1);
	uf_area_end(a);
	uf_backings[backing].refs++;
}

static void area_drop(struct uf_area *a)
{
	int b = UF_LD(a->backing);

	uf_area_begin(a);
	atomic_store(&a->live, 0);
	uf_area_end(a);
	backing_put(b);
}

/* Split a at addr (strictly inside): a keeps [start, addr).  0 or -ENOMEM. */
static int area_split(struct uf_area *a, uintptr_t addr)
{
	struct uf_area *n = area_new();
	uintptr_t start = UF_LD(a->start), end = UF_LD(a->end);

	if (!n)
		return -ENOMEM;
	area_publish(n, addr, end, UF_LD(a->backing), UF_LD(a->off) + (addr - start),
		     UF_LD(a->prot), UF_LD(a->ctx), UF_LD(a->mode), 0);
	uf_area_begin(a);
	UF_ST(a->end, addr);
	uf_area_end(a);
	return 0;
}

/* Is the area still mapped as we made it?  (The program may have unmapped
 * or replaced it: without events we are not told.) */
static int area_mapped(struct uf_area *a)
{
	struct vma *v;
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end), at = s;
	unsigned long ino = uf_backings[UF_LD(a->backing)].ino;
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
	int hw = atomic_load(&uf_areas_hw);

	for (int i = 0; i < hw; i++) {
		struct uf_area *a = &uf_areas[i];
		if (!atomic_load(&a->live) || UF_LD(a->end) <= start || UF_LD(a->start) >= end)
			continue;
		if (!area_mapped(a)) {
			madvise((void *)UF_LD(a->start), UF_LD(a->end) - UF_LD(a->start), MADV_GUARD_REMOVE);
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
	size_t ps = uf_caps.page_size, npages = len / ps, chunk = 65536;
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
		off_t off = (off_t)(((addr >> uf_caps.page_shift) + base) * sizeof *pm);
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
				bit_set(bits, base + k);
			if (readable) {
				size_t want = (j - i) * ps;
				/* A raw system call: the range is write-protected, so
				 * no thread writes it meanwhile, which a race detector
				 * watching pwrite's interceptor cannot know. */
				if (uf_raw_syscall4(SYS_pwrite64, mfd, (long)(addr + (base + i) * ps),
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

/* Put guard markers on the pages of [addr, addr+len) whose bit is clear;
 * the mapping's page p corresponds to bit pg0 + p. */
static int guard_holes(uintptr_t addr, size_t len, _Atomic uint64_t *bits, uint64_t pg0)
{
	size_t ps = uf_caps.page_size, npages = len / ps;

	for (size_t i = 0; i < npages;) {
		size_t j;
		uint64_t w = atomic_load(&bits[(pg0 + i) >> 6]);
		if (w == ~0ULL && ((pg0 + i) & 63) == 0) {
			i += 64;
			continue;
		}
		if ((w >> ((pg0 + i) & 63)) & 1) {
			i++;
			continue;
		}
		j = i + 1;
		while (j < npages) {
			uint64_t pg = pg0 + j;
			uint64_t ww = atomic_load(&bits[pg >> 6]);
			if ((pg & 63) == 0 && ww == 0) {
				j += 64;
				continue;
			}
			if ((ww >> (pg & 63)) & 1)
				break;
			j++;
		}
		if (j > npages)
			j = npages;
		if (madvise((void *)(addr + i * ps), (j - i) * ps, MADV_GUARD_INSTALL) < 0)
			return -errno;
		i = j;
	}
	return 0;
}

static int convert(struct uf_ctx *c, uintptr_t start, uintptr_t end, int prot, uint64_t mode)
{
	size_t len = end - start;
	struct uf_area *a;
	int bi, err;
	void *tmp;

	a = area_new();
	if (!a)
		return -ENOMEM;
	bi = backing_new(len);
	if (bi < 0)
		return bi;
	/* From here faults in the range wait until we are done. */
	area_publish(a, start, end, bi, 0, prot, 0, 0, 1);
	if ((prot & PROT_WRITE) && mprotect((void *)start, len, prot & ~PROT_WRITE) < 0) {
		err = -errno;
		goto fail;
	}
	err = copy_present(start, len, prot & PROT_READ, uf_backings[bi].fd, uf_backings[bi].bits);
	if (err)
		goto fail_prot;
	tmp = mmap(NULL, len, prot, MAP_SHARED, uf_backings[bi].fd, 0);
	if (tmp == MAP_FAILED) {
		err = -errno;
		goto fail_prot;
	}
	err = guard_holes((uintptr_t)tmp, len, uf_backings[bi].bits, 0);
	/* One step: the old pages go, the memfd's appear with their guards. */
	if (err || mremap(tmp, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)start) == MAP_FAILED) {
		err = err ? err : -errno;
		munmap(tmp, len);
		goto fail_prot;
	}
	uf_area_begin(a);
	UF_ST(a->ctx, atomic_load(&c->id));
	UF_ST(a->mode, mode);
	uf_area_end(a);
	busy_clear(a);
	return 0;
fail_prot:
	if (prot & PROT_WRITE)
		mprotect((void *)start, len, prot);
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
	return d & ~(off_t)(uf_caps.page_size - 1);
}

/* Re-register an area that was unregistered: the memfd tells which pages
 * hold data (anything touched meanwhile); the holes get guards again.  The
 * area is inaccessible meanwhile, so no page appears behind our back. */
static int rearm(struct uf_area *a, struct uf_ctx *c, uint64_t mode)
{
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
	size_t ps = uf_caps.page_size;
	struct uf_backing *b = &uf_backings[UF_LD(a->backing)];
	uint64_t off = UF_LD(a->off), pg0 = off / ps, npages = (e - s) / ps;
	int prot = UF_LD(a->prot), err;
	off_t pos = (off_t)off, endoff = (off_t)(off + (e - s));

	busy_set(a);
	if (mprotect((void *)s, e - s, PROT_NONE) < 0) {
		err = -errno;
		busy_clear(a);
		return err;
	}
	for (uint64_t i = 0; i < npages; i++)
		bit_clear(b->bits, pg0 + i);
	for (off_t d; (d = next_data(b->fd, &pos, endoff)) >= 0;)
		for (off_t p = d; p < pos; p += (off_t)ps)
			bit_set(b->bits, (uint64_t)p / ps);
	err = guard_holes(s, e - s, b->bits, pg0);
	mprotect((void *)s, e - s, prot);
	if (!err) {
		uf_area_begin(a);
		UF_ST(a->ctx, atomic_load(&c->id));
		UF_ST(a->mode, mode);
		uf_area_end(a);
	}
	busy_clear(a);
	return err;
}

/* Split areas so that none straddles start or end. */
static int split_at_bounds(uintptr_t start, uintptr_t end)
{
	int hw = atomic_load(&uf_areas_hw), r;

	for (int i = 0; i < hw; i++) {
		struct uf_area *a = &uf_areas[i];
		if (!atomic_load(&a->live))
			continue;
		if (UF_LD(a->start) < start && UF_LD(a->end) > start && (r = area_split(a, start)))
			return r;
		if (UF_LD(a->start) < end && UF_LD(a->end) > end && (r = area_split(a, end)))
			return r;
	}
	return 0;
}

/* Look up the mappings of [start, end) and check them all before anything
 * changes (the kernel's all-or-nothing validation): no mapping at all, or
 * one of a kind outside `allowed`, is EINVAL; a piece of ours owned by
 * another uffd is `foreign_err`.  Returns the count of mappings (the
 * array is the caller's to free) or a negative errno. */
static int check_range(uint32_t me, uintptr_t start, uintptr_t end, unsigned allowed,
		       int foreign_err, struct vma **out)
{
	struct vma *v;
	int n, err = 0;

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
		int hw = atomic_load(&uf_areas_hw);

		if (allowed & (1u << v[i].kind))
			continue;
		if (v[i].kind != VMA_OURS) {
			err = -EINVAL;
			break;
		}
		for (int k = 0; k < hw; k++) {
			struct uf_area *a = &uf_areas[k];
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

int uf_register_locked(struct uf_ctx *c, uintptr_t start, uintptr_t end, uint64_t mode)
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
		int hw = atomic_load(&uf_areas_hw);

		if (v[i].kind == VMA_ANON) {
			err = convert(c, s, e, v[i].prot, mode);
			continue;
		}
		for (int k = 0; k < hw && !err; k++) {
			struct uf_area *a = &uf_areas[k];
			if (!atomic_load(&a->live) || UF_LD(a->start) < s || UF_LD(a->end) > e)
				continue;
			if (UF_LD(a->ctx) == me) {
				/* Same uffd: the modes are replaced, unless it already
				 * has all of them. */
				if ((UF_LD(a->mode) & mode) != mode) {
					uf_area_begin(a);
					UF_ST(a->mode, mode);
					uf_area_end(a);
				}
			} else {
				err = rearm(a, c, mode);
			}
		}
	}
	free(v);
	return err;
}

static void unregister_area(struct uf_area *a)
{
	uint32_t id = UF_LD(a->ctx);
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
	struct uf_ctx *c = uf_ctx_by_id(id);

	/* Faulters re-check the owner after queueing; then the markers go, so
	 * their retry finds an ordinary page; then the wake. */
	uf_area_begin(a);
	UF_ST(a->ctx, 0);
	UF_ST(a->mode, 0);
	uf_area_end(a);
	madvise((void *)s, e - s, MADV_GUARD_REMOVE);
	if (c)
		uf_wake_range(c, s, e);
}

int uf_unregister_locked(struct uf_ctx *c, uintptr_t start, uintptr_t end)
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
	hw = atomic_load(&uf_areas_hw);
	for (int k = 0; k < hw; k++) {
		struct uf_area *a = &uf_areas[k];
		if (atomic_load(&a->live) && UF_LD(a->ctx) == me && UF_LD(a->start) >= start &&
		    UF_LD(a->end) <= end)
			unregister_area(a);
	}
	return 0;
}

void uf_unregister_all_locked(uint32_t ctx_id)
{
	int hw = atomic_load(&uf_areas_hw);

	for (int k = 0; k < hw; k++) {
		struct uf_area *a = &uf_areas[k];
		if (atomic_load(&a->live) && UF_LD(a->ctx) == ctx_id)
			unregister_area(a);
	}
}

/* ---------------------------------------------------------------------- */
/* fork(): the child gets private copies (fork.c drives this).             */
/* ---------------------------------------------------------------------- */

/* Parent, before fork: no area may change until the child has its copy. */
void uf_areas_freeze(void)
{
	int hw = atomic_load(&uf_areas_hw);

	for (int k = 0; k < hw; k++) {
		struct uf_area *a = &uf_areas[k];
		if (!atomic_load(&a->live))
			continue;
		busy_set(a);
		if (UF_LD(a->prot) & PROT_WRITE)
			mprotect((void *)UF_LD(a->start), UF_LD(a->end) - UF_LD(a->start),
				 UF_LD(a->prot) & ~PROT_WRITE);
	}
}

void uf_areas_thaw(void)
{
	int hw = atomic_load(&uf_areas_hw);

	for (int k = 0; k < hw; k++) {
		struct uf_area *a = &uf_areas[k];
		if (!atomic_load(&a->live))
			continue;
		if (UF_LD(a->prot) & PROT_WRITE)
			mprotect((void *)UF_LD(a->start), UF_LD(a->end) - UF_LD(a->start), UF_LD(a->prot));
		busy_clear(a);
	}
}

/* Child, after fork (one thread): replace every area by private anonymous
 * memory holding the same bytes.  Without UFFD_FEATURE_EVENT_FORK the
 * child's ranges are unregistered, so its missing pages read as zero. */
void uf_areas_privatize(void)
{
	int hw = atomic_load(&uf_areas_hw);

	for (int k = 0; k < hw; k++) {
		struct uf_area *a = &uf_areas[k];
		uintptr_t s, e;
		uint64_t off;
		int fd, prot;
		void *m;

		if (!atomic_load(&a->live))
			continue;
		s = UF_LD(a->start);
		e = UF_LD(a->end);
		off = UF_LD(a->off);
		prot = UF_LD(a->prot);
		fd = uf_backings[UF_LD(a->backing)].fd;
		m = mmap(NULL, e - s, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (m != MAP_FAILED) {
			off_t pos = (off_t)off, endoff = (off_t)(off + (e - s));
			for (off_t d; (d = next_data(fd, &pos, endoff)) >= 0;)
				if (pread(fd, (char *)m + (d - (off_t)off), (size_t)(pos - d), d) < 0)
					break;
			mprotect(m, e - s, prot);
			if (mremap(m, e - s, e - s, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)s) == MAP_FAILED)
				munmap(m, e - s);
		}
		atomic_store(&a->live, 0);
		atomic_store(&a->busy, 0);
	}
	for (int i = 0; i < UF_MAX_BACKING; i++) {
		if (uf_backings[i].fd >= 0) {
			close(uf_backings[i].fd);
			uf_backings[i].fd = -1;
			uf_backings[i].refs = 0;
		}
	}
}
