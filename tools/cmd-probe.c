/* SPDX-License-Identifier: MIT */
/*
 * cmd-probe.c - "userfault probe [--json]": which back-ends work on this
 * machine, and for each one that does not, why.
 */
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char probe_help[] =
	"usage: " CLI_NAME " probe [--json] [--backend B]\n"
	"\n"
	"Show which back-ends work here.  For the kernel: the result of\n"
	"userfaultfd(0) and userfaultfd(UFFD_USER_MODE_ONLY) (or the signal that\n"
	"killed the attempt, as a seccomp filter does), of /dev/userfaultfd,\n"
	"vm.unprivileged_userfaultfd, the seccomp mode and the features the\n"
	"kernel offers.  For the emulation: whether it works (or why not), guard\n"
	"markers, vm.max_map_count and its features.  Last, what 'auto' picks and\n"
	"which back-end is in use (after --backend or USERFAULT_BACKEND).\n"
	"\n"
	"  --json    print the same as one JSON object\n"
	"\n"
	"Exit status: 0 if at least one back-end works, 1 if none does, 2 for a\n"
	"command-line error.\n";

/* ---- Feature names ----------------------------------------------------- */

#define FEATURE(x) { x, #x }
static const struct {
	uint64_t bit;
	const char *name;
} feature_names[] = {
	FEATURE(UFFD_FEATURE_PAGEFAULT_FLAG_WP),
	FEATURE(UFFD_FEATURE_EVENT_FORK),
	FEATURE(UFFD_FEATURE_EVENT_REMAP),
	FEATURE(UFFD_FEATURE_EVENT_REMOVE),
	FEATURE(UFFD_FEATURE_MISSING_HUGETLBFS),
	FEATURE(UFFD_FEATURE_MISSING_SHMEM),
	FEATURE(UFFD_FEATURE_EVENT_UNMAP),
	FEATURE(UFFD_FEATURE_SIGBUS),
	FEATURE(UFFD_FEATURE_THREAD_ID),
	FEATURE(UFFD_FEATURE_MINOR_HUGETLBFS),
	FEATURE(UFFD_FEATURE_MINOR_SHMEM),
	FEATURE(UFFD_FEATURE_EXACT_ADDRESS),
	FEATURE(UFFD_FEATURE_WP_HUGETLBFS_SHMEM),
	FEATURE(UFFD_FEATURE_WP_UNPOPULATED),
	FEATURE(UFFD_FEATURE_POISON),
	FEATURE(UFFD_FEATURE_WP_ASYNC),
	FEATURE(UFFD_FEATURE_MOVE),
};
#undef FEATURE

#define N_FEATURE_NAMES (sizeof feature_names / sizeof feature_names[0])

/* The name of feature bit b (0..63) into buf: "UFFD_FEATURE_..." or, for a
 * bit this tool does not know, "bit N". */
static const char *feature_name(unsigned b, char *buf, size_t size)
{
	for (size_t i = 0; i < N_FEATURE_NAMES; i++)
		if (feature_names[i].bit == (uint64_t)1 << b)
			return feature_names[i].name;
	snprintf(buf, size, "bit %u", b);
	return buf;
}

/* ---- Why the kernel back-end does not work ----------------------------- */

/* Has this process CAP_SYS_PTRACE (in its own user namespace)?  1, 0, or -1
 * if unknown. */
static int has_cap_sys_ptrace(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	unsigned long long caps;
	char line[256];
	int ret = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		/* NOLINTNEXTLINE(cert-err34-c): kernel-written, 64 bits at most */
		if (sscanf(line, "CapEff: %llx", &caps) == 1) {
			ret = !!(caps & (1ULL << CAP_SYS_PTRACE));
			break;
		}
	fclose(f);
	return ret;
}

/* A short explanation of an errno from userfaultfd(2). */
static const char *explain_syscall(int err, int user_mode_only,
				   const struct uf_probe *p)
{
	switch (err) {
	case 0:
		return user_mode_only ? "works (user-mode faults only)" : "works";
	case ENOSYS:
		return p->seccomp_mode == 2 ?
			"no such system call: a kernel without CONFIG_USERFAULTFD, or a seccomp filter" :
			"no such system call: the kernel is built without CONFIG_USERFAULTFD";
	case EPERM:
		/* The kernel lets these through: who else says no? */
		if (user_mode_only || p->unprivileged_sysctl == 1 ||
		    has_cap_sys_ptrace() == 1)
			return "refused by a seccomp filter or a security module";
		return p->seccomp_mode == 2 ?
			"needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1 (or a seccomp filter refuses it)" :
			"needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1";
	case EACCES:
		return "access denied by a security module";
	case EINVAL:
		return "flag refused: a kernel older than 5.11 has no UFFD_USER_MODE_ONLY";
	case EMFILE:
	case ENFILE:
		return "out of file descriptors";
	case ENOMEM:
		return "out of memory";
	default:
		return strerror(err);
	}
}

