/* SPDX-License-Identifier: MIT */
/*
 * userfault/uapi.h - the Linux userfaultfd user-space ABI, as of Linux 6.18.
 *
 * Our own copy of the definitions in the kernel's <linux/userfaultfd.h>:
 * identical numbers, structure layouts and names, so that code written against
 * the kernel header compiles unchanged against this one.  The system header
 * on many distributions is older (no MOVE, POISON, WP_ASYNC...), so we do not
 * depend on it.  This header uses the kernel's include guard, so including it
 * first makes a later #include <linux/userfaultfd.h> a no-op.
 *
 * Written from the ABI facts (sizes, offsets, values) of the running kernel;
 * every layout is checked at compile time at the bottom of this file.
 */
#ifndef _LINUX_USERFAULTFD_H
#define _LINUX_USERFAULTFD_H	/* NOLINT(bugprone-reserved-identifier): the kernel header's guard */

#include <linux/types.h>
#include <linux/ioctl.h>

/* /dev/userfaultfd: USERFAULTFD_IOC_NEW creates a uffd; argument = flags. */
#define USERFAULTFD_IOC		0xAA
#define USERFAULTFD_IOC_NEW	_IO(USERFAULTFD_IOC, 0x00)

/* Flag for userfaultfd(2) besides O_CLOEXEC and O_NONBLOCK. */
#define UFFD_USER_MODE_ONLY	1

#define UFFD_API		((__u64)0xAA)
#define UFFDIO			0xAA

/* ioctl numbers (the "nr" field of each command). */
#define _UFFDIO_REGISTER	(0x00)
#define _UFFDIO_UNREGISTER	(0x01)
#define _UFFDIO_WAKE		(0x02)
#define _UFFDIO_COPY		(0x03)
#define _UFFDIO_ZEROPAGE	(0x04)
#define _UFFDIO_MOVE		(0x05)
#define _UFFDIO_WRITEPROTECT	(0x06)
#define _UFFDIO_CONTINUE	(0x07)
#define _UFFDIO_POISON		(0x08)
#define _UFFDIO_API		(0x3F)

/* Masks returned in uffdio_api.ioctls and uffdio_register.ioctls. */
#define UFFD_API_REGISTER_MODES (UFFDIO_REGISTER_MODE_MISSING |	\
				 UFFDIO_REGISTER_MODE_WP |	\
				 UFFDIO_REGISTER_MODE_MINOR)
#define UFFD_API_FEATURES (UFFD_FEATURE_PAGEFAULT_FLAG_WP |	\
			   UFFD_FEATURE_EVENT_FORK |		\
			   UFFD_FEATURE_EVENT_REMAP |		\
			   UFFD_FEATURE_EVENT_REMOVE |		\
			   UFFD_FEATURE_EVENT_UNMAP |		\
			   UFFD_FEATURE_MISSING_HUGETLBFS |	\
			   UFFD_FEATURE_MISSING_SHMEM |		\
			   UFFD_FEATURE_SIGBUS |		\
			   UFFD_FEATURE_THREAD_ID |		\
			   UFFD_FEATURE_MINOR_HUGETLBFS |	\
			   UFFD_FEATURE_MINOR_SHMEM |		\
			   UFFD_FEATURE_EXACT_ADDRESS |		\
			   UFFD_FEATURE_WP_HUGETLBFS_SHMEM |	\
			   UFFD_FEATURE_WP_UNPOPULATED |	\
			   UFFD_FEATURE_POISON |		\
			   UFFD_FEATURE_WP_ASYNC |		\
			   UFFD_FEATURE_MOVE)
#define UFFD_API_IOCTLS				\
	((__u64)1 << _UFFDIO_REGISTER |		\
	 (__u64)1 << _UFFDIO_UNREGISTER |	\
	 (__u64)1 << _UFFDIO_API)
