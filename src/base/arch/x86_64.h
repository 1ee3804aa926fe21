/* SPDX-License-Identifier: MIT */
/* x86-64: the page-fault error code is in REG_ERR; bit 1 means "write". */
#ifndef UF_ARCH_X86_64_H
#define UF_ARCH_X86_64_H

#define UF_PF_WRITE 0x2UL

/* async-signal-safe */
SIG_SAFE static inline int arch_fault_is_write(const void *uctx)
{
	const ucontext_t *uc = (const ucontext_t *)uctx;
	return (uc->uc_mcontext.gregs[REG_ERR] & UF_PF_WRITE) != 0;
}

/* A write access that changes nothing, even with other threads writing:
 * a locked OR of 0 (a plain C atomic add of 0 may be turned into a load). */
static inline void arch_touch_write(void *p)
{
	__asm__ __volatile__("lock orb $0, %0" : "+m"(*(volatile char *)p) : : "memory");
}

#endif
