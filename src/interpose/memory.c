/* SPDX-License-Identifier: MIT */
/*
 * munmap, mmap, mmap64, mremap, mprotect, madvise (and fallocate): a call that meets an
 * emulated area goes to src/emu/vmops.c (which keeps the kernel's behaviour
 * for registered memory, events included); any other goes straight to the
 * C library.  Defined in the library itself, for the whole program.  In a
 * program linked statically there is no C library function to find by
 * name (ours took its name): the system call is made directly.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/mman.h>
#include "api/api.h"
#include "base/caps.h"
#include "base/options.h"
#include "base/sys.h"
#include "emu/area.h"
#include "emu/emu.h"
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

static int raw_fallocate(int fd, int mode, off_t off, off_t len)
{
	return sys_fallocate(fd, mode, off, len);
}

static int raw_mlock(const void *addr, size_t len)
{
	return (int)sys_call4(SYS_mlock, (long)addr, (long)len, 0, 0);
}

static int raw_mlock2(const void *addr, size_t len, unsigned flags)
{
	return (int)sys_call4(SYS_mlock2, (long)addr, (long)len, flags, 0);
}

static int raw_mlockall(int flags)
{
	return (int)sys_call1(SYS_mlockall, flags);
}

UF_EXPORT UF_UNINSTRUMENTED int munmap(void *addr, size_t len)
{
	UF_REAL_OR(munmap, raw_munmap);
	if (!vm_meets(addr, len))
		return real_munmap(addr, len);
	return vm_munmap(addr, len, real_munmap);
}

/* Is this an mmap of shared anonymous memory (a test that runs before a
 * sanitizer's runtime is up: its own mappings are private)? */
UF_UNINSTRUMENTED static inline int anon_shared(int flags, off_t off)
{
	int type = flags & 0x0f /* MAP_TYPE */;

	return (flags & MAP_ANONYMOUS) && (type == MAP_SHARED || type == MAP_SHARED_VALIDATE) &&
	       !(off & 4095);
}

/* Must that shared anonymous memory be a memfd of ours to be registered on
 * the emulation (src/emu/shared-anon.c)?  Only when the emulation is the
 * back-end and /proc/self/map_files is refused, unless
 * USERFAULT_SHARED_ANON says otherwise. */
static int anon_shared_wanted(void)
{
	int mode = opt_shared_anon();

	if (mode == 0 || opt_backend() == UF_BACKEND_KERNEL)
		return 0;
	if (mode == 1 && caps_map_files())
		return 0;
	return uf_get_backend() == UF_BACKEND_EMULATED;
}

UF_UNINSTRUMENTED static void *do_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off,
				       void *(*real)(void *, size_t, int, int, int, off_t))
{
	int own = -1;
	void *p;

	if (anon_shared(flags, off) && anon_shared_wanted() &&
	    (own = emu_anon_shared_fd(len, flags)) >= 0) {
		flags = (int)((unsigned)flags & ~(MAP_ANONYMOUS | MAP_HUGETLB | ((unsigned)MAP_HUGE_MASK << MAP_HUGE_SHIFT)));
		fd = own;
		off = 0;
	}
	if (!(flags & MAP_FIXED) || !vm_meets(addr, len))
		p = real(addr, len, prot, flags, fd, off);
	else
		p = vm_mmap_fixed(addr, len, prot, flags, fd, off, real);
	if (own >= 0) {
		int e = errno;
		emu_anon_shared_mapped(own, p != MAP_FAILED);
		errno = e;
	}
	return p;
}

UF_EXPORT UF_UNINSTRUMENTED void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	UF_REAL_OR(mmap, raw_mmap);
	return do_mmap(addr, len, prot, flags, fd, off, real_mmap);
}

UF_EXPORT UF_UNINSTRUMENTED void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	UF_REAL_OR(mmap64, raw_mmap);
	return do_mmap(addr, len, prot, flags, fd, off, real_mmap64);
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
	/* Populating faults the pages in, as the kernel's does, through the
	 * uffd (a write fault for POPULATE_WRITE); then the pages are there. */
	if (advice == MADV_POPULATE_READ || advice == MADV_POPULATE_WRITE)
		emu_pretouch((uintptr_t)addr, len, advice == MADV_POPULATE_WRITE);
	return vm_madvise(addr, len, advice, real_madvise);
}

/*
 * fallocate(FALLOC_FL_PUNCH_HOLE) on a shared memory file with registered
 * mappings: the pages it takes out of the file are missing again there, as
 * for the kernel (no event).  Any other call goes straight through.
 */
/* After the C library's fallocate returned r. */
UF_UNINSTRUMENTED static int punched(int r, int fd, int mode, off_t off, off_t len)
{
	if (r == 0 && (mode & FALLOC_FL_PUNCH_HOLE) && area_any())
		vm_punched(fd, off, len);
	return r;
}

UF_EXPORT UF_UNINSTRUMENTED int fallocate(int fd, int mode, off_t off, off_t len)
{
	UF_REAL_OR(fallocate, raw_fallocate);
	return punched(real_fallocate(fd, mode, off, len), fd, mode, off, len);
}

UF_EXPORT UF_UNINSTRUMENTED int fallocate64(int fd, int mode, off_t off, off_t len)
{
	UF_REAL_OR(fallocate64, raw_fallocate);
	return punched(real_fallocate64(fd, mode, off, len), fd, mode, off, len);
}

/*
 * mlock, mlock2 and mlockall(MCL_CURRENT) populate what they lock: over a
 * registered range the kernel takes those faults through the uffd (a write
 * fault where private memory is writable) and the call succeeds once they
 * are served.  The pages are touched first, so that the faults go to the
 * uffd, then the C library's function locks present pages.  MLOCK_ONFAULT
 * and MCL_ONFAULT populate nothing.
 */
UF_EXPORT UF_UNINSTRUMENTED int mlock(const void *addr, size_t len)
{
	UF_REAL_OR(mlock, raw_mlock);
	if (vm_meets(addr, len))
		emu_pretouch((uintptr_t)addr, len, 1);
	return real_mlock(addr, len);
}

UF_EXPORT UF_UNINSTRUMENTED int mlock2(const void *addr, size_t len, unsigned int flags)
{
	UF_REAL_OR(mlock2, raw_mlock2);
	if (!(flags & MLOCK_ONFAULT) && vm_meets(addr, len))
		emu_pretouch((uintptr_t)addr, len, 1);
	return real_mlock2(addr, len, flags);
}

UF_EXPORT UF_UNINSTRUMENTED int mlockall(int flags)
{
	UF_REAL_OR(mlockall, raw_mlockall);
	if ((flags & MCL_CURRENT) && !(flags & MCL_ONFAULT) && area_any())
		emu_pretouch_all(1);
	return real_mlockall(flags);
}
