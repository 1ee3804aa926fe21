/* SPDX-License-Identifier: MIT */
/*
 * fork() and areas (emu/fork.c drives these): an area is a shared mapping
 * standing for private memory.  The parent freezes its areas before the
 * fork (no writes until the child has its copy) and thaws them after; the
 * child replaces each area by private memory holding the same bytes, or
 * keeps it registered on a copy of its store (UFFD_FEATURE_EVENT_FORK).
 */
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include "base/sys.h"
#include "userfault/uapi.h"
#include "emu/area-impl.h"


void area_freeze_all(void)
{
	int hw = atomic_load(&g_areas_hw);

	/* The child will rebuild every area in place: forget those the
	 * program unmapped or replaced behind our back. */
	area_drop_stale(0, UINTPTR_MAX);
	pg_install_pause();

	for (int k = 0; k < hw; k++) {
		struct area *a = &g_areas[k];
		/* Shared memory stays shared: the child maps the same file. */
		if (!atomic_load(&a->live) || store_kind(UF_LD(a->store)) != STORE_MEMFD)
			continue;
		area_busy_set(a);
		if (UF_LD(a->prot) & PROT_WRITE)
			area_protect_present(a, UF_LD(a->prot) & ~PROT_WRITE);
	}
}

void area_thaw_all(void)
{
	int hw = atomic_load(&g_areas_hw);

	for (int k = 0; k < hw; k++) {
		struct area *a = &g_areas[k];
		if (!atomic_load(&a->live) || store_kind(UF_LD(a->store)) != STORE_MEMFD)
			continue;
		if (UF_LD(a->prot) & PROT_WRITE)
			area_protect_present(a, UF_LD(a->prot));
		area_busy_clear(a);
	}
	pg_install_resume();
}

/* Has area a a poisoned page (UFFDIO_POISON)? */
static bool poisoned(const struct area *a)
{
	struct pg_span sp = area_span_of(a);

	return pg_poison_any(&sp, sp.start, sp.end - sp.start);
}

/* a, in the child, is not registered any more: writable where not
 * poisoned, its poisoned pages marked (they raise SIGBUS). */
static void unregistered(struct area *a)
{
	struct pg_span sp;

	UF_ST(a->ctx, 0);
	UF_ST(a->mode, 0);
	area_wp_clear(a);
	sp = area_span_of(a);
	pg_poison_mark(&sp, sp.start, sp.end - sp.start);
	atomic_store(&a->busy, 0);
}

/*
 * Child, after fork (one thread).  An area owned by a uffd with
 * UFFD_FEATURE_EVENT_FORK (from[i]) stays registered, now to the child's
 * new uffd (to[i]), on a copy of its memfd: its missing pages stay missing.
 * Every other area becomes private anonymous memory holding the same
 * bytes: without EVENT_FORK the child's ranges are unregistered, so its
 * missing pages read as zero; one with poisoned pages stays an area, on
 * a copy of its memfd, unregistered.
 */
