/* SPDX-License-Identifier: MIT */
/*
 * munmap, mmap, mmap64, mremap, mprotect, madvise: a call that meets an
 * emulated area goes to src/emu/vmops.c (which keeps the kernel's behaviour
 * for registered memory, events included); any other goes straight to the
 * C library.  Defined in the library itself, for the whole program.  In a
 * program linked statically there is no C library function to find by
 * name (ours took its name): the system call is made directly.
 */
#include <stdarg.h>
#include <sys/mman.h>
#include "base/sys.h"
#include "emu/process.h"
#include "interpose/real.h"

static void *raw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return sys_mmap(addr, len, prot, flags, fd, off);
}

static int raw_munmap(void *addr, size_t len)
{
	return sys_munmap(addr, len);
}

static void *raw_mremap(void *old, size_t oldlen, size_t newlen, int flags, ...)
{
	void *want = NULL;
	va_list ap;

	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		want = va_arg(ap, void *);
		va_end(ap);
	}
	return sys_mremap(old, oldlen, newlen, flags, want);
}

static int raw_mprotect(void *addr, size_t len, int prot)
{
	return sys_mprotect(addr, len, prot);
}

static int raw_madvise(void *addr, size_t len, int advice)
{
	return sys_madvise(addr, len, advice);
}

UF_EXPORT UF_UNINSTRUMENTED int munmap(void *addr, size_t len)
{
	UF_REAL_OR(munmap, raw_munmap);
	if (!vm_meets(addr, len))
		return real_munmap(addr, len);
	return vm_munmap(addr, len, real_munmap);
}

UF_EXPORT UF_UNINSTRUMENTED void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	UF_REAL_OR(mmap, raw_mmap);
	if (!(flags & MAP_FIXED) || !vm_meets(addr, len))
		return real_mmap(addr, len, prot, flags, fd, off);
	return vm_mmap_fixed(addr, len, prot, flags, fd, off, real_mmap);
}

UF_EXPORT UF_UNINSTRUMENTED void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	UF_REAL_OR(mmap64, raw_mmap);
	if (!(flags & MAP_FIXED) || !vm_meets(addr, len))
		return real_mmap64(addr, len, prot, flags, fd, off);
	return vm_mmap_fixed(addr, len, prot, flags, fd, off, real_mmap64);
}

UF_EXPORT UF_UNINSTRUMENTED void *mremap(void *old, size_t oldlen, size_t newlen, int flags, ...)
{
	void *want = NULL;
	va_list ap;

	UF_REAL_OR(mremap, raw_mremap);
	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		want = va_arg(ap, void *);
		va_end(ap);
	}
	if (!vm_meets(old, oldlen) && !((flags & MREMAP_FIXED) && vm_meets(want, newlen)))
		return real_mremap(old, oldlen, newlen, flags, want);
	return vm_mremap(old, oldlen, newlen, flags, want, real_mremap);
}

UF_EXPORT UF_UNINSTRUMENTED int mprotect(void *addr, size_t len, int prot)
{
	UF_REAL_OR(mprotect, raw_mprotect);
	if (!vm_meets(addr, len))
		return real_mprotect(addr, len, prot);
	return vm_mprotect(addr, len, prot, real_mprotect);
}

UF_EXPORT UF_UNINSTRUMENTED int madvise(void *addr, size_t len, int advice)
{
	UF_REAL_OR(madvise, raw_madvise);
	if (!vm_meets(addr, len))
		return real_madvise(addr, len, advice);
	return vm_madvise(addr, len, advice, real_madvise);
}
