/* SPDX-License-Identifier: MIT */
/*
 * REGISTER and UNREGISTER on the emulation: private anonymous memory is
 * converted into an area (a store mapped in its place, holding the bytes it
 * held, every missing page armed); a once-registered area is armed again;
 * UNREGISTER disarms.  All with the area lock held.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include "base/sys.h"
#include "userfault/uapi.h"
#include "emu/area-impl.h"

#define TMPFS_MAGIC_ 0x01021994
#define HUGETLBFS_MAGIC_ 0x958458f6


/* ---------------------------------------------------------------------- */
/* Conversion of private anonymous memory into an area.                    */
/* ---------------------------------------------------------------------- */

/* Copy the pages of [addr, addr+len) that exist (present or swapped) into
 * the memfd at the same offsets, and mark them present.  The range is not
 * writable meanwhile, so what we copy is final. */
static int copy_present(uintptr_t addr, size_t len, int readable, int mfd, _Atomic uint64_t *bits)
{
	size_t ps = caps.page_size, npages = len / ps, chunk = 65536;
	uint64_t *pm = calloc(chunk, sizeof *pm);
	int pmfd = sys_open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC, 0), memfd = -1, err = 0;
	char *bounce = NULL;

	if (!pm || pmfd < 0) {
		err = pm ? -errno : -ENOMEM;
		goto out;
	}
	if (!readable) {
		memfd = sys_open("/proc/self/mem", O_RDONLY | O_CLOEXEC, 0);
		bounce = malloc(ps);
		if (memfd < 0 || !bounce) {
			err = -EACCES;
			goto out;
		}
	}
	for (size_t base = 0; base < npages; base += chunk) {
		size_t n = npages - base < chunk ? npages - base : chunk;
		off_t off = (off_t)(((addr >> caps.page_shift) + base) * sizeof *pm);
		ssize_t r = sys_pread(pmfd, pm, n * sizeof *pm, off);
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
					if (sys_pread(memfd, bounce, ps, (off_t)(addr + (base + k) * ps)) != (ssize_t)ps ||
					    sys_pwrite(mfd, bounce, ps, (off_t)((base + k) * ps)) != (ssize_t)ps) {
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
		sys_close(pmfd);
	if (memfd >= 0)
		sys_close(memfd);
	return err;
}

static int convert(uint32_t me, uintptr_t start, uintptr_t end, int prot, uint64_t mode)
{
	size_t len = end - start;
	struct area *a;
	int bi, err, vmflags = maps_flags(start, end);
	int locked = vmflags > 0 && (vmflags & MAPS_LOCKED), wipe = vmflags > 0 && (vmflags & MAPS_WIPE);
	void *tmp;

	a = area_new();
	if (!a)
		return -ENOMEM;
	bi = store_new(len);
	if (bi < 0)
		return bi;
	/* From here faults in the range wait until we are done. */
	area_publish(a, start, end, bi, 0, prot, 0, 0, 1);
	area_busy_bump();
	if ((prot & PROT_WRITE) && sys_mprotect((void *)start, len, prot & ~PROT_WRITE) < 0) {
		err = -errno;
		goto fail;
	}
	err = copy_present(start, len, prot & PROT_READ, store_fd(bi), store_bits(bi));
	if (err)
		goto fail_prot;
	/* The memfd goes in place in one step, already armed: with markers,
	 * armed aside then moved over the old pages; with protection, mapped
	 * inaccessible over them, then the present pages opened (faults wait
	 * for us meanwhile, the area being busy). */
	tmp = sys_mmap(caps.guard_markers ? NULL : (void *)start, len, pg_arm_entry_prot(prot),
		   MAP_SHARED | (caps.guard_markers ? 0 : MAP_FIXED), store_fd(bi), 0);
	if (tmp == MAP_FAILED) {
		err = -errno;
		goto fail_prot;
	}
	/* (Registered for WP alone: no page is missing, none is armed.) */
	err = (mode & UFFDIO_REGISTER_MODE_MISSING) ? pg_arm((uintptr_t)tmp, len, store_bits(bi), 0, prot)
						     : 0;
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
		area_busy_clear(a);
		return err;
	}
	/* A range the program locked stays locked (as a VMA keeps VM_LOCKED
	 * through REGISTER): pages are locked as they are installed, and the
	 * locked size (VmLck) is what it was. */
	if (locked)
		sys_call4(SYS_mlock2, (long)start, (long)len, 1 /* MLOCK_ONFAULT */, 0);
	area_begin(a);
	UF_ST(a->ctx, me);
	UF_ST(a->mode, mode);
	atomic_store(&a->wipe, wipe);	/* MADV_WIPEONFORK stays, as on the VMA */
	area_end(a);
	area_busy_clear(a);
	return 0;
fail_prot:
	if (prot & PROT_WRITE)
		sys_mprotect((void *)start, len, prot);
fail:
	area_busy_clear(a);
	area_drop(a);
	return err;
}

