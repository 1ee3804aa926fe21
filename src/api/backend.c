/* SPDX-License-Identifier: MIT */
/*
 * The front end: picks the back-end, and routes each ABI entry point to the
 * back-end that owns the descriptor.  A descriptor made by the emulation is
 * recognised by its identity (device and inode); everything else goes to
 * the kernel unchanged.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include "api/api.h"
#include "base/options.h"
#include "base/record.h"
#include "base/sys.h"
#include "emu/emu.h"

static _Atomic int g_backend = -1;	/* resolved back-end, -1 until chosen */

/* The kernel where it works, else the emulation where it works; if
 * nothing works, the kernel, which will say why. */
static enum uf_backend choose(int kernel_usable, int emulated_usable)
{
	if (!kernel_usable && emulated_usable)
		return UF_BACKEND_EMULATED;
	return UF_BACKEND_KERNEL;
}

static enum uf_backend auto_choice(void)
{
	struct uf_probe p;

	memset(&p, 0, sizeof p);
	kernel_probe(&p);
	return choose(p.kernel_usable, !p.kernel_usable && emu_check(NULL) == 0);
}

enum uf_backend uf_get_backend(void)
{
	int b = atomic_load(&g_backend);
	int want;

	if (b >= 0)
		return (enum uf_backend)b;
	want = opt_backend();
	if (want == UF_BACKEND_AUTO)
		want = auto_choice();
	atomic_compare_exchange_strong(&g_backend, &b, want);
	return (enum uf_backend)atomic_load(&g_backend);
}

int uf_set_backend(enum uf_backend backend)
{
	int guard;

	switch (backend) {
	case UF_BACKEND_AUTO:
		atomic_store(&g_backend, (int)auto_choice());
		return 0;
	case UF_BACKEND_KERNEL:
		atomic_store(&g_backend, (int)backend);
		return 0;
	case UF_BACKEND_EMULATED: {
		int r = emu_check(&guard);
		if (r < 0)
			return r;
		atomic_store(&g_backend, (int)backend);
		return 0;
	}
	}
	return -EINVAL;
}

int uf_userfaultfd(int flags)
{
	enum uf_backend b = uf_get_backend();
	int fd = b == UF_BACKEND_EMULATED ? emu_userfaultfd(flags) : kernel_userfaultfd(flags);

	if (fd >= 0 && rec_on())
		rec_new(fd, (int)b, -1);
	return fd;
}

int uf_open_dev(int oflags)
{
	if (uf_get_backend() == UF_BACKEND_EMULATED)
		return emu_open_dev(oflags);
	return kernel_open_dev(oflags);
}

static int route_ioctl(int fd, unsigned long request, unsigned long arg);

int uf_ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	unsigned long arg;
	int r, e;

	va_start(ap, request);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	r = route_ioctl(fd, request, arg);
	if (rec_on()) {
		e = errno;
		if (request == USERFAULTFD_IOC_NEW && r >= 0)
			rec_new(r, emu_in_use() && emu_fd_kind(r, NULL) != EMU_NONE ? UF_BACKEND_EMULATED
										: UF_BACKEND_KERNEL, -1);
		else
			rec_ioctl(fd, request, arg, r, e);
		errno = e;
	}
	return r;
}

static int route_ioctl(int fd, unsigned long request, unsigned long arg)
{
	enum emu_kind kind;
	struct ctx *c;

	if (emu_in_use()) {
		if ((c = emu_pager_hint(fd)))
			return emu_ioctl(fd, EMU_UFFD, c, request, arg);
		if ((kind = emu_fd_kind(fd, &c)) != EMU_NONE)
			return emu_ioctl(fd, kind, c, request, arg);
	}
	int r;
	if (request == PAGEMAP_SCAN && emu_pagemap_scan(fd, arg, &r))
		return r;
	r = sys_ioctl(fd, request, arg);
	/* A pipe says ENOTTY: it may be an emulated uffd of another process,
	 * never seen here (the kernel back-end pays nothing for this). */
	if (r < 0 && errno == ENOTTY && _IOC_TYPE(request) == UFFDIO) {
		if (emu_adopt(fd) == 0)
			return emu_ioctl(fd, EMU_REMOTE, NULL, request, arg);
		errno = ENOTTY;
	}
	return r;
}

