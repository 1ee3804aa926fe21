/* SPDX-License-Identifier: MIT */
/*
 * An alternate signal stack of ours for every thread (altstack.c), so that
 * a fault is delivered to our handler whatever the thread's own stack is:
 * a stack carved out of a registered range, or an alternate stack the
 * program put there, may be the very page that is missing.  The program's
 * sigaltstack() calls are recorded as its view; ours stays in place (the
 * program's handlers with SA_ONSTACK run on it).
 */
#ifndef UF_BASE_ALTSTACK_H
#define UF_BASE_ALTSTACK_H

#include <signal.h>

/* From now on every thread gets its stack of ours (the emulation runs);
 * the calling thread at once. */
void altstack_enable(void);
int altstack_enabled(void);
/* Give the calling thread its stack of ours (once). */
void altstack_thread_init(void);
/* Does the program believe this thread has an alternate signal stack?
 * real: the thread's alternate stack, from a signal's context.  a-s-s */
int altstack_program_has(const stack_t *real);
/* sigaltstack() for the program: 1 if handled (0 or -1 and errno in *ret),
 * 0 if this thread has no stack of ours (the caller makes the call). */
int altstack_program(const stack_t *ss, stack_t *old, int *ret);

#endif
