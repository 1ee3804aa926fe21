/* SPDX-License-Identifier: MIT */
/*
 * The drop-in: LD_PRELOAD=libuserfault-preload.so makes a program written
 * against the raw kernel ABI run on the back-end USERFAULT_BACKEND selects,
 * with no change to its source.  We interpose the C library's entry points
 * that reach a userfaultfd:
 *
 *   syscall(__NR_userfaultfd, flags)           -> uf_userfaultfd
 *   open/openat("/dev/userfaultfd")            -> uf_open_dev
 *   ioctl(fd, UFFDIO_* | USERFAULTFD_IOC_NEW)  -> the emulation, for its fds
 *   ioctl(fd, FIONREAD | FIOASYNC)             -> the same (a pipe differs)
 *   ioctl(pagemap_fd, PAGEMAP_SCAN)            -> the emulation, where its
 *                                                 memory is in the range
 *   read/pread of /proc/self/pagemap           -> entries of its pages made
 *                                                 the kernel's (bit 57...)
 *   read(), close(), write() on an emulated uffd
 *   read/write/pread/pwrite/readv/writev/preadv/pwritev(2), recv/recvfrom/
 *   recvmsg, send/sendto/sendmsg, fread/fwrite: missing registered pages of
 *   their buffers are touched first (see src/emu/pretouch.c)
 *   dup/dup2/dup3/fcntl(F_DUPFD), recvmsg(SCM_RIGHTS): new numbers for one
 *
 * sigaction(), signal(), the memory calls and clone() come from the library
 * itself (signals.c, memory.c and process.c beside this file).
 * With the kernel back-end only creation is routed (and then to the kernel),
 * so the program sees the real thing.
 *
 * Emulated descriptors are remembered in a bitmap by number, so that read()
 * and close() of every other descriptor cost one test of a bit.
 *
 * In a set-user-ID or set-group-ID program (AT_SECURE) the drop-in does
 * nothing: creation goes to the kernel as if we were not there, so no
 * emulated descriptor (and no memfd, pipe or thread of ours) ever exists,
 * and every other call passes straight through.  The dynamic loader already
 * refuses LD_PRELOAD paths in such programs; this covers a drop-in loaded
 * some other way (/etc/ld.so.preload, a trusted directory).
 */
#include "interpose/real.h"
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/auxv.h>
#include <sys/uio.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include "base/fdreg.h"
#include "base/record.h"
#include "base/sys.h"
#include "emu/emu.h"

#define MARKS 65536
static _Atomic unsigned char g_mark[MARKS];

static void mark(int fd, int on)
{
	if (fd >= 0 && fd < MARKS)
		atomic_store_explicit(&g_mark[fd], (unsigned char)on, memory_order_relaxed);
}

/* May fd be an emulated uffd or device?  The bit is only a hint (the
 * uf_* entry points check the identity); descriptors beyond the bitmap
 * always may be. */
static int marked(int fd)
{
	if (!emu_in_use() || fd < 0)
		return 0;
	return fd >= MARKS || atomic_load_explicit(&g_mark[fd], memory_order_relaxed);
}

/* Is fd an emulated uffd or device?  (Checked by identity.) */
static int emulated(int fd)
{
	return marked(fd) && emu_fd_kind(fd, NULL) != EMU_NONE;
}

/* A set-user-ID or set-group-ID program: stay out of its way. */
static int secure(void)
{
	return getauxval(AT_SECURE) != 0;
}

static int is_dev_path(const char *path)
{
	return path && !strcmp(path, "/dev/userfaultfd") && !secure();
}

/* (All six arguments are read, whatever the call takes, as the C library's
 * own syscall() does: the sixth from the caller's stack, which ASan would
 * take for an overflow of an instrumented caller's frame.) */
UF_EXPORT __attribute__((no_sanitize("address"))) long syscall(long nr, ...)
{
	va_list ap;
	long a[6];

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == __NR_userfaultfd && !secure()) {
		int fd = uf_userfaultfd((int)a[0]);
		mark(fd, emu_in_use() && emu_fd_kind(fd, NULL) != EMU_NONE);
		return fd;
	}
	UF_REAL(syscall);
	long r = real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	/* (A raw close or dup: the numbers' generation, as close() does.) */
	if (nr == SYS_close || nr == SYS_dup2 || nr == SYS_dup3 || nr == SYS_close_range)
		fd_numbers_changed();
	return r;
}

static int open_dev(int flags)
{
	int fd = uf_open_dev(flags);
	mark(fd, uf_get_backend() == UF_BACKEND_EMULATED && fd >= 0);
	return fd;
}

