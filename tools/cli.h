/* SPDX-License-Identifier: MIT */
/*
 * cli.h - what the files of the userfault command line tool share.
 *
 * main.c finds the command and handles the options that may come before it;
 * each cmd-*.c implements one command; cli.c has the helpers below.
 * Nothing here runs in a signal handler.
 */
#ifndef USERFAULT_CLI_H
#define USERFAULT_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <userfault.h>

#define CLI_NAME "userfault"

/* Exit statuses. */
enum {
	CLI_OK = 0,		/* success */
	CLI_FAIL = 1,		/* runtime error */
	CLI_USAGE = 2,		/* bad command line */
	CLI_NOEXEC = 127,	/* run: the program could not be executed */
};

/* Options that may come before or after the command name. */
struct cli_global {
	const char *backend;	/* --backend value (already validated), or NULL */
};

/* The commands: argv[0] is the command's name, its arguments follow; global
 * holds what came before the name.  Each returns the exit status. */
int cmd_probe(int argc, char **argv, struct cli_global *global);
int cmd_demo(int argc, char **argv, struct cli_global *global);
int cmd_run(int argc, char **argv, struct cli_global *global);
int cmd_bench(int argc, char **argv, struct cli_global *global);
int cmd_stress(int argc, char **argv, struct cli_global *global);
int cmd_stat(int argc, char **argv, struct cli_global *global);

/* ---- The drop-in (cmd-run.c) ------------------------------------------- */

/* Set the environment for a program to run with the drop-in: LD_PRELOAD
 * (USERFAULT_PRELOAD, else the drop-in next to this executable, else the
 * installed one) and CLI_BACKEND_ENV (global->backend, else the one set,
 * checked, else auto).  CLI_OK, or an exit status after printing why; cmd
 * names the command for messages. */
int cli_dropin_env(const struct cli_global *global, const char *cmd);

/* ---- Messages (cli.c) -------------------------------------------------- */

/* "userfault: <message>\n" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Report a command-line error about command cmd (NULL: none) and return
 * CLI_USAGE:  "userfault: <message> (try 'userfault [cmd] --help')". */
int cli_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "EPERM", "ENOSYS"...; "E?" for a number we do not know. */
const char *cli_errno_name(int err);

/* "SIGSYS", "SIGKILL"...; "SIG?" for a number we do not know. */
const char *cli_signal_name(int sig);

/* ---- Options (cli.c) --------------------------------------------------- */

/* Every command parses its options with getopt_long().  Long options that
 * have no short form take values from CLI_OPT_BACKEND up, above any char. */
enum {
	CLI_OPT_BACKEND = 0x100,	/* --backend B, before or after the command */
	CLI_OPT_COMMAND,		/* a command's own long options start here */
};

#define CLI_LONGOPT_HELP	{ "help", no_argument, NULL, 'h' }
#define CLI_LONGOPT_BACKEND	{ "backend", required_argument, NULL, CLI_OPT_BACKEND }
#define CLI_LONGOPT_END		{ NULL, 0, NULL, 0 }

/* Make the next getopt_long() start over at argv[1] and print nothing:
 * optind = 0 (not 1) so that glibc reads the optstring's '+' or '-' again,
 * and opterr = 0 so that every error comes out in our format. */
void cli_getopt_reset(void);

/* The --backend value: stored in global->backend and CLI_OK if it names a
 * back-end, else CLI_USAGE after printing why.  cmd names the command for
 * the message (NULL before the command). */
int cli_take_backend(const char *value, struct cli_global *global, const char *cmd);

/* Report what getopt_long() returned for a bad option and return CLI_USAGE:
 * c is '?' (unknown option, or a value given to an option that takes none)
 * or ':' (a value missing: the optstring must start with ':', after any '+'
 * or '-').  argv and longopts are those given to getopt_long(). */
int cli_option_error(const char *cmd, int c, char **argv, const struct option *longopts);

/* The name (without "--") of the long option whose val is val, or "?". */
const char *cli_option_name(const struct option *longopts, int val);

/* Is arg "-h" or "--help"? */
int cli_is_help(const char *arg);

/* The environment variable that chooses the back-end (read by the library
 * itself, and set by "run" for the program). */
#define CLI_BACKEND_ENV "USERFAULT_BACKEND"

/* Apply global->backend with uf_set_backend() if one was given, else check
 * that CLI_BACKEND_ENV, if set, names a back-end.  Returns CLI_OK, CLI_FAIL
 * or CLI_USAGE after printing why.  cmd names the command for messages. */
int cli_use_backend(const struct cli_global *global, const char *cmd);

/* CLI_OK if CLI_BACKEND_ENV is unset, empty or a back-end's name; else
 * CLI_USAGE after printing why. */
int cli_check_backend_env(const char *cmd);

/* Parse a decimal count in [min, max]; 0 on success, -1 if invalid. */
int cli_parse_count(const char *text, long min, long max, long *out);

#endif /* USERFAULT_CLI_H */
