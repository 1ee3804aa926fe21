/* SPDX-License-Identifier: MIT */
/*
 * bench.h - the workloads behind "userfault bench".
 *
 * Each workload runs once per call and reports a cost per fault (or per
 * page) in nanoseconds; cmd-bench.c repeats them, interleaving back-ends
 * within each repetition so that every ratio compares runs made moments
 * apart.  Functions return 0 or a negative errno.
 */
#ifndef USERFAULT_BENCH_H
#define USERFAULT_BENCH_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sched.h>

/* Who serves the faults. */
enum bench_target {
	BT_PLAIN = -1,		/* no uffd: plain first-touch page faults */
	BT_KERNEL = 1,		/* = UF_BACKEND_KERNEL */
	BT_EMULATED = 2,	/* = UF_BACKEND_EMULATED */
};

/* The memory of a round trip's region. */
enum bench_memory {
	BM_ANON,		/* private anonymous */
	BM_SHMEM,		/* MAP_SHARED | MAP_ANONYMOUS */
	BM_HUGETLB,		/* private anonymous 2 MiB huge pages (unit 2 MiB) */
};

/* Cross-thread round trip: faulting threads touch pages of a registered
 * region; handler threads read the messages and resolve them. */
struct rt_params {
	int target;		/* enum bench_target */
	int blocking;		/* handlers block in read() instead of poll() */
	int zeropage;		/* UFFDIO_ZEROPAGE instead of UFFDIO_COPY */
	int write;		/* faulters write the page (else read) */
	size_t unit;		/* bytes resolved per fault (page size up to 2 MiB);
				 * the faulter then reads every page of it */
	int faulters, handlers;
	int memory;		/* enum bench_memory */
	long faults;		/* total faults (units touched) */
	double *lat_ns;		/* optional: latency of each fault, faults entries */
	int samecpu;		/* every thread of the run on the CPU the caller
				 * is on (no idle CPU to wake: the cost of the
				 * work itself, as on a busy machine) */
};
/* *ns: wall time from the start of the faulters to the last one's end,
 * divided by the number of faults. */
int bench_roundtrip(const struct rt_params *p, double *ns);

/* In-thread resolution: one thread touches `faults` pages.
 *   INT_PAGER:  uf_pager_open() on the current back-end;
 *   INT_SIGBUS: UFFD_FEATURE_SIGBUS, the program's own SIGBUS handler does
 *               UFFDIO_COPY (on the kernel back-end: the kernel's own
 *               in-thread mode). */
enum { INT_PAGER, INT_SIGBUS };
int bench_inthread(int target, int how, long faults, double *ns);

/* Sparse faults in a large region (MAP_NORESERVE): `faults` random pages of
 * `size` bytes touched by one thread, served by one handler thread. */
struct scale_result {
	double ns;		/* per fault */
	long maps_region;	/* mappings inside the region afterwards */
	long maps_total;	/* lines of /proc/self/maps afterwards */
	double mem_ratio;	/* (resident + shmem growth) / bytes installed */
	double register_ms;	/* time of UFFDIO_REGISTER */
};
int bench_scale(int target, size_t size, long faults, struct scale_result *out);

/* Direct installs: `installs` random UFFDIO_COPYs into a registered region
 * of `size` bytes, counting mappings at checkpoints. */
struct install_result {
	double ns;		/* per COPY */
	long maps_max;		/* most mappings seen inside the region */
	long maps_total;	/* lines of /proc/self/maps at the end */
	double mem_ratio;	/* (resident + shmem growth) / bytes installed */
};
int bench_installs(int target, size_t size, long installs, struct install_result *out);

/* The kernel back-end's overhead: uf_ioctl() against the raw system call,
 * for UFFDIO_COPY of one page and UFFDIO_WAKE.  ns[0] library COPY, ns[1]
 * raw COPY, ns[2] library WAKE, ns[3] raw WAKE, per call. */
int bench_passthrough(long calls, double ns[4]);

