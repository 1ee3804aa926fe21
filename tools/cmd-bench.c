/* SPDX-License-Identifier: MIT */
/*
 * cmd-bench.c - "userfault bench": the same workloads on the kernel
 * back-end, the emulated back-end and plain page faults, in one process run.
 *
 * Every case is repeated (default 7 times); within a repetition the cases
 * of a group run one after the other, their order alternating between
 * repetitions, and every ratio is computed within a repetition, so that the
 * machine's drift (a noisy VM) cancels out.  The runs fill one struct
 * bench_results (the median, min and max of each case and of each ratio,
 * the latencies, the machine); the writers of bench-report.c print it as a
 * table, and --json, --markdown and --svg write it for machines and for
 * BENCHMARKS.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "bench-report.h"

static const char bench_help[] =
	"usage: " CLI_NAME " bench [--quick] [--reps N] [--json FILE] [--markdown FILE]\n"
	"                       [--append] [--svg FILE] [--only GROUP]\n"
	"\n"
	"Run the benchmark workloads on the kernel back-end, the emulated\n"
	"back-end and plain first-touch page faults, each repeated N times (7),\n"
	"and print the median, min and max of each, and of every ratio computed\n"
	"within a repetition.  Groups: roundtrip, bulk, threads, inthread, scale,\n"
	"passthrough, memory (shared memory and 2 MiB huge pages; the huge pages\n"
	"come from vm.nr_hugepages, raised for the run and given back where it\n"
	"can be, else those cases are skipped), wp (write protection: the WP round\n"
	"trip, a WP_ASYNC write, PAGEMAP_SCAN re-protecting written pages), resolve\n"
	"(the round trip with MOVE against COPY, and a minor fault with CONTINUE),\n"
	"steps (the pieces of a round trip, each alone: a signal, a guard marker's\n"
	"SIGSEGV, MADV_GUARD_REMOVE, MADV_POPULATE_READ, a minor fault, a memfd\n"
	"pwrite, fstat, a mask change, futex and pipe hand-offs on one CPU, the\n"
	"kernel's UFFDIO_COPY and ZEROPAGE, and a round trip made of the\n"
	"emulation's system calls alone, without the library, on one CPU).\n"
	"The round-trip and threads groups run their main cases twice: unpinned,\n"
	"and with every thread of the case on one CPU (no idle CPU to wake: the\n"
	"cost of the work itself, as on a busy machine); the roundtrip group also\n"
	"times a bare system call.  Costs are in microseconds per fault (per page\n"
	"for bulk and wp).\n"
	"\n"
	"  --quick          fewer faults and 3 repetitions: under a minute\n"
	"  --reps N         repetitions (1 to 99)\n"
	"  --only GROUP     run one group\n"
	"  --json FILE      write the results as JSON ('-': on stdout, and the table\n"
	"                   on stderr)\n"
	"  --markdown FILE  write the results as a Markdown report\n"
	"  --append         add them to the Markdown report instead\n"
	"  --svg FILE       plot the round-trip latency distributions (SVG)\n"
	"\n"
	"The files are opened before the run (so a bad path fails at once) and\n"
	"written after it.\n"
	"\n"
	"Without a working kernel userfaultfd, or emulation, the cases that need\n"
	"it are reported as not run.\n"
	"\n"
	"Exit status: 0 if every case ran; 1 if one did not, or an output file\n"
	"could not be written; 2 for a command-line error.\n";

#define MAX_REPS BENCH_MAX_REPS

enum group { G_ROUNDTRIP, G_BULK, G_THREADS, G_INTHREAD, G_SCALE, G_PASSTHROUGH, G_MEMORY, G_WP, G_RESOLVE,
	     G_STEPS, G_N };
static const char *const group_names[G_N] = {
	"roundtrip", "bulk", "threads", "inthread", "scale", "passthrough", "memory", "wp", "resolve", "steps",
};

/* How a case runs. */
enum kind { K_RT, K_INTHREAD, K_SCALE, K_PASS, K_WP, K_RESOLVE, K_SYSCALL, K_STEP };

struct bcase {
	const char *name;	/* stable key (JSON) */
	const char *label;	/* for people */
	enum group group;
	enum kind kind;
	int target;		/* enum bench_target */
	/* K_RT */
	int blocking, zeropage, write, faulters, handlers;
	int samecpu;		/* every thread on one CPU */
	size_t unit;
	int memory;		/* enum bench_memory */
	/* K_INTHREAD, K_WP */
	int how;
	/* K_SCALE */
	size_t size;
	/* K_PASS: which of the four figures */
	int pass_idx;
	/* results */
	double v[MAX_REPS];
	int n;
	int err;
	struct scale_result last_scale;	/* K_SCALE: of the last run that worked */
};

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
/* NOLINTBEGIN(bugprone-macro-parentheses): each argument is a whole initialiser */
#define RT(nm, lb, g, t, b, z, w, f, h, u) \
	{ .name = nm, .label = lb, .group = g, .kind = K_RT, .target = t, .blocking = b, \
	  .zeropage = z, .write = w, .faulters = f, .handlers = h, .unit = u }
/* The same, with every thread of the case on one CPU. */
#define RT1(nm, lb, g, t, z, f) \
	{ .name = nm, .label = lb, .group = g, .kind = K_RT, .target = t, .zeropage = z, \
	  .faulters = f, .handlers = 1, .unit = 4 * KiB, .samecpu = 1 }
#define RM(nm, lb, t, m, u) \
	{ .name = nm, .label = lb, .group = G_MEMORY, .kind = K_RT, .target = t, .faulters = 1, \
	  .handlers = (t) == BT_PLAIN ? 0 : 1, .unit = u, .memory = m }
