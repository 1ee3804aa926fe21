/* SPDX-License-Identifier: MIT */
/*
 * Stores: the memfds that hold the pages of the areas, each with a bitmap
 * of the pages present.  A bitmap mapping is never unmapped (a signal
 * handler may still be reading it); a freed store keeps it for the next.
 * Table changes happen with the area layer's lock held (or in a fork child's
 * only thread); the signal handler reads fd and bits only.
 */
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "base/sys.h"
#include "base/fdreg.h"
#include "emu/pages.h"

struct store {
	_Atomic int fd;		/* memfd, -1 when free */
	ino_t ino;
	size_t npages;
	_Atomic(_Atomic uint64_t *) bits;	/* presence bitmap */
	_Atomic(_Atomic uint64_t *) wp;		/* write-protected pages (as big) */
	_Atomic(_Atomic uint64_t *) zp;		/* pages placed by ZEROPAGE (as big) */
	_Atomic(_Atomic uint64_t *) pz;		/* poisoned pages (as big) */
	_Atomic(_Atomic uint64_t *) mp;		/* mapped in MINOR areas (as big) */
	size_t bits_bytes;
	int refs;		/* areas using it */
	_Atomic int kind;	/* STORE_* (pages.h) */
	_Atomic int shift;	/* page size of its bits: huge pages for hugetlb */
	_Atomic uint64_t file_off;	/* private shmem, hugetlb: the file offset of bit 0 */
	_Atomic int ffd;	/* private hugetlb: the file, or -1 (fd is
				 * /proc/self/mem) */
};
static struct store g_stores[STORE_MAX];
#define STORE_MAPS 5		/* bitmaps per store, one mapping */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init(void)
{
	for (int i = 0; i < STORE_MAX; i++) {
		atomic_store(&g_stores[i].fd, -1);
		atomic_store(&g_stores[i].ffd, -1);
	}
}

/* A free slot with a bitmap for npages pages (room to grow in place, for
 * mremap: address space only) taking fd, which stays the caller's on
 * failure: the slot, or a negative errno. */
static int slot_new(int fd, size_t npages, int kind, int shift)
{
	size_t cap = npages * 4 + (1u << 20);
	size_t bytes = ((cap + 63) / 64) * 8;
	struct stat st;

	pthread_once(&g_once, init);
	if (fstat(fd, &st) < 0)
		return -errno;
	bytes = (bytes + caps.page_size - 1) & ~(caps.page_size - 1);
	for (int i = 0; i < STORE_MAX; i++) {
		struct store *b = &g_stores[i];
		if (atomic_load(&b->fd) >= 0)
			continue;
		if (b->bits_bytes < bytes) {
			void *m = sys_mmap(NULL, STORE_MAPS * bytes, PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (m == MAP_FAILED)
				return -ENOMEM;
			/* (The old bitmaps stay mapped: a handler may read them.) */
			atomic_store(&b->bits, m);
			atomic_store(&b->wp, (_Atomic uint64_t *)((char *)m + bytes));
			atomic_store(&b->zp, (_Atomic uint64_t *)((char *)m + 2 * bytes));
			atomic_store(&b->pz, (_Atomic uint64_t *)((char *)m + 3 * bytes));
			atomic_store(&b->mp, (_Atomic uint64_t *)((char *)m + 4 * bytes));
			b->bits_bytes = bytes;
		} else {
			/* Zero (store_put did it, but a fork child frees slots
			 * without). */
			sys_madvise((void *)atomic_load(&b->bits), STORE_MAPS * b->bits_bytes, MADV_DONTNEED);
		}
		b->npages = npages;
		b->ino = st.st_ino;
		b->refs = 0;
		atomic_store(&b->kind, kind);
		atomic_store(&b->shift, shift);
		fd_own(fd);
		atomic_store(&b->fd, fd);
		return i;
	}
	return -ENOMEM;
}

int store_new(size_t len)
{
	int fd = memfd_create("userfault", MFD_CLOEXEC), s;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)len) < 0) {
		s = -errno;
		sys_close(fd);
		return s;
	}
	s = slot_new(fd, len >> caps.page_shift, STORE_MEMFD, (int)caps.page_shift);
	if (s < 0)
		sys_close(fd);
	return s;
}

int store_attach_file(int fd, size_t len)
{
	return slot_new(fd, len >> caps.page_shift, STORE_SHMEM, (int)caps.page_shift);
}

int store_attach_huge(int fd, size_t len, int shift, int shared, unsigned long ino, int ffd,
		      uint64_t file_off)
{
	int s = slot_new(fd, len >> shift, shared ? STORE_HUGE_SHARED : STORE_HUGE_PRIVATE, shift);

	if (s >= 0 && !shared) {
		g_stores[s].ino = ino;	/* the mapping's file, not /proc/self/mem */
		if (ffd >= 0)
			fd_own(ffd);
		atomic_store(&g_stores[s].ffd, ffd);
		atomic_store(&g_stores[s].file_off, file_off);
	}
	return s;
}

/* async-signal-safe */
SIG_SAFE int store_file_fd(int s)
{
	return atomic_load(&g_stores[s].kind) == STORE_HUGE_PRIVATE ? atomic_load(&g_stores[s].ffd)
								  : atomic_load(&g_stores[s].fd);
}

int store_attach_private(int fd, size_t len, uint64_t file_off)
{
	int s = slot_new(fd, len >> caps.page_shift, STORE_SHMEM_PRIVATE, (int)caps.page_shift);

	if (s >= 0)
		atomic_store(&g_stores[s].file_off, file_off);
	return s;
}

/* async-signal-safe */
SIG_SAFE uint64_t store_file_off(int s)
{
	return atomic_load(&g_stores[s].file_off);
}

