/* SPDX-License-Identifier: MIT */
/* Options, each also an environment variable (read once). */
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include "base/options.h"

enum uf_backend opt_backend(void)
{
	const char *v = getenv("USERFAULT_BACKEND");
	int b;

	if (!v || !*v)
		return UF_BACKEND_AUTO;
	b = uf_backend_parse(v);
	return b < 0 ? UF_BACKEND_AUTO : (enum uf_backend)b;
}

int opt_guard_markers(void)
{
	const char *v = getenv("USERFAULT_GUARD_MARKERS");
	return !(v && !strcmp(v, "0"));
}

int opt_altstack(void)
{
	const char *v = getenv("USERFAULT_ALTSTACK");

	if (v && *v)
		return strcmp(v, "0") != 0;
#if defined(__SANITIZE_ADDRESS__)
	/* Under ASan, off unless asked: ASan poisons the frames of a handler
	 * and unpoisons them only on the stacks it knows, and it asks
	 * sigaltstack (which shows the program's) to find an alternate one. */
	return 0;
#else
	return 1;
#endif
}

int opt_shared_anon(void)
{
	const char *v = getenv("USERFAULT_SHARED_ANON");

	if (v && !strcmp(v, "memfd"))
		return 2;
	if (v && !strcmp(v, "kernel"))
		return 0;
	return 1;
}

int opt_event_vfork(void)
{
	const char *v = getenv("USERFAULT_EVENT_WAIT");

	if (v && *v)
		return strcmp(v, "futex") != 0;
#if defined(__SANITIZE_THREAD__)
	/* TSan cannot follow a thread through a child that shares its memory
	 * and its thread pointer: it loses the thread's synchronisation. */
	return 0;
#else
	/* Valgrind turns a vfork into a fork: the child would wait on a copy. */
	v = getenv("LD_PRELOAD");
	return !(v && strstr(v, "vgpreload"));
#endif
}

long opt_spin_us(void)
{
	const char *v = getenv("USERFAULT_SPIN_US");
	char *end;
	long n;

	if (!v || !*v)
		return 100;
	n = strtol(v, &end, 10);
	if (*end || n < 0)
		return 100;
	return n > 10000 ? 10000 : n;
}

int uf_backend_parse(const char *name)
{
	if (!name)
		return -EINVAL;
	if (!strcmp(name, "auto"))
		return UF_BACKEND_AUTO;
	if (!strcmp(name, "kernel"))
		return UF_BACKEND_KERNEL;
	if (!strcmp(name, "emulated") || !strcmp(name, "emulation"))
		return UF_BACKEND_EMULATED;
	return -EINVAL;
}

const char *uf_backend_name(enum uf_backend b)
{
	switch (b) {
	case UF_BACKEND_AUTO: return "auto";
	case UF_BACKEND_KERNEL: return "kernel";
	case UF_BACKEND_EMULATED: return "emulated";
	}
	return NULL;
}

int opt_stat_fd(void)
{
	const char *v = getenv("USERFAULT_STAT_FD");
	char *end;
	long fd;

	if (!v || !*v)
		return -1;
	errno = 0;
	fd = strtol(v, &end, 10);
	if (errno || *end || fd < 0 || fd > 0x7fffffff)
		return -1;
	return (int)fd;
}
