/* SPDX-License-Identifier: MIT */
/*
 * Copying to and from memory the caller gave us, which may be bad: -EFAULT
 * instead of a crash, as the kernel's copy_from_user/copy_to_user.  The
 * SIGSEGV handler calls usercopy_recover() first: it jumps back into the
 * copy that faulted, if any.  All async-signal-safe.
 */
#ifndef UF_BASE_USERCOPY_H
#define UF_BASE_USERCOPY_H

#include <stddef.h>

int usercopy_in(void *dst, const void *usrc, size_t n);
int usercopy_out(void *udst, const void *src, size_t n);
/* Returns only if no guarded copy of this thread was running. */
void usercopy_recover(void);

#endif
