/* SPDX-License-Identifier: MIT */
/*
 * cmd-stat.c - "userfault stat [--backend B] [--json FILE] [--] PROG [ARGS]":
 * run an unmodified program with the drop-in, as "run" does, with the
 * library's fault recorder on (uf_stat_*: a table in a memfd that PROG and
 * its children record into through USERFAULT_STAT_FD), and report at its
 * end what each of its userfaultfds saw.  The table outlives PROG, so a
 * program that crashes or calls _exit is reported too.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "cli.h"

static const char stat_help[] =
	"usage: " CLI_NAME " stat [--backend B] [--json FILE] [--] PROG [ARGS]\n"
	"\n"
	"Run PROG with the drop-in library, as 'run' does, and when it ends report\n"
	"on stderr what each of its userfaultfds saw: messages and events by kind,\n"
	"the calls, pages and bytes of each resolving ioctl (COPY, ZEROPAGE,\n"
	"CONTINUE, POISON, MOVE, WRITEPROTECT, WAKE), failures, and the latency\n"
	"from a fault to its resolution (p50, p90, p99, max), for each uffd and for\n"
	"the whole process.  Children that PROG forks or executes are counted too.\n"
	"PROG's own output is left alone.  PROG is looked up in PATH.\n"
	"\n"
	"  --backend B    auto, kernel or emulated: sets " CLI_BACKEND_ENV " for PROG;\n"
	"                 without it " CLI_BACKEND_ENV " is kept, or set to auto\n"
	"  --json FILE    also write the report as JSON to FILE ('-': stdout, and\n"
	"                 then no text); FILE is opened before PROG starts\n"
	"\n"
	"Latency starts at the fault itself on the emulated back-end, and when its\n"
	"message is read on the kernel back-end (the kernel's fault is not visible\n"
	"to user space).\n"
	"\n"
	"Exit status: that of PROG (128+N if signal N ended it); 127 if PROG cannot\n"
	"be executed; 1 if the drop-in or the statistics cannot be set up; 2 for a\n"
	"command-line error.\n";

enum { OPT_JSON = CLI_OPT_COMMAND };

static const char *const event_names[UF_STAT_EVENTS] = {
	"pagefault", "fork", "remap", "remove", "unmap", "other",
};
static const char *const ioctl_names[UF_STAT_IOCTLS] = {
	"copy", "zeropage", "continue", "poison", "move", "writeprotect", "wake",
};
static const char *const ioctl_upper[UF_STAT_IOCTLS] = {
	"COPY", "ZEROPAGE", "CONTINUE", "POISON", "MOVE", "WRITEPROTECT", "WAKE",
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A duration in ns, for people: "850 ns", "12.3 us", "4.56 ms", "1.20 s". */
static const char *human_ns(uint64_t ns, char *buf, size_t size)
{
	if (ns < 1000)
		snprintf(buf, size, "%llu ns", (unsigned long long)ns);
	else if (ns < 1000000)
		snprintf(buf, size, "%.1f us", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, size, "%.2f ms", (double)ns / 1e6);
	else
		snprintf(buf, size, "%.2f s", (double)ns / 1e9);
	return buf;
}

static const char *backend_text(int b)
{
	const char *name = uf_backend_name((enum uf_backend)b);
	return name ? name : "?";
}

/* ---- Text ---------------------------------------------------------------- */

static void text_record(FILE *f, const struct uf_stat *s)
{
	char a[32], b[32], c[32], d[32], e[32];
	int any = 0;

	fprintf(f, "  messages  %llu: pagefault %llu (write %llu, wp %llu, minor %llu)",
		(unsigned long long)s->messages, (unsigned long long)s->events[UF_STAT_EV_PAGEFAULT],
		(unsigned long long)s->faults_write, (unsigned long long)s->faults_wp,
		(unsigned long long)s->faults_minor);
	for (int i = UF_STAT_EV_PAGEFAULT + 1; i < UF_STAT_EVENTS; i++)
		if (s->events[i])
			fprintf(f, ", %s %llu", event_names[i], (unsigned long long)s->events[i]);
	fprintf(f, "\n  ioctls   ");
	for (int i = 0; i < UF_STAT_IOCTLS; i++) {
		if (!s->ioctls[i])
			continue;
		fprintf(f, "%s %s %llu calls, %llu pages, %llu bytes", any ? ";" : "", ioctl_upper[i],
			(unsigned long long)s->ioctls[i], (unsigned long long)s->pages[i],
			(unsigned long long)s->bytes[i]);
		any = 1;
	}
	fprintf(f, "%s\n  failures  EEXIST %llu, other %llu\n", any ? "" : " none",
		(unsigned long long)s->eexist, (unsigned long long)s->errors);
	if (!s->resolved) {
		fprintf(f, "  latency   no fault seen resolved\n");
	} else {
		fprintf(f, "  latency   %llu faults (%llu timed from the fault, %llu from the read): "
			"mean %s, p50 %s, p90 %s, p99 %s, max %s\n",
			(unsigned long long)s->resolved, (unsigned long long)s->latency_from_fault,
			(unsigned long long)(s->resolved - s->latency_from_fault),
			human_ns(s->latency_sum_ns / s->resolved, a, sizeof a),
			human_ns(uf_stat_percentile(s, 50), b, sizeof b),
			human_ns(uf_stat_percentile(s, 90), c, sizeof c),
			human_ns(uf_stat_percentile(s, 99), d, sizeof d),
			human_ns(s->latency_max_ns, e, sizeof e));
	}
	if (s->untracked)
		fprintf(f, "            %llu faults not timed (too many pending at once)\n",
			(unsigned long long)s->untracked);
}