#define IT(nm, lb, t, hw) { .name = nm, .label = lb, .group = G_INTHREAD, .kind = K_INTHREAD, .target = t, .how = hw }
#define SC(nm, lb, t, sz) { .name = nm, .label = lb, .group = G_SCALE, .kind = K_SCALE, .target = t, .size = sz }
#define WPC(nm, lb, t, hw) { .name = nm, .label = lb, .group = G_WP, .kind = K_WP, .target = t, .how = hw }
#define RS(nm, lb, t, hw) { .name = nm, .label = lb, .group = G_RESOLVE, .kind = K_RESOLVE, .target = t, .how = hw }
#define ST(nm, lb, st) { .name = nm, .label = lb, .group = G_STEPS, .kind = K_STEP, .target = BT_PLAIN, .how = st }
#define PS(nm, lb, i) { .name = nm, .label = lb, .group = G_PASSTHROUGH, .kind = K_PASS, .target = BT_KERNEL, .pass_idx = i }
/* NOLINTEND(bugprone-macro-parentheses) */

enum {
	C_PLAIN, C_SYSCALL, C_RT_K, C_RT_E, C_RTB_K, C_RTB_E, C_ZR_K, C_ZR_E, C_ZW_K, C_ZW_E,
	C_RT1_K, C_RT1_E, C_ZR1_K, C_ZR1_E, C_T411_K, C_T411_E,
	C_B64_K, C_B64_E, C_B2M_K, C_B2M_E, C_B4_P,
	C_T21_K, C_T21_E, C_T41_K, C_T41_E, C_T42_K, C_T42_E,
	C_IN_E, C_IN_K, C_SB_K, C_SB_E,
	C_S16_K, C_S16_E, C_S1G_K, C_S1G_E, C_S64_K, C_S64_E,
	C_PL_COPY, C_PR_COPY, C_PL_WAKE, C_PR_WAKE,
	C_SH_P, C_SH_K, C_SH_E, C_SH2M_K, C_SH2M_E, C_HT_P, C_HT_K, C_HT_E,
	C_WP_P, C_WP_K, C_WP_E, C_WA_K, C_WA_E, C_WS_K, C_WS_E,
	C_RC_K, C_RC_E, C_RM_K, C_RM_E, C_RN_K, C_RN_E,
	C_ST_SIG, C_ST_SEGV, C_ST_GREM, C_ST_POP, C_ST_MINOR, C_ST_PWRITE, C_ST_FSTAT, C_ST_MASK,
	C_ST_FUTEX, C_ST_PIPE, C_ST_KCOPY, C_ST_KZERO, C_ST_CALLS,
	C_N
};

