/* SPDX-License-Identifier: MIT */
/*
 * pthread_create: once the emulation runs, every new thread first gets an
 * alternate signal stack of ours (src/base/altstack.c), so that a fault on
 * its own stack (carved out of a registered range, say) still reaches our
 * handler.  Only in the shared library and the drop-in: a program linked
 * statically keeps the C library's pthread_create (its threads then take
 * faults on their own stacks).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include "base/altstack.h"
#include "emu/emu.h"
#include "interpose/real.h"

/* The top of a stack the program gives the thread, touched by the creator:
 * the C library starts the thread there (its descriptor, its TLS, the
 * first frames) before our start routine can give it a signal stack. */
#define STACK_TOP_TOUCHED ((size_t)32 * 1024)

struct start {
	void *(*fn)(void *);
	void *arg;
};

static void *start(void *p)
{
	struct start s = *(struct start *)p;

	free(p);
	altstack_thread_init();
	return s.fn(s.arg);
}

UF_EXPORT int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	struct start *s;
	int r;

	UF_REAL(pthread_create);
	if (!altstack_enabled())
		return real_pthread_create(t, attr, fn, arg);
	s = malloc(sizeof *s);
	if (!s)
		return EAGAIN;
	s->fn = fn;
	s->arg = arg;
	if (attr) {
		void *addr = NULL;
		size_t size = 0;
		if (pthread_attr_getstack(attr, &addr, &size) == 0 && addr && size) {
			size_t n = size < STACK_TOP_TOUCHED ? size : STACK_TOP_TOUCHED;
			emu_pretouch((uintptr_t)addr + size - n, n, 1);
		}
	}
	r = real_pthread_create(t, attr, start, s);
	if (r)
		free(s);
	return r;
}
