/* SPDX-License-Identifier: MIT */
/* Reading /proc/self/maps: the mappings of a range, and what kind each is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <errno.h>
#include "base/maps.h"

static enum vma_kind kind_of(const char *perm, unsigned long ino, const char *path)
{
	static const char *const special[] = { "[vdso]", "[vvar]", "[vsyscall]", "[uprobes]" };

	while (*path == ' ')
		path++;
	if (!strcmp(path, "[stack]"))
		return VMA_STACK;
	for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
		if (!strncmp(path, special[i], strlen(special[i]) - 1))
			return VMA_OTHER;
	if (perm[3] == 'p' && ino == 0)
		return VMA_ANON;		/* incl. [heap] and [anon:name] */
	if (!strncmp(path, "/memfd:", 7) || !strncmp(path, "/dev/zero", 9) ||
	    !strncmp(path, "/SYSV", 5) || !strncmp(path, "/dev/shm/", 9))
		return VMA_SHMEM;
	return VMA_OTHER;
}

int maps_in(uintptr_t start, uintptr_t end, struct vma **out)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4096];
	struct vma *v = NULL;
	int n = 0, cap = 0;

	*out = NULL;
	if (!f)
		return -errno;
	while (fgets(line, sizeof line, f)) {
		unsigned long s, e, off, ino;
		char perm[8], dev[16], path[4096];
		struct vma x;

		path[0] = 0;
		/* NOLINTNEXTLINE(cert-err34-c): the kernel's format, in range */
		if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %4095[^\n]", &s, &e, perm, &off, dev, &ino,
			   path) < 6)
			continue;
		if (e <= start)
			continue;
		if (s >= end)
			break;
		x.start = s;
		x.end = e;
		x.prot = (perm[0] == 'r' ? PROT_READ : 0) | (perm[1] == 'w' ? PROT_WRITE : 0) |
			 (perm[2] == 'x' ? PROT_EXEC : 0);
		x.shared = perm[3] == 's';
		x.ino = ino;
		x.off = off;
		x.pagesize = 0;
		x.kind = kind_of(perm, ino, path);
		if (n == cap) {
			struct vma *nv;
			cap = cap ? 2 * cap : 16;
			nv = realloc(v, (size_t)cap * sizeof *v);
			if (!nv) {
				free(v);
				fclose(f);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n++] = x;
	}
	fclose(f);
	*out = v;
	return n;
}

int maps_flags(uintptr_t start, uintptr_t end)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[4096];
	int in = 0, flags = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof line, f)) {
		unsigned long s, e;
		/* NOLINTNEXTLINE(cert-err34-c): the kernel's format, in range */
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2) {	/* a mapping's first line */
			if (s >= end)
				break;
			in = e > start;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			flags |= strstr(line, " lo") ? MAPS_LOCKED : 0;
			flags |= strstr(line, " wf") ? MAPS_WIPE : 0;
		}
	}
	fclose(f);
	return flags;
}

int maps_page_sizes(struct vma *v, int n)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[4096];
	int cur = -1, k = 0;

	if (!f)
		return -errno;
	while (k < n && fgets(line, sizeof line, f)) {
		unsigned long s, e, kb;
		/* NOLINTNEXTLINE(cert-err34-c): the kernel's format, in range */
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2) {	/* a mapping's first line */
			cur = -1;
			while (k < n && v[k].start < s)
				k++;
			if (k < n && v[k].start == s)
				cur = k;
			continue;
		}
		if (cur < 0)
			continue;
		/* NOLINTNEXTLINE(cert-err34-c): the kernel's format, in range */
		if (sscanf(line, "KernelPageSize: %lu kB", &kb) == 1)
			v[cur].pagesize = kb << 10;
		else if (!strncmp(line, "VmFlags:", 8) && strstr(line, " ht"))
			v[cur].kind = VMA_HUGE;
	}
	fclose(f);
	for (int i = 0; i < n; i++)
		if (v[i].kind != VMA_HUGE)
			v[i].pagesize = 0;
	return 0;
}
