/* SPDX-License-Identifier: MIT */
/*
 * The emulation's own descriptors (fdreg.c): the pipes' write ends, the
 * memfds, the sockets, the watcher's epoll.  The program may close
 * descriptors it did not open (a daemon closing everything, a loop over
 * /proc/self/fd, close_range, closefrom): src/interpose/fds.c keeps ours
 * open, so their numbers never come to name one of the program's files.
 */
#ifndef UF_BASE_FDREG_H
#define UF_BASE_FDREG_H

#include <stdint.h>

/* fd is ours from now on.  async-signal-safe */
void fd_own(int fd);
/* Is fd ours?  async-signal-safe */
int fd_ours(int fd);
/* Close one of ours.  async-signal-safe */
int fd_close_own(int fd);
/* fd is no longer ours (it was relocated: the program takes the number). */
void fd_disown(int fd);

/*
 * Relocation: a program that dup2()s or dup3()s onto one of our numbers
 * (it did not open it, so it believes it free) gets the number, and our
 * file moves to another first (emu_fd_relocate): every stored copy of the
 * number is changed while nobody uses it.  Code that loads one of our
 * numbers from its table and uses it outside the locks that relocation
 * takes (the area lock, the installs, the watcher's run) pins the numbers
 * around the use; relocation waits for the pins.  Not in a signal handler.
 */
void fd_pin(void);
void fd_unpin(void);
void fd_relocation_begin(void);
void fd_relocation_end(void);
/*
 * The generation of the program's descriptor numbers: it changes after
 * every close, dup2, dup3 and close_range the library sees, and in a fork
 * child, so that a hint naming what a number was (emu.c: the uffd a thread
 * last used) is known stale by then.  async-signal-safe
 */
void fd_numbers_changed(void);
uint32_t fd_numbers_gen(void);

/* Fork child: the pins of the parent's other threads are not its own. */
void fd_reset_after_fork(void);

/* The read end of an emulated uffd's pipe carries a mark that outlives its
 * owner (an exec, an exit): a process that finds no owner to serve the
 * pipe tells a dead uffd (it answers as the kernel's uffd of a dead mm)
 * from a plain pipe (ENOTTY), and whether its UFFDIO_API was done (a dead
 * uffd answers as the kernel's: before it, read and the other ioctls say
 * EINVAL and UFFDIO_API succeeds once).  The mark is the open file's
 * F_SETSIG signal, which nothing uses unless O_ASYNC is set.
 * fd_marked_uffd: 0 no mark, 1 API done, 2 before UFFDIO_API. */
void fd_mark_uffd(int rd, int api_done);
int fd_marked_uffd(int fd);

#endif
