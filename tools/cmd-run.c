/* SPDX-License-Identifier: MIT */
/*
 * cmd-run.c - "userfault run [--backend B] [--] PROG [ARGS]": run an
 * unmodified program with the drop-in library preloaded, so that its raw
 * userfaultfd calls (syscall, /dev/userfaultfd, ioctl, read, poll...) run on
 * the back-end chosen here.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* The drop-in's file name (relative: next to this executable) or absolute
 * path (installed); the Makefile defines it.  USERFAULT_PRELOAD overrides
 * it, and an installed CLI moved elsewhere first looks next to itself. */
#ifndef UF_PRELOAD_NAME
#define UF_PRELOAD_NAME "libuserfault-preload.so"
#endif
#define PRELOAD_ENV "USERFAULT_PRELOAD"
#define PRELOAD_BASE "libuserfault-preload.so"

static const char run_help[] =
	"usage: " CLI_NAME " run [--backend B] [--] PROG [ARGS]\n"
	"\n"
	"Run PROG with the drop-in library (" UF_PRELOAD_NAME ") added in\n"
	"front of LD_PRELOAD, so that a program written for the kernel's\n"
	"userfaultfd runs unchanged on the chosen back-end.  PROG is looked up\n"
	"in PATH.  Options after PROG belong to PROG.\n"
	"\n"
	"  --backend B    auto, kernel or emulated: sets " CLI_BACKEND_ENV " for PROG;\n"
	"                 without it " CLI_BACKEND_ENV " is kept, or set to auto\n"
	"\n"
	"The drop-in is " PRELOAD_ENV " if set (a path), else " PRELOAD_BASE "\n"
	"next to this executable%s.\n"
	"\n"
	"Exit status: that of PROG; 127 if PROG cannot be executed, 1 if the\n"
	"drop-in library cannot be found, 2 for a command-line error.\n";

/* Copy src into buf.  0, or -1 after printing why. */
static int put_path(char *buf, size_t size, const char *src, const char *cmd)
{
	if ((size_t)snprintf(buf, size, "%s", src) >= size) {
		cli_error("%s: drop-in path too long: %s", cmd, src);
		return -1;
	}
	return 0;
}

/* The drop-in's path into buf: USERFAULT_PRELOAD; else PRELOAD_BASE next to
 * this executable, if it is there or UF_PRELOAD_NAME is relative; else
 * UF_PRELOAD_NAME.  0, or -1 after printing why. */
static int preload_path(char *buf, size_t size, const char *cmd)
{
	const char *env = getenv(PRELOAD_ENV);
	char exe[PATH_MAX];
	ssize_t n;
	char *slash;

	if (env && *env)
		return put_path(buf, size, env, cmd);
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n < 0) {
		if (UF_PRELOAD_NAME[0] == '/')
			return put_path(buf, size, UF_PRELOAD_NAME, cmd);
		cli_error("%s: cannot find this executable (/proc/self/exe): %s",
			  cmd, strerror(errno));
		return -1;
	}
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	if ((size_t)snprintf(buf, size, "%s/%s", exe, PRELOAD_BASE) >= size) {
		cli_error("%s: drop-in path too long: %s/%s", cmd, exe, PRELOAD_BASE);
		return -1;
	}
	if (UF_PRELOAD_NAME[0] == '/' && access(buf, R_OK) < 0)
		return put_path(buf, size, UF_PRELOAD_NAME, cmd);
	return 0;
}

/* Put path in front of LD_PRELOAD.  0, or -1 after printing why. */
static int prepend_preload(const char *path, const char *cmd)
{
	const char *old = getenv("LD_PRELOAD");
	char *value;
	int err;

	/* The dynamic loader splits LD_PRELOAD at spaces and colons. */
	if (strpbrk(path, " :")) {
		cli_error("%s: the drop-in path has a space or colon, which LD_PRELOAD cannot hold: %s",
			  cmd, path);
		return -1;
	}
	if (old && *old) {
		value = malloc(strlen(path) + 1 + strlen(old) + 1);
		if (!value) {
			cli_error("%s: out of memory", cmd);
			return -1;
		}
		sprintf(value, "%s:%s", path, old);
		err = setenv("LD_PRELOAD", value, 1);
		free(value);
	} else {
		err = setenv("LD_PRELOAD", path, 1);
	}
	if (err) {
		cli_error("%s: cannot set LD_PRELOAD: %s", cmd, strerror(errno));
		return -1;
	}
	return 0;
}

/* The back-end for the program: the --backend value, else what the
 * environment has (checked), else auto.  CLI_OK, or an exit status after
 * printing why. */
static int set_backend_env(const struct cli_global *global, const char *cmd)
{
	const char *value = global->backend;
	const char *env = getenv(CLI_BACKEND_ENV);

	if (!value) {
		if (cli_check_backend_env(cmd) != CLI_OK)
			return CLI_USAGE;
		if (env && *env)
			return CLI_OK;
		value = uf_backend_name(UF_BACKEND_AUTO);
	}
	if (setenv(CLI_BACKEND_ENV, value, 1)) {
		cli_error("%s: cannot set " CLI_BACKEND_ENV ": %s", cmd, strerror(errno));
		return CLI_FAIL;
	}
	return CLI_OK;
}

int cli_dropin_env(const struct cli_global *global, const char *cmd)
{
	char path[PATH_MAX];

	if (preload_path(path, sizeof path, cmd) < 0)
		return CLI_FAIL;
	if (access(path, R_OK) < 0) {
		const char *env = getenv(PRELOAD_ENV);
		cli_error("%s: drop-in library %s: %s%s", cmd, path, strerror(errno),
			  env && *env ? " (from " PRELOAD_ENV ")"
			  : UF_PRELOAD_NAME[0] == '/' ? "" : " (build it with 'make')");
		return CLI_FAIL;
	}
	if (prepend_preload(path, cmd) < 0)
		return CLI_FAIL;
	return set_backend_env(global, cmd);
}

int cmd_run(int argc, char **argv, struct cli_global *global)
{
	static const struct option longopts[] = {
		CLI_LONGOPT_HELP,
		CLI_LONGOPT_BACKEND,
		CLI_LONGOPT_END,
	};
	int i, status, c;

	/* Our options end at "--" or at PROG ('+'): PROG's own options and
	 * arguments are left alone. */
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			/* (an installed CLI also knows where the drop-in was
			 * installed) */
			printf(run_help, UF_PRELOAD_NAME[0] == '/' ? ", else " UF_PRELOAD_NAME : "");
			return CLI_OK;
		case CLI_OPT_BACKEND:
			if (cli_take_backend(optarg, global, "run") != CLI_OK)
				return CLI_USAGE;
			break;
		default:
			return cli_option_error("run", c, argv, longopts);
		}
	}
	i = optind;
	if (i == argc)
		return cli_usage_error("run", "missing the program to run");

	status = cli_dropin_env(global, "run");
	if (status != CLI_OK)
		return status;

	fflush(NULL);
	execvp(argv[i], argv + i);
	cli_error("run: cannot execute '%s': %s", argv[i], strerror(errno));
	return CLI_NOEXEC;
}
