/* SPDX-License-Identifier: MIT */
/* x86-64: the page-fault error code is in REG_ERR; bit 1 means "write". */
#ifndef UF_ARCH_X86_64_H
#define UF_ARCH_X86_64_H

#define UF_PF_WRITE 0x2UL

/* async-signal-safe */
static inline int uf_fault_is_write(const void *uctx)
{
	const ucontext_t *uc = (const ucontext_t *)uctx;
	return (uc->uc_mcontext.gregs[REG_ERR] & UF_PF_WRITE) != 0;
}

#endif