#define UFFD_API_RANGE_IOCTLS			\
	((__u64)1 << _UFFDIO_WAKE |		\
	 (__u64)1 << _UFFDIO_COPY |		\
	 (__u64)1 << _UFFDIO_ZEROPAGE |		\
	 (__u64)1 << _UFFDIO_MOVE |		\
	 (__u64)1 << _UFFDIO_WRITEPROTECT |	\
	 (__u64)1 << _UFFDIO_CONTINUE |		\
	 (__u64)1 << _UFFDIO_POISON)
#define UFFD_API_RANGE_IOCTLS_BASIC		\
	((__u64)1 << _UFFDIO_WAKE |		\
	 (__u64)1 << _UFFDIO_COPY |		\
	 (__u64)1 << _UFFDIO_WRITEPROTECT |	\
	 (__u64)1 << _UFFDIO_CONTINUE |		\
	 (__u64)1 << _UFFDIO_POISON)

/* The commands.  UNREGISTER and WAKE carry _IOR although the kernel reads
 * their argument: a historical quirk that is part of the ABI. */
#define UFFDIO_API		_IOWR(UFFDIO, _UFFDIO_API, struct uffdio_api)
#define UFFDIO_REGISTER		_IOWR(UFFDIO, _UFFDIO_REGISTER, struct uffdio_register)
#define UFFDIO_UNREGISTER	_IOR(UFFDIO, _UFFDIO_UNREGISTER, struct uffdio_range)
#define UFFDIO_WAKE		_IOR(UFFDIO, _UFFDIO_WAKE, struct uffdio_range)
#define UFFDIO_COPY		_IOWR(UFFDIO, _UFFDIO_COPY, struct uffdio_copy)
#define UFFDIO_ZEROPAGE		_IOWR(UFFDIO, _UFFDIO_ZEROPAGE, struct uffdio_zeropage)
#define UFFDIO_MOVE		_IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#define UFFDIO_WRITEPROTECT	_IOWR(UFFDIO, _UFFDIO_WRITEPROTECT, struct uffdio_writeprotect)
#define UFFDIO_CONTINUE		_IOWR(UFFDIO, _UFFDIO_CONTINUE, struct uffdio_continue)
#define UFFDIO_POISON		_IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)

/* read(2) record: 32 bytes, packed. */
struct uffd_msg {
	__u8	event;
	__u8	reserved1;
	__u16	reserved2;
	__u32	reserved3;
	union {
		struct {
			__u64	flags;
			__u64	address;
			union {
				__u32 ptid;
			} feat;
		} pagefault;
		struct {
			__u32	ufd;
		} fork;
		struct {
			__u64	from;
			__u64	to;
			__u64	len;
		} remap;
		struct {
			__u64	start;
			__u64	end;
		} remove;
		struct {
			/* unused reserved fields */
			__u64	reserved1;
			__u64	reserved2;
			__u64	reserved3;
		} reserved;
	} arg;
} __attribute__((packed));

/* Events (start at 0x12 on purpose: 0 is never valid). */
#define UFFD_EVENT_PAGEFAULT	0x12
#define UFFD_EVENT_FORK		0x13
#define UFFD_EVENT_REMAP	0x14
#define UFFD_EVENT_REMOVE	0x15
#define UFFD_EVENT_UNMAP	0x16

/* Page-fault flags. */
#define UFFD_PAGEFAULT_FLAG_WRITE	(1<<0)
#define UFFD_PAGEFAULT_FLAG_WP		(1<<1)
#define UFFD_PAGEFAULT_FLAG_MINOR	(1<<2)

