/* SPDX-License-Identifier: MIT */
/*
 * The program's own memory calls over emulated areas.  The kernel's
 * registration lives in the mapping, and the program's munmap, mmap
 * (MAP_FIXED), mremap, mprotect and madvise act on it; an area is our
 * memfd mapping standing for private memory, so we interpose these calls
 * (as sigaction: for the whole program, shared library, static library and
 * drop-in alike) to keep the kernel's behaviour:
 *
 *   munmap, mmap(MAP_FIXED) over an area  the registration goes
 *   mremap, moved                          the data moves, the new place is
 *                                          not registered
 *   mremap, grown in place                 the tail is registered, missing
 *   mprotect                               access rights change, the
 *                                          registration stays
 *   MADV_DONTNEED / FREE                   the pages are dropped: missing
 *                                          again if registered, zero if not
 *   MADV_REMOVE                            EINVAL, as on private memory
 *
 * A call that meets no area goes straight to the C library.
 */
#include "interpose.h"
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "emu/emu.h"

#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif

/* A sanitizer's runtime may call these through the PLT while it starts,
 * before it can run instrumented code: they are not instrumented. */
#define UF_UNINSTRUMENTED __attribute__((no_sanitize("thread", "address", "undefined")))

/* Called when the emulation starts, so that a static link always takes
 * this object (its symbols are otherwise only wanted by the program, which
 * may find them first in a sanitizer's runtime). */
void uf_vmops_anchor(void)
{
}

UF_UNINSTRUMENTED static int page_ok(uintptr_t addr, size_t len)
{
	size_t ps = uf_caps.page_size ? uf_caps.page_size : 4096;
	return !(addr & (ps - 1)) && len && addr + len > addr;
}

UF_UNINSTRUMENTED static uintptr_t round_up(size_t len)
{
	size_t ps = uf_caps.page_size ? uf_caps.page_size : 4096;
	return (len + ps - 1) & ~(ps - 1);
}

UF_UNINSTRUMENTED static int meets(const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;
	return atomic_load(&uf_areas_hw) && page_ok(a, len) && uf_areas_meet(a, a + round_up(len));
}

UF_UNINSTRUMENTED int munmap(void *addr, size_t len)
{
	UF_REAL(munmap);
	if (meets(addr, len)) {
		uintptr_t a = (uintptr_t)addr;
		pthread_mutex_lock(&uf_lock);
		uf_areas_forget_locked(a, a + round_up(len));
		pthread_mutex_unlock(&uf_lock);
	}
	return real_munmap(addr, len);
}

UF_UNINSTRUMENTED static void *map_fixed(void *addr, size_t len, int flags)
{
	if ((flags & MAP_FIXED) && meets(addr, len)) {
		uintptr_t a = (uintptr_t)addr;
		pthread_mutex_lock(&uf_lock);
		uf_areas_forget_locked(a, a + round_up(len));
		pthread_mutex_unlock(&uf_lock);
	}
	return addr;
}

UF_UNINSTRUMENTED void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	UF_REAL(mmap);
	map_fixed(addr, len, flags);
	return real_mmap(addr, len, prot, flags, fd, off);
}

UF_UNINSTRUMENTED void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	UF_REAL(mmap64);
	map_fixed(addr, len, flags);
	return real_mmap64(addr, len, prot, flags, fd, off);
}

UF_UNINSTRUMENTED void *mremap(void *old, size_t oldlen, size_t newlen, int flags, ...)
{
	void *want = NULL, *r;
	uintptr_t o = (uintptr_t)old;
	struct uf_area *a;
	va_list ap;

	UF_REAL(mremap);
	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		want = va_arg(ap, void *);
		va_end(ap);
	}
	if (!meets(old, oldlen) && !((flags & MREMAP_FIXED) && meets(want, newlen)))
		return real_mremap(old, oldlen, newlen, flags, want);

	pthread_mutex_lock(&uf_lock);
	oldlen = round_up(oldlen);
	newlen = round_up(newlen);
	if (flags & MREMAP_FIXED)
		uf_areas_forget_locked((uintptr_t)want, (uintptr_t)want + newlen);
	a = (flags & MREMAP_DONTUNMAP) ? NULL : uf_area_exact_locked(o, o + oldlen);
	if (a) {
		int e = uf_area_move_begin_locked(a, newlen);
		if (e < 0) {
			pthread_mutex_unlock(&uf_lock);
			errno = -e;
			return MAP_FAILED;
		}
	}
	r = real_mremap(old, oldlen, newlen, flags, want);
	if (a) {
		int e = errno;
		uf_area_move_end_locked(a, r, newlen);
		errno = e;
	} else if (r != MAP_FAILED) {
		/* Not one whole area (the kernel would have refused a range
		 * across mappings), or the old range stays: what moved is no
		 * area of ours any more. */
		uf_areas_forget_locked(o, o + oldlen);
	}
	pthread_mutex_unlock(&uf_lock);
	return r;
}

UF_UNINSTRUMENTED int mprotect(void *addr, size_t len, int prot)
{
	uintptr_t a = (uintptr_t)addr, end, at;
	struct uf_vma *v;
	int n, r = 0;

	UF_REAL(mprotect);
	if (!meets(addr, len))
		return real_mprotect(addr, len, prot);
	end = a + round_up(len);
	pthread_mutex_lock(&uf_lock);
	/* The pieces that are not areas get the call as it is; the areas keep
	 * their missing pages inaccessible. */
	n = uf_maps_in(a, end, &v);
	at = a;
	for (int i = 0; i < n && !r; i++) {
		uintptr_t s = v[i].start > a ? v[i].start : a;
		uintptr_t e = v[i].end < end ? v[i].end : end;
		if (s > at) {		/* a hole: the kernel says ENOMEM */
			errno = ENOMEM;
			r = -1;
			break;
		}
		if (!uf_areas_meet(s, e))
			r = real_mprotect((void *)s, e - s, prot);
		at = e;
	}
	if (!r && n >= 0 && at < end) {
		errno = ENOMEM;
		r = -1;
	}
	if (!r) {
		int e = uf_areas_protect_locked(a, end, prot);
		if (e < 0) {
			errno = -e;
			r = -1;
		}
	}
	free(v);
	pthread_mutex_unlock(&uf_lock);
	return r;
}

UF_UNINSTRUMENTED int madvise(void *addr, size_t len, int advice)
{
	UF_REAL(madvise);
	if (advice == MADV_REMOVE && meets(addr, len)) {
		errno = EINVAL;		/* private memory cannot have holes punched */
		return -1;
	}
	if ((advice == MADV_DONTNEED || advice == MADV_DONTNEED_LOCKED || advice == MADV_FREE) &&
	    meets(addr, len)) {
		uintptr_t a = (uintptr_t)addr;
		int r = real_madvise(addr, len, advice);
		if (r < 0)
			return r;
		pthread_mutex_lock(&uf_lock);
		r = uf_areas_discard_locked(a, a + round_up(len));
		pthread_mutex_unlock(&uf_lock);
		if (r < 0) {
			errno = -r;
			return -1;
		}
		return 0;
	}
	return real_madvise(addr, len, advice);
}