/* Re-register an area that was unregistered: the memfd tells which pages
 * hold data (anything touched meanwhile); the holes get guards again.  The
 * area is inaccessible meanwhile, so no page appears behind our back. */
static int file_arm(uintptr_t s, uintptr_t e, int prot);
static int remode(struct area *a, uint32_t me, uint64_t mode);
static int huge_arm_area(struct area *a, int prot);
static int private_arm(struct area *a, int prot);

/* a now belongs to uffd me, with these modes. */
static void own(struct area *a, uint32_t me, uint64_t mode)
{
	area_begin(a);
	UF_ST(a->ctx, me);
	UF_ST(a->mode, mode);
	area_end(a);
}

/* Arm an area of the program's own mapping (shared memory, hugetlb, a
 * private mapping of shared memory), as its store's kind wants. */
static int arm_program_mapping(struct area *a, int prot, uint64_t mode)
{
	int sb = UF_LD(a->store);

	/* MINOR (shared memory, shared hugetlb): the pages not mapped here
	 * fault, missing or minor. */
	if (area_minor(mode, sb)) {
		struct pg_span sp = area_span_of(a);
		sp.prot = prot;
		sp.armed = !!(mode & UFFDIO_REGISTER_MODE_MISSING);
		sp.minor = 1;
		return pg_minor_arm(&sp, UF_LD(a->start), UF_LD(a->end) - UF_LD(a->start));
	}
	/* Shared memory and hugetlb registered for WP alone (or MINOR on a
	 * private mapping): nothing faults as missing. */
	if (store_kind(sb) != STORE_MEMFD && !(mode & UFFDIO_REGISTER_MODE_MISSING))
		return 0;
	if (store_is_file(sb))
		return file_arm(UF_LD(a->start), UF_LD(a->end), prot);
	return store_huge_shift(sb) ? huge_arm_area(a, prot) : private_arm(a, prot);
}

/* A new area of the program's own mapping, published busy: armed and given
 * to me, or disarmed and dropped.  0 or a negative errno. */
static int arm_new(struct area *a, uint32_t me, uint64_t mode)
{
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
	int prot = UF_LD(a->prot), err;

	area_busy_bump();
	err = arm_program_mapping(a, prot, mode);
	if (err) {
		pg_disarm(s, e - s, prot);
		area_busy_clear(a);
		area_drop(a);
		return err;
	}
	own(a, me, mode);
	area_busy_clear(a);
	return 0;
}

static int rearm(struct area *a, uint32_t me, uint64_t mode)
{
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
	int sb = UF_LD(a->store);
	_Atomic uint64_t *bits = store_bits(sb);
	uint64_t pg0 = UF_LD(a->off) / caps.page_size;
	int prot = UF_LD(a->prot), err;

	if (store_huge_shift(sb) || store_is_file(sb) || store_kind(sb) == STORE_SHMEM_PRIVATE) {
		area_busy_set(a);
		err = arm_program_mapping(a, prot, mode);
		if (!err)
			own(a, me, mode);
		area_busy_clear(a);
		return err;
	}
	area_busy_set(a);
	if (sys_mprotect((void *)s, e - s, PROT_NONE) < 0) {
		err = -errno;
		area_busy_clear(a);
		return err;
	}
	{
		struct pg_span sp = area_span_of(a);
		pg_refresh(&sp, s, e - s);
	}
	/* Arm while nothing is accessible (markers do not mind the
	 * protection), then open: no page can appear behind our back.  (WP
	 * alone arms nothing.) */
	err = (mode & UFFDIO_REGISTER_MODE_MISSING) ? pg_arm(s, e - s, bits, pg0, prot) : 0;
	if (caps.guard_markers)
		sys_mprotect((void *)s, e - s, prot);
	else if (err)
		pg_disarm(s, e - s, prot);	/* stays unregistered */
	if (!err)
		own(a, me, mode);
	area_busy_clear(a);
	return err;
}