static struct bcase cases[C_N] = {
	[C_PLAIN] = RT("plain_fault", "plain first-touch fault (no uffd)", G_ROUNDTRIP, BT_PLAIN, 0, 0, 0, 1, 0, 4 * KiB),
	[C_SYSCALL] = { .name = "bare_syscall", .label = "a bare system call (getppid)", .group = G_ROUNDTRIP,
			.kind = K_SYSCALL, .target = BT_PLAIN },
	[C_RT1_K] = RT1("rt_poll_samecpu_kernel", "round trip, poll+read+COPY, one CPU: kernel", G_ROUNDTRIP, BT_KERNEL, 0, 1),
	[C_RT1_E] = RT1("rt_poll_samecpu_emulated", "round trip, poll+read+COPY, one CPU: emulated", G_ROUNDTRIP, BT_EMULATED, 0, 1),
	[C_ZR1_K] = RT1("rt_zero_read_samecpu_kernel", "round trip, ZEROPAGE, read touch, one CPU: kernel", G_ROUNDTRIP, BT_KERNEL, 1, 1),
	[C_ZR1_E] = RT1("rt_zero_read_samecpu_emulated", "round trip, ZEROPAGE, read touch, one CPU: emulated", G_ROUNDTRIP, BT_EMULATED, 1, 1),
	[C_T411_K] = RT1("threads_4f1h_samecpu_kernel", "4 faulting + 1 handler thread, one CPU: kernel", G_THREADS, BT_KERNEL, 0, 4),
	[C_T411_E] = RT1("threads_4f1h_samecpu_emulated", "4 faulting + 1 handler thread, one CPU: emulated", G_THREADS, BT_EMULATED, 0, 4),
	[C_RT_K] = RT("rt_poll_kernel", "round trip, poll+read+COPY: kernel", G_ROUNDTRIP, BT_KERNEL, 0, 0, 0, 1, 1, 4 * KiB),
	[C_RT_E] = RT("rt_poll_emulated", "round trip, poll+read+COPY: emulated", G_ROUNDTRIP, BT_EMULATED, 0, 0, 0, 1, 1, 4 * KiB),
	[C_RTB_K] = RT("rt_block_kernel", "round trip, blocking read+COPY: kernel", G_ROUNDTRIP, BT_KERNEL, 1, 0, 0, 1, 1, 4 * KiB),
	[C_RTB_E] = RT("rt_block_emulated", "round trip, blocking read+COPY: emulated", G_ROUNDTRIP, BT_EMULATED, 1, 0, 0, 1, 1, 4 * KiB),
	[C_ZR_K] = RT("rt_zero_read_kernel", "round trip, ZEROPAGE, read touch: kernel", G_ROUNDTRIP, BT_KERNEL, 0, 1, 0, 1, 1, 4 * KiB),
	[C_ZR_E] = RT("rt_zero_read_emulated", "round trip, ZEROPAGE, read touch: emulated", G_ROUNDTRIP, BT_EMULATED, 0, 1, 0, 1, 1, 4 * KiB),
	[C_ZW_K] = RT("rt_zero_write_kernel", "round trip, ZEROPAGE, write touch: kernel", G_ROUNDTRIP, BT_KERNEL, 0, 1, 1, 1, 1, 4 * KiB),
	[C_ZW_E] = RT("rt_zero_write_emulated", "round trip, ZEROPAGE, write touch: emulated", G_ROUNDTRIP, BT_EMULATED, 0, 1, 1, 1, 1, 4 * KiB),
	[C_B64_K] = RT("bulk64k_kernel", "COPY 64 KiB per fault, per page: kernel", G_BULK, BT_KERNEL, 0, 0, 0, 1, 1, 64 * KiB),
	[C_B64_E] = RT("bulk64k_emulated", "COPY 64 KiB per fault, per page: emulated", G_BULK, BT_EMULATED, 0, 0, 0, 1, 1, 64 * KiB),
	[C_B2M_K] = RT("bulk2m_kernel", "COPY 2 MiB per fault, per page: kernel", G_BULK, BT_KERNEL, 0, 0, 0, 1, 1, 2 * MiB),
	[C_B2M_E] = RT("bulk2m_emulated", "COPY 2 MiB per fault, per page: emulated", G_BULK, BT_EMULATED, 0, 0, 0, 1, 1, 2 * MiB),
	[C_B4_P] = RT("bulk_plain", "plain first-touch fault, per page", G_BULK, BT_PLAIN, 0, 0, 0, 1, 0, 4 * KiB),
	[C_T21_K] = RT("threads_2f1h_kernel", "2 faulting + 1 handler thread: kernel", G_THREADS, BT_KERNEL, 0, 0, 0, 2, 1, 4 * KiB),
	[C_T21_E] = RT("threads_2f1h_emulated", "2 faulting + 1 handler thread: emulated", G_THREADS, BT_EMULATED, 0, 0, 0, 2, 1, 4 * KiB),
	[C_T41_K] = RT("threads_4f1h_kernel", "4 faulting + 1 handler thread: kernel", G_THREADS, BT_KERNEL, 0, 0, 0, 4, 1, 4 * KiB),
	[C_T41_E] = RT("threads_4f1h_emulated", "4 faulting + 1 handler thread: emulated", G_THREADS, BT_EMULATED, 0, 0, 0, 4, 1, 4 * KiB),
	[C_T42_K] = RT("threads_4f2h_kernel", "4 faulting + 2 handler threads: kernel", G_THREADS, BT_KERNEL, 0, 0, 0, 4, 2, 4 * KiB),
	[C_T42_E] = RT("threads_4f2h_emulated", "4 faulting + 2 handler threads: emulated", G_THREADS, BT_EMULATED, 0, 0, 0, 4, 2, 4 * KiB),
	[C_IN_E] = IT("inthread_emulated", "in-thread pager: emulated", BT_EMULATED, INT_PAGER),
	[C_IN_K] = IT("inthread_kernel", "in-thread pager: kernel (SIGBUS underneath)", BT_KERNEL, INT_PAGER),
	[C_SB_K] = IT("sigbus_kernel", "FEATURE_SIGBUS, program's handler COPYs: kernel", BT_KERNEL, INT_SIGBUS),
	[C_SB_E] = IT("sigbus_emulated", "FEATURE_SIGBUS, program's handler COPYs: emulated", BT_EMULATED, INT_SIGBUS),
	[C_S16_K] = SC("scale16m_kernel", "16 MiB region, random faults: kernel", BT_KERNEL, 16 * MiB),
	[C_S16_E] = SC("scale16m_emulated", "16 MiB region, random faults: emulated", BT_EMULATED, 16 * MiB),
	[C_S1G_K] = SC("scale1g_kernel", "1 GiB region, random faults: kernel", BT_KERNEL, GiB),
	[C_S1G_E] = SC("scale1g_emulated", "1 GiB region, random faults: emulated", BT_EMULATED, GiB),
	[C_S64_K] = SC("scale64g_kernel", "64 GiB region, random faults: kernel", BT_KERNEL, 64 * GiB),
	[C_S64_E] = SC("scale64g_emulated", "64 GiB region, random faults: emulated", BT_EMULATED, 64 * GiB),
	[C_PL_COPY] = PS("pass_copy_lib", "UFFDIO_COPY 4 KiB via uf_ioctl (kernel back-end)", 0),
	[C_PR_COPY] = PS("pass_copy_raw", "UFFDIO_COPY 4 KiB via ioctl(2)", 1),
	[C_PL_WAKE] = PS("pass_wake_lib", "UFFDIO_WAKE via uf_ioctl (kernel back-end)", 2),
	[C_PR_WAKE] = PS("pass_wake_raw", "UFFDIO_WAKE via ioctl(2)", 3),
	[C_SH_P] = RM("shmem_plain", "shared memory: plain first-touch fault", BT_PLAIN, BM_SHMEM, 4 * KiB),
	[C_SH_K] = RM("rt_shmem_kernel", "shared memory, round trip, COPY 4 KiB: kernel", BT_KERNEL, BM_SHMEM, 4 * KiB),
	[C_SH_E] = RM("rt_shmem_emulated", "shared memory, round trip, COPY 4 KiB: emulated", BT_EMULATED, BM_SHMEM, 4 * KiB),
	[C_SH2M_K] = RM("bulk2m_shmem_kernel", "shared memory, COPY 2 MiB, per page: kernel", BT_KERNEL, BM_SHMEM, 2 * MiB),
	[C_SH2M_E] = RM("bulk2m_shmem_emulated", "shared memory, COPY 2 MiB, per page: emulated", BT_EMULATED, BM_SHMEM, 2 * MiB),
	[C_HT_P] = RM("hugetlb_plain", "2 MiB huge page: plain first-touch fault", BT_PLAIN, BM_HUGETLB, 2 * MiB),
	[C_HT_K] = RM("rt_hugetlb_kernel", "2 MiB huge page, round trip, COPY: kernel", BT_KERNEL, BM_HUGETLB, 2 * MiB),
	[C_HT_E] = RM("rt_hugetlb_emulated", "2 MiB huge page, round trip, COPY: emulated", BT_EMULATED, BM_HUGETLB, 2 * MiB),
	[C_WP_P] = RT("wp_plain_fault", "plain first-touch write fault (no uffd)", G_WP, BT_PLAIN, 0, 0, 1, 1, 0, 4 * KiB),
	[C_WP_K] = WPC("wp_rt_kernel", "write-protect round trip (poll+read+WRITEPROTECT): kernel", BT_KERNEL, WPB_ROUNDTRIP),
	[C_WP_E] = WPC("wp_rt_emulated", "write-protect round trip (poll+read+WRITEPROTECT): emulated", BT_EMULATED, WPB_ROUNDTRIP),
	[C_WA_K] = WPC("wp_async_write_kernel", "WP_ASYNC: a write to a protected page: kernel", BT_KERNEL, WPB_ASYNC_WRITE),
	[C_WA_E] = WPC("wp_async_write_emulated", "WP_ASYNC: a write to a protected page: emulated", BT_EMULATED, WPB_ASYNC_WRITE),
	[C_WS_K] = WPC("wp_scan_kernel", "PAGEMAP_SCAN + WP_MATCHING, per written page: kernel", BT_KERNEL, WPB_SCAN),
	[C_WS_E] = WPC("wp_scan_emulated", "PAGEMAP_SCAN + WP_MATCHING, per written page: emulated", BT_EMULATED, WPB_SCAN),
	[C_RC_K] = RS("resolve_copy_kernel", "round trip, COPY from a private region: kernel", BT_KERNEL, RSB_COPY),
	[C_RC_E] = RS("resolve_copy_emulated", "round trip, COPY from a private region: emulated", BT_EMULATED, RSB_COPY),
	[C_RM_K] = RS("resolve_move_kernel", "round trip, MOVE from a private region: kernel", BT_KERNEL, RSB_MOVE),
	[C_RM_E] = RS("resolve_move_emulated", "round trip, MOVE from a private region: emulated", BT_EMULATED, RSB_MOVE),
	[C_RN_K] = RS("resolve_minor_kernel", "minor fault on shared memory, CONTINUE: kernel", BT_KERNEL, RSB_MINOR),
	[C_ST_SIG] = ST("step_signal", "step: a signal to oneself (tgkill), empty handler", STEP_SIGNAL),
	[C_ST_SEGV] = ST("step_segv_guard", "step: read of a guard marker, SIGSEGV removes it, read again", STEP_SEGV_GUARD),
	[C_ST_GREM] = ST("step_guard_remove", "step: MADV_GUARD_REMOVE of a page", STEP_GUARD_REMOVE),
	[C_ST_POP] = ST("step_populate", "step: MADV_POPULATE_READ of a memfd page", STEP_POPULATE),
	[C_ST_MINOR] = ST("step_minor_fault", "step: minor fault on that memfd page instead", STEP_MINOR),
	[C_ST_PWRITE] = ST("step_memfd_pwrite", "step: 4 KiB pwrite into a memfd, new page", STEP_PWRITE),
	[C_ST_FSTAT] = ST("step_fstat", "step: fstat of a pipe", STEP_FSTAT),
	[C_ST_MASK] = ST("step_sigmask_pair", "step: SIGPIPE blocked and unblocked", STEP_SIGMASK),
	[C_ST_FUTEX] = ST("step_futex_handoff", "step: futex there and back, 2 threads on 1 CPU", STEP_FUTEX_PINGPONG),
	[C_ST_PIPE] = ST("step_pipe_handoff", "step: pipe byte (poll+read) there, futex back, 1 CPU", STEP_PIPE_PINGPONG),
	[C_ST_KCOPY] = ST("step_kernel_copy", "step: UFFDIO_COPY of a page nobody waits for (kernel)", STEP_KERNEL_COPY),
	[C_ST_KZERO] = ST("step_kernel_zeropage", "step: UFFDIO_ZEROPAGE likewise (kernel)", STEP_KERNEL_ZEROPAGE),
	[C_ST_CALLS] = ST("step_emulation_calls", "step: round trip of the emulation's system calls alone, 1 CPU",
			  STEP_EMU_CALLS),
	[C_RN_E] = RS("resolve_minor_emulated", "minor fault on shared memory, CONTINUE: emulated", BT_EMULATED, RSB_MINOR),
};