/* A pagemap file (/proc/.../pagemap) is marked PAGEMAP at its opening, so
 * that its reads can be told apart with one test. */
#define PAGEMAP 2
static int pagemap_opened(const char *path, int fd)
{
	size_t n = path ? strlen(path) : 0;

	if (fd >= 0 && n >= 8 && !strcmp(path + n - 8, "/pagemap") && !strncmp(path, "/proc/", 6))
		mark(fd, PAGEMAP);
	return fd;
}

static int pagemap_marked(int fd)
{
	return fd >= 0 && fd < MARKS && atomic_load_explicit(&g_mark[fd], memory_order_relaxed) == PAGEMAP;
}

/* open, open64, openat, openat64: /dev/userfaultfd is ours, the rest goes
 * on with the mode argument when there is one.  DIRFD_PARAM/DIRFD_ARG are
 * empty for open and open64. */
#define OPEN(name, DIRFD_PARAM, DIRFD_ARG)					\
UF_EXPORT int name(DIRFD_PARAM const char *path, int flags, ...)			\
{										\
	mode_t mode = 0;							\
										\
	if (flags & (O_CREAT | O_TMPFILE)) {					\
		va_list ap;							\
		va_start(ap, flags);						\
		mode = va_arg(ap, mode_t);					\
		va_end(ap);							\
	}									\
	if (is_dev_path(path))							\
		return open_dev(flags);						\
	UF_REAL(name);								\
	return pagemap_opened(path, real_##name(DIRFD_ARG path, flags, mode));	\
}
#define NO_DIRFD
#define COMMA_ ,
OPEN(open, NO_DIRFD, NO_DIRFD)
OPEN(open64, NO_DIRFD, NO_DIRFD)
OPEN(openat, int dirfd COMMA_, dirfd COMMA_)
OPEN(openat64, int dirfd COMMA_, dirfd COMMA_)

UF_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	unsigned long arg;
	enum emu_kind kind;
	struct ctx *c;

	va_start(ap, req);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	/* Recording (userfault stat): a recorded uffd, or a new one made by a
	 * /dev/userfaultfd of either back-end, goes through uf_ioctl, which
	 * counts. */
	if (rec_on() && (req == USERFAULTFD_IOC_NEW || rec_fd(fd))) {
		int r = uf_ioctl(fd, req, arg);
		if (req == USERFAULTFD_IOC_NEW && r >= 0)
			mark(r, emu_in_use() && emu_fd_kind(r, NULL) != EMU_NONE);
		return r;
	}
	/* Every ioctl on an emulated uffd or device goes to the emulation,
	 * which answers as the kernel's file does: the VFS's generic ones act
	 * on the pipe, the rest is the uffd's (EINVAL for what it does not
	 * know, where a pipe says ENOTTY).  UFFDIO_* on a descriptor not
	 * marked may be a uffd of another process. */
	if ((_IOC_TYPE(req) == UFFDIO || marked(fd)) &&
	    emu_in_use() && (kind = emu_fd_kind(fd, &c)) != EMU_NONE) {
		int r = emu_ioctl(fd, kind, c, req, arg);
		if (kind == EMU_DEV && r >= 0)
			mark(r, 1);
		return r;
	}
	/* PAGEMAP_SCAN of our own memory (src/emu/pagemap.c). */
	if (req == PAGEMAP_SCAN) {
		int r;
		if (emu_pagemap_scan(fd, arg, &r))
			return r;
	}
	UF_REAL(ioctl);
	return real_ioctl(fd, req, arg);
}

UF_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	if (pagemap_marked(fd)) {
		off_t off = lseek(fd, 0, SEEK_CUR);
		int done = 0;
		ssize_t r = off >= 0 ? emu_pagemap_pread(fd, buf, n, off, &done) : 0;
		if (done) {
			if (r > 0)
				lseek(fd, off + r, SEEK_SET);
			return r;
		}
		/* (a pagemap is no uffd: the plain read below) */
	} else if (marked(fd)) {
		ssize_t r = uf_read(fd, buf, n);
		/* A FORK message brings a new uffd descriptor. */
		for (ssize_t i = 0; i + (ssize_t)sizeof(struct uffd_msg) <= r; i += sizeof(struct uffd_msg)) {
			struct uffd_msg m;
			memcpy(&m, (char *)buf + i, sizeof m);
			if (m.event == UFFD_EVENT_FORK)
				mark((int)m.arg.fork.ufd, 1);
		}
		return r;
	} else if (rec_fd(fd)) {
		return uf_read(fd, buf, n);	/* a kernel uffd, recorded */
	}
	emu_pretouch((uintptr_t)buf, n, 1);
	return sys_read_cancellable(fd, buf, n);
}