/* ---------------------------------------------------------------------- */
/* Shared memory: the program's own mapping of its file becomes an area.   */
/* ---------------------------------------------------------------------- */

/* Every page of [s, e) that the file does not have faults (a marker); the
 * pages it has stay as they are (found with mincore; one swapped out gets
 * a marker, and its first access opens it: pg_fault_state). */
static int file_arm(uintptr_t s, uintptr_t e, int prot)
{
	size_t ps = caps.page_size, n = (e - s) / ps, chunk = 65536;
	unsigned char *vec = calloc(chunk, 1);
	_Atomic uint64_t *bits = calloc((chunk + 63) / 64, sizeof *bits);
	int err = 0;

	if (!vec || !bits)
		err = -ENOMEM;
	for (size_t base = 0; base < n && !err; base += chunk) {
		size_t k = n - base < chunk ? n - base : chunk;
		uintptr_t at = s + base * ps;
		if (sys_call4(SYS_mincore, (long)at, (long)(k * ps), (long)vec, 0) < 0) {
			err = -errno;
			break;
		}
		for (size_t i = 0; i < k; i++)
			if (vec[i] & 1)
				pg_bit_set(bits, i);
			else
				pg_bit_clear(bits, i);
		err = pg_arm(at, k * ps, bits, 0, prot);
	}
	free(vec);
	free(bits);
	return err;
}

/* Our own descriptor of the file mapped at v, opened with flags (O_RDWR,
 * O_RDONLY), or a negative errno.  /proc/self/map_files needs CAP_SYS_ADMIN
 * (or CAP_CHECKPOINT_RESTORE); otherwise a descriptor of the program's on
 * the same file is reopened. */
static int open_mapped_file(const struct vma *v, int flags)
{
	char path[64];
	struct stat st;
	DIR *d;
	struct dirent *de;
	int fd;

	snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx", (unsigned long)v->start,
		 (unsigned long)v->end);
	fd = sys_open(path, flags | O_CLOEXEC, 0);
	if (fd >= 0)
		return fd;
	d = opendir("/proc/self/fd");
	if (!d)
		return -EINVAL;
	fd = -EINVAL;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long n = strtol(de->d_name, &end, 10);
		if (*end || end == de->d_name || n == dirfd(d))
			continue;
		if (fstat((int)n, &st) < 0 || st.st_ino != v->ino || !S_ISREG(st.st_mode))
			continue;
		snprintf(path, sizeof path, "/proc/self/fd/%ld", n);
		fd = sys_open(path, flags | O_CLOEXEC, 0);
		if (fd >= 0)
			break;
		fd = -EINVAL;
	}
	closedir(d);
	return fd;
}

/* A private mapping of a shared memory file: the pages this mapping has
 * (a private copy, or a page of the file mapped here: pagemap) keep no
 * marker; the others get one (a marker on a private copy would drop it).
 * Pages of the file never mapped here are opened at their first fault. */
static int private_arm(struct area *a, int prot)
{
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
	int sb = UF_LD(a->store);
	size_t ps = caps.page_size, n = (e - s) / ps, chunk = 65536;
	uint64_t pg0 = UF_LD(a->off) >> caps.page_shift, *pm = calloc(chunk, sizeof *pm);
	int pmfd = sys_open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC, 0), err = 0;

	if (!pm || pmfd < 0) {
		free(pm);
		if (pmfd >= 0)
			sys_close(pmfd);
		return -ENOMEM;
	}
	for (size_t base = 0; base < n && !err; base += chunk) {
		size_t k = n - base < chunk ? n - base : chunk;
		off_t at = (off_t)(((s >> caps.page_shift) + base) * sizeof *pm);
		if (sys_pread(pmfd, pm, k * sizeof *pm, at) != (ssize_t)(k * sizeof *pm)) {
			err = -EIO;
			break;
		}
		for (size_t i = 0; i < k; i++)
			if (pm[i] & (3ULL << 62))	/* present or swapped */
				pg_bit_set(store_bits(sb), pg0 + base + i);
			else
				pg_bit_clear(store_bits(sb), pg0 + base + i);
	}
	free(pm);
	sys_close(pmfd);
	return err ? err : pg_arm(s, e - s, store_bits(sb), pg0, prot);
}

