/* SPDX-License-Identifier: MIT */
/*
 * stat: the fault recorder (uf_stat_*) and `userfault stat`, on the
 * back-end under test.
 *
 *   1. The histogram's arithmetic: buckets, percentiles, sums, on records
 *      made by hand.
 *   2. The library API: uf_stat_enable, then faults resolved by COPY and
 *      ZEROPAGE, a COPY onto a present page (EEXIST) and a bad one
 *      (EINVAL): every counter of the record, exactly.
 *   3. The CLI on the man page's example and on a multi-threaded raw-ABI
 *      program (tests/helpers/raw-threads, whose handler works on a dup()
 *      of the uffd): its JSON, exactly where the program's behaviour is
 *      fixed; a uffd inherited across exec recorded in the new image;
 *      the text on stderr; `--json -` alone on stdout; the exit
 *      status of a program that fails or is killed; a --json file that
 *      cannot be written refused before the program runs.
 */
#include "t.h"
#include <libgen.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char dir[PATH_MAX];	/* build dir: BUILD/tests/stat -> BUILD */
static char tmp[PATH_MAX];	/* our temporary folder */

static void remove_tmp(void);

/* ---- 1. arithmetic ---- */

static void arithmetic(void)
{
	static struct uf_stat s, t;
	uint64_t prev = 0;

	/* Buckets: exact below 16, then 8 per power of two, increasing. */
	for (int b = 0; b < 16; b++)
		CHECK(uf_stat_bucket_ns(b) == (uint64_t)b);
	CHECK(uf_stat_bucket_ns(16) == 16 && uf_stat_bucket_ns(17) == 18 && uf_stat_bucket_ns(24) == 32);
	for (int b = 1; b < UF_STAT_BUCKETS; b++) {
		CHECK(uf_stat_bucket_ns(b) > prev);
		prev = uf_stat_bucket_ns(b);
	}
	/* No samples: 0. */
	CHECK(uf_stat_percentile(&s, 50) == 0);
	/* 90 samples of 5 ns, 10 in the bucket of 1000 ns (992..1023). */
	s.latency[5] = 90;
	int kb = 16 + (9 - 4) * 8 + (int)((1000 >> 6) & 7);
	CHECK(uf_stat_bucket_ns(kb) <= 1000 && uf_stat_bucket_ns(kb + 1) > 1000);
	s.latency[kb] = 10;
	s.latency_max_ns = 1000;
	s.resolved = 100;
	CHECK(uf_stat_percentile(&s, 50) == 5);
	CHECK(uf_stat_percentile(&s, 90) == 5);
	CHECK(uf_stat_percentile(&s, 91) == 1000);	/* (the top of its bucket, capped by max) */
	CHECK(uf_stat_percentile(&s, 100) == 1000);
	CHECK(uf_stat_percentile(&s, 0) == 0);
	/* Sums: counters add, maxima are kept. */
	s.messages = 3;
	s.ioctls[UF_STAT_COPY] = 2;
	s.latency_max_ns = 1000;
	memset(&t, 0, sizeof t);
	uf_stat_sum(&t, &s, 1);
	uf_stat_sum(&t, &s, 1);
	CHECK(t.messages == 6 && t.ioctls[UF_STAT_COPY] == 4 && t.resolved == 200);
	CHECK(t.latency[5] == 180 && t.latency_max_ns == 1000);
}

/* ---- 2. the library API ---- */

static void *reader(void *arg)
{
	volatile char *q = arg;

	return (void *)(intptr_t)q[0];
}