static const char *explain_dev(int err)
{
	switch (err) {
	case 0:
		return "works";
	case ENOENT:
		return "no such device node (a kernel older than 6.1, or not in this container)";
	case EACCES:
		return "no permission to open it (mode 0600, root only by default)";
	case EPERM:
		return "not permitted (a device cgroup or security module)";
	case ENODEV:
	case ENXIO:
		return "the device node exists but the kernel has no driver for it";
	case EINVAL:
		return "USERFAULTFD_IOC_NEW refused";
	default:
		return strerror(err);
	}
}

static const char *seccomp_name(int mode)
{
	switch (mode) {
	case 0:
		return "disabled";
	case 1:
		return "strict";
	case 2:
		return "filter";
	default:
		return "unknown";
	}
}

/* One sentence on why the kernel back-end is not usable, into buf. */
static const char *kernel_reason(const struct uf_probe *p, char *buf, size_t size)
{
	if (p->kernel_usable)
		return NULL;
	if (p->syscall_killed) {
		snprintf(buf, size,
			 "userfaultfd(2) kills the caller with %s (a seccomp filter); /dev/userfaultfd: %s",
			 cli_signal_name(p->syscall_killed), explain_dev(p->dev_errno));
		return buf;
	}
	snprintf(buf, size, "userfaultfd(0): %s; /dev/userfaultfd: %s",
		 p->syscall_errno ? explain_syscall(p->syscall_errno, 0, p) :
				    "works, but UFFDIO_API failed",
		 explain_dev(p->dev_errno));
	return buf;
}

/* ---- Text output ------------------------------------------------------- */

#define ROW "  %-34s "

static void print_errno_row(const char *what, int err, const char *why)
{
	if (err)
		printf(ROW "%s: %s\n", what, cli_errno_name(err), why);
	else
		printf(ROW "%s\n", what, why);
}

/* The features as a hexadecimal mask, then their names, several a line. */
static void print_features(uint64_t features)
{
	const int indent = 6, width = 78;
	int col = 0;
	char buf[32];

	printf(ROW "0x%llx%s\n", "features", (unsigned long long)features,
	       features ? "" : " (none)");
	for (unsigned b = 0; b < 64; b++) {
		const char *name;
		int len;

		if (!(features & ((uint64_t)1 << b)))
			continue;
		name = feature_name(b, buf, sizeof buf);
		len = (int)strlen(name);
		if (col && col + 1 + len > width) {
			putchar('\n');
			col = 0;
		}
		if (col == 0)
			col = printf("%*s%s", indent, "", name);
		else
			col += printf(" %s", name);
	}
	if (col)
		putchar('\n');
}

static void print_text(const struct uf_probe *p, enum uf_backend in_use)
{
	printf("kernel back-end: %s\n", p->kernel_usable ? "usable" : "not usable");
	if (p->syscall_killed) {
		printf(ROW "killed by %s (a seccomp filter kills the call)\n",
		       "userfaultfd(2)", cli_signal_name(p->syscall_killed));
	} else {
		print_errno_row("userfaultfd(0)", p->syscall_errno,
				explain_syscall(p->syscall_errno, 0, p));
		print_errno_row("userfaultfd(UFFD_USER_MODE_ONLY)",
				p->syscall_user_errno,
				explain_syscall(p->syscall_user_errno, 1, p));
	}
	print_errno_row("/dev/userfaultfd", p->dev_errno, explain_dev(p->dev_errno));
	if (p->unprivileged_sysctl < 0)
		printf(ROW "unknown\n", "vm.unprivileged_userfaultfd");
	else
		printf(ROW "%d\n", "vm.unprivileged_userfaultfd",
		       p->unprivileged_sysctl);
	if (p->seccomp_mode < 0)
		printf(ROW "unknown\n", "seccomp");
	else
		printf(ROW "%d (%s)\n", "seccomp", p->seccomp_mode,
		       seccomp_name(p->seccomp_mode));
	print_features(p->kernel_features);

	if (p->emulated_usable)
		printf("emulated back-end: usable\n");
	else if (p->emulated_errno)
		printf("emulated back-end: not usable: %s: %s\n",
		       cli_errno_name(p->emulated_errno), strerror(p->emulated_errno));
	else
		printf("emulated back-end: not usable (no reason given)\n");
	printf(ROW "%s\n", "guard markers (MADV_GUARD_INSTALL)",
	       p->guard_markers ? "yes" : "no");
	if (p->max_map_count < 0)
		printf(ROW "unknown\n", "vm.max_map_count");
	else
		printf(ROW "%ld\n", "vm.max_map_count", p->max_map_count);
	print_features(p->emulated_features);

	printf("auto picks: %s\n", uf_backend_name(p->auto_choice));
	printf("in use: %s\n", uf_backend_name(in_use));
}

/* ---- JSON output ------------------------------------------------------- */

