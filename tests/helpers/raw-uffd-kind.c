/* SPDX-License-Identifier: MIT */
/*
 * raw-uffd-kind: make a userfaultfd through the raw system call (as an
 * unmodified program does) and print which back-end served it: "kernel"
 * (an anonymous inode), "emulated" (the drop-in's pipe), or "error NAME",
 * followed by " preloaded" if the drop-in is mapped in the process.
 * Built without the library: only the drop-in can change its answer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <userfault/uapi.h>

static const char *preloaded(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int found = 0;

	if (!f)
		return " maps?";
	while (fgets(line, sizeof line, f))
		if (strstr(line, "libuserfault-preload"))
			found = 1;
	fclose(f);
	return found ? " preloaded" : "";
}

int main(void)
{
	struct stat st;
	long fd = syscall(__NR_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);

	if (fd < 0) {
		printf("error %s%s\n", strerrorname_np(errno), preloaded());
		return 0;
	}
	if (fstat((int)fd, &st) < 0) {
		printf("error fstat %s\n", strerrorname_np(errno));
		return 1;
	}
	printf("%s%s\n", S_ISFIFO(st.st_mode) ? "emulated" : "kernel", preloaded());
	return 0;
}