static ssize_t route_read(int fd, void *buf, size_t count);

ssize_t uf_read(int fd, void *buf, size_t count)
{
	ssize_t r = route_read(fd, buf, count);

	if (r > 0 && rec_on()) {
		int e = errno;
		rec_read(fd, buf, r);
		errno = e;
	}
	return r;
}

static ssize_t route_read(int fd, void *buf, size_t count)
{
	enum emu_kind kind;
	struct ctx *c;

	if (emu_in_use() && (kind = emu_fd_kind(fd, &c)) != EMU_NONE)
		return emu_read(fd, kind, c, buf, count);
	ssize_t r = sys_read_cancellable(fd, buf, count);
	/* A uffd never returns a part of a message: bytes of a pipe that is
	 * an emulated uffd of another process, never seen here?  (They are
	 * readiness tokens; dropping one loses nothing.)  An empty one says
	 * EAGAIN: learn it now, while its owner is there to say so.  End of
	 * file: a uffd whose owner is gone (remote_attach() tells it from a
	 * pipe by its mark). */
	if ((r > 0 && r % (ssize_t)sizeof(struct uffd_msg)) || (r < 0 && errno == EAGAIN) ||
	    (r == 0 && count > 0)) {
		int e = errno;
		if (emu_adopt(fd) == 0)
			return emu_read(fd, EMU_REMOTE, NULL, buf, count);
		errno = e;
	}
	return r;
}

int uf_close(int fd)
{
	rec_close(fd);
	if (emu_in_use())
		return emu_close(fd);
	return sys_close_cancellable(fd);
}

int uf_fd_backend(int fd)
{
	char path[64], link[64];
	ssize_t n;

	if (sys_fcntl(fd, F_GETFD, 0) < 0)
		return -EBADF;
	if (emu_in_use() && emu_fd_kind(fd, NULL) == EMU_UFFD)
		return UF_BACKEND_EMULATED;
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof link - 1);
	if (n > 0) {
		link[n] = 0;
		if (!strcmp(link, "anon_inode:[userfaultfd]"))
			return UF_BACKEND_KERNEL;
	}
	return -EINVAL;
}

static int read_long_file(const char *path, long *out)
{
	FILE *f = fopen(path, "re");
	int ok;

	if (!f)
		return -1;
	/* NOLINTNEXTLINE(cert-err34-c): a kernel-written /proc/sys number */
	ok = fscanf(f, "%ld", out) == 1;
	fclose(f);
	return ok ? 0 : -1;
}

static int seccomp_mode(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	int mode = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		/* NOLINTNEXTLINE(cert-err34-c): kernel-written, 0 to 2 */
		if (sscanf(line, "Seccomp: %d", &mode) == 1)
			break;
	fclose(f);
	return mode;
}

int uf_probe(struct uf_probe *out)
{
	long v;
	int r;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof *out);
	kernel_probe(out);
	out->unprivileged_sysctl = read_long_file("/proc/sys/vm/unprivileged_userfaultfd", &v) ? -1 : (int)v;
	out->max_map_count = read_long_file("/proc/sys/vm/max_map_count", &v) ? -1 : v;
	out->seccomp_mode = seccomp_mode();
	r = emu_check(&out->guard_markers);
	out->emulated_usable = r == 0;
	out->emulated_errno = r < 0 ? -r : 0;
	out->emulated_features = uf_emulated_features();
	out->auto_choice = choose(out->kernel_usable, out->emulated_usable);
	return 0;
}
