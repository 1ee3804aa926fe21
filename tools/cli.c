/* SPDX-License-Identifier: MIT */
/*
 * cli.c - helpers shared by the commands of the userfault tool: error
 * messages, errno and signal names, option parsing (around getopt_long).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs(CLI_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs(CLI_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cmd)
		fprintf(stderr, " (try '" CLI_NAME " %s --help')\n", cmd);
	else
		fputs(" (try '" CLI_NAME " --help')\n", stderr);
	return CLI_USAGE;
}

/* ---- Names ------------------------------------------------------------- */

struct name_of {
	int value;
	const char *name;
};

#define NAME(x) { x, #x }

/* The errors that the probe and the ABI calls can report. */
static const struct name_of errno_names[] = {
	NAME(EPERM), NAME(ENOENT), NAME(ESRCH), NAME(EINTR), NAME(EIO),
	NAME(ENXIO), NAME(E2BIG), NAME(ENOEXEC), NAME(EBADF), NAME(EAGAIN),
	NAME(ENOMEM), NAME(EACCES), NAME(EFAULT), NAME(EBUSY), NAME(EEXIST),
	NAME(ENODEV), NAME(ENOTDIR), NAME(EISDIR), NAME(EINVAL), NAME(ENFILE),
	NAME(EMFILE), NAME(ENOTTY), NAME(ETXTBSY), NAME(ENOSPC), NAME(ESPIPE),
	NAME(EROFS), NAME(ERANGE), NAME(ENAMETOOLONG), NAME(ENOSYS),
	NAME(ELOOP), NAME(EOPNOTSUPP), NAME(ETIMEDOUT),
};

static const struct name_of signal_names[] = {
	NAME(SIGHUP), NAME(SIGINT), NAME(SIGQUIT), NAME(SIGILL), NAME(SIGTRAP),
	NAME(SIGABRT), NAME(SIGBUS), NAME(SIGFPE), NAME(SIGKILL), NAME(SIGUSR1),
	NAME(SIGSEGV), NAME(SIGUSR2), NAME(SIGPIPE), NAME(SIGALRM),
	NAME(SIGTERM), NAME(SIGCHLD), NAME(SIGSYS), NAME(SIGXCPU),
};

#undef NAME

static const char *lookup(const struct name_of *table, size_t n, int value,
			  const char *unknown)
{
	for (size_t i = 0; i < n; i++)
		if (table[i].value == value)
			return table[i].name;
	return unknown;
}

const char *cli_errno_name(int err)
{
	return lookup(errno_names, sizeof errno_names / sizeof errno_names[0],
		      err, "E?");
}

const char *cli_signal_name(int sig)
{
	return lookup(signal_names, sizeof signal_names / sizeof signal_names[0],
		      sig, "SIG?");
}

/* ---- Options ----------------------------------------------------------- */

int cli_is_help(const char *arg)
{
	return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

void cli_getopt_reset(void)
{
	optind = 0;
	opterr = 0;
}

int cli_take_backend(const char *value, struct cli_global *global, const char *cmd)
{
	if (uf_backend_parse(value) < 0)
		return cli_usage_error(cmd, "invalid back-end '%s': expected auto, kernel or emulated",
				       value);
	global->backend = value;
	return CLI_OK;
}

static const struct option *find_option(const struct option *longopts, int val)
{
	for (const struct option *o = longopts; o->name; o++)
		if (o->val == val && !o->flag)
			return o;
	return NULL;
}

const char *cli_option_name(const struct option *longopts, int val)
{
	const struct option *o = find_option(longopts, val);

	return o ? o->name : "?";
}

int cli_option_error(const char *cmd, int c, char **argv, const struct option *longopts)
{
	const struct option *o = optopt ? find_option(longopts, optopt) : NULL;

	if (c == ':') {
		if (optopt == CLI_OPT_BACKEND)
			return cli_usage_error(cmd, "option '--backend' needs a value: auto, kernel or emulated");
		if (o)
			return cli_usage_error(cmd, "option '--%s' needs a value", o->name);
		return cli_usage_error(cmd, "option '-%c' needs a value", optopt);
	}
	/* '?': optopt is 0 for an unknown or ambiguous long option (the word
	 * is argv[optind - 1]), the letter of an unknown short option, or the
	 * val of a known long option given a value it does not take
	 * ("--json=x": getopt_long() never returns '?' for a known letter). */
	if (o)
		return cli_usage_error(cmd, "option '--%s' takes no value", o->name);
	if (optopt == 0) {
		const char *arg = argv[optind - 1];
		size_t len = strcspn(arg + 2, "=");
		int matches = 0;

		for (o = longopts; o->name && arg[0] == '-' && arg[1] == '-'; o++)
			matches += strncmp(o->name, arg + 2, len) == 0;
		return cli_usage_error(cmd, "%s option '%s'", matches > 1 ? "ambiguous" : "unknown", arg);
	}
	return cli_usage_error(cmd, "unknown option '-%c'", optopt);
}

int cli_check_backend_env(const char *cmd)
{
	const char *value = getenv(CLI_BACKEND_ENV);

	if (value && *value && uf_backend_parse(value) < 0)
		return cli_usage_error(cmd, CLI_BACKEND_ENV "='%s' is not a back-end: expected auto, kernel or emulated",
				       value);
	return CLI_OK;
}

int cli_use_backend(const struct cli_global *global, const char *cmd)
{
	int backend, err;

	/* The library would take an unknown value for auto, silently. */
	if (!global->backend)
		return cli_check_backend_env(cmd);
	backend = uf_backend_parse(global->backend);
	err = uf_set_backend((enum uf_backend)backend);
	if (err < 0) {
		cli_error("cannot use the %s back-end: %s", global->backend,
			  strerror(-err));
		return CLI_FAIL;
	}
	return CLI_OK;
}

int cli_parse_count(const char *text, long min, long max, long *out)
{
	char *end;
	long value;

	if (text[0] < '0' || text[0] > '9')
		return -1;	/* no sign, no blanks */
	errno = 0;
	value = strtol(text, &end, 10);
	if (errno || *end || value < min || value > max)
		return -1;
	*out = value;
	return 0;
}
