/* SPDX-License-Identifier: MIT */
/* AArch64: the ESR is in an ESR_MAGIC record of the signal frame's
 * __reserved area; for a data abort, bit 6 (WnR) means "write". */
#ifndef UF_ARCH_AARCH64_H
#define UF_ARCH_AARCH64_H

#include <asm/sigcontext.h>

/* async-signal-safe */
SIG_SAFE static inline int arch_fault_is_write(const void *uctx)
{
	const ucontext_t *uc = (const ucontext_t *)uctx;
	const unsigned char *p = (const unsigned char *)uc->uc_mcontext.__reserved;
	const unsigned char *end = p + sizeof(uc->uc_mcontext.__reserved);
	while (p + sizeof(struct _aarch64_ctx) <= end) {
		const struct _aarch64_ctx *h = (const struct _aarch64_ctx *)p;
		if (h->magic == 0 || h->size == 0)
			break;
		if (h->magic == ESR_MAGIC) {
			unsigned long esr = ((const struct esr_context *)p)->esr;
			unsigned ec = (unsigned)(esr >> 26) & 0x3f;
			/* 0x24/0x25: data abort from a lower/same EL. */
			if (ec == 0x24 || ec == 0x25)
				return (esr & (1UL << 6)) != 0;
			return 0;
		}
		p += h->size;
	}
	return 0;
}

/* A write access that changes nothing, even with other threads writing.
 * With LSE atomics it is a single store-type access; without, the
 * exclusive load faults first, as a read. */
static inline void arch_touch_write(void *p)
{
	__atomic_fetch_or((volatile char *)p, 0, __ATOMIC_RELAXED);
}

/* A child sharing this thread's memory (see x86_64.h): not written for
 * this architecture yet, so the callers fall back (-ENOSYS). */
static inline long arch_clone_vm(int (*fn)(void *), void *stack_top, unsigned long flags, void *arg)
{
	(void)fn;
	(void)stack_top;
	(void)flags;
	(void)arg;
	return -ENOSYS;
}

#endif
