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

/* fd is ours from now on.  async-signal-safe */
void fd_own(int fd);
/* Is fd ours?  async-signal-safe */
int fd_ours(int fd);
/* Close one of ours.  async-signal-safe */
int fd_close_own(int fd);

#endif
