/* SPDX-License-Identifier: MIT */
/*
 * bench-report.h - the results of "userfault bench", and their writers.
 *
 * cmd-bench.c runs the workloads and fills one struct bench_results: every
 * case with its runs and their median, min and max, every ratio, the
 * round-trip latencies, the 64 GiB installs, the machine.  The writers of
 * bench-report.c (the text table, the Markdown report, the JSON) only read
 * it.  Times are in microseconds; a figure that does not exist is NAN.
 */
#ifndef USERFAULT_BENCH_REPORT_H
#define USERFAULT_BENCH_REPORT_H

#include <stdio.h>

#include "../bench/bench.h"

#define BENCH_MAX_REPS 99
#define BENCH_MAX_CASES 96
#define BENCH_MAX_RATIOS 48

/* Median, min and max of a set of values (NAN if there is none). */
struct bench_stat {
	double med, min, max;
};

struct bench_machine {
	char kernel[256];	/* "Linux 6.18.0 x86_64" */
	char cpu[256];		/* model name from /proc/cpuinfo, or "unknown" */
	char date[64];		/* "2026-01-31 12:00 UTC" */
	long cpus;		/* online */
};

struct bench_case_result {
	const char *name;	/* stable key (JSON) */
	const char *label;	/* for people */
	int selected;		/* in the group(s) asked for (--only) */
	int err;		/* errno of the first failed run, 0 if none */
	int n;			/* runs that worked */
	double runs[BENCH_MAX_REPS];	/* us per fault (bulk: per page) */
	struct bench_stat us;	/* of runs */
	int is_scale;		/* a sparse-fault case: scale below is set */
	struct scale_result scale;	/* of the last run */
};

struct bench_ratio_result {
	const char *key;	/* JSON key */
	const char *label;
	double target;		/* the goal (<=), 0 for none */
	int n;			/* repetitions where both cases ran */
	struct bench_stat stat;
};

/* Round-trip latency, all repetitions pooled. */
struct bench_latency {
	size_t samples;
	const double *ns;	/* the samples, sorted, in ns */
	double p50, p90, p99, max;	/* us */
};

/* The random installs into a 64 GiB region, once per back-end. */
struct bench_installs_result {
	int ran;		/* 0: not run or failed; the rest is unset */
	struct install_result r;	/* r.ns per COPY, in ns */
};

/* Index of the kernel and emulated entries of latency[] and installs[]. */
enum { BENCH_KERNEL, BENCH_EMULATED, BENCH_NTARGETS };

struct bench_results {
	struct bench_machine machine;
	int reps, quick;
	const char *only;	/* the group asked for, NULL for all */
	const char *spin_us;	/* USERFAULT_SPIN_US during the run, or NULL */
	int one_cpu;		/* the process was confined to one CPU (taskset) */
	const char *svg;	/* the latency chart's path (Markdown links it), or NULL */
	int append;		/* the Markdown report is appended to another */

	int ncases;
	struct bench_case_result cases[BENCH_MAX_CASES];
	int nratios;
	struct bench_ratio_result ratios[BENCH_MAX_RATIOS];
	struct bench_latency latency[BENCH_NTARGETS];
	long installs;		/* random installs per back-end */
	struct bench_installs_result installs_64g[BENCH_NTARGETS];
};

/* The writers: 0, or -1 after an output error (f is left open). */
int bench_write_text(FILE *f, const struct bench_results *res);
int bench_write_markdown(FILE *f, const struct bench_results *res);
int bench_write_json(FILE *f, const struct bench_results *res);
/* The latency distributions as an SVG chart (bench_write_svg of plot.c). */
int bench_write_latency_svg(FILE *f, const struct bench_results *res);

#endif /* USERFAULT_BENCH_REPORT_H */
