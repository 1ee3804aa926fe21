/* SPDX-License-Identifier: MIT */
/*
 * Layer 8, the public API (include/userfault.h): the front end that picks
 * the back-end and routes each entry point (backend.c), the kernel
 * back-end (kernel.c), and the in-thread pager (pager.c).  This header is
 * what the front end needs of the kernel back-end.
 */
#ifndef UF_API_API_H
#define UF_API_API_H

#include "userfault.h"

/* The real thing: -1 and errno. */
int kernel_userfaultfd(int flags);
int kernel_open_dev(int oflags);
/* Probe in a child process; fills the kernel part of *p. */
void kernel_probe(struct uf_probe *p);

#endif