void area_privatize_all(const uint32_t *from, const uint32_t *to, int nmap)
{
	int hw = atomic_load(&g_areas_hw);
	int newfd[STORE_MAX];

	for (int i = 0; i < STORE_MAX; i++)
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
		bi = UF_LD(a->store);
		fd = store_fd(bi);
		for (int i = 0; i < nmap; i++)
			if (UF_LD(a->ctx) && UF_LD(a->ctx) == from[i])
				keep = i;
		if (store_kind(bi) != STORE_MEMFD) {
			/* Shared memory and hugetlb: the child's mapping is the
			 * kernel's copy (the same file, or private pages copied on
			 * write), markers or protection included.  Kept
			 * registered, or not at all.  A private hugetlb store's
			 * /proc/self/mem must be the child's own. */
			if (keep >= 0) {
				if (store_kind(bi) == STORE_HUGE_PRIVATE)
					newfd[bi] = newfd[bi] >= 0 ? newfd[bi]
						  : sys_open("/proc/self/mem", O_RDWR | O_CLOEXEC, 0);
				else
					newfd[bi] = fd;
				UF_ST(a->ctx, to[keep]);
				atomic_store(&a->busy, 0);
				continue;
			}
			pg_disarm(s, e - s, prot);
			/* (and no write protection: its runs writable again) */
			if (UF_LD(a->mode) & UFFDIO_REGISTER_MODE_WP)
				sys_mprotect((void *)s, e - s, prot);
			/* A private mapping's poison is copied into the child (a
			 * shared one's page tables are not): it stays an area,
			 * unregistered, with its poisoned pages marked. */
			if (store_kind(bi) != STORE_SHMEM && store_kind(bi) != STORE_HUGE_SHARED &&
			    poisoned(a)) {
				if (store_kind(bi) == STORE_HUGE_PRIVATE)
					newfd[bi] = newfd[bi] >= 0 ? newfd[bi]
						  : sys_open("/proc/self/mem", O_RDWR | O_CLOEXEC, 0);
				else
					newfd[bi] = fd;
				unregistered(a);
				continue;
			}
			atomic_store(&a->live, 0);
			atomic_store(&a->busy, 0);
			store_forget_ref(bi);
			continue;
		}
		/* Not kept, but poisoned: the child's copy keeps the poison (a
		 * private mapping's markers are copied), so the area stays, on
		 * a copy of its memfd, unregistered. */
		if (keep < 0 && !atomic_load(&a->wipe) && poisoned(a)) {
			if (newfd[bi] < 0)
				newfd[bi] = store_clone_fd(bi);
			if (newfd[bi] >= 0 &&
			    sys_mmap((void *)s, e - s, prot, MAP_SHARED | MAP_FIXED, newfd[bi], (off_t)off) != MAP_FAILED) {
				unregistered(a);
				continue;
			}
		}
		if (keep >= 0 && newfd[bi] < 0)
			newfd[bi] = store_clone_fd(bi);
		if (keep >= 0 && newfd[bi] >= 0) {
			if (atomic_load(&a->wipe)) {
				/* Wiped on fork: the child has none of its pages;
				 * still registered, they are all missing. */
				sys_fallocate(newfd[bi], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
					  (off_t)(e - s));
				for (uint64_t pg = off >> caps.page_shift; pg < (off + (e - s)) >> caps.page_shift; pg++)
					pg_bit_clear(store_bits(bi), pg);
			}
			m = sys_mmap((void *)s, e - s, pg_arm_entry_prot(prot),
					MAP_SHARED | MAP_FIXED, newfd[bi], (off_t)off);
			if (m != MAP_FAILED) {
				uint64_t mode = UF_LD(a->mode);
				struct pg_span sp = area_span_of(a);
				if (mode & UFFDIO_REGISTER_MODE_MISSING)
					pg_arm(s, e - s, store_bits(bi), off >> caps.page_shift, prot);
				/* With EVENT_FORK the child's pages keep their write
				 * protection (wiped ones have none). */
				if (atomic_load(&a->wipe))
					pg_wp_set(&sp, s, e - s, 0, 0);
				else if (mode & UFFDIO_REGISTER_MODE_WP)
					pg_wp_reapply(&sp);
				UF_ST(a->ctx, to[keep]);
				atomic_store(&a->busy, 0);
				continue;
			}
		}
		m = sys_mmap(NULL, e - s, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (m != MAP_FAILED) {
			off_t pos = (off_t)off, endoff = (off_t)(off + (e - s));
			/* (Wiped on fork: zero-filled, nothing to copy.) */
			if (atomic_load(&a->wipe))
				pos = endoff;
			for (off_t d; (d = store_next_data(fd, &pos, endoff)) >= 0;)
				if (sys_pread(fd, (char *)m + (d - (off_t)off), (size_t)(pos - d), d) < 0)
					break;
			sys_mprotect(m, e - s, prot);
			if (sys_mremap(m, e - s, e - s, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)s) == MAP_FAILED)
				sys_munmap(m, e - s);
		}
		atomic_store(&a->live, 0);
		atomic_store(&a->busy, 0);
		if (newfd[bi] >= 0)
			store_forget_ref(bi);
	}
	store_after_fork(newfd);
}