/* Ratios, each computed within a repetition: num / den. */
struct ratio {
	const char *key;	/* JSON key */
	const char *label;
	int num, den;
	double target;		/* the goal (<=), 0 for none */
};
static const struct ratio ratios[] = {
	{ "roundtrip_ratio", "round trip (poll): emulated / kernel", C_RT_E, C_RT_K, 1.3 },
	{ "roundtrip_samecpu_ratio", "round trip (poll), one CPU: emulated / kernel", C_RT1_E, C_RT1_K, 1.5 },
	{ "zeropage_samecpu_ratio", "ZEROPAGE, read touch, one CPU: emulated / kernel", C_ZR1_E, C_ZR1_K, 1.5 },
	{ "roundtrip_samecpu_vs_plain", "round trip (poll), one CPU, kernel / plain fault", C_RT1_K, C_PLAIN, 0 },
	{ "roundtrip_samecpu_emulated_vs_plain", "round trip (poll), one CPU, emulated / plain fault", C_RT1_E, C_PLAIN,
	  0 },
	{ "roundtrip_samecpu_vs_syscall", "round trip (poll), one CPU, kernel / bare system call", C_RT1_K, C_SYSCALL,
	  0 },
	{ "roundtrip_samecpu_emulated_vs_syscall", "round trip (poll), one CPU, emulated / bare system call", C_RT1_E,
	  C_SYSCALL, 0 },
	{ "samecpu_floor_ratio", "the emulation's system calls alone / kernel round trip, one CPU", C_ST_CALLS, C_RT1_K,
	  0 },
	{ "samecpu_library_ratio", "round trip (poll), one CPU: emulated / its system calls alone", C_RT1_E, C_ST_CALLS,
	  0 },
	{ "roundtrip_block_ratio", "round trip (blocking read): emulated / kernel", C_RTB_E, C_RTB_K, 0 },
	{ "zeropage_read_ratio", "ZEROPAGE, read touch: emulated / kernel", C_ZR_E, C_ZR_K, 0 },
	{ "zeropage_write_ratio", "ZEROPAGE, write touch: emulated / kernel", C_ZW_E, C_ZW_K, 0 },
	{ "roundtrip_vs_plain", "round trip (poll), kernel / plain fault", C_RT_K, C_PLAIN, 0 },
	{ "roundtrip_emulated_vs_plain", "round trip (poll), emulated / plain fault", C_RT_E, C_PLAIN, 0 },
	{ "bulk64k_ratio", "COPY 64 KiB per page: emulated / kernel", C_B64_E, C_B64_K, 0 },
	{ "bulk2m_ratio", "COPY 2 MiB per page: emulated / kernel", C_B2M_E, C_B2M_K, 1.2 },
	{ "threads2_ratio", "2 faulters + 1 handler: emulated / kernel", C_T21_E, C_T21_K, 1.25 },
	{ "threads4_ratio", "4 faulters + 1 handler: emulated / kernel", C_T41_E, C_T41_K, 1.25 },
	{ "threads4_samecpu_ratio", "4 faulters + 1 handler, one CPU: emulated / kernel", C_T411_E, C_T411_K, 0 },
	{ "threads4x2_ratio", "4 faulters + 2 handlers: emulated / kernel", C_T42_E, C_T42_K, 0 },
	{ "inthread_ratio", "in-thread pager (emulated) / kernel round trip", C_IN_E, C_RT_K, 0.7 },
	{ "sigbus_ratio", "in-thread pager (emulated) / kernel SIGBUS mode", C_IN_E, C_SB_K, 1.1 },
	{ "sigbus_emulated_ratio", "SIGBUS mode: emulated / kernel", C_SB_E, C_SB_K, 0 },
	{ "scale16m_ratio", "16 MiB random faults: emulated / kernel", C_S16_E, C_S16_K, 0 },
	{ "scale1g_ratio", "1 GiB random faults: emulated / kernel", C_S1G_E, C_S1G_K, 0 },
	{ "scale64g_ratio", "64 GiB random faults: emulated / kernel", C_S64_E, C_S64_K, 0 },
	{ "passthrough_ratio", "UFFDIO_COPY: kernel back-end / raw syscall", C_PL_COPY, C_PR_COPY, 1.02 },
	{ "passthrough_wake_ratio", "UFFDIO_WAKE: kernel back-end / raw syscall", C_PL_WAKE, C_PR_WAKE, 0 },
	{ "shmem_roundtrip_ratio", "shared memory round trip: emulated / kernel", C_SH_E, C_SH_K, 0 },
	{ "shmem_roundtrip_vs_plain", "shared memory round trip, emulated / plain fault", C_SH_E, C_SH_P, 0 },
	{ "shmem_bulk2m_ratio", "shared memory, COPY 2 MiB per page: emulated / kernel", C_SH2M_E, C_SH2M_K, 0 },
	{ "hugetlb_roundtrip_ratio", "2 MiB huge page round trip: emulated / kernel", C_HT_E, C_HT_K, 0 },
	{ "hugetlb_roundtrip_vs_plain", "2 MiB huge page round trip, emulated / plain fault", C_HT_E, C_HT_P, 0 },
	{ "wp_roundtrip_ratio", "write-protect round trip: emulated / kernel", C_WP_E, C_WP_K, 0 },
	{ "wp_roundtrip_vs_plain", "write-protect round trip, kernel / plain write fault", C_WP_K, C_WP_P, 0 },
	{ "wp_roundtrip_emulated_vs_plain", "write-protect round trip, emulated / plain write fault", C_WP_E, C_WP_P, 0 },
	{ "wp_async_write_ratio", "WP_ASYNC write: emulated / kernel", C_WA_E, C_WA_K, 0 },
	{ "wp_scan_ratio", "PAGEMAP_SCAN + re-protect per page: emulated / kernel", C_WS_E, C_WS_K, 0 },
	{ "move_ratio", "MOVE round trip: emulated / kernel", C_RM_E, C_RM_K, 0 },
	{ "move_vs_copy_kernel", "MOVE / COPY round trip: kernel", C_RM_K, C_RC_K, 0 },
	{ "move_vs_copy_emulated", "MOVE / COPY round trip: emulated", C_RM_E, C_RC_E, 0 },
	{ "minor_ratio", "minor fault + CONTINUE: emulated / kernel", C_RN_E, C_RN_K, 0 },
	{ "minor_vs_plain", "minor fault + CONTINUE, kernel / plain shared-memory fault", C_RN_K, C_SH_P, 0 },
	{ "minor_emulated_vs_plain", "minor fault + CONTINUE, emulated / plain shared-memory fault", C_RN_E, C_SH_P,
	  0 },
};
#define NRATIOS (int)(sizeof ratios / sizeof ratios[0])