UF_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	enum emu_kind kind;

	if (marked(fd) && (kind = emu_fd_kind(fd, NULL)) != EMU_NONE) {
		/* The kernel's uffd is read-only; its device has no write. */
		errno = emu_write_errno(fd, kind);
		return -1;
	}
	emu_pretouch((uintptr_t)buf, n, 0);
	UF_REAL(write);
	return real_write(fd, buf, n);
}

/*
 * The other calls that copy to or from user memory: touch the buffers'
 * missing registered pages first (emu/pretouch.c), then the C library's
 * function.  KW: 1 if the kernel writes the buffer.
 */
#define BUF_CALL(ret, name, params, buf, len, kw, args)			\
UF_EXPORT ret name params								\
{										\
	emu_pretouch((uintptr_t)(buf), (len), (kw));			\
	UF_REAL(name);								\
	return real_##name args;						\
}
#define IOV_CALL(ret, name, params, iov, cnt, kw, args)			\
UF_EXPORT ret name params								\
{										\
	emu_pretouch_iov((iov), (cnt), (kw));				\
	UF_REAL(name);								\
	return real_##name args;						\
}
/* pread of this process's pagemap: the entries of our pages are made the
 * kernel's (src/emu/pagemap.c). */
#define PREAD_CALL(name, off_type)						\
UF_EXPORT ssize_t name(int fd, void *b, size_t n, off_type o)			\
{										\
	emu_pretouch((uintptr_t)b, n, 1);					\
	if (pagemap_marked(fd)) {						\
		int done = 0;							\
		ssize_t r = emu_pagemap_pread(fd, b, n, (off_t)o, &done);	\
		if (done)							\
			return r;						\
	}									\
	UF_REAL(name);								\
	return real_##name(fd, b, n, o);					\
}
PREAD_CALL(pread, off_t)
PREAD_CALL(pread64, off64_t)
BUF_CALL(ssize_t, pwrite, (int fd, const void *b, size_t n, off_t o), b, n, 0, (fd, b, n, o))
BUF_CALL(ssize_t, pwrite64, (int fd, const void *b, size_t n, off64_t o), b, n, 0, (fd, b, n, o))
BUF_CALL(ssize_t, recv, (int fd, void *b, size_t n, int f), b, n, 1, (fd, b, n, f))
BUF_CALL(ssize_t, recvfrom, (int fd, void *b, size_t n, int f, struct sockaddr *a, socklen_t *l),
	 b, n, 1, (fd, b, n, f, a, l))
BUF_CALL(ssize_t, send, (int fd, const void *b, size_t n, int f), b, n, 0, (fd, b, n, f))
BUF_CALL(ssize_t, sendto, (int fd, const void *b, size_t n, int f, const struct sockaddr *a, socklen_t l),
	 b, n, 0, (fd, b, n, f, a, l))
#undef fread_unlocked
#undef fwrite_unlocked
BUF_CALL(size_t, fread, (void *b, size_t sz, size_t n, FILE *f), b, sz * n, 1, (b, sz, n, f))
BUF_CALL(size_t, fread_unlocked, (void *b, size_t sz, size_t n, FILE *f), b, sz * n, 1, (b, sz, n, f))
BUF_CALL(size_t, fwrite, (const void *b, size_t sz, size_t n, FILE *f), b, sz * n, 0, (b, sz, n, f))
BUF_CALL(size_t, fwrite_unlocked, (const void *b, size_t sz, size_t n, FILE *f), b, sz * n, 0, (b, sz, n, f))
IOV_CALL(ssize_t, readv, (int fd, const struct iovec *v, int c), v, c, 1, (fd, v, c))
IOV_CALL(ssize_t, writev, (int fd, const struct iovec *v, int c), v, c, 0, (fd, v, c))
IOV_CALL(ssize_t, preadv, (int fd, const struct iovec *v, int c, off_t o), v, c, 1, (fd, v, c, o))
IOV_CALL(ssize_t, preadv64, (int fd, const struct iovec *v, int c, off64_t o), v, c, 1, (fd, v, c, o))
IOV_CALL(ssize_t, pwritev, (int fd, const struct iovec *v, int c, off_t o), v, c, 0, (fd, v, c, o))
IOV_CALL(ssize_t, pwritev64, (int fd, const struct iovec *v, int c, off64_t o), v, c, 0, (fd, v, c, o))
IOV_CALL(ssize_t, preadv2, (int fd, const struct iovec *v, int c, off_t o, int f), v, c, 1, (fd, v, c, o, f))
IOV_CALL(ssize_t, pwritev2, (int fd, const struct iovec *v, int c, off_t o, int f), v, c, 0, (fd, v, c, o, f))