/* Register [s, e) of v, a MAP_PRIVATE mapping of a shared memory file: a
 * store of its own (bits per page of the piece), the file for presence. */
static int attach_private(uint32_t me, uintptr_t s, uintptr_t e, const struct vma *v, uint64_t mode)
{
	struct area *a = area_new();
	struct statfs sf;
	int fd, sb;

	if (!a)
		return -ENOMEM;
	fd = open_mapped_file(v, O_RDWR);
	if (fd < 0)
		return fd;
	if (fstatfs(fd, &sf) < 0 || sf.f_type != TMPFS_MAGIC_) {
		sys_close(fd);
		return -EINVAL;
	}
	sb = store_attach_private(fd, e - s, v->off + (s - v->start));
	if (sb < 0) {
		sys_close(fd);
		return sb;
	}
	area_publish(a, s, e, sb, 0, v->prot, 0, 0, 1);
	return arm_new(a, me, mode);
}

/* Register [s, e), a piece of the shared mapping v of a shared memory file
 * (tmpfs, memfd, MAP_SHARED|MAP_ANONYMOUS).  The mapping stays the
 * program's; its missing pages get guard markers (on shared memory since
 * Linux 6.15: without them, EINVAL). */
static int attach_file(uint32_t me, uintptr_t s, uintptr_t e, const struct vma *v, uint64_t mode)
{
	uint64_t off = v->off + (s - v->start), need = v->off + (v->end - v->start);
	struct area *a;
	struct statfs sf;
	struct stat st;
	int fd, sb, fresh = 0;

	if (!caps.guard_markers || !caps.cachestat)
		return -EINVAL;
	if (!v->shared)
		return attach_private(me, s, e, v, mode);
	a = area_new();
	if (!a)
		return -ENOMEM;
	sb = store_file_by_ino(v->ino);
	if (sb < 0) {
		fd = open_mapped_file(v, O_RDWR);
		if (fd < 0)
			return fd;
		if (fstatfs(fd, &sf) < 0 || sf.f_type != TMPFS_MAGIC_ || fstat(fd, &st) < 0) {
			sys_close(fd);
			return -EINVAL;
		}
		sb = store_attach_file(fd, (uint64_t)st.st_size > need ? (size_t)st.st_size : need);
		if (sb < 0) {
			sys_close(fd);
			return sb;
		}
		fresh = 1;
	}
	if ((off + (e - s)) >> caps.page_shift > store_bits_pages(sb)) {
		if (fresh)
			store_put(sb);	/* closes it */
		return -ENOMEM;
	}
	area_publish(a, s, e, sb, off, v->prot, 0, 0, 1);
	return arm_new(a, me, mode);
}

/* ---------------------------------------------------------------------- */
/* hugetlb: the program's mapping stays; missing huge pages are PROT_NONE. */
/* ---------------------------------------------------------------------- */

/* The present huge pages of a's range, as its mapping's page tables say
 * (mincore): private pages, and pages of the file mapped here.  A page the
 * file has but this mapping never touched is found at its first fault
 * (pg_fault_state). */
static int huge_arm_area(struct area *a, int prot)
{
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);
	int sb = UF_LD(a->store), shift = store_huge_shift(sb);
	size_t hs = (size_t)1 << shift, n = (e - s) >> shift, per = hs / caps.page_size;
	uint64_t pg0 = UF_LD(a->off) >> shift;
	unsigned char *vec = calloc(per, 1);
	int err = 0;

	if (!vec)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (sys_call4(SYS_mincore, (long)(s + i * hs), (long)hs, (long)vec, 0) < 0) {
			err = -errno;
			break;
		}
		if (vec[0] & 1)
			pg_bit_set(store_bits(sb), pg0 + i);
		else if (store_kind(sb) == STORE_HUGE_PRIVATE)
			pg_bit_clear(store_bits(sb), pg0 + i);
	}
	free(vec);
	if (!err)
		err = pg_huge_arm(s, e - s, store_bits(sb), pg0, (unsigned)shift, prot);
	return err;
}

