/* SPDX-License-Identifier: MIT */
/* The threads' alternate signal stacks of ours (see altstack.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include "base/altstack.h"
#include "base/options.h"
#include "base/sys.h"

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

#define ALTSTACK_SIZE ((size_t)256 * 1024)	/* room for a sanitizer's frames */

static __thread void *tls_stack __attribute__((tls_model("initial-exec")));
static __thread stack_t tls_prog __attribute__((tls_model("initial-exec")));	/* the program's view */
static pthread_key_t g_key;
static _Atomic int g_enabled;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* At the thread's exit: off the stack, then free it. */
static void thread_gone(void *p)
{
	stack_t off = { .ss_flags = SS_DISABLE };

	sys_call4(SYS_sigaltstack, (long)&off, 0, 0, 0);
	sys_munmap(p, ALTSTACK_SIZE);
	tls_stack = NULL;
}

static void key_init(void)
{
	pthread_key_create(&g_key, thread_gone);
}

void altstack_thread_init(void)
{
	stack_t ss, cur = { .ss_flags = SS_DISABLE };
	void *p;

	if (tls_stack)
		return;
	pthread_once(&g_once, key_init);
	p = sys_mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (p == MAP_FAILED)
		return;
	/* What the thread had is the program's, from now on its view. */
	if (sys_call4(SYS_sigaltstack, 0, (long)&cur, 0, 0) < 0 || (cur.ss_flags & SS_ONSTACK)) {
		sys_munmap(p, ALTSTACK_SIZE);
		return;		/* running on it right now: leave it */
	}
	ss.ss_sp = p;
	ss.ss_size = ALTSTACK_SIZE;
	ss.ss_flags = 0;
	if (sys_call4(SYS_sigaltstack, (long)&ss, 0, 0, 0) < 0) {
		sys_munmap(p, ALTSTACK_SIZE);
		return;
	}
	tls_prog = cur;
	tls_stack = p;
	pthread_setspecific(g_key, p);
}

/* Not instrumented: sigaltstack() asks it while a sanitizer's runtime
 * starts. */
__attribute__((no_sanitize("thread", "address", "undefined"))) int altstack_program(const stack_t *ss, stack_t *old, int *ret)
{
	stack_t now, want;

	if (!tls_stack)
		return 0;
	/* The program's struct may be anywhere: copy it first. */
	if (ss)
		want = *ss;
	now = tls_prog;
	if (ss) {
		if (want.ss_flags & ~(SS_DISABLE | SS_AUTODISARM)) {
			errno = EINVAL;
			*ret = -1;
			return 1;
		}
		if (!(want.ss_flags & SS_DISABLE) && want.ss_size < (size_t)MINSIGSTKSZ) {
			errno = ENOMEM;
			*ret = -1;
			return 1;
		}
		tls_prog = want;
	}
	if (old) {
		stack_t real = { .ss_flags = SS_DISABLE };
		/* Running on the alternate stack (ours, standing for the
		 * program's): the program is told it runs on its own. */
		if (!(now.ss_flags & SS_DISABLE) && sys_call4(SYS_sigaltstack, 0, (long)&real, 0, 0) == 0 &&
		    (real.ss_flags & SS_ONSTACK))
			now.ss_flags |= SS_ONSTACK;
		*old = now;
	}
	*ret = 0;
	return 1;
}

void altstack_enable(void)
{
	if (!opt_altstack())
		return;
	atomic_store(&g_enabled, 1);
	altstack_thread_init();
}

int altstack_enabled(void)
{
	return atomic_load_explicit(&g_enabled, memory_order_relaxed);
}

/* async-signal-safe */
SIG_SAFE int altstack_program_has(const stack_t *real)
{
	if (tls_stack)
		return !(tls_prog.ss_flags & SS_DISABLE) && tls_prog.ss_size;
	return real->ss_size && !(real->ss_flags & SS_DISABLE);
}