static void check_api(void)
{
	enum { PAGES = 8 };
	struct uf_stat r[2];
	struct uffd_msg m;
	char *src = malloc((size_t)t_ps);
	int fd, n;

	T_REQUIRE(src);
	memset(src, 'x', (size_t)t_ps);
	CHECK(uf_stat_get(r, 2) == 0);	/* nothing recorded before */
	CHECK(uf_stat_enable() == 0);
	CHECK(uf_stat_enable() == 0);	/* (twice: still one table) */
	fd = t_uffd(0);
	char *p = t_map_reg(fd, PAGES);

	/* A reader thread per page: its fault, read and resolved here. */
	for (int i = 0; i < PAGES; i++) {
		volatile char *q = p + (size_t)i * (size_t)t_ps;
		pthread_t th = t_thread(reader, (void *)q);
		T_REQUIRE(t_read_msg(fd, &m, 5000) == 1);
		CHECK(m.event == UFFD_EVENT_PAGEFAULT);
		CHECK(m.arg.pagefault.address == (uintptr_t)q);
		if (i < 6)
			CHECK(t_copy(fd, (void *)q, src, (size_t)t_ps, 0, NULL) == 0);
		else
			CHECK(t_zeropage(fd, (void *)q, (size_t)t_ps, 0, NULL) == 0);
		t_join(th);
	}
	/* EEXIST, and a bad call (an unaligned length: EINVAL). */
	struct uffdio_copy c = { .dst = (uintptr_t)p, .src = (uintptr_t)src, .len = (uint64_t)t_ps };
	CHECK(uf_ioctl(fd, UFFDIO_COPY, &c) == -1 && errno == EEXIST);
	c.len = 100;
	c.copy = t_ps;	/* (left there by a call refused at once: not counted) */
	CHECK(uf_ioctl(fd, UFFDIO_COPY, &c) == -1 && errno == EINVAL);

	n = uf_stat_get(r, 2);
	CHECK(n == 1);
	if (n >= 1) {
		CHECK(r[0].pid == getpid());
		CHECK(r[0].fd == fd);
		CHECK(r[0].backend == (int)t_backend());
		CHECK(r[0].parent == -1);
		CHECK(r[0].features != 0);
		CHECK(r[0].registered == (uint64_t)PAGES * (uint64_t)t_ps);
		CHECK(r[0].messages == PAGES);
		CHECK(r[0].events[UF_STAT_EV_PAGEFAULT] == PAGES);
		CHECK(r[0].faults_write == 0 && r[0].faults_wp == 0 && r[0].faults_minor == 0);
		CHECK(r[0].ioctls[UF_STAT_COPY] == 6);
		CHECK(r[0].pages[UF_STAT_COPY] == 6);
		CHECK(r[0].bytes[UF_STAT_COPY] == 6 * (uint64_t)t_ps);
		CHECK(r[0].ioctls[UF_STAT_ZEROPAGE] == 2);
		CHECK(r[0].pages[UF_STAT_ZEROPAGE] == 2);
		CHECK(r[0].ioctls[UF_STAT_WAKE] == 0 && r[0].ioctls[UF_STAT_MOVE] == 0);
		CHECK_EQ(r[0].eexist, 1);
		CHECK_EQ(r[0].errors, 1);
		CHECK(r[0].resolved == PAGES);
		CHECK(r[0].untracked == 0);
		/* The emulation times each fault from the fault itself. */
		CHECK(r[0].latency_from_fault == (t_emulated() ? PAGES : 0));
		uint64_t samples = 0;
		for (int b = 0; b < UF_STAT_BUCKETS; b++)
			samples += r[0].latency[b];
		CHECK(samples == PAGES);
		CHECK(r[0].latency_max_ns > 0 && r[0].latency_sum_ns >= r[0].latency_max_ns);
		CHECK(uf_stat_percentile(&r[0], 50) <= uf_stat_percentile(&r[0], 99));
		CHECK(uf_stat_percentile(&r[0], 99) <= r[0].latency_max_ns);
	}
	/* A closed uffd's record stays; its number no longer counts. */
	CHECK(uf_close(fd) == 0);
	CHECK(uf_stat_get(r, 2) == 1);
	free(src);
}

/* ---- 3. the CLI ---- */