_Static_assert(C_N <= BENCH_MAX_CASES, "struct bench_results holds every case");
_Static_assert(sizeof ratios / sizeof ratios[0] <= BENCH_MAX_RATIOS, "struct bench_results holds every ratio");

struct opts {
	int quick, reps, only, append;
	const char *json, *markdown, *svg;
	/* sizes */
	long rt_faults, bulk_faults2m, bulk_faults64k, thr_faults, in_faults, sc_faults, pass_calls, wp_pages;
	long huge_faults;	/* 2 MiB huge pages per hugetlb run */
	int huge_ok;		/* enough free huge pages for them */
	long installs;
};

/* Latency samples of the poll round trip, all repetitions pooled. */
static double *lat_k, *lat_e;
static size_t nlat_k, nlat_e;

/* The 64 GiB install case, run once per target. */
static struct install_result inst[2];
static int inst_err[2] = { 1, 1 };

/* ---- Statistics --------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static struct bench_stat stats(const double *v, int n)
{
	double s[MAX_REPS];
	struct bench_stat r = { NAN, NAN, NAN };

	if (n <= 0)
		return r;
	memcpy(s, v, (size_t)n * sizeof *v);
	qsort(s, (size_t)n, sizeof *s, cmp_double);
	r.min = s[0];
	r.max = s[n - 1];
	r.med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	return r;
}

static double percentile(double *sorted, size_t n, double p)
{
	size_t i;

	if (!n)
		return NAN;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return sorted[i < n ? i : n - 1];
}

/* A ratio's values: those repetitions where both cases ran. */
static int ratio_values(const struct ratio *r, double *out)
{
	const struct bcase *a = &cases[r->num], *b = &cases[r->den];
	int n = 0;

	for (int i = 0; i < a->n && i < b->n; i++)
		if (a->v[i] > 0 && b->v[i] > 0)
			out[n++] = a->v[i] / b->v[i];
	return n;
}