struct uffdio_api {
	__u64 api;
	/* Feature bits 0..16. */
#define UFFD_FEATURE_PAGEFAULT_FLAG_WP		(1<<0)
#define UFFD_FEATURE_EVENT_FORK			(1<<1)
#define UFFD_FEATURE_EVENT_REMAP		(1<<2)
#define UFFD_FEATURE_EVENT_REMOVE		(1<<3)
#define UFFD_FEATURE_MISSING_HUGETLBFS		(1<<4)
#define UFFD_FEATURE_MISSING_SHMEM		(1<<5)
#define UFFD_FEATURE_EVENT_UNMAP		(1<<6)
#define UFFD_FEATURE_SIGBUS			(1<<7)
#define UFFD_FEATURE_THREAD_ID			(1<<8)
#define UFFD_FEATURE_MINOR_HUGETLBFS		(1<<9)
#define UFFD_FEATURE_MINOR_SHMEM		(1<<10)
#define UFFD_FEATURE_EXACT_ADDRESS		(1<<11)
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM		(1<<12)
#define UFFD_FEATURE_WP_UNPOPULATED		(1<<13)
#define UFFD_FEATURE_POISON			(1<<14)
#define UFFD_FEATURE_WP_ASYNC			(1<<15)
#define UFFD_FEATURE_MOVE			(1<<16)
	__u64 features;
	__u64 ioctls;
};

/* Old names, still accepted by code written for 4.11-era headers. */
#define UFFD_EVENT_MADVDONTNEED		UFFD_EVENT_REMOVE
#define UFFD_FEATURE_EVENT_MADVDONTNEED	UFFD_FEATURE_EVENT_REMOVE

struct uffdio_range {
	__u64 start;
	__u64 len;
};

struct uffdio_register {
	struct uffdio_range range;
#define UFFDIO_REGISTER_MODE_MISSING	((__u64)1<<0)
#define UFFDIO_REGISTER_MODE_WP		((__u64)1<<1)
#define UFFDIO_REGISTER_MODE_MINOR	((__u64)1<<2)
	__u64 mode;
	__u64 ioctls;
};

struct uffdio_copy {
	__u64 dst;
	__u64 src;
	__u64 len;
#define UFFDIO_COPY_MODE_DONTWAKE		((__u64)1<<0)
#define UFFDIO_COPY_MODE_WP			((__u64)1<<1)
	__u64 mode;
	__s64 copy;
};

struct uffdio_zeropage {
	struct uffdio_range range;
#define UFFDIO_ZEROPAGE_MODE_DONTWAKE		((__u64)1<<0)
	__u64 mode;
	__s64 zeropage;
};

struct uffdio_writeprotect {
	struct uffdio_range range;
/* Note the order: WP is bit 0 here, DONTWAKE bit 1. */
#define UFFDIO_WRITEPROTECT_MODE_WP		((__u64)1<<0)
#define UFFDIO_WRITEPROTECT_MODE_DONTWAKE	((__u64)1<<1)
	__u64 mode;
};

struct uffdio_continue {
	struct uffdio_range range;
#define UFFDIO_CONTINUE_MODE_DONTWAKE		((__u64)1<<0)
#define UFFDIO_CONTINUE_MODE_WP			((__u64)1<<1)
	__u64 mode;
	__s64 mapped;
};

struct uffdio_poison {
	struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE		((__u64)1<<0)
	__u64 mode;
	__s64 updated;
};

struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE		((__u64)1<<0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES	((__u64)1<<1)
	__u64 mode;
	__s64 move;
};

