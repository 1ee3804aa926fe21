/* SPDX-License-Identifier: MIT */
/*
 * Decoding a memory fault from a signal context, one tiny header per
 * architecture (in the manner of GNU libsigsegv).  Each provides
 *   arch_fault_is_write(ucontext)  -> 1 for a write access, 0 for a read
 *   arch_touch_write(p)            a write access to p that changes nothing
 *   arch_clone_vm(fn, stack, ...)  a child sharing the memory, running fn
 * All are async-signal-safe.
 */
#ifndef UF_ARCH_FAULT_H
#define UF_ARCH_FAULT_H

#include <signal.h>
#include <ucontext.h>
#include "base/sys.h"

#if defined(__x86_64__)
#include "base/arch/x86_64.h"
#elif defined(__aarch64__)
#include "base/arch/aarch64.h"
#else
#error "userfault: no fault decoder for this architecture (see src/arch/)"
#endif

#endif