static void text_report(FILE *f, const char *prog, int status, double secs,
			const struct uf_stat *r, int n, const struct uf_stat *total)
{
	fprintf(f, "\n== " CLI_NAME " stat: %s ", prog);
	if (WIFSIGNALED(status))
		fprintf(f, "killed by %s", cli_signal_name(WTERMSIG(status)));
	else
		fprintf(f, "exited with status %d", WEXITSTATUS(status));
	fprintf(f, " after %.3f s; %d userfaultfd%s\n", secs, n, n == 1 ? "" : "s");
	for (int i = 0; i < n; i++) {
		fprintf(f, "uffd %d: pid %d, fd %d, %s back-end, UFFDIO_API features 0x%llx, registered %llu bytes",
			i, r[i].pid, r[i].fd, backend_text(r[i].backend),
			(unsigned long long)r[i].features, (unsigned long long)r[i].registered);
		if (r[i].parent >= 0)
			fprintf(f, ", from a fork event of uffd %d", r[i].parent);
		if (i == UF_STAT_MAX - 1)
			fprintf(f, " (and every later uffd)");
		fprintf(f, "\n");
		text_record(f, &r[i]);
	}
	if (n > 1) {
		fprintf(f, "all %d userfaultfds:\n", n);
		text_record(f, total);
	}
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_record(FILE *f, const struct uf_stat *s, const char *indent)
{
	int first = 1;

	fprintf(f, "%s\"features\": %llu,\n", indent, (unsigned long long)s->features);
	fprintf(f, "%s\"registered_bytes\": %llu,\n", indent, (unsigned long long)s->registered);
	fprintf(f, "%s\"messages\": %llu,\n", indent, (unsigned long long)s->messages);
	fprintf(f, "%s\"events\": {", indent);
	for (int i = 0; i < UF_STAT_EVENTS; i++)
		fprintf(f, "%s\"%s\": %llu", i ? ", " : "", event_names[i], (unsigned long long)s->events[i]);
	fprintf(f, "},\n%s\"faults\": {\"write\": %llu, \"wp\": %llu, \"minor\": %llu},\n", indent,
		(unsigned long long)s->faults_write, (unsigned long long)s->faults_wp,
		(unsigned long long)s->faults_minor);
	fprintf(f, "%s\"ioctls\": {", indent);
	for (int i = 0; i < UF_STAT_IOCTLS; i++)
		fprintf(f, "%s\"%s\": {\"calls\": %llu, \"pages\": %llu, \"bytes\": %llu}", i ? ", " : "",
			ioctl_names[i], (unsigned long long)s->ioctls[i], (unsigned long long)s->pages[i],
			(unsigned long long)s->bytes[i]);
	fprintf(f, "},\n%s\"eexist\": %llu,\n%s\"errors\": %llu,\n", indent,
		(unsigned long long)s->eexist, indent, (unsigned long long)s->errors);
	fprintf(f, "%s\"latency\": {\"samples\": %llu, \"from_fault\": %llu, \"untracked\": %llu, "
		"\"mean_ns\": %llu, \"p50_ns\": %llu, \"p90_ns\": %llu, \"p99_ns\": %llu, \"max_ns\": %llu,\n",
		indent, (unsigned long long)s->resolved, (unsigned long long)s->latency_from_fault,
		(unsigned long long)s->untracked,
		(unsigned long long)(s->resolved ? s->latency_sum_ns / s->resolved : 0),
		(unsigned long long)uf_stat_percentile(s, 50), (unsigned long long)uf_stat_percentile(s, 90),
		(unsigned long long)uf_stat_percentile(s, 99), (unsigned long long)s->latency_max_ns);
	/* The histogram: [from_ns, to_ns, samples] for each bucket used. */
	fprintf(f, "%s  \"histogram\": [", indent);
	for (int b = 0; b < UF_STAT_BUCKETS; b++) {
		if (!s->latency[b])
			continue;
		fprintf(f, "%s[%llu, %llu, %llu]", first ? "" : ", ", (unsigned long long)uf_stat_bucket_ns(b),
			(unsigned long long)(uf_stat_bucket_ns(b + 1) - 1), (unsigned long long)s->latency[b]);
		first = 0;
	}
	fprintf(f, "]}\n");
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void json_report(FILE *f, const char *prog, int status, double secs,
			const struct uf_stat *r, int n, const struct uf_stat *total)
{
	fprintf(f, "{\n  \"program\": ");
	json_string(f, prog);
	fprintf(f, ",\n  \"exit_status\": %d,\n  \"signal\": %d,\n  \"seconds\": %.6f,\n",
		WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0, secs);
	fprintf(f, "  \"uffds\": [");
	for (int i = 0; i < n; i++) {
		fprintf(f, "%s\n    {\n      \"index\": %d,\n      \"pid\": %d,\n      \"fd\": %d,\n"
			"      \"backend\": \"%s\",\n      \"parent\": %d,\n",
			i ? "," : "", i, r[i].pid, r[i].fd, backend_text(r[i].backend), r[i].parent);
		json_record(f, &r[i], "      ");
		fprintf(f, "    }");
	}
	fprintf(f, "%s],\n  \"total\": {\n    \"uffds\": %d,\n", n ? "\n  " : "", n);
	json_record(f, total, "    ");
	fprintf(f, "  }\n}\n");
}

/* ---- The command ---------------------------------------------------------- */

/* Run argv[0] with the table fd set for it; its wait status, or -1 if it
 * could not be started. */
static int run_child(char **argv, int fd)
{
	char value[16];
	struct sigaction ign, old_int, old_quit;
	pid_t pid;
	int status;

	snprintf(value, sizeof value, "%d", fd);
	if (setenv("USERFAULT_STAT_FD", value, 1)) {
		cli_error("stat: cannot set USERFAULT_STAT_FD: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	/* As time(1): ^C and ^\ are for the program; we report after it. */
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGQUIT, &ign, &old_quit);
	pid = fork();
	if (pid < 0) {
		cli_error("stat: fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGQUIT, &old_quit, NULL);
		execvp(argv[0], argv);
		cli_error("stat: cannot execute '%s': %s", argv[0], strerror(errno));
		_exit(CLI_NOEXEC);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			cli_error("stat: waitpid: %s", strerror(errno));
			return -1;
		}
	}
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	return status;
}

int cmd_stat(int argc, char **argv, struct cli_global *global)
{
	static const struct option longopts[] = {
		CLI_LONGOPT_HELP,
		CLI_LONGOPT_BACKEND,
		{ "json", required_argument, NULL, OPT_JSON },
		CLI_LONGOPT_END,
	};
	static struct uf_stat rec[UF_STAT_MAX];
	struct uf_stat total;
	const char *json = NULL;
	FILE *jf = NULL;
	double t0, secs;
	int c, fd, n, status, r;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(stat_help, stdout);
			return CLI_OK;
		case CLI_OPT_BACKEND:
			if (cli_take_backend(optarg, global, "stat") != CLI_OK)
				return CLI_USAGE;
			break;
		case OPT_JSON:
			json = optarg;
			break;
		default:
			return cli_option_error("stat", c, argv, longopts);
		}
	}
	if (optind == argc)
		return cli_usage_error("stat", "missing the program to run");
	if (json && strcmp(json, "-") != 0 && !(jf = fopen(json, "we"))) {
		cli_error("stat: cannot write %s: %s", json, strerror(errno));
		return CLI_FAIL;
	}
	status = cli_dropin_env(global, "stat");
	if (status != CLI_OK)
		goto fail;
	if ((fd = uf_stat_create()) < 0) {
		cli_error("stat: cannot make the statistics table: %s", strerror(-fd));
		status = CLI_FAIL;
		goto fail;
	}
	t0 = now_s();
	status = run_child(argv + optind, fd);
	secs = now_s() - t0;
	if (status < 0) {
		status = CLI_FAIL;
		goto fail;
	}
	if ((r = uf_stat_attach(fd)) < 0) {
		cli_error("stat: cannot read the statistics: %s", strerror(-r));
		status = CLI_FAIL;
		goto fail;
	}
	n = uf_stat_get(rec, UF_STAT_MAX);
	memset(&total, 0, sizeof total);
	uf_stat_sum(&total, rec, n);
	if (!json || strcmp(json, "-") != 0)
		text_report(stderr, argv[optind], status, secs, rec, n, &total);
	if (json)
		json_report(jf ? jf : stdout, argv[optind], status, secs, rec, n, &total);
	if (jf && fclose(jf)) {
		jf = NULL;
		cli_error("stat: cannot write %s: %s", json, strerror(errno));
		return CLI_FAIL;
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
fail:
	if (jf)
		fclose(jf);
	return status;
}