/* ---- Compile-time checks of the ABI (sizes, offsets, numbers). ---- */
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#include <stddef.h>
#define UF_UAPI_CHECK_(c, m) _Static_assert(c, m)
#elif defined(__cplusplus) && __cplusplus >= 201103L
#include <cstddef>
#define UF_UAPI_CHECK_(c, m) static_assert(c, m)
#else
#define UF_UAPI_CHECK_(c, m)
#endif
UF_UAPI_CHECK_(sizeof(struct uffd_msg) == 32, "uffd_msg is 32 bytes");
#ifndef __cplusplus
UF_UAPI_CHECK_(_Alignof(struct uffd_msg) == 1, "uffd_msg is packed");
#endif
UF_UAPI_CHECK_(offsetof(struct uffd_msg, arg) == 8, "uffd_msg.arg at 8");
UF_UAPI_CHECK_(offsetof(struct uffd_msg, arg.pagefault.flags) == 8, "pagefault.flags at 8");
UF_UAPI_CHECK_(offsetof(struct uffd_msg, arg.pagefault.address) == 16, "pagefault.address at 16");
UF_UAPI_CHECK_(offsetof(struct uffd_msg, arg.pagefault.feat.ptid) == 24, "ptid at 24");
UF_UAPI_CHECK_(offsetof(struct uffd_msg, arg.remap.len) == 24, "remap.len at 24");
UF_UAPI_CHECK_(offsetof(struct uffd_msg, arg.remove.end) == 16, "remove.end at 16");
UF_UAPI_CHECK_(sizeof(struct uffdio_api) == 24, "uffdio_api is 24 bytes");
UF_UAPI_CHECK_(sizeof(struct uffdio_range) == 16, "uffdio_range is 16 bytes");
UF_UAPI_CHECK_(sizeof(struct uffdio_register) == 32, "uffdio_register is 32 bytes");
UF_UAPI_CHECK_(offsetof(struct uffdio_register, ioctls) == 24, "register.ioctls at 24");
UF_UAPI_CHECK_(sizeof(struct uffdio_copy) == 40, "uffdio_copy is 40 bytes");
UF_UAPI_CHECK_(offsetof(struct uffdio_copy, copy) == 32, "copy.copy at 32");
UF_UAPI_CHECK_(sizeof(struct uffdio_zeropage) == 32, "uffdio_zeropage is 32 bytes");
UF_UAPI_CHECK_(offsetof(struct uffdio_zeropage, zeropage) == 24, "zeropage at 24");
UF_UAPI_CHECK_(sizeof(struct uffdio_writeprotect) == 24, "uffdio_writeprotect is 24 bytes");
UF_UAPI_CHECK_(sizeof(struct uffdio_continue) == 32, "uffdio_continue is 32 bytes");
UF_UAPI_CHECK_(sizeof(struct uffdio_poison) == 32, "uffdio_poison is 32 bytes");
UF_UAPI_CHECK_(sizeof(struct uffdio_move) == 40, "uffdio_move is 40 bytes");
UF_UAPI_CHECK_(UFFD_API_FEATURES == 0x1ffff, "feature bits 0..16");
#if defined(__x86_64__) || defined(__aarch64__)
UF_UAPI_CHECK_(UFFDIO_REGISTER == 0xC020AA00u, "UFFDIO_REGISTER number");
UF_UAPI_CHECK_(UFFDIO_UNREGISTER == 0x8010AA01u, "UFFDIO_UNREGISTER number");
UF_UAPI_CHECK_(UFFDIO_WAKE == 0x8010AA02u, "UFFDIO_WAKE number");
UF_UAPI_CHECK_(UFFDIO_COPY == 0xC028AA03u, "UFFDIO_COPY number");
UF_UAPI_CHECK_(UFFDIO_ZEROPAGE == 0xC020AA04u, "UFFDIO_ZEROPAGE number");
UF_UAPI_CHECK_(UFFDIO_MOVE == 0xC028AA05u, "UFFDIO_MOVE number");
UF_UAPI_CHECK_(UFFDIO_WRITEPROTECT == 0xC018AA06u, "UFFDIO_WRITEPROTECT number");
UF_UAPI_CHECK_(UFFDIO_CONTINUE == 0xC020AA07u, "UFFDIO_CONTINUE number");
UF_UAPI_CHECK_(UFFDIO_POISON == 0xC020AA08u, "UFFDIO_POISON number");
UF_UAPI_CHECK_(UFFDIO_API == 0xC018AA3Fu, "UFFDIO_API number");
UF_UAPI_CHECK_(USERFAULTFD_IOC_NEW == 0xAA00u, "USERFAULTFD_IOC_NEW number");
#endif
#undef UF_UAPI_CHECK_

#endif /* _LINUX_USERFAULTFD_H */
