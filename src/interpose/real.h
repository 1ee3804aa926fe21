/* SPDX-License-Identifier: MIT */
/*
 * Interposing a C library function (every interposer lives in this folder,
 * and the README lists them all).
 *
 * UF_EXPORT marks an interposer: it must stay visible outside the library
 * (the library is built with hidden visibility, src/libuserfault.map).
 *
 * UF_REAL(name) declares real_name, the next definition of name (the C
 * library's, or a sanitizer's interceptor), looked up once; threads racing
 * on the first lookup find the same value.  UF_REAL_OR(name, fallback) is
 * the same, with fallback where there is no next definition to find: in a
 * program linked statically, dlsym(RTLD_NEXT) finds nothing.
 */
#ifndef UF_INTERPOSE_REAL_H
#define UF_INTERPOSE_REAL_H

#include <dlfcn.h>
#include <stdatomic.h>

#define UF_EXPORT __attribute__((visibility("default")))

/* A sanitizer's runtime may call interposers through the PLT while it
 * starts, before it can run instrumented code: they are not instrumented. */
#define UF_UNINSTRUMENTED __attribute__((no_sanitize("thread", "address", "undefined")))

#define UF_REAL_OR(name, fallback)						\
	static _Atomic(__typeof__(name) *) real_##name##_cache;			\
	__typeof__(name) *real_##name =						\
		atomic_load_explicit(&real_##name##_cache, memory_order_relaxed);\
	if (!real_##name) {							\
		real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name);	\
		if (!real_##name)						\
			real_##name = (fallback);				\
		atomic_store_explicit(&real_##name##_cache, real_##name,	\
				      memory_order_relaxed);			\
	}
#define UF_REAL(name) UF_REAL_OR(name, NULL)

/* fds.c: before the program's dup2 or dup3 onto newfd (one of our numbers
 * moves away).  0, or -1 and errno. */
int fds_before_dup(int oldfd, int newfd);
/* fds.c: after a call that may have closed or replaced descriptors (the
 * numbers' generation changes, fdreg.h): r, unchanged. */
int fds_changed(int r);

#endif
