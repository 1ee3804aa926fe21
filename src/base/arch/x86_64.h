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

/* A child of this thread that shares its memory (flags: CLONE_VM and the
 * others asked), running fn(arg) on the stack that ends at stack_top (16
 * bytes aligned), then exiting with its result: the child's id, or -errno.
 * The raw system call, without the C library's clone(), which the drop-in
 * replaces: the child runs fn with this thread's thread pointer, so fn uses
 * plain atomics and raw system calls only.  async-signal-safe */
static inline long arch_clone_vm(int (*fn)(void *), void *stack_top, unsigned long flags, void *arg)
{
	register long r10 __asm__("r10") = 0;	/* child_tid */
	register long r8 __asm__("r8") = 0;	/* tls */
	register int (*r12)(void *) __asm__("r12") = fn;
	register void *r13 __asm__("r13") = arg;
	long ret;

	__asm__ __volatile__("syscall\n\t"
			     "test %%rax, %%rax\n\t"
			     "jnz 1f\n\t"
			     /* the child, on its own stack: fn(arg), then exit */
			     "xor %%ebp, %%ebp\n\t"
			     "mov %%r13, %%rdi\n\t"
			     "call *%%r12\n\t"
			     "mov %%eax, %%edi\n\t"
			     "mov $60, %%eax\n\t"	/* SYS_exit */
			     "syscall\n\t"
			     "hlt\n"
			     "1:"
			     : "=a"(ret)
			     : "0"(56L /* SYS_clone */), "D"(flags), "S"(stack_top), "d"(0L), "r"(r10), "r"(r8),
			       "r"(r12), "r"(r13)
			     : "rcx", "r11", "memory");
	return ret;
}

#endif