static void json_string(const char *s)
{
	if (!s) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_key(const char *key, int first)
{
	if (!first)
		putchar(',');
	json_string(key);
	putchar(':');
}

static void json_bool(const char *key, int value)
{
	json_key(key, 0);
	fputs(value ? "true" : "false", stdout);
}

/* "PREFIX_errno": N, "PREFIX_error": "ENAME" or null (no prefix: "errno",
 * "error"). */
static void json_errno(const char *prefix, int err)
{
	char name[64];

	snprintf(name, sizeof name, "%s%serrno", prefix ? prefix : "", prefix ? "_" : "");
	json_key(name, 0);
	printf("%d", err);
	snprintf(name, sizeof name, "%s%serror", prefix ? prefix : "", prefix ? "_" : "");
	json_key(name, 0);
	json_string(err ? cli_errno_name(err) : NULL);
}

/* "features": N, "feature_names": [...] */
static void json_features(uint64_t features)
{
	char buf[32];
	int first = 1;

	json_key("features", 0);
	printf("%llu", (unsigned long long)features);
	json_key("feature_names", 0);
	putchar('[');
	for (unsigned b = 0; b < 64; b++) {
		if (!(features & ((uint64_t)1 << b)))
			continue;
		if (!first)
			putchar(',');
		json_string(feature_name(b, buf, sizeof buf));
		first = 0;
	}
	putchar(']');
}

/* An integer that the probe may not know (-1): a number or null. */
static void json_int_or_null(const char *key, long value)
{
	json_key(key, 0);
	if (value < 0)
		fputs("null", stdout);
	else
		printf("%ld", value);
}

static void print_json(const struct uf_probe *p, enum uf_backend in_use)
{
	char reason[512];

	putchar('{');
	json_key("version", 1);
	printf("\"%d.%d.%d\"", USERFAULT_VERSION_MAJOR, USERFAULT_VERSION_MINOR,
	       USERFAULT_VERSION_PATCH);

	json_key("kernel", 0);
	putchar('{');
	json_key("usable", 1);
	fputs(p->kernel_usable ? "true" : "false", stdout);
	json_key("reason", 0);
	json_string(kernel_reason(p, reason, sizeof reason));
	json_errno("syscall", p->syscall_errno);
	json_errno("syscall_user_mode_only", p->syscall_user_errno);
	json_key("syscall_killed_by", 0);
	json_string(p->syscall_killed ? cli_signal_name(p->syscall_killed) : NULL);
	json_errno("dev_userfaultfd", p->dev_errno);
	json_int_or_null("unprivileged_userfaultfd", p->unprivileged_sysctl);
	json_int_or_null("seccomp_mode", p->seccomp_mode);
	json_features(p->kernel_features);
	putchar('}');

	json_key("emulated", 0);
	putchar('{');
	json_key("usable", 1);
	fputs(p->emulated_usable ? "true" : "false", stdout);
	json_errno(NULL, p->emulated_errno);
	json_bool("guard_markers", p->guard_markers);
	json_int_or_null("max_map_count", p->max_map_count);
	json_features(p->emulated_features);
	putchar('}');

	json_key("auto", 0);
	json_string(uf_backend_name(p->auto_choice));
	json_key("in_use", 0);
	json_string(uf_backend_name(in_use));
	puts("}");
}

/* ---- The command ------------------------------------------------------- */

int cmd_probe(int argc, char **argv, struct cli_global *global)
{
	struct uf_probe probe;
	enum uf_backend in_use;
	enum { OPT_JSON = CLI_OPT_COMMAND };
	static const struct option longopts[] = {
		CLI_LONGOPT_HELP,
		CLI_LONGOPT_BACKEND,
		{ "json", no_argument, NULL, OPT_JSON },
		CLI_LONGOPT_END,
	};
	int json = 0, status, err, c;

	/* '-': in order, the other arguments returned as 1 (there are none). */
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(probe_help, stdout);
			return CLI_OK;
		case OPT_JSON:
			json = 1;
			break;
		case CLI_OPT_BACKEND:
			if (cli_take_backend(optarg, global, "probe") != CLI_OK)
				return CLI_USAGE;
			break;
		case 1:
			return cli_usage_error("probe", "unexpected argument '%s'", optarg);
		default:
			return cli_option_error("probe", c, argv, longopts);
		}
	}
	if (optind < argc)	/* after "--" */
		return cli_usage_error("probe", "unexpected argument '%s'", argv[optind]);

	status = cli_use_backend(global, "probe");
	if (status != CLI_OK)
		return status;
	memset(&probe, 0, sizeof probe);
	err = uf_probe(&probe);
	if (err < 0) {
		cli_error("probe: %s", strerror(-err));
		return CLI_FAIL;
	}
	in_use = uf_get_backend();

	if (json)
		print_json(&probe, in_use);
	else
		print_text(&probe, in_use);
	return probe.kernel_usable || probe.emulated_usable ? CLI_OK : CLI_FAIL;
}