/* Register [s, e), a piece of the hugetlb mapping v.  Shared: the store is
 * the file's (one per file, bits per huge page of the file); private: one
 * per piece, its descriptor /proc/self/mem, through which COPY writes the
 * private copy of a page still PROT_NONE. */
static int attach_huge(uint32_t me, uintptr_t s, uintptr_t e, const struct vma *v, uint64_t mode)
{
	int shift = __builtin_ctzl(v->pagesize), fd, sb = -1, fresh = 0;
	uint64_t off = 0, need = e - s;
	struct area *a = area_new();
	struct statfs sf;
	struct stat st;

	if (!a)
		return -ENOMEM;
	if (v->shared) {
		off = v->off + (s - v->start);
		need = v->off + (v->end - v->start);
		sb = store_file_by_ino(v->ino);
		if (sb < 0) {
			fd = open_mapped_file(v, O_RDWR);
			if (fd < 0)
				return fd;
			if (fstatfs(fd, &sf) < 0 || sf.f_type != (typeof(sf.f_type))HUGETLBFS_MAGIC_ ||
			    fstat(fd, &st) < 0) {
				sys_close(fd);
				return -EINVAL;
			}
			if ((uint64_t)st.st_size > need)
				need = (uint64_t)st.st_size;
			sb = store_attach_huge(fd, need, shift, 1, 0, -1, 0);
			if (sb < 0) {
				sys_close(fd);
				return sb;
			}
			fresh = 1;
		}
	} else {
		/* (and the file, for MINOR: which huge pages it has; without
		 * it, no minor faults here) */
		int ffd = open_mapped_file(v, O_RDONLY);
		fd = sys_open("/proc/self/mem", O_RDWR | O_CLOEXEC, 0);
		if (fd < 0) {
			if (ffd >= 0)
				sys_close(ffd);
			return -EINVAL;
		}
		sb = store_attach_huge(fd, need, shift, 0, v->ino, ffd < 0 ? -1 : ffd,
				       v->off + (s - v->start));
		if (sb < 0) {
			sys_close(fd);
			if (ffd >= 0)
				sys_close(ffd);
			return sb;
		}
		fresh = 1;
	}
	if ((off + (e - s)) >> shift > store_bits_pages(sb)) {
		if (fresh)
			store_put(sb);
		return -ENOMEM;
	}
	area_publish(a, s, e, sb, off, v->prot, 0, 0, 1);
	return arm_new(a, me, mode);
}

/* Register the shared memory piece [s, e) of v: its areas as any area of
 * ours, the rest attached. */
static int register_shared(uint32_t me, uintptr_t s, uintptr_t e, const struct vma *v, uint64_t mode)
{
	int err = 0;

	for (uintptr_t at = s; at < e && !err;) {
		int hw = atomic_load(&g_areas_hw);
		uintptr_t next = e;
		struct area *here = NULL;

		for (int k = 0; k < hw; k++) {
			struct area *a = &g_areas[k];
			uintptr_t as = UF_LD(a->start);
			if (!atomic_load(&a->live) || as >= e || UF_LD(a->end) <= at)
				continue;
			if (as <= at)
				here = a;
			else if (as < next)
				next = as;
		}
		if (!here) {
			err = v->kind == VMA_HUGE ? attach_huge(me, at, next, v, mode)
						  : attach_file(me, at, next, v, mode);
			at = next;
			continue;
		}
		at = UF_LD(here->end);
		if (UF_LD(here->ctx) == me) {
			if ((UF_LD(here->mode) & mode) != mode)
				err = remode(here, me, mode);
		} else {
			err = rearm(here, me, mode);
		}
	}
	return err;
}

static int wp_check(const struct vma *v, int n, uintptr_t start, uintptr_t end);
static int minor_check(const struct vma *v, int n);

/* Look up the mappings of [start, end) and check them all before anything
 * changes (the kernel's all-or-nothing validation): no mapping at all, or
 * one of a kind outside `allowed`, or one where REGISTER's `mode` (0 for
 * UNREGISTER) cannot be, is EINVAL; a piece of ours owned by another uffd
 * is `foreign_err`.  Mapping by mapping, in that order, as the kernel's
 * loop: the first mapping that fails gives the error.  Returns the count
 * of mappings (the array is the caller's to free) or a negative errno
 * (*out is NULL). */