/* Run argv with stdout and stderr into files of tmp; its wait status. */
static int run(char *const argv[], const char *out, const char *err)
{
	char o[PATH_MAX + 16], e[PATH_MAX + 16];
	pid_t pid;
	int st = -1;

	snprintf(o, sizeof o, "%s/%s", tmp, out);
	snprintf(e, sizeof e, "%s/%s", tmp, err);
	pid = fork();
	T_REQUIRE(pid >= 0);
	if (pid == 0) {
		int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(126);
	}
	T_REQUIRE(waitpid(pid, &st, 0) == pid);
	return st;
}

/* The contents of tmp/name (malloc'd, NUL-terminated; "" if absent). */
static char *slurp(const char *name)
{
	char path[PATH_MAX + 16];
	FILE *f;
	char *buf = calloc(1, 1 << 20);
	size_t n = 0;

	T_REQUIRE(buf);
	snprintf(path, sizeof path, "%s/%s", tmp, name);
	if ((f = fopen(path, "r"))) {
		n = fread(buf, 1, (1 << 20) - 1, f);
		fclose(f);
	}
	buf[n] = 0;
	return buf;
}

#define T_HAS(text, s) do {							\
	if (!strstr((text), (s)))						\
		t_fail(__FILE__, __LINE__, "missing: %s", (s));			\
	t_count();								\
} while (0)

static void cli_prog(const char *prog_rel, char *const args[], int faults)
{
	char cli[PATH_MAX + 16], prog[PATH_MAX + 32], json[PATH_MAX + 16], want[256];
	char *argv[12];
	int i = 0, st;

	snprintf(cli, sizeof cli, "%s/userfault", dir);
	snprintf(prog, sizeof prog, "%s/%s", dir, prog_rel);
	snprintf(json, sizeof json, "%s/report.json", tmp);
	argv[i++] = cli;
	argv[i++] = (char *)"stat";
	argv[i++] = (char *)"--json";
	argv[i++] = json;
	argv[i++] = (char *)"--";
	argv[i++] = prog;
	for (int k = 0; args[k]; k++)
		argv[i++] = args[k];
	argv[i] = NULL;
	st = run(argv, "out", "err");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	char *j = slurp("report.json"), *e = slurp("err");
	/* One uffd, served by the back-end under test (the program's own
	 * choice, with the same environment as ours). */
	T_HAS(j, "\"exit_status\": 0,");
	snprintf(want, sizeof want, "\"backend\": \"%s\",", uf_backend_name(t_backend()));
	T_HAS(j, want);
	T_HAS(j, "\"uffds\": 1,");
	snprintf(want, sizeof want, "\"messages\": %d,", faults);
	T_HAS(j, want);
	snprintf(want, sizeof want, "\"pagefault\": %d,", faults);
	T_HAS(j, want);
	snprintf(want, sizeof want, "\"copy\": {\"calls\": %d, \"pages\": %d, \"bytes\": %ld}", faults, faults,
		 (long)faults * t_ps);
	T_HAS(j, want);
	snprintf(want, sizeof want, "\"samples\": %d, \"from_fault\": %d,", faults, t_emulated() ? faults : 0);
	T_HAS(j, want);
	/* The text on stderr. */
	T_HAS(e, "== userfault stat: ");
	snprintf(want, sizeof want, "uffd 0: pid ");
	T_HAS(e, want);
	snprintf(want, sizeof want, "COPY %d calls, %d pages", faults, faults);
	T_HAS(e, want);
	free(j);
	free(e);
}