/* async-signal-safe */
SIG_SAFE int store_is_file(int s)
{
	return atomic_load(&g_stores[s].kind) == STORE_SHMEM;
}

/* async-signal-safe */
SIG_SAFE int store_kind(int s)
{
	return atomic_load(&g_stores[s].kind);
}

/* async-signal-safe */
SIG_SAFE int store_huge_shift(int s)
{
	int k = atomic_load(&g_stores[s].kind);
	return k == STORE_HUGE_SHARED || k == STORE_HUGE_PRIVATE ? atomic_load(&g_stores[s].shift) : 0;
}

int store_file_by_ino(unsigned long ino)
{
	pthread_once(&g_once, init);
	for (int i = 0; i < STORE_MAX; i++)
		if (atomic_load(&g_stores[i].fd) >= 0 &&
		    (atomic_load(&g_stores[i].kind) == STORE_SHMEM ||
		     atomic_load(&g_stores[i].kind) == STORE_HUGE_SHARED) &&
		    g_stores[i].ino == ino && g_stores[i].refs)
			return i;
	return -1;
}

void store_ref(int s)
{
	g_stores[s].refs++;
}

void store_put(int s)
{
	struct store *b = &g_stores[s];

	if (--b->refs > 0)
		return;
	fd_close_own(atomic_exchange(&b->fd, -1));
	if (atomic_load(&b->ffd) >= 0)
		fd_close_own(atomic_exchange(&b->ffd, -1));
	sys_madvise((void *)atomic_load(&b->bits), STORE_MAPS * b->bits_bytes, MADV_DONTNEED);
}

/* async-signal-safe */
void store_fd_relocate(int from, int to)
{
	for (int i = 0; i < STORE_MAX; i++) {
		int expected = from;
		atomic_compare_exchange_strong(&g_stores[i].fd, &expected, to);
		expected = from;
		atomic_compare_exchange_strong(&g_stores[i].ffd, &expected, to);
	}
}

SIG_SAFE int store_fd(int s)
{
	return atomic_load(&g_stores[s].fd);
}

ino_t store_ino(int s)
{
	return g_stores[s].ino;
}

/* async-signal-safe */
SIG_SAFE _Atomic uint64_t *store_bits(int s)
{
	return atomic_load(&g_stores[s].bits);
}

/* async-signal-safe */
SIG_SAFE _Atomic uint64_t *store_zero_bits(int s)
{
	return atomic_load(&g_stores[s].zp);
}

SIG_SAFE _Atomic uint64_t *store_poison_bits(int s)
{
	return atomic_load(&g_stores[s].pz);
}

SIG_SAFE _Atomic uint64_t *store_map_bits(int s)
{
	return atomic_load(&g_stores[s].mp);
}

SIG_SAFE _Atomic uint64_t *store_wp_bits(int s)
{
	return atomic_load(&g_stores[s].wp);
}

SIG_SAFE size_t store_bits_pages(int s)
{
	return g_stores[s].bits_bytes * 8;
}

int store_by_ino(unsigned long ino)
{
	pthread_once(&g_once, init);
	for (int i = 0; i < STORE_MAX; i++)
		if (atomic_load(&g_stores[i].fd) >= 0 && atomic_load(&g_stores[i].kind) == STORE_MEMFD &&
		    g_stores[i].ino == ino && g_stores[i].refs)
			return i;
	return -1;
}

/* async-signal-safe (lseek) */
SIG_SAFE off_t store_next_data(int fd, off_t *pos, off_t end)
{
	off_t d, h;

	if (*pos >= end || (d = lseek(fd, *pos, SEEK_DATA)) < 0 || d >= end)
		return -1;
	h = lseek(fd, d, SEEK_HOLE);
	*pos = (h < 0 || h > end) ? end : h;
	return d & ~(off_t)(caps.page_size - 1);
}

int store_clone_fd(int s)
{
	int fd = store_fd(s), nfd;
	struct stat st;
	off_t pos = 0;

	if (fstat(fd, &st) < 0 || (nfd = memfd_create("userfault", MFD_CLOEXEC)) < 0)
		return -1;
	if (ftruncate(nfd, st.st_size) < 0) {
		sys_close(nfd);
		return -1;
	}
	for (off_t d; (d = store_next_data(fd, &pos, st.st_size)) >= 0;) {
		off_t in = d, out = d;
		size_t left = (size_t)(pos - d);
		while (left) {
			ssize_t k = copy_file_range(fd, &in, nfd, &out, left, 0);
			if (k <= 0) {
				sys_close(nfd);
				return -1;
			}
			left -= (size_t)k;
		}
	}
	return nfd;
}

void store_forget_ref(int s)
{
	g_stores[s].refs--;
}

void store_after_fork(const int *newfd)
{
	pthread_once(&g_once, init);	/* (no store yet: none has fd 0) */
	for (int i = 0; i < STORE_MAX; i++) {
		struct store *b = &g_stores[i];
		struct stat st;

		if (atomic_load(&b->fd) < 0)
			continue;
		if (newfd[i] == atomic_load(&b->fd))
			continue;	/* a shared memory file, kept as it is */
		fd_close_own(atomic_load(&b->fd));
		fd_own(newfd[i]);
		atomic_store(&b->fd, newfd[i]);
		if (newfd[i] < 0) {
			b->refs = 0;
			if (atomic_load(&b->ffd) >= 0)
				fd_close_own(atomic_exchange(&b->ffd, -1));
		}
		else if (atomic_load(&b->kind) == STORE_MEMFD && fstat(newfd[i], &st) == 0)
			b->ino = st.st_ino;
	}
}
