/* SPDX-License-Identifier: MIT */
/*
 * Guarded copies: a per-thread recovery point that the SIGSEGV handler
 * jumps back to when a copy of ours faults on a bad pointer.
 */
#include <errno.h>
#include <setjmp.h>
#include "base/sys.h"
#include "base/usercopy.h"

struct recover {
	sigjmp_buf jb;
	int active;
};
static __thread struct recover *tls_recover __attribute__((tls_model("initial-exec")));

/* async-signal-safe */
SIG_SAFE void usercopy_recover(void)
{
	struct recover *r = tls_recover;
	if (r && r->active) {
		r->active = 0;
		siglongjmp(r->jb, 1);
	}
}

/* The copy is out of line so that nothing of it is kept in registers across
 * the jump.  It reads and writes memory the caller gave us, which may be
 * bad on purpose: the sanitizers must let the fault happen (we recover). */
static __attribute__((noinline, no_sanitize("address", "undefined"))) void copy_bytes(volatile char *d, const volatile char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		d[i] = s[i];
}

/* async-signal-safe */
static int guarded_copy(void *dst, const void *src, size_t n)
{
	struct recover r, *saved = tls_recover;

	r.active = 1;
	tls_recover = &r;
	if (sigsetjmp(r.jb, 0)) {
		tls_recover = saved;
		return -EFAULT;
	}
	copy_bytes(dst, src, n);
	r.active = 0;
	tls_recover = saved;
	return 0;
}

/* async-signal-safe */
int usercopy_in(void *dst, const void *usrc, size_t n)
{
	return guarded_copy(dst, usrc, n);
}

/* async-signal-safe */
int usercopy_out(void *udst, const void *src, size_t n)
{
	return guarded_copy(udst, src, n);
}