/* ---- Running ------------------------------------------------------------ */

static int run_case(struct bcase *c, const struct opts *o)
{
	double ns = 0, pass[4];
	int r = 0;

	switch (c->kind) {
	case K_RT: {
		struct rt_params p = {
			.target = c->target, .blocking = c->blocking, .zeropage = c->zeropage,
			.write = c->write, .unit = c->unit, .faulters = c->faulters,
			.handlers = c->handlers, .memory = c->memory, .samecpu = c->samecpu,
		};
		double **lat = NULL;
		size_t *nlat = NULL;

		if (c->memory == BM_HUGETLB) {
			if (!o->huge_ok)
				return -ENOMEM;
			p.faults = o->huge_faults;
		} else if ((c->group == G_BULK || c->group == G_MEMORY) && c->unit >= 2 * MiB)
			p.faults = o->bulk_faults2m;
		else if (c->group == G_BULK && c->target != BT_PLAIN)
			p.faults = o->bulk_faults64k;
		else if (c->group == G_THREADS)
			p.faults = o->thr_faults;
		else
			p.faults = o->rt_faults;
		if (c == &cases[C_RT_K]) {
			lat = &lat_k;
			nlat = &nlat_k;
		} else if (c == &cases[C_RT_E]) {
			lat = &lat_e;
			nlat = &nlat_e;
		}
		if (lat) {
			double *grown = realloc(*lat, (*nlat + (size_t)p.faults) * sizeof **lat);
			if (!grown)
				return -ENOMEM;
			*lat = grown;
			p.lat_ns = *lat + *nlat;
		}
		r = bench_roundtrip(&p, &ns);
		if (r == 0 && lat)
			*nlat += (size_t)p.faults;
		/* Per page: the units of G_BULK are whole pages (and of the
		 * shared memory bulk case; a huge page is one fault). */
		if (c->group == G_BULK || (c->group == G_MEMORY && c->memory == BM_SHMEM))
			/* NOLINTNEXTLINE(bugprone-integer-division) */
			ns /= (double)(c->unit / (size_t)sysconf(_SC_PAGESIZE));
		break;
	}
	case K_INTHREAD:
		r = bench_inthread(c->target, c->how, o->in_faults, &ns);
		break;
	case K_WP:
		r = bench_wp(c->target, c->how, o->wp_pages, &ns);
		break;
	case K_RESOLVE:
		r = bench_resolve(c->target, c->how, o->wp_pages, &ns);
		break;
	case K_SYSCALL:
		r = bench_syscall(o->pass_calls, &ns);
		break;
	case K_STEP:
		r = bench_step(c->how, o->wp_pages, &ns);
		break;
	case K_SCALE: {
		struct scale_result sc;

		r = bench_scale(c->target, c->size, o->sc_faults, &sc);
		if (r == 0)
			c->last_scale = sc;
		ns = sc.ns;
		break;
	}
	case K_PASS:
		/* The four figures come from one interleaved run. */
		if (c->pass_idx != 0)
			return 0;
		r = bench_passthrough(o->pass_calls, pass);
		if (r == 0)
			for (int i = 0; i < 4; i++) {
				struct bcase *pc = &cases[C_PL_COPY + i];
				pc->v[pc->n++] = pass[i];
			}
		return r;
	}
	if (r == 0)
		c->v[c->n++] = ns;
	return r;
}

static void run_all(const struct opts *o)
{
	for (int rep = 0; rep < o->reps; rep++) {
		fprintf(stderr, "\r" CLI_NAME " bench: repetition %d of %d ", rep + 1, o->reps);
		for (int g = 0; g < G_N; g++) {
			int ids[C_N], k = 0;

			if (o->only >= 0 && g != o->only)
				continue;
			for (int i = 0; i < C_N; i++)
				if ((int)cases[i].group == g)
					ids[k++] = i;
			/* Alternate the order within the group between repetitions. */
			for (int j = 0; j < k; j++) {
				struct bcase *c = &cases[ids[rep % 2 ? k - 1 - j : j]];
				int r = run_case(c, o);
				if (r < 0 && !c->err) {
					c->err = -r;
					fprintf(stderr, "\n" CLI_NAME " bench: %s: %s\n", c->name, strerror(-r));
				}
			}
		}
	}
	fprintf(stderr, "\n");
	if (o->only < 0 || o->only == G_SCALE) {
		for (int t = 0; t < 2; t++) {
			fprintf(stderr, CLI_NAME " bench: %ld random installs in 64 GiB (%s)\n", o->installs,
				t ? "emulated" : "kernel");
			inst_err[t] = -bench_installs(t ? BT_EMULATED : BT_KERNEL, 64 * GiB, o->installs, &inst[t]);
			if (inst_err[t])
				fprintf(stderr, CLI_NAME " bench: installs: %s\n", strerror(inst_err[t]));
		}
	}
}

/* ---- Huge pages for the hugetlb cases ------------------------------------ */

static long read_num(const char *path)
{
	FILE *f = fopen(path, "re");
	char buf[64], *end;
	long v = -1;

	if (f) {
		if (fgets(buf, sizeof buf, f)) {
			v = strtol(buf, &end, 10);
			if (end == buf)
				v = -1;
		}
		fclose(f);
	}
	return v;
}

static int write_num(const char *path, long v)
{
	FILE *f = fopen(path, "we");
	int ok;

	if (!f)
		return 0;
	ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok;
}

#define FREE_2M "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"
#define NR_HUGE "/proc/sys/vm/nr_hugepages"

/* Enough free 2 MiB pages for the hugetlb runs (each maps huge_faults + 1)?
 * If not, vm.nr_hugepages is raised (root), and *old says what to give
 * back (-1: nothing). */
