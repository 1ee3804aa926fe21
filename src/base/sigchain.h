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
/* From now on, every signal the program handles (now or later) is
 * delivered through a trampoline that calls hook() first, then the
 * program's handler.  hook runs in a signal handler: async-signal-safe. */
void sigchain_wrap_all(void (*hook)(void));
/* If sig is one we take part in, record the program's call (and install
 * what stands for it) and return 1, or -1 and errno; else 0: the caller
 * makes the call itself. */
int sigchain_program_set(int sig, const struct sigaction *act, struct sigaction *old);
/* sigprocmask/pthread_sigmask for the program (0, or -1 and errno): our
 * signals are never really blocked, but the program sees the mask it
 * set. */
int sigchain_sigmask(int how, const sigset_t *set, sigset_t *old);
/* The disposition the program believes sig has.  async-signal-safe */
void sigchain_program(int sig, struct sigaction *out);
/* Hand a fault that is not ours to the program's handler.  a-s-s */
void sigchain_forward(int sig, siginfo_t *si, void *uctx);

/* Call the program's handler sa for sig from one of our handlers, as the
 * kernel would deliver it, with the signal mask mask: the handler sees mask
 * (its view, through the mask calls), but our signals stay really unblocked
 * while it runs.  async-signal-safe */
void sigchain_call_masked(const struct sigaction *sa, int sig, siginfo_t *si, void *uctx,
			  const sigset_t *mask);

#endif
