/* SPDX-License-Identifier: MIT */
/*
 * Sharing the fault signals (SIGSEGV for the emulation, SIGBUS for the
 * kernel back-end's in-thread pager) with the program (sigchain.c).  Once
 * our handler is installed for a signal, the program's sigaction() calls for
 * it (src/interpose/signals.c) are recorded instead of replacing ours, and
 * every fault that is not ours goes to the handler the program believes it
 * has.
 */
#ifndef UF_BASE_SIGCHAIN_H
#define UF_BASE_SIGCHAIN_H

#include <signal.h>

/* The C library's sigaction, whatever the program did. */
int sigchain_real_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
/* Install our handler for sig (SIGSEGV or SIGBUS) once.  0 or -errno. */
int sigchain_install(int sig, const struct sigaction *ours);
/* If sig is one we share, record the program's call instead of making it
 * (old gets what it believed before) and return 1; else 0. */
int sigchain_program_set(int sig, const struct sigaction *act, struct sigaction *old);
/* The disposition the program believes sig has.  async-signal-safe */
void sigchain_program(int sig, struct sigaction *out);
/* Hand a fault that is not ours to the program's handler.  a-s-s */
void sigchain_forward(int sig, siginfo_t *si, void *uctx);

#endif