static int huge_reserve(const struct opts *o, long *old)
{
	long need = o->huge_faults + 1, fr = read_num(FREE_2M), nr;

	*old = -1;
	if (fr >= need)
		return 1;
	if (fr < 0 || (nr = read_num(NR_HUGE)) < 0 || !write_num(NR_HUGE, nr + need - fr))
		return 0;
	*old = nr;
	return read_num(FREE_2M) >= need;
}

/* ---- The results -------------------------------------------------------- */

static void machine_info(struct bench_machine *m)
{
	struct utsname u;
	FILE *f;
	char line[512];
	time_t now = time(NULL);
	struct tm tm;

	memset(m, 0, sizeof *m);
	if (uname(&u) == 0)
		snprintf(m->kernel, sizeof m->kernel, "%s %s %s", u.sysname, u.release, u.machine);
	m->cpus = sysconf(_SC_NPROCESSORS_ONLN);
	strcpy(m->cpu, "unknown");
	if ((f = fopen("/proc/cpuinfo", "r"))) {
		while (fgets(line, sizeof line, f))
			if (strncmp(line, "model name", 10) == 0) {
				char *v = strchr(line, ':');
				if (v) {
					v += 1 + (v[1] == ' ');
					v[strcspn(v, "\n")] = 0;
					snprintf(m->cpu, sizeof m->cpu, "%s", v);
				}
				break;
			}
		fclose(f);
	}
	strftime(m->date, sizeof m->date, "%Y-%m-%d %H:%M UTC", gmtime_r(&now, &tm));
}

static void latency_stats(double *v, size_t n, struct bench_latency *out)
{
	qsort(v, n, sizeof *v, cmp_double);
	out->samples = n;
	out->ns = v;
	out->p50 = percentile(v, n, 0.50) / 1000;
	out->p90 = percentile(v, n, 0.90) / 1000;
	out->p99 = percentile(v, n, 0.99) / 1000;
	out->max = n ? v[n - 1] / 1000 : NAN;
}

/* The model that the writers read, from what the runs left. */
static void collect(const struct opts *o, struct bench_results *res)
{
	const char *spin = getenv("USERFAULT_SPIN_US");

	res->reps = o->reps;
	res->quick = o->quick;
	res->only = o->only >= 0 ? group_names[o->only] : NULL;
	res->spin_us = spin;
	{
		/* Run with its threads on one CPU (taskset -c N)? */
		cpu_set_t set;
		res->one_cpu = sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) == 1 &&
			       sysconf(_SC_NPROCESSORS_ONLN) > 1;
	}
	res->svg = o->svg;
	res->append = o->append;
	res->ncases = C_N;
	for (int i = 0; i < C_N; i++) {
		const struct bcase *c = &cases[i];
		struct bench_case_result *r = &res->cases[i];
		struct bench_stat s = stats(c->v, c->n);	/* in ns, as the runs */

		r->name = c->name;
		r->label = c->label;
		r->selected = o->only < 0 || (int)c->group == o->only;
		r->err = c->err;
		r->n = c->n;
		for (int k = 0; k < c->n; k++)
			r->runs[k] = c->v[k] / 1000;
		r->us.med = s.med / 1000;
		r->us.min = s.min / 1000;
		r->us.max = s.max / 1000;
		r->is_scale = c->kind == K_SCALE;
		r->scale = c->last_scale;
	}
	res->nratios = NRATIOS;
	for (int i = 0; i < NRATIOS; i++) {
		struct bench_ratio_result *r = &res->ratios[i];
		double v[MAX_REPS];
		int n = ratio_values(&ratios[i], v);

		r->key = ratios[i].key;
		r->label = ratios[i].label;
		r->target = ratios[i].target;
		r->n = n;
		r->stat = stats(v, n);
	}
	latency_stats(lat_k, nlat_k, &res->latency[BENCH_KERNEL]);
	latency_stats(lat_e, nlat_e, &res->latency[BENCH_EMULATED]);
	res->installs = o->installs;
	for (int t = 0; t < BENCH_NTARGETS; t++) {
		res->installs_64g[t].ran = !inst_err[t];
		res->installs_64g[t].r = inst[t];
	}
}

/* ---- The command -------------------------------------------------------- */

enum {
	OPT_QUICK = CLI_OPT_COMMAND, OPT_APPEND, OPT_REPS, OPT_ONLY, OPT_JSON, OPT_MARKDOWN, OPT_SVG,
};

static const struct option bench_options[] = {
	CLI_LONGOPT_HELP,
	CLI_LONGOPT_BACKEND,	/* only to say that bench takes none */
	{ "quick", no_argument, NULL, OPT_QUICK },
	{ "append", no_argument, NULL, OPT_APPEND },
	{ "reps", required_argument, NULL, OPT_REPS },
	{ "only", required_argument, NULL, OPT_ONLY },
	{ "json", required_argument, NULL, OPT_JSON },
	{ "markdown", required_argument, NULL, OPT_MARKDOWN },
	{ "svg", required_argument, NULL, OPT_SVG },
	CLI_LONGOPT_END,
};

/* The arguments: CLI_OK after --help, CLI_USAGE for a bad command line (the
 * error printed), or -1 to go on. */