static void check_cli(void)
{
	char cli_path[PATH_MAX + 16], prog[PATH_MAX + 32], bad[PATH_MAX + 32], json[PATH_MAX + 16];
	char *o;
	char *no_args[] = { NULL };
	char *thread_args[] = { (char *)"4", (char *)"32", NULL };
	int st;

	snprintf(cli_path, sizeof cli_path, "%s/userfault", dir);
	snprintf(prog, sizeof prog, "%s/examples/manpage-demo", dir);
	if (access(cli_path, X_OK) || access(prog, X_OK)) {
		remove_tmp();
		T_SKIP_TEST("%s or %s is not built", cli_path, prog);
	}

	/* The man page's example: 4 pages, 4 faults, 4 COPYs. */
	cli_prog("examples/manpage-demo", no_args, 4);
	/* 4 threads x 32 pages, and the final COPY's EEXIST. */
	cli_prog("tests/helpers/raw-threads", thread_args, 128);
	char *j = slurp("report.json");
	T_HAS(j, "\"eexist\": 1,");
	free(j);

	/* A uffd inherited across exec gets a record in the new image. */
	char helper[PATH_MAX + 32];
	snprintf(helper, sizeof helper, "%s/tests/helpers/raw-threads", dir);
	snprintf(json, sizeof json, "%s/report.json", tmp);
	char *argv_exec[] = { cli_path, (char *)"stat", (char *)"--json", json, helper, (char *)"exec", NULL };
	st = run(argv_exec, "out", "err");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	o = slurp("out");
	T_HAS(o, "inherited");
	free(o);
	j = slurp("report.json");
	T_HAS(j, "\"uffds\": 2,");
	T_HAS(j, "\"index\": 1,");
	free(j);

	/* --json -: JSON alone on stdout (the program's own output aside). */
	char *argv_dash[] = { cli_path, (char *)"stat", (char *)"--json", (char *)"-", prog, NULL };
	st = run(argv_dash, "out", "err");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	o = slurp("out");
	char *e = slurp("err");
	T_HAS(o, "\n{\n  \"program\": ");
	CHECK(!strstr(e, "== userfault stat"));
	free(o);
	free(e);

	/* The program's exit status, and a signal's (programs of the build,
	 * which a sanitizer's drop-in can be preloaded into). */
	char *argv_false[] = { cli_path, (char *)"stat", (char *)"--", helper, (char *)"exit", (char *)"3", NULL };
	st = run(argv_false, "out", "err");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
	e = slurp("err");
	T_HAS(e, "exited with status 3");
	T_HAS(e, "0 userfaultfds");
	free(e);
	char *argv_kill[] = { cli_path, (char *)"stat", (char *)"--", helper, (char *)"kill", NULL };
	st = run(argv_kill, "out", "err");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 128 + 9);
	e = slurp("err");
	T_HAS(e, "killed by SIGKILL");
	free(e);

	/* A --json file that cannot be written: refused, PROG never runs. */
	snprintf(bad, sizeof bad, "%s/no-such-dir/x.json", tmp);
	char *argv_bad[] = { cli_path, (char *)"stat", (char *)"--json", bad, (char *)"--", helper,
			     (char *)"1", (char *)"1", NULL };
	st = run(argv_bad, "out", "err");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	o = slurp("out");
	CHECK(!strstr(o, "ok"));
	free(o);
	/* No program: a command-line error. */
	char *argv_none[] = { cli_path, (char *)"stat", NULL };
	st = run(argv_none, "out", "err");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}


static void remove_tmp(void)
{
	const char *names[] = { "out", "err", "report.json" };
	char path[PATH_MAX + 16];

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", tmp, names[i]);
		unlink(path);
	}
	rmdir(tmp);
}

int main(void)
{
	char exe[PATH_MAX];
	ssize_t n;
	const char *td = getenv("TMPDIR");

	t_start(60);
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	T_REQUIRE(n > 0);
	exe[n] = 0;
	snprintf(dir, sizeof dir, "%s", dirname(dirname(exe)));
	snprintf(tmp, sizeof tmp, "%s/uf-stat-XXXXXX", td && *td ? td : "/tmp");
	T_REQUIRE(mkdtemp(tmp));
#if defined(__SANITIZE_ADDRESS__)
	/* The drop-in comes before ASan's runtime in the programs it runs. */
	setenv("ASAN_OPTIONS", "verify_asan_link_order=0:detect_leaks=0", 1);
#endif
	arithmetic();
	check_api();
	check_cli();
	remove_tmp();
	return t_done();
}
