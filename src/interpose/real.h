/* SPDX-License-Identifier: MIT */
/* Interposing a C library function: UF_REAL(name) declares real_name, the
 * next definition of name (the C library's, or a sanitizer's interceptor),
 * looked up once; threads racing on the first lookup find the same value. */
#ifndef UF_INTERPOSE_H
#define UF_INTERPOSE_H

#include <dlfcn.h>
#include <stdatomic.h>

#define UF_REAL(name)								\
	static _Atomic(__typeof__(name) *) real_##name##_cache;			\
	__typeof__(name) *real_##name =						\
		atomic_load_explicit(&real_##name##_cache, memory_order_relaxed);\
	if (!real_##name) {							\
		real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name);	\
		atomic_store_explicit(&real_##name##_cache, real_##name,	\
				      memory_order_relaxed);			\
	}

#endif