UF_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (msg)
		emu_pretouch_iov(msg->msg_iov, (int)msg->msg_iovlen, 0);
	UF_REAL(sendmsg);
	return real_sendmsg(fd, msg, flags);
}

UF_EXPORT int close(int fd)
{
	if (fd_ours(fd))
		return 0;	/* the emulation's own (see fds.c) */
	rec_close(fd);
	if (marked(fd)) {
		mark(fd, 0);
		return uf_close(fd);
	}
	mark(fd, 0);
	return fds_changed(sys_close_cancellable(fd));
}

static int dup_result(int oldfd, int newfd)
{
	if (newfd >= 0) {
		mark(newfd, emulated(oldfd));
		rec_dup(oldfd, newfd);
	}
	return newfd;
}

UF_EXPORT int dup(int oldfd)
{
	UF_REAL(dup);
	return dup_result(oldfd, real_dup(oldfd));
}

UF_EXPORT int dup2(int oldfd, int newfd)
{
	UF_REAL(dup2);
	/* One of our numbers moves away first (fds.c).  A uffd that dup2
	 * replaces may have been its last descriptor: the watcher sees that
	 * release. */
	if (fds_before_dup(oldfd, newfd) < 0)
		return -1;
	return dup_result(oldfd, fds_changed(real_dup2(oldfd, newfd)));
}

UF_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	UF_REAL(dup3);
	if (fds_before_dup(oldfd, newfd) < 0)
		return -1;
	return dup_result(oldfd, fds_changed(real_dup3(oldfd, newfd, flags)));
}

/* fcntl and fcntl64 (the name of fcntl under _FILE_OFFSET_BITS=64). */
#define FCNTL(name)							\
UF_EXPORT int name(int fd, int cmd, ...)					\
{									\
	va_list ap;							\
	unsigned long arg;						\
	int r;								\
									\
	va_start(ap, cmd);						\
	arg = va_arg(ap, unsigned long);				\
	va_end(ap);							\
	UF_REAL(name);							\
	r = real_##name(fd, cmd, arg);					\
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)			\
		dup_result(fd, r);					\
	return r;							\
}
FCNTL(fcntl)
FCNTL(fcntl64)

/* A descriptor that came from elsewhere: if it is an emulated uffd, ours or
 * another process's, living or gone (then it becomes usable here), mark
 * it. */
static void adopt(int fd)
{
	int known = emu_in_use() && emu_fd_kind(fd, NULL) != EMU_NONE;

	if (!known) {
		struct stat st;
		known = fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && emu_adopt(fd) == 0;
	}
	mark(fd, known);
	if (rec_on()) {
		/* A uffd of another process, recorded from now on here. */
		int b = uf_fd_backend(fd);
		if (b > 0 || known)
			rec_new(fd, known ? UF_BACKEND_EMULATED : b, -1);
	}
}

/* The descriptors inherited across exec: a uffd among them (of the old
 * image, now gone, or of another process) answers as the kernel's from
 * the start, before the program first polls it.  Only pipes cost more
 * than a look (one fcntl each: an emulated uffd's pipe is marked). */
__attribute__((constructor)) static void adopt_inherited(void)
{
	DIR *d;
	struct dirent *e;

	if (secure() || !(d = opendir("/proc/self/fd")))
		return;
	while ((e = readdir(d))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (*end || end == e->d_name || fd == dirfd(d) || fd >= MARKS)
			continue;
		struct stat st;
		if (fstat((int)fd, &st) < 0)
			continue;
		if (S_ISFIFO(st.st_mode) && fd_marked_uffd((int)fd))
			adopt((int)fd);
		else if (rec_on() && uf_fd_backend((int)fd) == UF_BACKEND_KERNEL)
			rec_new((int)fd, UF_BACKEND_KERNEL, -1);	/* (userfault stat) */
	}
	closedir(d);
}

UF_EXPORT ssize_t recvmsg(int sock, struct msghdr *msg, int flags)
{
	ssize_t r;
	struct cmsghdr *c;

	UF_REAL(recvmsg);
	if (msg)
		emu_pretouch_iov(msg->msg_iov, (int)msg->msg_iovlen, 1);
	r = real_recvmsg(sock, msg, flags);
	if (r < 0 || !msg || secure())
		return r;
	for (c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int *fds = (int *)CMSG_DATA(c);
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++)
			adopt(fds[i]);
	}
	return r;
}
