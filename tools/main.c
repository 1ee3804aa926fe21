/* SPDX-License-Identifier: MIT */
/*
 * main.c - the userfault command: finds the command, handles the options
 * that may come before it, prints the help.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define CLI_VERSION STR(USERFAULT_VERSION_MAJOR) "." \
		    STR(USERFAULT_VERSION_MINOR) "." \
		    STR(USERFAULT_VERSION_PATCH)

static const char usage_text[] =
	"usage: " CLI_NAME " [--backend auto|kernel|emulated] COMMAND [ARGS]\n"
	"\n"
	"userfaultfd(2) in user space: see which back-ends work here, watch one\n"
	"serve page faults, or run an unmodified program on the emulation.\n"
	"\n"
	"Commands:\n"
	"  probe [--json]          which back-ends work here, and why not\n"
	"  demo [N]                serve N pages (default 8) through a userfaultfd\n"
	"  run [--] PROG [ARGS]    run PROG with the drop-in library (LD_PRELOAD)\n"
	"  stat [--] PROG [ARGS]   run PROG so, and report what its userfaultfds saw\n"
	"  bench                   measure both back-ends side by side\n"
	"  stress                  bounce pages through faults, check every byte\n"
	"  help [COMMAND]          this help, or the help of COMMAND\n"
	"\n"
	"Options:\n"
	"  --backend B    use back-end B: auto (the default: the kernel where it\n"
	"                 works, else the emulation), kernel or emulated; before\n"
	"                 or after COMMAND.  USERFAULT_BACKEND=B does the same.\n"
	"  -h, --help     show this help ('" CLI_NAME " COMMAND --help' for one command)\n"
	"  --version      show the version\n"
	"\n"
	"Exit status: 0 success, 1 runtime error, 2 command-line error; 'run' and\n"
	"'stat' exit with the status of PROG, or 127 if PROG cannot be executed.\n";

struct command {
	const char *name;
	int (*run)(int argc, char **argv, struct cli_global *global);
};

static const struct command commands[] = {
	{ "probe", cmd_probe },
	{ "demo", cmd_demo },
	{ "run", cmd_run },
	{ "bench", cmd_bench },
	{ "stress", cmd_stress },
	{ "stat", cmd_stat },
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* "userfault help [COMMAND]" */
static int help(int argc, char **argv, struct cli_global *global)
{
	const struct command *cmd;
	char help_opt[] = "--help";
	char *cmd_argv[3];

	if (argc < 2) {
		fputs(usage_text, stdout);
		return CLI_OK;
	}
	if (argc > 2)
		return cli_usage_error(NULL, "help: too many arguments");
	if (strcmp(argv[1], "help") == 0 || cli_is_help(argv[1])) {
		fputs(usage_text, stdout);
		return CLI_OK;
	}
	cmd = find_command(argv[1]);
	if (!cmd)
		return cli_usage_error(NULL, "unknown command '%s'", argv[1]);
	cmd_argv[0] = argv[1];
	cmd_argv[1] = help_opt;
	cmd_argv[2] = NULL;
	return cmd->run(2, cmd_argv, global);
}

/* Output goes to a pipe or a file more often than not: report a failed
 * write (a full disk, a closed pipe) instead of exiting 0. */
static int finish(int status)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_error("error writing the output");
		return status == CLI_OK ? CLI_FAIL : status;
	}
	return status;
}

static int dispatch(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_LONGOPT_HELP,
		CLI_LONGOPT_BACKEND,
		{ "version", no_argument, NULL, 'V' },
		CLI_LONGOPT_END,
	};
	struct cli_global global = { 0 };
	const struct command *cmd;
	int c;

	/* Options before the command: '+' stops at the command's name, which
	 * parses its own options (after resetting getopt). */
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, "+:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage_text, stdout);
			return CLI_OK;
		case 'V':
			printf(CLI_NAME " " CLI_VERSION "\n");
			return CLI_OK;
		case CLI_OPT_BACKEND:
			if (cli_take_backend(optarg, &global, NULL) != CLI_OK)
				return CLI_USAGE;
			break;
		default:
			return cli_option_error(NULL, c, argv, longopts);
		}
	}
	if (optind >= argc)
		return cli_usage_error(NULL, "missing command");

	argc -= optind;
	argv += optind;
	if (strcmp(argv[0], "help") == 0)
		return help(argc, argv, &global);
	cmd = find_command(argv[0]);
	if (!cmd)
		return cli_usage_error(NULL, "unknown command '%s'", argv[0]);
	return cmd->run(argc, argv, &global);
}

int main(int argc, char **argv)
{
	return finish(dispatch(argc, argv));
}