/* Write protection, per page of `pages` (present, protected):
 *   WPB_ROUNDTRIP:   a write, its WP message read by a handler thread, and
 *                    UFFDIO_WRITEPROTECT clearing the page (the wake);
 *   WPB_ASYNC_WRITE: a write to a protected page with UFFD_FEATURE_WP_ASYNC
 *                    (every other page written);
 *   WPB_SCAN:        PAGEMAP_SCAN finding those pages and protecting them
 *                    again (PM_SCAN_WP_MATCHING, 64 regions a call), per page
 *                    found. */
enum { WPB_ROUNDTRIP, WPB_ASYNC_WRITE, WPB_SCAN };
int bench_wp(int target, int how, long pages, double *ns);

/* Other resolutions, per fault of `pages` reads (resolve.c): a missing page
 * of private memory answered with UFFDIO_COPY (RSB_COPY) or UFFDIO_MOVE
 * from another private region (RSB_MOVE); a minor fault on shared memory
 * (a memfd mapped twice, filled through the other mapping) answered with
 * UFFDIO_CONTINUE (RSB_MINOR; -EOPNOTSUPP where the back-end lacks it). */
enum { RSB_COPY, RSB_MOVE, RSB_MINOR };
int bench_resolve(int target, int how, long pages, double *ns);

/* The latency distributions (ns) as an SVG chart into f (plot.c): 0, or -1
 * if a write failed (f is left open). */
int bench_write_svg(FILE *f, const double *kernel, size_t nk, const double *emulated,
		    size_t ne);

/* The steps of a round trip, each alone (steps.c), per repetition:
 *   STEP_SIGNAL           a signal sent to the thread itself (tgkill) and its
 *                         empty handler's return
 *   STEP_SEGV_GUARD       a read of a guard marker: SIGSEGV, a handler that
 *                         removes the marker, the read again (a minor fault)
 *   STEP_GUARD_REMOVE     MADV_GUARD_REMOVE of one page
 *   STEP_POPULATE         MADV_POPULATE_READ of one page of a memfd mapping
 *   STEP_MINOR            the read of that page instead (a minor fault)
 *   STEP_PWRITE           4 KiB written into a memfd at a new offset
 *   STEP_FSTAT            fstat of a pipe (the emulation's identity check)
 *   STEP_SIGMASK          SIGPIPE blocked and unblocked (two system calls)
 *   STEP_FUTEX_PINGPONG   two threads on one CPU handing a futex there and
 *                         back (two switches, four futex calls)
 *   STEP_PIPE_PINGPONG    the same, there through a byte in a pipe (write;
 *                         poll, read), back by futex: the emulation's message
 *                         hand-off
 *   STEP_KERNEL_COPY      UFFDIO_COPY of a page nobody waits for (kernel)
 *   STEP_KERNEL_ZEROPAGE  UFFDIO_ZEROPAGE likewise
 *   STEP_EMU_CALLS        a round trip made of the emulation's system calls
 *                         alone (no library), both threads on one CPU: the
 *                         design's floor on this machine */
enum {
	STEP_SIGNAL, STEP_SEGV_GUARD, STEP_GUARD_REMOVE, STEP_POPULATE, STEP_MINOR, STEP_PWRITE,
	STEP_FSTAT, STEP_SIGMASK, STEP_FUTEX_PINGPONG, STEP_PIPE_PINGPONG, STEP_KERNEL_COPY,
	STEP_KERNEL_ZEROPAGE, STEP_EMU_CALLS,
};
int bench_step(int step, long n, double *ns);

/* A bare system call (getppid), per call, over `calls` calls. */
int bench_syscall(long calls, double *ns);

/* ---- helpers (util.c) ---- */
uint64_t bench_now_ns(void);
/* Pin the calling thread to the CPU it is on (threads it makes from then
 * on inherit the mask), keeping its mask in *old: 0 or -errno.  And undo
 * it: 0 or -errno. */
int bench_pin_here(cpu_set_t *old);
int bench_unpin(const cpu_set_t *old);
/* Lines of /proc/self/maps, and mappings intersecting [start, end). */
long bench_maps_count(uintptr_t start, uintptr_t end, long *total);
/* RssAnon of this process + Shmem of the system (memfd pages, mapped or
 * not), in bytes. */
long long bench_resident_bytes(void);
/* A small fast generator (xorshift). */
uint64_t bench_rand(uint64_t *state);

#endif /* USERFAULT_BENCH_H */