static int parse(int argc, char **argv, struct cli_global *global, struct opts *o)
{
	long v;
	int c;

	o->reps = 0;
	o->only = -1;
	/* '-': in order, the other arguments returned as 1 (there are none). */
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, "-:h", bench_options, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(bench_help, stdout);
			return CLI_OK;
		case CLI_OPT_BACKEND:
			global->backend = optarg;	/* refused below */
			break;
		case OPT_QUICK:
			o->quick = 1;
			break;
		case OPT_APPEND:
			o->append = 1;
			break;
		case OPT_JSON:
			o->json = optarg;
			break;
		case OPT_MARKDOWN:
			o->markdown = optarg;
			break;
		case OPT_SVG:
			o->svg = optarg;
			break;
		case OPT_REPS:
			if (cli_parse_count(optarg, 1, MAX_REPS, &v))
				return cli_usage_error("bench", "--reps needs a count from 1 to %d", MAX_REPS);
			o->reps = (int)v;
			break;
		case OPT_ONLY:
			for (int g = 0; g < G_N; g++)
				if (strcmp(optarg, group_names[g]) == 0)
					o->only = g;
			if (o->only < 0)
				return cli_usage_error("bench", "unknown group '%s'", optarg);
			break;
		case 1:
			return cli_usage_error("bench", "unexpected argument '%s'", optarg);
		case ':':
			switch (optopt) {
			case OPT_REPS:
				return cli_usage_error("bench", "--reps needs a count from 1 to %d", MAX_REPS);
			case OPT_ONLY:
				return cli_usage_error("bench", "--only needs a group");
			case OPT_JSON:
			case OPT_MARKDOWN:
			case OPT_SVG:
				return cli_usage_error("bench", "--%s needs a file name",
						       cli_option_name(bench_options, optopt));
			}
			return cli_option_error("bench", c, argv, bench_options);
		default:
			return cli_option_error("bench", c, argv, bench_options);
		}
	}
	if (optind < argc)	/* after "--" */
		return cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
	if (global->backend)
		return cli_usage_error("bench", "bench runs every back-end: no --backend");
	if (!o->reps)
		o->reps = o->quick ? 3 : 7;
	o->rt_faults = o->quick ? 400 : 2000;
	o->bulk_faults64k = o->quick ? 40 : 200;
	o->bulk_faults2m = o->quick ? 4 : 16;
	o->thr_faults = o->quick ? 400 : 2000;
	o->in_faults = o->quick ? 1000 : 5000;
	o->sc_faults = o->quick ? 300 : 2000;
	o->pass_calls = o->quick ? 2000 : 20000;
	o->wp_pages = o->quick ? 400 : 2000;
	o->installs = o->quick ? 20000 : 200000;
	o->huge_faults = o->quick ? 8 : 32;
	return -1;
}

/* ---- Output files ------------------------------------------------------- */

/* The output files are opened before the run, so that a bad path fails at
 * once and not after it.  They are opened for appending, and emptied only
 * when the results are written: "w" would empty an existing report before
 * a run that may yet be interrupted. */
struct output {
	const char *path;	/* NULL: not asked for */
	FILE *f;
	int append;		/* keep what the file holds */
	int created;		/* the file did not exist: remove it if abandoned */
};

static int output_open(struct output *out)
{
	int fd;

	if (!out->path)
		return 0;
	fd = open(out->path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	out->created = fd >= 0;
	if (fd < 0 && errno == EEXIST)
		fd = open(out->path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0 || !(out->f = fdopen(fd, "a"))) {
		cli_error("bench: cannot write '%s': %s", out->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		if (out->created)
			unlink(out->path);
		return -1;
	}
	return 0;
}

/* Close without writing (another file could not be opened). */
static void output_abandon(struct output *out)
{
	if (!out->f)
		return;
	fclose(out->f);
	out->f = NULL;
	if (out->created)
		unlink(out->path);
}

/* Write the results with writer and close: 0, or -1 after printing why. */
static int output_write(struct output *out, int (*writer)(FILE *, const struct bench_results *),
			const struct bench_results *res)
{
	struct stat st;
	int err = 0;

	if (!out->f)
		return 0;
	/* Empty the file first unless appending (a regular file only: not a
	 * pipe, or a device such as /dev/stdout). */
	if (!out->append && fstat(fileno(out->f), &st) == 0 && S_ISREG(st.st_mode) &&
	    ftruncate(fileno(out->f), 0) < 0) {
		err = errno;
	} else {
		errno = 0;
		if (writer(out->f, res) < 0)
			err = errno ? errno : EIO;
	}
	if (fclose(out->f) != 0 && !err)
		err = errno;
	out->f = NULL;
	if (err) {
		cli_error("bench: cannot write '%s': %s", out->path, strerror(err));
		return -1;
	}
	return 0;
}

int cmd_bench(int argc, char **argv, struct cli_global *global)
{
	static struct bench_results res;	/* large: not on the stack */
	struct opts o = { 0 };
	struct output json = { 0 }, markdown = { 0 }, svg = { 0 };
	FILE *text = stdout;
	int r, failed = 0;
	long huge_old = -1;

	if ((r = parse(argc, argv, global, &o)) >= 0)
		return r;
	if (o.json && strcmp(o.json, "-") == 0)
		text = stderr;	/* stdout carries the JSON alone */
	else
		json.path = o.json;
	markdown.path = o.markdown;
	markdown.append = o.append;
	svg.path = o.svg;
	if (output_open(&json) < 0 || output_open(&markdown) < 0 || output_open(&svg) < 0) {
		output_abandon(&json);
		output_abandon(&markdown);
		return CLI_FAIL;
	}

	machine_info(&res.machine);
	if (o.only < 0 || o.only == G_MEMORY) {
		o.huge_ok = huge_reserve(&o, &huge_old);
		if (!o.huge_ok)
			fprintf(stderr, CLI_NAME " bench: fewer than %ld free 2 MiB huge pages, and vm.nr_hugepages "
				"cannot be raised: the hugetlb cases are skipped\n", o.huge_faults + 1);
	}
	run_all(&o);
	if (huge_old >= 0)
		write_num(NR_HUGE, huge_old);
	collect(&o, &res);
	for (int i = 0; i < C_N; i++)
		if (res.cases[i].selected && res.cases[i].err &&
		    !(cases[i].memory == BM_HUGETLB && !o.huge_ok))
			failed = 1;
	if ((o.only < 0 || o.only == G_SCALE) && (inst_err[0] || inst_err[1]))
		failed = 1;

	bench_write_text(text, &res);
	if (text == stderr)	/* main() reports a failed stdout */
		bench_write_json(stdout, &res);
	if (output_write(&json, bench_write_json, &res) < 0)
		failed = 1;
	if (output_write(&markdown, bench_write_markdown, &res) < 0)
		failed = 1;
	if (output_write(&svg, bench_write_latency_svg, &res) < 0)
		failed = 1;
	free(lat_k);
	free(lat_e);
	return failed ? CLI_FAIL : CLI_OK;
}