static int check_range(uint32_t me, uintptr_t start, uintptr_t end, unsigned allowed,
		       int foreign_err, uint64_t mode, struct vma **out)
{
	struct vma *v;
	int n, err = 0;

	*out = NULL;
	area_drop_stale(start, end);
	n = area_vmas_in(start, end, &v);
	if (n <= 0) {
		free(v);
		return n < 0 ? n : -EINVAL;
	}
	for (int i = 0; i < n && !err; i++) {
		uintptr_t s = v[i].start > start ? v[i].start : start;
		uintptr_t e = v[i].end < end ? v[i].end : end;
		int hw = atomic_load(&g_areas_hw);

		if (((mode & UFFDIO_REGISTER_MODE_MINOR) && (err = minor_check(&v[i], 1)) < 0) ||
		    ((mode & UFFDIO_REGISTER_MODE_WP) && (err = wp_check(&v[i], 1, start, end)) < 0))
			break;
		if ((allowed & (1u << v[i].kind)) && v[i].kind != VMA_SHMEM && v[i].kind != VMA_HUGE)
			continue;
		if (v[i].kind != VMA_OURS && !(allowed & (1u << v[i].kind))) {
			err = -EINVAL;
			break;
		}
		/* Shared memory: with guard markers on it, and cachestat. */
		if (v[i].kind == VMA_SHMEM && foreign_err == -EBUSY &&
		    (!caps.guard_markers || !caps.cachestat)) {
			err = -EINVAL;
			break;
		}
		/* hugetlb: the range's ends on huge pages (REGISTER and
		 * UNREGISTER alike). */
		if (v[i].kind == VMA_HUGE && (!v[i].pagesize || ((s | e) & (v[i].pagesize - 1)))) {
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
		err = area_split_at_bounds(start, end);
	if (err) {
		free(v);
		return err;
	}
	*out = v;
	return n;
}

/* An area of ours registered to me gets new modes: markers go with
 * MISSING, come (on the pages the memfd lacks) with it, and WP's bits go
 * with WP. */
static int remode(struct area *a, uint32_t me, uint64_t mode)
{
	uint64_t old = UF_LD(a->mode);
	int err = 0;

	if (store_kind(UF_LD(a->store)) != STORE_MEMFD && ((old | mode) & UFFDIO_REGISTER_MODE_MINOR) &&
	    ((old ^ mode) & (UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_MISSING))) {
		/* The program's mapping, with MINOR before or after: armed
		 * anew. */
		area_busy_set(a);
		pg_disarm(UF_LD(a->start), UF_LD(a->end) - UF_LD(a->start), UF_LD(a->prot));
		err = arm_program_mapping(a, UF_LD(a->prot), mode);
		if (!err)
			own(a, me, mode);
		area_busy_clear(a);
		if (!err && (mode & UFFDIO_REGISTER_MODE_WP)) {
			struct pg_span sp = area_span_of(a);
			pg_wp_reapply(&sp);
		}
	} else if ((old & UFFDIO_REGISTER_MODE_MISSING) && !(mode & UFFDIO_REGISTER_MODE_MISSING)) {
		own(a, me, mode);
		pg_disarm(UF_LD(a->start), UF_LD(a->end) - UF_LD(a->start), UF_LD(a->prot));
		/* (without markers, disarming opened the protected pages too) */
		if (mode & UFFDIO_REGISTER_MODE_WP) {
			struct pg_span sp = area_span_of(a);
			pg_wp_reapply(&sp);
		}
	} else if (!(old & UFFDIO_REGISTER_MODE_MISSING) && (mode & UFFDIO_REGISTER_MODE_MISSING)) {
		err = rearm(a, me, mode);
		if (!err && (mode & UFFDIO_REGISTER_MODE_WP)) {
			struct pg_span sp = area_span_of(a);
			pg_wp_reapply(&sp);
		}
	} else {
		own(a, me, mode);
	}
	if (!err && (old & UFFDIO_REGISTER_MODE_WP) && !(mode & UFFDIO_REGISTER_MODE_WP))
		area_wp_clear(a);
	return err;
}

/* WP mode: on private anonymous memory, shared memory and hugetlb, with
 * guard markers (the protection of missing pages would compete with the
 * write protection). */
static int wp_check(const struct vma *v, int n, uintptr_t start, uintptr_t end)
{
	int hw = atomic_load(&g_areas_hw);

	if (!caps.guard_markers)
		return -EINVAL;
	for (int i = 0; i < n; i++) {
		if (v[i].kind == VMA_ANON || v[i].kind == VMA_HUGE)
			continue;
		if (v[i].kind == VMA_SHMEM)
			continue;
		if (v[i].kind != VMA_OURS)
			return -EINVAL;
		for (int k = 0; k < hw; k++) {
			struct area *a = &g_areas[k];
			if (atomic_load(&a->live) && UF_LD(a->start) < end && UF_LD(a->end) > start &&
			    UF_LD(a->start) < v[i].end && UF_LD(a->end) > v[i].start &&
			    !store_has_wp(UF_LD(a->store)))
				return -EINVAL;
		}
	}
	pg_budget_init();
	return 0;
}

/* MINOR mode: on shared memory and hugetlb, not on private anonymous
 * memory (nor on an area of ours, which is that). */
static int minor_check(const struct vma *v, int n)
{
	for (int i = 0; i < n; i++)
		if (v[i].kind != VMA_SHMEM && v[i].kind != VMA_HUGE)
			return -EINVAL;
	return 0;
}

int area_register_locked(uint32_t me, uintptr_t start, uintptr_t end, uint64_t mode)
{
	struct vma *v;
	int n, err = 0, huge = 0;

	n = check_range(me, start, end, 1u << VMA_ANON | 1u << VMA_SHMEM | 1u << VMA_HUGE, -EBUSY, mode, &v);
	if (n < 0)
		return n;
	if ((mode & UFFDIO_REGISTER_MODE_MINOR) && (err = minor_check(v, n)) < 0) {
		free(v);
		return err;
	}
	if ((mode & UFFDIO_REGISTER_MODE_WP) && (err = wp_check(v, n, start, end)) < 0) {
		free(v);
		return err;
	}
	for (int i = 0; i < n && !err; i++) {
		uintptr_t s = v[i].start > start ? v[i].start : start;
		uintptr_t e = v[i].end < end ? v[i].end : end;
		int hw = atomic_load(&g_areas_hw);

		if (v[i].kind == VMA_ANON) {
			err = convert(me, s, e, v[i].prot, mode);
			continue;
		}
		if (v[i].kind == VMA_SHMEM || v[i].kind == VMA_HUGE) {
			huge |= v[i].kind == VMA_HUGE;
			err = register_shared(me, s, e, &v[i], mode);
			continue;
		}
		for (int k = 0; k < hw && !err; k++) {
			struct area *a = &g_areas[k];
			if (!atomic_load(&a->live) || UF_LD(a->start) < s || UF_LD(a->end) > e)
				continue;
			if (UF_LD(a->ctx) == me) {
				/* Same uffd: the modes are replaced, unless it already
				 * has all of them. */
				if ((UF_LD(a->mode) & mode) != mode)
					err = remode(a, me, mode);
			} else {
				err = rearm(a, me, mode);
			}
		}
	}
	free(v);
	area_merge_adjacent();
	return err ? err : huge;
}

static void unregister_area(struct area *a)
{
	uintptr_t s = UF_LD(a->start), e = UF_LD(a->end);

	/* Faulters re-check the owner after queueing; then the markers go, so
	 * their retry finds an ordinary page; then (the caller) the wake. */
	area_begin(a);
	UF_ST(a->ctx, 0);
	UF_ST(a->mode, 0);
	area_end(a);
	area_wp_clear(a);
	pg_disarm(s, e - s, UF_LD(a->prot));
	/* The poison stays, as the kernel's markers. */
	{
		struct pg_span sp = area_span_of(a);
		pg_poison_mark(&sp, s, e - s);
	}
}

int area_unregister_locked(uint32_t me, uintptr_t start, uintptr_t end)
{
	struct vma *v;
	int n, hw;

	/* Unregistered memory of a kind that could be registered is skipped. */
	n = check_range(me, start, end,
			1u << VMA_ANON | 1u << VMA_SHMEM | 1u << VMA_STACK | 1u << VMA_HUGE, -EINVAL, 0, &v);
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
	area_merge_adjacent();
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