/* SPDX-License-Identifier: MIT */
/*
 * uffd-diff - differential fuzzing of the two back-ends.
 *
 * The input is a small program of userfaultfd operations (the encoding is
 * in fuzz/README.md).  Each operation runs first on the kernel back-end,
 * then on the emulated back-end, each against a region of its own mapped
 * fresh for every program at a fixed address; the results are normalised
 * (addresses become offsets in the region, thread ids become the index of
 * the thread that faulted, documented differences are masked) and compared.
 * Any difference abort()s after printing the program and both results, so
 * that libFuzzer reports it as a crash.
 *
 * Faulting accesses are made by helper threads ("touchers").  After every
 * operation that can wake one, the harness waits until each toucher has
 * either finished or is asleep in its fault again, so that the order of
 * messages is deterministic.  At the end of a program every descriptor is
 * closed (which releases the uffds and wakes every toucher); a toucher that
 * finishes on one side and not on the other is a hang.  Then the regions
 * are compared byte for byte.
 *
 * Built with clang -fsanitize=fuzzer this is a libFuzzer target.  Built with
 * -DUFFD_DIFF_REPLAY it has a main() of its own that replays files and
 * directories of inputs (CI with gcc):  uffd-diff-replay FILE|DIR...
 *
 * Environment: UFFD_DIFF_TRACE=1 prints every operation and both results;
 * UFFD_DIFF_STRICT=1 reports the known differences too (see known_on[]).
 */
#include <userfault.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define PS		4096UL
#define NREG		16		/* read-write pages of a region */
#define NRO		2		/* read-only pages right after them */
#define NALL		(NREG + NRO)
#define NSLOT		8		/* descriptor slots */
#define NTOUCH		8		/* toucher threads per program and side */
#define MAXOPS		48		/* operations per program */
#define HDR		5		/* header bytes: how each page starts */
#define TASK_SIZE_	0x7ffffffff000UL	/* x86-64, 4-level paging */
/* The features compared: the three asked of both sides, and the memory
 * types and write protection the emulation offers here (shared memory
 * needs guard markers). */
static uint64_t emu_features(void)
{
	static uint64_t f;

	if (!f)
		f = UFFD_FEATURE_SIGBUS | UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EXACT_ADDRESS |
		    (uf_emulated_features() & (UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MISSING_HUGETLBFS |
					       UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED |
					       UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_HUGETLBFS_SHMEM |
					       UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_MINOR_HUGETLBFS |
					       UFFD_FEATURE_POISON | UFFD_FEATURE_MOVE));
	return f;
}
#define EMU_FEATURES	emu_features()
/* WP mode (and WRITEPROTECT) where the emulation has it: with guard markers. */
#define EMU_WP		(EMU_FEATURES & UFFD_FEATURE_PAGEFAULT_FLAG_WP)
/* MINOR mode on shared memory where the emulation has it: guard markers on
 * shared memory and cachestat. */
#define EMU_MINOR_SHMEM	(EMU_FEATURES & UFFD_FEATURE_MINOR_SHMEM)
#define FEATURE_UNKNOWN	(1ULL << 17)	/* the first bit Linux 6.18 does not know */
#define MODE_UNKNOWN	(1ULL << 3)	/* a register mode bit Linux 6.18 does not know */

enum { KER = 0, EMU = 1 };
static const char *const side_name[2] = { "kernel", "emulated" };
/* Far from the heap, the libraries, the stack and the sanitizers' ranges;
 * nothing else is ever mapped within 1 GiB of them. */
static const uintptr_t side_base[2] = { 0x4a0000000000UL, 0x4b0000000000UL };
#define FIXTURES	0x4c0000000000UL	/* source pages and scratch */

/* ---------------------------------------------------------------------- */
/* Known differences.  Each real difference found by this harness has an   */
/* entry; while it is not fixed, its check is relaxed so that fuzzing can  */
/* go on past it.  UFFD_DIFF_STRICT=1 turns every entry off.  When one is  */
/* fixed, delete its entry: its reproducer in fuzz/corpus/ (diff-Dn-*)     */
/* then checks the fix.                                                     */
/* ---------------------------------------------------------------------- */
enum known_id {
	KD_NONE = 0,
	KD_API_EFAULT,		/* D1: refused UFFDIO_API, struct not writable */
	KD_COPY_SRC_NULL,	/* D2: UFFDIO_COPY from address 0 */
	KD_COPY_WP_ENOENT,	/* D3: COPY_MODE_WP where nothing is registered */
	KD_GENERIC_IOCTL,	/* D4: FIONBIO/FIOCLEX/FIONCLEX through uf_ioctl */
	KD_POLL_UNINIT,		/* D5: poll before UFFDIO_API */
	KD_READ_FAULT,		/* D6: read() whose buffer faults after a message */
	KD_API_AGAIN_FEATURES,	/* D7: a refused second UFFDIO_API changes the features */
	KD_DEV_POLL,		/* D8: poll() on /dev/userfaultfd */
	KD_DEV_OPEN_FLAGS,	/* D9: the open flags of /dev/userfaultfd are ignored */
	KD_NOT_MERGED,		/* D10: COPY/ZEROPAGE across ranges registered apart */
	KD_UNREGISTER_POLL,	/* D11: poll() readable after UNREGISTER took the messages */
	KD_WAKE_DESPITE_EFAULT,	/* D12: COPY/ZEROPAGE wakes though .copy cannot be written */
	KD_REMOTE_WAKE_POLL,	/* D14: poll() readable after another process's COPY woke */
	KD_COUNT
};
static const char *const known_what[KD_COUNT] = {
	"",
	"D1 UFFDIO_API refused with an unwritable struct: kernel EFAULT, emulation EINVAL",
	"D2 UFFDIO_COPY with src 0: kernel EFAULT, emulation installs zeros",
	"D3 UFFDIO_COPY_MODE_WP on an unregistered dst: kernel ENOENT, emulation EINVAL",
	"D4 FIONBIO/FIOCLEX/FIONCLEX via uf_ioctl: kernel 0, emulation EINVAL",
	"D5 poll() before UFFDIO_API: kernel POLLERR, emulation 0",
	"D6 read() into a buffer that faults after the first message",
	"D7 a second UFFDIO_API (refused, EINVAL) changes the features of the emulated uffd",
	"D8 poll() on a /dev/userfaultfd descriptor: kernel POLLIN, emulation 0",
	"D9 /dev/userfaultfd: open flags ignored (O_WRONLY: read EBADF vs EINVAL; O_NONBLOCK not set)",
	"D10 COPY/ZEROPAGE across ranges registered apart (one VMA for the kernel): emulation ENOENT",
	"D11 poll() POLLIN after UNREGISTER woke the threads whose messages were unread",
	"D12 COPY/ZEROPAGE with an unwritable result field: kernel EFAULT and no wake, emulation wakes",
	"D14 poll() POLLIN after a COPY made by another process (a fork child) woke threads whose messages were unread",
};
/* Excused while not fixed: delete the line of a difference once it is. */
static const int known_on[KD_COUNT] = {
	/* D5 cannot be fixed as the emulation is built: the uffd is a pipe's
	 * read end, whose poll reports POLLIN and POLLHUP but never POLLERR,
	 * and poll/select/epoll are not interposed (README, Compatibility:
	 * the same cause as the documented POLLERR of a blocking uffd). */
	[KD_POLL_UNINIT] = 1,
	/* D14: the readiness token stays in the pipe when the owner serves a
	 * COPY for another process (README, Compatibility: "the readiness
	 * after a remote WAKE of unread faults can stay set until the next
	 * read").  Fix: the client drains its pipe before the call and the
	 * owner writes a token back if messages remain. */
	[KD_REMOTE_WAKE_POLL] = 1,
};
/* A fork child's COPY succeeded on the emulated side (D14 may follow). */
static int g_remote_copied;
static long known_hits[KD_COUNT];
static int g_strict, g_trace;
static long g_op_end_ns;		/* when the last operation returned */

static int known(enum known_id id)
{
	if (g_strict || id <= KD_NONE || id >= KD_COUNT || !known_on[id])
		return 0;
	known_hits[id]++;
	return 1;
}

/* ---------------------------------------------------------------------- */
/* Process-wide fixtures.                                                  */
/* ---------------------------------------------------------------------- */

static char *g_src;		/* 16 read-only pattern pages, an unmapped page either side */
static char *g_scr;		/* scratch: [0] rw, [1] unmapped, [2] read-only, [3] unmapped */
static unsigned char *g_rbuf;	/* read buffer */
static uint64_t g_mmin;		/* vm.mmap_min_addr */
static int g_inited;

static long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void nap_us(long us)
{
	struct timespec ts = { 0, us * 1000 };
	nanosleep(&ts, NULL);
}

static int gettid_(void)
{
	return (int)syscall(SYS_gettid);
}

__attribute__((noreturn, format(printf, 1, 2)))
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "uffd-diff: harness error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

/* ---------------------------------------------------------------------- */
/* Touchers: threads that access one byte of a region.                    */
/* ---------------------------------------------------------------------- */

enum { T_RUN = 0, T_OK, T_BUS };		/* toucher->state */
enum { C_NONE = 0, C_OK, C_BUS, C_BLOCKED, C_STUCK };	/* settled class */

struct toucher {
	int used, joined;
	pthread_t th;
	_Atomic int tid;
	_Atomic int state;
	volatile unsigned char *addr;
	int write;
	unsigned char wval;
	unsigned char rval;
	uintptr_t bus_addr;
	int bus_code;
	long done_ns;		/* when it finished */
	sigjmp_buf env;
	/* settling */
	int cls;
	long slices;		/* schedstat time slices when last seen blocked */
};

static __thread struct toucher *tls_toucher;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	struct toucher *t = tls_toucher;

	(void)sig;
	(void)uc;
	if (!t) {
		static const char msg[] = "uffd-diff: SIGBUS outside a toucher\n";
		ssize_t r = write(2, msg, sizeof msg - 1);
		(void)r;
		abort();
	}
	t->bus_addr = (uintptr_t)si->si_addr;
	t->bus_code = si->si_code;
	siglongjmp(t->env, 1);
}

static void *touch_main(void *arg)
{
	struct toucher *t = arg;

	tls_toucher = t;
	atomic_store(&t->tid, gettid_());
	if (sigsetjmp(t->env, 1)) {
		tls_toucher = NULL;
		atomic_store(&t->state, T_BUS);
		return NULL;
	}
	if (t->write)
		*t->addr = t->wval;
	else
		t->rval = *t->addr;
	tls_toucher = NULL;
	t->done_ns = now_ns();
	atomic_store(&t->state, T_OK);
	return NULL;
}

static ssize_t read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return n;
}

static long task_slices(int tid)
{
	char path[64], buf[256];
	long a, b, c;

	snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", tid);
	if (read_small(path, buf, sizeof buf) <= 0 || sscanf(buf, "%ld %ld %ld", &a, &b, &c) != 3)
		return -1;
	return c;
}

/* Is the thread asleep waiting for its fault: in the kernel's
 * handle_userfault(), or (emulation) on a futex, and not scheduled while we
 * looked?  Its time slices (schedstat) go in *slices.  A sleep of another
 * kind (a lock on the way back from a wake-up, 'D') is not a wait. */
static int task_waits(int tid, long *slices)
{
	char path[64], buf[512], wchan[64];
	long before, after;
	char *p;

	before = task_slices(tid);
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
	if (read_small(path, buf, sizeof buf) <= 0 || !(p = strrchr(buf, ')')) || p[1] != ' ' ||
	    p[2] != 'S')
		return 0;
	snprintf(path, sizeof path, "/proc/self/task/%d/wchan", tid);
	if (read_small(path, wchan, sizeof wchan) <= 0)
		return 0;
	if (strcmp(wchan, "handle_userfault") && strncmp(wchan, "futex", 5))
		return 0;
	after = task_slices(tid);
	if (before < 0 || before != after)
		return 0;
	*slices = after;
	return 1;
}

/* Wait until t has finished or sleeps in its fault; set t->cls.  Returns
 * 1 if it was waiting, was woken, and waits again (a new fault message). */
static int settle_one(struct toucher *t, long budget_ns)
{
	long deadline = now_ns() + budget_ns, last = -2;
	int stable = 0, was = t->cls;

	if (!t->used || t->joined)
		return 0;
	for (;;) {
		int st = atomic_load(&t->state);
		int tid = atomic_load(&t->tid);
		long sl;

		if (st == T_OK || st == T_BUS) {
			t->cls = st == T_OK ? C_OK : C_BUS;
			return 0;
		}
		if (tid && task_waits(tid, &sl)) {
			/* Waiting, and not scheduled since it was last seen
			 * waiting: still the same wait. */
			if (t->cls == C_BLOCKED && sl == t->slices)
				return 0;
			if (sl == last) {
				if (++stable >= 3) {
					t->slices = sl;
					t->cls = C_BLOCKED;
					return was == C_BLOCKED;
				}
			} else {
				stable = 1;
			}
			last = sl;
		} else {
			stable = 0;
			last = -2;
		}
		if (now_ns() > deadline) {
			t->cls = C_STUCK;
			return 0;
		}
		nap_us(stable ? 40 : 10);
	}
}

/* ---------------------------------------------------------------------- */
/* The two sides.                                                           */
/* ---------------------------------------------------------------------- */

enum kind { K_EMPTY = 0, K_UFFD, K_DEV, K_PIPE };
static const char *const kind_name[] = { "empty", "uffd", "dev", "pipe" };

struct side {
	int id;
	uintptr_t base;
	int fd[NSLOT];
	enum kind kind[NSLOT];
	struct toucher t[NTOUCH];
	int nt;
};
static struct side S[2];

static void region_map(struct side *s, const uint8_t *hdr)
{
	char *b = (char *)s->base;
	void *p;

	p = mmap(b, NALL * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0);
	if (p != b)
		die("mmap of the %s region at %p: %s", side_name[s->id], (void *)b, strerror(errno));
	madvise(b, NALL * PS, MADV_NOHUGEPAGE);
	for (int pg = 0; pg < NALL; pg++) {
		int how = (hdr[pg / 4] >> (2 * (pg % 4))) & 3;
		volatile char *q = b + pg * PS;
		if (how == 1) {
			(void)q[0];		/* the zero page */
		} else if (how >= 2) {
			for (unsigned i = 0; i < PS; i += 8)
				q[i] = (char)((pg * 31 + i * 7 + how) | 1);
		}
	}
	if (mprotect(b + NREG * PS, NRO * PS, PROT_READ))
		die("mprotect: %s", strerror(errno));
}

/* ---------------------------------------------------------------------- */
/* Decoding.                                                                */
/* ---------------------------------------------------------------------- */

struct rd {
	const uint8_t *p;
	size_t n, i;
};

static uint8_t u8(struct rd *r)
{
	return r->i < r->n ? r->p[r->i++] : 0;
}

/* Opcodes; ops[] (after the operations themselves, below) gives each its
 * name, its number of argument bytes and the function that runs it. */
enum {
	OP_CREATE, OP_OPEN_DEV, OP_IOC_NEW, OP_API, OP_REGISTER, OP_UNREGISTER,
	OP_COPY, OP_ZEROPAGE, OP_WAKE, OP_TOUCH, OP_READ, OP_POLL, OP_CLOSE,
	OP_DUP, OP_FCNTL, OP_IOCTL, OP_MADVISE, OP_PIPE, OP_REMAP, NOPS,
	/* Opcode bytes 247 to 255 (which once wrapped round to 0..8): added
	 * last, so that the rest of the corpus keeps its meaning. */
	OP_FORK = NOPS, NOPS_ALL
};
#define OP_FORK_BYTE 247

struct op {
	int code;
	uint8_t b[8];		/* the raw argument bytes */
};

/* Start of a range: most often a page (and sometimes a sub-page offset) in
 * or around the region, else an address of interest anywhere. */
static uint64_t dec_start(const struct side *s, uint8_t a)
{
	static const uint64_t sub[8] = { 0, 0, 0, 0, 0, 1, 0x800, 0xfff };

	if (a < 0xE0)
		return s->base + (uint64_t)((int64_t)(a % 28) - 5) * PS + sub[a / 28];
	switch (a - 0xE0) {
	case 0: return 0;
	case 1: return PS;
	case 2: return g_mmin >= PS ? g_mmin - PS : 0;
	case 3: return g_mmin;
	case 4: return 0x10000;
	case 5: return TASK_SIZE_ - PS;
	case 6: return TASK_SIZE_;
	case 7: return TASK_SIZE_ + PS;
	case 8: return 1UL << 47;
	case 9: return 1UL << 63;
	case 10: return ~0xfffUL;
	case 11: return ~0UL;
	case 12: return 0x1001;
	case 13: return s->base - 16 * PS;
	case 14: return s->base + 40 * PS;
	case 15: return s->base + (1UL << 39);
	case 16: return s->base + NREG * PS;		/* the read-only pages */
	case 17: return s->base + (NREG - 1) * PS;
	default: return s->base;
	}
}

static uint64_t dec_len(uint64_t start, uint8_t b)
{
	if (b < 0xD0) {
		uint64_t pages = b % 26, tw = b / 26;	/* tw 0..7 */
		uint64_t len = pages * PS;
		if (tw == 5)
			len += 1;
		else if (tw == 6)
			len -= 1;
		else if (tw == 7)
			len += 0x800;
		return len;
	}
	switch ((b - 0xD0) % 16) {
	case 0: return ~0xfffUL;
	case 1: return 1UL << 63;
	case 2: return TASK_SIZE_;
	case 3: return (TASK_SIZE_ - start) & ~0xfffUL;
	case 4: return ((TASK_SIZE_ - start) & ~0xfffUL) + PS;
	case 5: return (0 - start) & ~0xfffUL;
	/* Never reaching anything mapped: from the region, not the other side
	 * (1 TiB away); from the low addresses of interest, not 2 GiB, where
	 * ASan keeps its low shadow (an anonymous mapping REGISTER would take). */
	case 6: return start < (1UL << 32) ? 1UL << 29 : 1UL << 32;
	case 7: return start < (1UL << 32) ? 1UL << 30 : 1UL << 36;
	case 8: return NALL * PS;
	case 9: return (NALL + 1) * PS;
	case 10: return 2 * PS;
	default: return PS;
	}
}

static uint64_t dec_src(uint8_t b)
{
	static const uint64_t sub[11] = { 0, 0, 0, 0, 0, 0, 0, 1, 0x800, 0xfff, 0x10 };

	if (b < 0xC0)
		return (uint64_t)(uintptr_t)g_src + (b % 18) * PS + sub[(b / 18) % 11];
	switch (b - 0xC0) {
	case 0: return 0;
	case 1: return 1;
	case 2: return PS;
	case 3: return g_mmin >= PS ? g_mmin - PS : 0;
	case 4: return g_mmin;
	case 5: return 0x10000;
	case 6: return TASK_SIZE_ - PS;
	case 7: return TASK_SIZE_;
	case 8: return ~0xfffUL;
	case 9: return 1UL << 63;
	case 10: return (uint64_t)(uintptr_t)g_src - PS;		/* unmapped */
	case 11: return (uint64_t)(uintptr_t)g_src + 8 * PS + 0x10;	/* read-only, unaligned */
	case 12: return (uint64_t)(uintptr_t)(g_scr + PS);	/* unmapped */
	case 13: return (uint64_t)(uintptr_t)g_src + 15 * PS + 0x800;
	case 14: return TASK_SIZE_ - 2 * PS;
	default: return (uint64_t)(uintptr_t)g_src;
	}
}

/* Creation flags: valid bits, plus now and then one the kernel refuses. */
static unsigned long dec_flags(uint8_t b)
{
	static const unsigned long bad[8] = { 0, 2, 0x40, 0x400, 0x80000000UL, 0x4000, 4, 0x100 };
	unsigned long f = 0;

	if (b & 1)
		f |= O_CLOEXEC;
	if (b & 2)
		f |= O_NONBLOCK;
	if (b & 4)
		f |= UFFD_USER_MODE_ONLY;
	f |= bad[(b >> 3) & 7];
	return f;
}

/* ---------------------------------------------------------------------- */
/* Results.                                                                 */
/* ---------------------------------------------------------------------- */

struct res {
	long rc;
	int err;
	int skip;		/* not run on this side (see the caller) */
	size_t n;
	unsigned char out[4096 + 64];
	char note[96];
};

static void res_init(struct res *r)
{
	r->rc = 0;
	r->err = 0;
	r->skip = 0;
	r->n = 0;
	r->note[0] = 0;
}

static void res_out(struct res *r, const void *p, size_t n)
{
	if (r->n + n > sizeof r->out)
		die("result overflow");
	memcpy(r->out + r->n, p, n);
	r->n += n;
}

static const char *errname(int e)
{
	const char *n = e ? strerrorname_np(e) : "0";
	return n ? n : "E?";
}

/* ---------------------------------------------------------------------- */
/* Struct arguments, with bad pointers now and then.                       */
/* ---------------------------------------------------------------------- */

enum { P_OK = 0, P_NULL, P_ONE, P_UNMAPPED, P_RDONLY, P_CUT_OUT, P_CUT_IN, P_UNALIGNED };
static const char *const ptr_name[] = { "ok", "NULL", "(void*)1", "unmapped", "read-only",
					"output-cut", "input-cut", "unaligned" };

static int dec_ptr(uint8_t b)
{
	return b < 0xA0 ? P_OK : 1 + (b - 0xA0) % 7;
}

struct argp {
	void *p;
	size_t readable;
};

/* Put the struct (size bytes, its last 8 an output field) where mode says. */
static struct argp arg_put(int mode, const void *content, size_t size)
{
	struct argp a = { NULL, 0 };

	switch (mode) {
	case P_OK:
		a.p = g_scr + 0x100;
		a.readable = size;
		break;
	case P_NULL:
		break;
	case P_ONE:
		a.p = (void *)1;
		break;
	case P_UNMAPPED:
		a.p = g_scr + PS + 0x40;
		break;
	case P_RDONLY:
		a.p = g_scr + 2 * PS + 0x100;
		if (mprotect(g_scr + 2 * PS, PS, PROT_READ | PROT_WRITE))
			die("mprotect: %s", strerror(errno));
		memcpy(a.p, content, size);
		if (mprotect(g_scr + 2 * PS, PS, PROT_READ))
			die("mprotect: %s", strerror(errno));
		a.readable = size;
		return a;
	case P_CUT_OUT:
		a.readable = size > 8 ? size - 8 : size;
		a.p = g_scr + PS - a.readable;
		break;
	case P_CUT_IN:
		a.readable = 8;
		a.p = g_scr + PS - 8;
		break;
	case P_UNALIGNED:
		a.p = g_scr + 0x201;
		a.readable = size;
		break;
	}
	if (a.readable)
		memcpy(a.p, content, a.readable);
	return a;
}

/* The bytes of the struct after the call that can be read. */
static void arg_get(const struct argp *a, void *out, size_t size)
{
	memset(out, 0, size);
	if (a->readable)
		memcpy(out, a->p, a->readable < size ? a->readable : size);
}

/* ---------------------------------------------------------------------- */
/* Executing one operation on one side.                                    */
/* ---------------------------------------------------------------------- */

static int slot_fd(const struct side *s, uint8_t b)
{
	return s->fd[b % NSLOT];
}

static void slot_clear(struct side *s, int i)
{
	if (s->fd[i] >= 0)
		uf_close(s->fd[i]);
	s->fd[i] = -1;
	s->kind[i] = K_EMPTY;
}

static void use_backend(const struct side *s)
{
	int r = uf_set_backend(s->id == KER ? UF_BACKEND_KERNEL : UF_BACKEND_EMULATED);
	if (r < 0)
		die("uf_set_backend: %s", strerror(-r));
}

/* A new uffd from /dev/userfaultfd of this side's back-end. */
static int new_via_dev(const struct side *s, unsigned long flags)
{
	int dev, fd, err;

	use_backend(s);
	dev = uf_open_dev(O_RDWR | O_CLOEXEC);
	if (dev < 0)
		die("uf_open_dev (%s): %s", side_name[s->id], strerror(errno));
	fd = uf_ioctl(dev, USERFAULTFD_IOC_NEW, flags);
	err = errno;
	uf_close(dev);
	errno = err;
	return fd;
}

static uint64_t norm_addr(const struct side *s, uint64_t a)
{
	/* Offsets in the region (up to 1 GiB around it) are comparable;
	 * anything else is compared as is. */
	if (a - (s->base - (1UL << 30)) < (2UL << 30))
		return (a - s->base) ^ (1ULL << 62);
	return a;
}

static uint32_t norm_tid(const struct side *s, uint32_t tid)
{
	for (int i = 0; i < s->nt; i++)
		if (s->t[i].used && (uint32_t)atomic_load(&s->t[i].tid) == tid && tid)
			return 0x80000000u | (uint32_t)i;
	return tid;
}

static void norm_msgs(const struct side *s, unsigned char *buf, size_t n)
{
	for (size_t off = 0; off + sizeof(struct uffd_msg) <= n; off += sizeof(struct uffd_msg)) {
		struct uffd_msg m;
		memcpy(&m, buf + off, sizeof m);
		if (m.event == UFFD_EVENT_PAGEFAULT) {
			m.arg.pagefault.address = norm_addr(s, m.arg.pagefault.address);
			m.arg.pagefault.feat.ptid = norm_tid(s, m.arg.pagefault.feat.ptid);
		}
		memcpy(buf + off, &m, sizeof m);
	}
}

static size_t read_size(uint8_t b)
{
	static const size_t sizes[14] = { 0, 1, 31, 32, 33, 63, 64, 96, 100, 128, 256, 2048, 4096, 8192 };
	return sizes[b % 14];
}

static void run_read(struct side *s, const struct op *o, struct res *r)
{
	int fd = slot_fd(s, o->b[0]);
	size_t count = read_size(o->b[1]), readable;
	unsigned char *buf;
	int mode = o->b[2] < 0xC0 ? 0 : 1 + (o->b[2] - 0xC0) % 6, fl;
	ssize_t n;

	switch (mode) {
	case 0: buf = g_rbuf; readable = 8192; break;
	case 1: buf = NULL; readable = 0; break;
	case 2: buf = (unsigned char *)1; readable = 0; break;
	case 3: buf = (unsigned char *)g_scr + PS - 32; readable = 32; break;
	case 4: buf = (unsigned char *)g_scr + PS - 48; readable = 48; break;
	case 5: buf = (unsigned char *)g_scr + PS - 64; readable = 64; break;
	default: buf = (unsigned char *)g_scr + 2 * PS; readable = 0; break;	/* read-only */
	}
	if (readable)
		memset(buf, 0xcc, readable);
	/* Reads never block: a blocking descriptor is made non-blocking for
	 * the call (both back-ends honour the flag at read time). */
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	n = uf_read(fd, buf, count);
	r->rc = n;
	r->err = n < 0 ? errno : 0;
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl);
	snprintf(r->note, sizeof r->note, "count %zu buf %d", count, mode);
	if (readable) {
		size_t k = readable < count ? readable : count;
		unsigned char tmp[8192];
		if (k > sizeof tmp)
			k = sizeof tmp;
		memcpy(tmp, buf, k);
		if (n > 0)
			norm_msgs(s, tmp, (size_t)n < k ? (size_t)n : k);
		res_out(r, tmp, k < 4096 ? k : 4096);
	}
}

/* WP without guard markers, and MINOR without them on shared memory, are
 * not emulated: the emulation answers as a kernel built without them, which
 * refuses them at the mode check.  The kernel side is given a mode bit it
 * does not know instead, refused at that same check. */
static uint64_t reg_mode(int side, uint64_t mode)
{
	uint64_t nonemu = (EMU_WP ? 0 : UFFDIO_REGISTER_MODE_WP) |
			  (EMU_MINOR_SHMEM ? 0 : UFFDIO_REGISTER_MODE_MINOR);

	if (side == KER && (mode & nonemu))
		return (mode & ~nonemu) | MODE_UNKNOWN;
	return mode;
}

/* Features: the three the emulation offers, others the kernel knows (the
 * emulation refuses most of them as a kernel built without them would: the
 * kernel side gets an unknown bit instead), and bits nobody knows.  The event
 * features, which the emulation now offers too, are never asked: one
 * thread cannot read the event its own munmap or madvise waits for
 * (tests/events.c and tests/remote.c cover them); their slots in the table
 * hold other refused features, so that the corpus keeps its meaning. */
static uint64_t api_features(int side, uint8_t f1, uint8_t f2)
{
	static const uint64_t other[14] = {
		UFFD_FEATURE_PAGEFAULT_FLAG_WP, UFFD_FEATURE_MISSING_SHMEM, UFFD_FEATURE_MINOR_SHMEM,
		UFFD_FEATURE_MOVE, UFFD_FEATURE_MISSING_HUGETLBFS, UFFD_FEATURE_MISSING_SHMEM,
		UFFD_FEATURE_POISON, UFFD_FEATURE_MINOR_HUGETLBFS, UFFD_FEATURE_MINOR_SHMEM,
		UFFD_FEATURE_WP_HUGETLBFS_SHMEM, UFFD_FEATURE_WP_UNPOPULATED, UFFD_FEATURE_POISON,
		UFFD_FEATURE_WP_ASYNC, UFFD_FEATURE_MOVE,
	};
	uint64_t f = 0;

	if (f1 & 1)
		f |= UFFD_FEATURE_SIGBUS;
	if (f1 & 2)
		f |= UFFD_FEATURE_THREAD_ID;
	if (f1 & 4)
		f |= UFFD_FEATURE_EXACT_ADDRESS;
	/* (One the emulation offers, MISSING_SHMEM or MISSING_HUGETLBFS, is
	 * asked of both sides.) */
	if (f1 & 8)
		f |= (other[f2 % 14] & EMU_FEATURES) || side != KER ? other[f2 % 14] : FEATURE_UNKNOWN;
	if (f1 & 16)
		f |= FEATURE_UNKNOWN;
	if (f1 & 32)
		f |= 1ULL << 32;
	if (f1 & 64)
		f |= 1ULL << 63;
	return f;
}

static uint64_t dec_prefill(uint8_t b)
{
	static const uint64_t v[4] = { 0, ~0ULL, 0xa5a5a5a5a5a5a5a5ULL, 0x13c };
	return v[b % 4];
}

/* An address for notes: "R+off" in or near the region, else absolute. */
static const char *fmt_addr(const struct side *s, uint64_t a, char *buf)
{
	int64_t off = (int64_t)(a - s->base);

	if (off > -(1LL << 30) && off < (1LL << 30))
		snprintf(buf, 40, "R%+lld", (long long)off);
	else
		snprintf(buf, 40, "%#llx", (unsigned long long)a);
	return buf;
}

/* A struct after the call, field by field (8 bytes each), as far as it can
 * be read: output fields (bits of outmask) by value, input fields as what
 * changed in them (the inputs themselves differ between the sides: the
 * addresses of the two regions, lengths up to TASK_SIZE, modes). */
static void emit_struct(struct res *r, const void *in, const void *out, size_t size,
			size_t readable, unsigned outmask)
{
	uint64_t f[8], g[8];

	memcpy(f, in, size);
	memcpy(g, out, size);
	for (size_t i = 0; i < size / 8 && (i + 1) * 8 <= readable; i++) {
		uint64_t v = (outmask >> i) & 1 ? g[i] : g[i] ^ f[i];
		res_out(r, &v, sizeof v);
	}
}

static const uint64_t zeropage_modes[6] = { 0, 0, 0, UFFDIO_ZEROPAGE_MODE_DONTWAKE, 2, 1ULL << 63 };
static const uint64_t copy_modes[10] = {
	0, 0, 0, 0, UFFDIO_COPY_MODE_DONTWAKE, UFFDIO_COPY_MODE_DONTWAKE,
	UFFDIO_COPY_MODE_WP, UFFDIO_COPY_MODE_DONTWAKE | UFFDIO_COPY_MODE_WP, 4, 1ULL << 63,
};

static void run_create(struct side *s, const struct op *o, struct res *r)
{
	const uint8_t *b = o->b;
	int i = b[0] % NSLOT, fd;
	unsigned long flags = dec_flags(b[1]);
	slot_clear(s, i);
	if (b[1] & 0x40) {
		if (b[1] & 0x80)
			flags |= 1UL << 32;	/* truncated to int by both */
		fd = new_via_dev(s, flags);
	} else {
		use_backend(s);
		fd = uf_userfaultfd((int)flags);
	}
	r->rc = fd < 0 ? -1 : 0;
	r->err = fd < 0 ? errno : 0;
	snprintf(r->note, sizeof r->note, "flags %#lx%s", flags, b[1] & 0x40 ? " via dev" : "");
	if (fd >= 0) {
		s->fd[i] = fd;
		s->kind[i] = K_UFFD;
	}
}

static void run_open_dev(struct side *s, const struct op *o, struct res *r)
{
	static const int of[4] = { O_RDWR | O_CLOEXEC, O_RDONLY | O_CLOEXEC,
				   O_RDWR | O_NONBLOCK | O_CLOEXEC, O_WRONLY | O_CLOEXEC };
	const uint8_t *b = o->b;
	int i = b[0] % NSLOT, fd;
	slot_clear(s, i);
	use_backend(s);
	fd = uf_open_dev(of[b[1] % 4]);
	r->rc = fd < 0 ? -1 : 0;
	r->err = fd < 0 ? errno : 0;
	if (fd >= 0) {
		s->fd[i] = fd;
		s->kind[i] = K_DEV;
	}
}

static void run_ioc_new(struct side *s, const struct op *o, struct res *r)
{
	const uint8_t *b = o->b;
	int i = b[1] % NSLOT, fd;
	unsigned long flags = dec_flags(b[2]);
	if (b[2] & 0x40)
		flags |= 1UL << 32;
	fd = uf_ioctl(slot_fd(s, b[0]), USERFAULTFD_IOC_NEW, flags);
	r->rc = fd < 0 ? -1 : 0;
	r->err = fd < 0 ? errno : 0;
	snprintf(r->note, sizeof r->note, "flags %#lx", flags);
	if (fd >= 0) {
		if (i == (int)(b[0] % NSLOT))
			i = (i + 1) % NSLOT;
		slot_clear(s, i);
		s->fd[i] = fd;
		s->kind[i] = K_UFFD;
	}
}

static void run_api(struct side *s, const struct op *o, struct res *r)
{
	static const uint64_t apis[8] = { UFFD_API, UFFD_API, UFFD_API, UFFD_API, UFFD_API,
					  0, 0xAB, ~0ULL };
	const uint8_t *b = o->b;
	struct uffdio_api in = { apis[b[1] % 8], api_features(s->id, b[2], b[3]),
				 dec_prefill(b[5]) }, out;
	struct argp a = arg_put(dec_ptr(b[4]), &in, sizeof in);
	uint64_t f[3], g[3];
	r->rc = uf_ioctl(slot_fd(s, b[0]), UFFDIO_API, a.p);
	r->err = r->rc < 0 ? errno : 0;
	arg_get(&a, &out, sizeof out);
	/* The kernel advertises all it has: compare what both offer.
	 * On failure the struct is zeroed or left alone; the features
	 * asked differ between the sides (api_features), so a field
	 * left alone is compared as "unchanged". */
	memcpy(f, &in, sizeof f);
	memcpy(g, &out, sizeof g);
	g[1] &= EMU_FEATURES;
	for (int k = 0; k < 3; k++)
		if (r->rc < 0 && ((uint64_t *)&out)[k] == f[k])
			g[k] = 0x5555555555555555ULL;
	res_out(r, g, a.readable < sizeof g ? a.readable : sizeof g);
	snprintf(r->note, sizeof r->note, "api %#llx features %#llx ptr %s",
		 (unsigned long long)in.api, (unsigned long long)in.features,
		 ptr_name[dec_ptr(b[4])]);
}

static void run_register(struct side *s, const struct op *o, struct res *r)
{
	static const uint64_t modes[11] = {
		UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_MISSING,
		UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_MISSING, 0,
		UFFDIO_REGISTER_MODE_WP, UFFDIO_REGISTER_MODE_MINOR,
		UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
		UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR, MODE_UNKNOWN,
		UFFDIO_REGISTER_MODE_MISSING | (1ULL << 63),
	};
	const uint8_t *b = o->b;
	struct uffdio_register in, out;
	struct argp a;
	char sa[40];
	in.range.start = dec_start(s, b[1]);
	in.range.len = dec_len(in.range.start, b[2]);
	in.mode = reg_mode(s->id, modes[b[3] % 11]);
	in.ioctls = dec_prefill(b[5]);
	snprintf(r->note, sizeof r->note, "start %s len %#llx mode %#llx ptr %s",
		 fmt_addr(s, in.range.start, sa), (unsigned long long)in.range.len,
		 (unsigned long long)in.mode, ptr_name[dec_ptr(b[4])]);
	a = arg_put(dec_ptr(b[4]), &in, sizeof in);
	r->rc = uf_ioctl(slot_fd(s, b[0]), UFFDIO_REGISTER, a.p);
	r->err = r->rc < 0 ? errno : 0;
	arg_get(&a, &out, sizeof out);
	emit_struct(r, &in, &out, sizeof in, a.readable, 1u << 3);
}

static void run_range(struct side *s, const struct op *o, struct res *r)
{
	const uint8_t *b = o->b;
	struct uffdio_range in, out;
	struct argp a;
	char sa[40];
	in.start = dec_start(s, b[1]);
	in.len = dec_len(in.start, b[2]);
	snprintf(r->note, sizeof r->note, "start %s len %#llx ptr %s",
		 fmt_addr(s, in.start, sa), (unsigned long long)in.len, ptr_name[dec_ptr(b[3])]);
	a = arg_put(dec_ptr(b[3]), &in, sizeof in);
	r->rc = uf_ioctl(slot_fd(s, b[0]),
			 o->code == OP_WAKE ? UFFDIO_WAKE : UFFDIO_UNREGISTER, a.p);
	r->err = r->rc < 0 ? errno : 0;
	arg_get(&a, &out, sizeof out);
	emit_struct(r, &in, &out, sizeof in, a.readable, 0);
}

static void run_copy(struct side *s, const struct op *o, struct res *r)
{
	const uint8_t *b = o->b;
	struct uffdio_copy in, out;
	struct argp a;
	char sa[40];
	in.dst = dec_start(s, b[1]);
	in.len = dec_len(in.dst, b[2]);
	in.src = dec_src(b[3]);
	in.mode = copy_modes[b[4] % 10];
	in.copy = (int64_t)dec_prefill(b[6]);
	snprintf(r->note, sizeof r->note, "dst %s len %#llx src sel %#x mode %#llx ptr %s",
		 fmt_addr(s, in.dst, sa), (unsigned long long)in.len, b[3],
		 (unsigned long long)in.mode, ptr_name[dec_ptr(b[5])]);
	a = arg_put(dec_ptr(b[5]), &in, sizeof in);
	r->rc = uf_ioctl(slot_fd(s, b[0]), UFFDIO_COPY, a.p);
	r->err = r->rc < 0 ? errno : 0;
	arg_get(&a, &out, sizeof out);
	emit_struct(r, &in, &out, sizeof in, a.readable, 1u << 4);
}

static void run_zeropage(struct side *s, const struct op *o, struct res *r)
{
	const uint8_t *b = o->b;
	struct uffdio_zeropage in, out;
	struct argp a;
	char sa[40];
	in.range.start = dec_start(s, b[1]);
	in.range.len = dec_len(in.range.start, b[2]);
	in.mode = zeropage_modes[b[3] % 6];
	in.zeropage = (int64_t)dec_prefill(b[5]);
	snprintf(r->note, sizeof r->note, "start %s len %#llx mode %#llx ptr %s",
		 fmt_addr(s, in.range.start, sa), (unsigned long long)in.range.len,
		 (unsigned long long)in.mode, ptr_name[dec_ptr(b[4])]);
	a = arg_put(dec_ptr(b[4]), &in, sizeof in);
	r->rc = uf_ioctl(slot_fd(s, b[0]), UFFDIO_ZEROPAGE, a.p);
	r->err = r->rc < 0 ? errno : 0;
	arg_get(&a, &out, sizeof out);
	emit_struct(r, &in, &out, sizeof in, a.readable, 1u << 3);
}

static void run_poll(struct side *s, const struct op *o, struct res *r)
{
	const uint8_t *b = o->b;
	struct pollfd p = { slot_fd(s, b[0]), POLLIN, 0 };
	int fl = fcntl(p.fd, F_GETFL);
	r->rc = poll(&p, 1, 0);
	r->err = r->rc < 0 ? errno : 0;
	res_out(r, &p.revents, sizeof p.revents);
	/* Poll on a blocking uffd is documented to differ (the kernel
	 * always answers POLLERR): not compared. */
	if (s->kind[b[0] % NSLOT] == K_UFFD && fl >= 0 && !(fl & O_NONBLOCK))
		r->skip = 1;
}

static void run_close(struct side *s, const struct op *o, struct res *r)
{
	const uint8_t *b = o->b;
	int i = b[0] % NSLOT;
	struct uf_emu_stats st;
	r->rc = uf_close(s->fd[i]);
	r->err = r->rc < 0 ? errno : 0;
	if (uf_emu_stats(&st) == 0)
		snprintf(r->note, sizeof r->note, "emulation: %llu bytes registered now",
			 (unsigned long long)st.registered_bytes);
	s->fd[i] = -1;
	s->kind[i] = K_EMPTY;
}

static void run_dup(struct side *s, const struct op *o, struct res *r)
{
	const uint8_t *b = o->b;
	int i = b[1] % NSLOT, from = b[0] % NSLOT, fd;
	if (i == from)
		i = (i + 1) % NSLOT;
	slot_clear(s, i);
	fd = dup(s->fd[from]);
	r->rc = fd < 0 ? -1 : 0;
	r->err = fd < 0 ? errno : 0;
	if (fd >= 0) {
		s->fd[i] = fd;
		s->kind[i] = s->kind[from];
	}
}

static void run_fcntl(struct side *s, const struct op *o, struct res *r)
{
	const uint8_t *b = o->b;
	int i = b[0] % NSLOT, v;
	int fd = s->fd[i];

	switch (b[1] % 6) {
	case 0:
		v = fcntl(fd, F_GETFL);
		r->rc = v < 0 ? v : fcntl(fd, F_SETFL, v | O_NONBLOCK);
		break;
	case 1:
		v = fcntl(fd, F_GETFL);
		r->rc = v < 0 ? v : fcntl(fd, F_SETFL, v & ~O_NONBLOCK);
		break;
	case 2:
		r->rc = fcntl(fd, F_GETFL);
		/* /dev/userfaultfd is a character device on one side and
		 * a pipe on the other: only O_NONBLOCK is comparable. */
		if (r->rc >= 0 && s->kind[i] == K_DEV)
			r->rc &= O_NONBLOCK;
		break;
	case 3:
		r->rc = fcntl(fd, F_GETFD);
		break;
	case 4:
		r->rc = fcntl(fd, F_SETFD, FD_CLOEXEC);
		break;
	default:
		r->rc = fcntl(fd, F_SETFD, 0);
		break;
	}
	r->err = r->rc < 0 ? errno : 0;
	snprintf(r->note, sizeof r->note, "cmd %d", b[1] % 6);
}

static void run_ioctl(struct side *s, const struct op *o, struct res *r)
{
	static const unsigned long cmds[13] = {
		FIONBIO, FIONBIO, FIOCLEX, FIONCLEX, FIONREAD,
		_IOWR(UFFDIO, 0x09, struct uffdio_range), _IO(UFFDIO, _UFFDIO_API),
		_IOWR(UFFDIO, _UFFDIO_COPY, struct uffdio_api),
		UFFDIO_MOVE, UFFDIO_WRITEPROTECT, UFFDIO_CONTINUE, UFFDIO_POISON, TCGETS,
	};
	const uint8_t *b = o->b;
	unsigned k = b[1] % 13;
	int i = b[0] % NSLOT;
	char *arg = g_scr + 0x100;
	memset(arg, 0, 64);
	if (k == 0)
		*(int *)arg = 1;
	r->rc = uf_ioctl(s->fd[i], cmds[k], arg);
	r->err = r->rc < 0 ? errno : 0;
	res_out(r, arg, 64);
	snprintf(r->note, sizeof r->note, "cmd %#lx", cmds[k]);
}

static void run_madvise(struct side *s, const struct op *o, struct res *r)
{
	static const int adv[4] = { MADV_DONTNEED, MADV_DONTNEED, MADV_DONTNEED, MADV_REMOVE };
	const uint8_t *b = o->b;
	int pg = b[0] % NALL, np = 1 + b[1] % 4;
	if (pg + np > NALL)
		np = NALL - pg;
	r->rc = madvise((char *)s->base + pg * PS, (size_t)np * PS, adv[b[2] % 4]);
	r->err = r->rc < 0 ? errno : 0;
	snprintf(r->note, sizeof r->note, "pages %d+%d advice %d", pg, np, adv[b[2] % 4]);
}

/* The program's own calls over (maybe registered) pages: a new
 * mapping in place (munmap then mmap, or MAP_FIXED over it), or
 * mprotect to the protection they have.  Protections stay as
 * they were, so touchers never meet a protection fault. */
static void run_remap(struct side *s, const struct op *o, struct res *r)
{
	static const char *const how[3] = { "munmap+mmap", "mmap fixed", "mprotect" };
	const uint8_t *b = o->b;
	int pg = b[0] % NALL, np = 1 + b[1] % 4, k = b[2] % 3;
	if (pg + np > NALL)
		np = NALL - pg;
	r->rc = 0;
	for (int p0 = pg; p0 < pg + np && r->rc == 0;) {
		int p1 = p0 < NREG && pg + np > NREG ? NREG : pg + np;
		int prot = p0 < NREG ? PROT_READ | PROT_WRITE : PROT_READ;
		char *a = (char *)s->base + p0 * PS;
		size_t len = (size_t)(p1 - p0) * PS;
		if (k == 2) {
			r->rc = mprotect(a, len, prot);
		} else {
			if (k == 0)
				r->rc = munmap(a, len);
			if (r->rc == 0 && mmap(a, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
						  -1, 0) != a)
				r->rc = -1;
			if (r->rc == 0)
				madvise(a, len, MADV_NOHUGEPAGE);
		}
		p0 = p1;
	}
	r->err = r->rc < 0 ? errno : 0;
	snprintf(r->note, sizeof r->note, "pages %d+%d %s", pg, np, how[k]);
}

/* fork().  The child COPYs one page (source page b[2]) to page
 * b[1] through slot b[0], its inherited descriptor, which still
 * acts on this process (and may wake a toucher here); then it
 * reads every page of its own copy of the region (registered
 * pages are unregistered there: missing ones read zero) and
 * reports a sum per page. */
static void run_fork(struct side *s, const struct op *o, struct res *r)
{
	const uint8_t *b = o->b;
	struct { long rc; int err; int pad; int64_t copy; uint32_t sum[NALL]; } rep;
	int pfd[2], st = 0;
	pid_t pid;

	memset(&rep, 0, sizeof rep);
	if (pipe2(pfd, O_CLOEXEC))
		die("pipe2: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		struct uffdio_copy c;
		c.dst = s->base + (b[1] % NALL) * PS;
		c.src = (uintptr_t)g_src + (b[2] % NREG) * PS;
		c.len = PS;
		c.mode = (b[3] & 1) ? UFFDIO_COPY_MODE_DONTWAKE : 0;
		c.copy = 0x5a5a;
		rep.rc = uf_ioctl(slot_fd(s, b[0]), UFFDIO_COPY, &c);
		rep.err = rep.rc < 0 ? errno : 0;
		rep.copy = c.copy;
		for (int i = 0; i < NALL; i++) {
			const volatile unsigned char *pg =
				(const volatile unsigned char *)(s->base + i * PS);
			uint32_t h = 0;
			for (unsigned long k = 0; k < PS; k++)
				h = h * 31 + pg[k];
			rep.sum[i] = h;
		}
		if (write(pfd[1], &rep, sizeof rep) != (ssize_t)sizeof rep)
			_exit(2);
		_exit(0);
	}
	close(pfd[1]);
	{
		/* (libFuzzer's timer signal may interrupt the read.) */
		size_t got = 0;
		while (got < sizeof rep) {
			ssize_t k = read(pfd[0], (char *)&rep + got, sizeof rep - got);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				break;
			got += (size_t)k;
		}
		if (got != sizeof rep)
			rep.rc = -99;
	}
	close(pfd[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	r->rc = rep.rc;
	r->err = rep.err;
	if (s->id == EMU && rep.rc >= 0)
		g_remote_copied = 1;
	res_out(r, &rep.copy, sizeof rep.copy);
	res_out(r, rep.sum, sizeof rep.sum);
	res_out(r, &st, sizeof st);
	snprintf(r->note, sizeof r->note, "child COPY to page %d from %d via slot %d%s",
		 b[1] % (int)NALL, b[2] % (int)NREG, b[0] % NSLOT,
		 (b[3] & 1) ? " DONTWAKE" : "");
}

static void run_pipe(struct side *s, const struct op *o, struct res *r)
{
	const uint8_t *b = o->b;
	int i = b[0] % NSLOT, p[2];

	(void)r;
	slot_clear(s, i);
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC))
		die("pipe2: %s", strerror(errno));
	close(p[1]);
	s->fd[i] = p[0];
	s->kind[i] = K_PIPE;
}

/* The operations, by opcode: name, number of argument bytes (fixed, so that
 * mutations keep the framing), the function that runs it on one side, and
 * whether it can wake a toucher (then the touchers are settled after it).
 * Every operation may, except the QUIET ones: any that puts something in a
 * slot closes what was there, maybe the last descriptor of a uffd.  touch
 * has no function here: it starts a thread on both sides at once
 * (run_touch, below). */
enum { MAY_WAKE = 0, QUIET = 1 };
static const struct op_desc {
	const char *name;
	int nargs;
	void (*run)(struct side *s, const struct op *o, struct res *r);
	int quiet;
} ops[NOPS_ALL] = {
	[OP_CREATE]      = { "create",     2, run_create,    MAY_WAKE },
	[OP_OPEN_DEV]    = { "open_dev",   2, run_open_dev,  MAY_WAKE },
	[OP_IOC_NEW]     = { "ioc_new",    3, run_ioc_new,   MAY_WAKE },
	[OP_API]         = { "api",        6, run_api,       QUIET },
	[OP_REGISTER]    = { "register",   6, run_register,  MAY_WAKE },
	[OP_UNREGISTER]  = { "unregister", 4, run_range,     MAY_WAKE },
	[OP_COPY]        = { "copy",       7, run_copy,      MAY_WAKE },
	[OP_ZEROPAGE]    = { "zeropage",   6, run_zeropage,  MAY_WAKE },
	[OP_WAKE]        = { "wake",       4, run_range,     MAY_WAKE },
	[OP_TOUCH]       = { "touch",      3, NULL,          MAY_WAKE },
	[OP_READ]        = { "read",       3, run_read,      QUIET },
	[OP_POLL]        = { "poll",       1, run_poll,      QUIET },
	[OP_CLOSE]       = { "close",      1, run_close,     MAY_WAKE },
	[OP_DUP]         = { "dup",        2, run_dup,       MAY_WAKE },
	[OP_FCNTL]       = { "fcntl",      2, run_fcntl,     QUIET },
	[OP_IOCTL]       = { "ioctl",      2, run_ioctl,     MAY_WAKE },
	[OP_MADVISE]     = { "madvise",    3, run_madvise,   MAY_WAKE },
	[OP_PIPE]        = { "pipe",       1, run_pipe,      MAY_WAKE },
	[OP_REMAP]       = { "remap",      3, run_remap,     MAY_WAKE },
	[OP_FORK]        = { "fork",       4, run_fork,      MAY_WAKE },
};

static void exec_op(struct side *s, const struct op *o, struct res *r)
{
	res_init(r);
	errno = 0;
	if (ops[o->code].run)
		ops[o->code].run(s, o, r);
}

/* ---------------------------------------------------------------------- */
/* The program.                                                             */
/* ---------------------------------------------------------------------- */

static struct op g_prog[MAXOPS];
static int g_nops;
static const uint8_t *g_input;
static size_t g_input_size;

static void op_print(FILE *f, int i, const struct op *o)
{
	fprintf(f, "  #%-2d %-10s", i, ops[o->code].name);
	for (int k = 0; k < ops[o->code].nargs; k++)
		fprintf(f, " %02x", o->b[k]);
	fprintf(f, "\n");
}

static void res_print(FILE *f, int side, const struct res *r)
{
	fprintf(f, "    %-8s rc %ld errno %s%s%s", side_name[side], r->rc, errname(r->err),
		r->note[0] ? "  (" : "", r->note);
	if (r->note[0])
		fprintf(f, ")");
	if (r->skip)
		fprintf(f, " [not compared]");
	fprintf(f, "\n");
	if (r->n) {
		size_t n = r->n > 128 ? 128 : r->n;
		fprintf(f, "      out:");
		for (size_t i = 0; i < n; i++)
			fprintf(f, "%s%02x", i % 8 ? "" : " ", r->out[i]);
		fprintf(f, r->n > n ? " ...\n" : "\n");
	}
}

static void dump_input(FILE *f)
{
	fprintf(f, "input (%zu bytes):", g_input_size);
	for (size_t i = 0; i < g_input_size; i++)
		fprintf(f, "%s%02x", i % 32 ? " " : "\n  ", g_input[i]);
	fprintf(f, "\nprogram (header");
	for (int i = 0; i < HDR && i < (int)g_input_size; i++)
		fprintf(f, " %02x", g_input[i]);
	fprintf(f, "):\n");
	for (int i = 0; i < g_nops; i++)
		op_print(f, i, &g_prog[i]);
	fprintf(f, "slots now (kernel / emulated):");
	for (int i = 0; i < NSLOT; i++)
		fprintf(f, " %d:%s/%s", i, kind_name[S[KER].kind[i]], kind_name[S[EMU].kind[i]]);
	fprintf(f, "\n");
}

__attribute__((noreturn, format(printf, 1, 2)))
static void difference(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "\n==== uffd-diff: DIFFERENCE between the back-ends: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	dump_input(stderr);
	fflush(stderr);
	abort();
}

/* Has UFFDIO_API succeeded on this kernel uffd?  Its fdinfo says (the
 * features carry UFFD_FEATURE_INITIALIZED, bit 31, once it has): -1 if
 * not, else the features it was given. */
static long long kernel_uffd_features(int fd)
{
	char path[64], buf[512];
	unsigned long long api, features;
	const char *p;
	ssize_t n;
	int f;

	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	if ((f = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(f, buf, sizeof buf - 1);
	close(f);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, "API:\t");
	if (!p || sscanf(p + 5, "%llx:%llx", &api, &features) != 2 || !((features >> 31) & 1))
		return -1;
	return (long long)(features & 0x7fffffffULL);
}

/* How many pieces of mapping [start, end) meets: a piece is a run of
 * adjacent mappings of one file at contiguous offsets (anonymous mappings
 * count one each), so that an emulated area split by protections is one. */
static int maps_pieces(uint64_t start, uint64_t end)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	unsigned long ps_ = 0, pe = 0, poff = 0, pino = 0;
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		unsigned long s, e, off, ino;
		char perm[8], dev[16];
		if (sscanf(line, "%lx-%lx %7s %lx %15s %lu", &s, &e, perm, &off, dev, &ino) != 6)
			continue;
		if (e <= start)
			continue;
		if (s >= end)
			break;
		if (!(n && ino && ino == pino && s == pe && off == poff + (pe - ps_)))
			n++;
		ps_ = s;
		pe = e;
		poff = off;
		pino = ino;
	}
	fclose(f);
	return n;
}

/* Known differences that would make the two sides' states diverge: the
 * operation is not run at all (on either side). */
static enum known_id known_skip(const struct op *o)
{
	static const size_t big = 64;
	const uint8_t *b = o->b;

	switch (o->code) {
	case OP_API: {
		/* D7 changes the state only if the emulation accepts the request
		 * up to the once-only check, with other features than before. */
		uint64_t want = api_features(EMU, b[2], b[3]);
		int ptr = dec_ptr(b[4]);
		long long have;
		if (S[KER].kind[b[0] % NSLOT] == K_UFFD && b[1] % 8 < 5 && !(want & ~EMU_FEATURES) &&
		    (ptr == P_OK || ptr == P_UNALIGNED) &&
		    (have = kernel_uffd_features(S[KER].fd[b[0] % NSLOT])) >= 0 &&
		    ((uint64_t)have & EMU_FEATURES) != want && known(KD_API_AGAIN_FEATURES))
			return KD_API_AGAIN_FEATURES;
		break;
	}
	case OP_COPY:
		if (dec_src(b[3]) == 0 && known(KD_COPY_SRC_NULL))
			return KD_COPY_SRC_NULL;
		/* fall through */
	case OP_ZEROPAGE: {
		uint64_t ks = dec_start(&S[KER], b[1]), es = dec_start(&S[EMU], b[1]);
		int ptr = dec_ptr(o->code == OP_COPY ? b[5] : b[4]);
		uint64_t mode = o->code == OP_COPY ? copy_modes[b[4] % 10] : zeropage_modes[b[3] % 6];
		if ((ptr == P_RDONLY || ptr == P_CUT_OUT) && !(mode & 1) && known(KD_WAKE_DESPITE_EFAULT))
			return KD_WAKE_DESPITE_EFAULT;
		uint64_t kl = dec_len(ks, b[2]), el = dec_len(es, b[2]);
		if (ks - S[KER].base < NALL * PS && kl && kl <= NALL * PS &&
		    maps_pieces(ks, ks + kl) == 1 && maps_pieces(es, es + el) > 1 &&
		    known(KD_NOT_MERGED))
			return KD_NOT_MERGED;
		break;
	}
	case OP_IOCTL: {
		unsigned k = b[1] % 13;
		enum kind kd = S[EMU].kind[b[0] % NSLOT];
		if (k <= 3 && (kd == K_UFFD || kd == K_DEV) && known(KD_GENERIC_IOCTL))
			return KD_GENERIC_IOCTL;
		break;
	}
	case OP_READ:
		if (b[2] >= 0xC0 && read_size(b[1]) >= big && known(KD_READ_FAULT))
			return KD_READ_FAULT;
		break;
	default:
		break;
	}
	return KD_NONE;
}

/* Known differences in a result only. */
static enum known_id known_result(const struct op *o, const struct res *k, const struct res *e)
{
	switch (o->code) {
	case OP_API:
		if (k->rc == -1 && k->err == EFAULT && e->rc == -1 && e->err == EINVAL &&
		    known(KD_API_EFAULT))
			return KD_API_EFAULT;
		break;
	case OP_COPY:
		if ((copy_modes[o->b[4] % 10] & UFFDIO_COPY_MODE_WP) && k->rc == -1 &&
		    k->err == ENOENT && e->rc == -1 && e->err == EINVAL && known(KD_COPY_WP_ENOENT))
			return KD_COPY_WP_ENOENT;
		break;
	case OP_POLL:
		if (k->rc == 1 && k->n == 2 && *(const short *)k->out == POLLERR && e->rc == 0 &&
		    known(KD_POLL_UNINIT))
			return KD_POLL_UNINIT;
		if (S[KER].kind[o->b[0] % NSLOT] == K_DEV && k->rc == 1 && e->rc == 0 &&
		    known(KD_DEV_POLL))
			return KD_DEV_POLL;
		if (k->rc == 0 && e->rc == 1 && e->n == 2 && *(const short *)e->out == POLLIN &&
		    known(KD_UNREGISTER_POLL))
			return KD_UNREGISTER_POLL;
		if (k->rc == 0 && e->rc == 1 && e->n == 2 && *(const short *)e->out == POLLIN &&
		    g_remote_copied && known(KD_REMOTE_WAKE_POLL))
			return KD_REMOTE_WAKE_POLL;
		break;
	case OP_READ:
		if (S[KER].kind[o->b[0] % NSLOT] == K_DEV && k->rc == -1 && k->err == EBADF &&
		    e->rc == -1 && e->err == EINVAL && known(KD_DEV_OPEN_FLAGS))
			return KD_DEV_OPEN_FLAGS;
		break;
	case OP_FCNTL:
		if (S[KER].kind[o->b[0] % NSLOT] == K_DEV && o->b[1] % 6 == 2 && k->rc == O_NONBLOCK &&
		    e->rc == 0 && known(KD_DEV_OPEN_FLAGS))
			return KD_DEV_OPEN_FLAGS;
		break;
	default:
		break;
	}
	return KD_NONE;
}

static void compare(int i, const struct op *o, const struct res *k, const struct res *e)
{
	int same = k->rc == e->rc && (k->rc >= 0 || k->err == e->err) && k->n == e->n &&
		   !memcmp(k->out, e->out, k->n);
	enum known_id kd;

	if (g_trace) {
		op_print(stderr, i, o);
		res_print(stderr, KER, k);
		res_print(stderr, EMU, e);
	}
	if (same || k->skip || e->skip)
		return;
	if ((kd = known_result(o, k, e))) {
		if (g_trace)
			fprintf(stderr, "    known difference: %s\n", known_what[kd]);
		return;
	}
	fprintf(stderr, "\nat operation #%d:\n", i);
	op_print(stderr, i, o);
	res_print(stderr, KER, k);
	res_print(stderr, EMU, e);
	difference("%s: results differ", ops[o->code].name);
}

/* ---- touchers ---- */

static void touch_start(struct side *s, int idx, int pg, unsigned off, int write, unsigned char v)
{
	struct toucher *t = &s->t[idx];

	memset(t, 0, sizeof *t);
	t->used = 1;
	t->addr = (volatile unsigned char *)(s->base + pg * PS + off);
	t->write = write;
	t->wval = v;
	atomic_store(&t->tid, 0);
	atomic_store(&t->state, T_RUN);
	if (pthread_create(&t->th, NULL, touch_main, t))
		die("pthread_create: %s", strerror(errno));
	if (idx + 1 > s->nt)
		s->nt = idx + 1;
}

static const char *cls_name(int c)
{
	static const char *const n[] = { "none", "done", "SIGBUS", "blocked", "stuck (running)" };
	return n[c];
}

static void toucher_print(FILE *f, int side, const struct toucher *t)
{
	int tid = atomic_load(&t->tid);

	if (tid && atomic_load(&t->state) == T_RUN) {
		/* Where it sleeps, for the report. */
		char path[64], wchan[64], sc[160];
		snprintf(path, sizeof path, "/proc/self/task/%d/wchan", tid);
		if (read_small(path, wchan, sizeof wchan) <= 0)
			strcpy(wchan, "?");
		snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
		if (read_small(path, sc, sizeof sc) <= 0)
			strcpy(sc, "?\n");
		fprintf(f, "    %-8s (thread %d: wchan %s, syscall %s", side_name[side], tid, wchan, sc);
		if (!strchr(sc, '\n'))
			fprintf(f, "\n");
	}
	fprintf(f, "    %-8s %s", side_name[side], cls_name(t->cls));
	if (t->cls == C_OK && !t->write)
		fprintf(f, ", read %#x", t->rval);
	if (t->cls == C_BUS)
		fprintf(f, ", si_addr offset %#lx si_code %d",
			(unsigned long)(t->bus_addr - S[side].base), t->bus_code);
	fprintf(f, "\n");
}

/* Settle every toucher of both sides and compare them. */
static void drain_compare(int at);

#define LATE_NS 100000000L	/* 100 ms */
static long g_late[2];		/* wake-ups seen late (tolerated) */

static int toucher_same(const struct toucher *k, const struct toucher *e)
{
	if (k->cls != e->cls)
		return 0;
	if (k->cls == C_OK && !k->write)
		return k->rval == e->rval;
	if (k->cls == C_BUS)
		return k->bus_addr - S[KER].base == e->bus_addr - S[EMU].base &&
		       k->bus_code == e->bus_code;
	return 1;
}

static void settle_compare(int at, long budget_ns)
{
	int n = S[KER].nt > S[EMU].nt ? S[KER].nt : S[EMU].nt;
	int refaults[2] = { 0, 0 };

	for (int i = 0; i < n; i++) {
		struct toucher *k = &S[KER].t[i], *e = &S[EMU].t[i];
		int same;

		refaults[KER] += settle_one(k, budget_ns);
		refaults[EMU] += settle_one(e, budget_ns);
		if (!k->used || k->joined)
			continue;
		same = toucher_same(k, e);
		if (!same && (k->cls == C_BLOCKED || e->cls == C_BLOCKED)) {
			/* A thread woken a moment ago can still look asleep (its
			 * wake-up is on the way to its CPU, which a loaded virtual
			 * machine may not run for a while): the one seen waiting
			 * gets LATE_NS to show it was woken.  A wake-up that never
			 * comes (or comes later still) is reported. */
			for (int sd = 0; sd < 2; sd++) {
				struct toucher *t = &S[sd].t[i];
				long t0 = now_ns();
				if (t->cls != C_BLOCKED)
					continue;
				while (atomic_load(&t->state) == T_RUN && now_ns() - t0 < LATE_NS)
					nap_us(200);
				refaults[sd] += settle_one(t, budget_ns);
				if (t->cls != C_BLOCKED)
					g_late[sd]++;
			}
			same = toucher_same(k, e);
		}
		if (g_trace)
			fprintf(stderr, "    toucher %d: kernel %s, emulated %s\n", i,
				cls_name(k->cls), cls_name(e->cls));
		if (!same || k->cls == C_STUCK) {
			fprintf(stderr, "\nafter operation #%d, toucher %d (page %ld offset %#lx, %s):\n",
				at, i, (long)(((uintptr_t)k->addr - S[KER].base) / PS),
				(unsigned long)(((uintptr_t)k->addr - S[KER].base) % PS),
				k->write ? "write" : "read");
			toucher_print(stderr, KER, k);
			toucher_print(stderr, EMU, e);
			/* A late wake-up or a lost one? */
			for (int sd = 0; sd < 2; sd++) {
				struct toucher *t = &S[sd].t[i];
				long t0 = now_ns(), waited;
				if (t->cls != C_BLOCKED)
					continue;
				while (atomic_load(&t->state) == T_RUN && now_ns() - t0 < 2000000000L)
					nap_us(100);
				waited = (now_ns() - t0) / 1000000;
				if (atomic_load(&t->state) == T_RUN)
					fprintf(stderr, "    %-8s still waiting %ld ms later\n", side_name[sd], waited);
				else
					fprintf(stderr, "    %-8s resumed later by itself: done %ld us after the "
						"operation returned (%ld us after it was seen waiting)\n", side_name[sd],
						(t->done_ns - g_op_end_ns) / 1000, (t->done_ns - t0) / 1000);
			}
			if (same)
				die("a toucher runs on both back-ends for %ld ms", budget_ns / 1000000);
			difference("touching thread %d: %s on the kernel, %s on the emulation", i,
				   cls_name(k->cls), cls_name(e->cls));
		}
	}
	/* Threads woken together that fault again queue their messages in an
	 * order of the scheduler's choosing: read them all now, on both sides,
	 * and compare them as sets. */
	if (refaults[KER] > 1 || refaults[EMU] > 1)
		drain_compare(at);
}

static int cmp_msg(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct uffd_msg));
}

/* Read every message of every uffd slot (the queue of a dup is read by
 * its first slot) and compare them, sorted. */
static void drain_compare(int at)
{
	static unsigned char got[2][64 * 32];

	for (int i = 0; i < NSLOT; i++) {
		size_t n[2] = { 0, 0 };
		long rc[2] = { 0, 0 };
		int err[2] = { 0, 0 };

		if (S[KER].kind[i] != K_UFFD || S[EMU].kind[i] != K_UFFD)
			continue;
		for (int sd = 0; sd < 2; sd++) {
			int fd = S[sd].fd[i], fl = fcntl(fd, F_GETFL);
			if (fl >= 0 && !(fl & O_NONBLOCK))
				fcntl(fd, F_SETFL, fl | O_NONBLOCK);
			for (;;) {
				ssize_t r = uf_read(fd, got[sd] + n[sd], sizeof got[sd] - n[sd]);
				if (r <= 0) {
					rc[sd] = r;
					err[sd] = r < 0 ? errno : 0;
					break;
				}
				n[sd] += (size_t)r;
				if (n[sd] == sizeof got[sd])
					break;
			}
			if (fl >= 0 && !(fl & O_NONBLOCK))
				fcntl(fd, F_SETFL, fl);
			norm_msgs(&S[sd], got[sd], n[sd]);
			qsort(got[sd], n[sd] / 32, 32, cmp_msg);
		}
		if (g_trace)
			fprintf(stderr, "    drained slot %d: kernel %zu bytes (then %s), emulated %zu bytes (then %s)\n",
				i, n[KER], errname(err[KER]), n[EMU], errname(err[EMU]));
		if (n[KER] != n[EMU] || rc[KER] != rc[EMU] || err[KER] != err[EMU] ||
		    memcmp(got[KER], got[EMU], n[KER]))
			difference("after operation #%d, reading all messages of slot %d: kernel %zu bytes "
				   "then %s, emulated %zu bytes then %s (or other messages)", at, i, n[KER],
				   errname(err[KER]), n[EMU], errname(err[EMU]));
	}
}

static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static int g_fds_before;

static void program_begin(const uint8_t *data, size_t size)
{
	uint8_t hdr[HDR] = { 0 };

	memcpy(hdr, data, size < HDR ? size : HDR);
	g_fds_before = fd_count();
	for (int s = 0; s < 2; s++) {
		S[s].id = s;
		S[s].base = side_base[s];
		S[s].nt = 0;
		for (int i = 0; i < NSLOT; i++) {
			S[s].fd[i] = -1;
			S[s].kind[i] = K_EMPTY;
		}
		for (int i = 0; i < NTOUCH; i++)
			S[s].t[i].used = 0;
		region_map(&S[s], hdr);
	}
}

static void program_end(void)
{
	long deadline;
	int fds;

	/* Release every uffd: every toucher must resume. */
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < NSLOT; i++)
			slot_clear(&S[s], i);
	deadline = now_ns() + 5000000000L;
	for (;;) {
		int pending = 0;
		for (int s = 0; s < 2; s++)
			for (int i = 0; i < S[s].nt; i++)
				if (S[s].t[i].used && atomic_load(&S[s].t[i].state) == T_RUN)
					pending++;
		if (!pending || now_ns() > deadline)
			break;
		nap_us(100);
	}
	for (int i = 0; i < S[KER].nt; i++) {
		struct toucher *k = &S[KER].t[i], *e = &S[EMU].t[i];
		int ks = atomic_load(&k->state), es = atomic_load(&e->state);
		if (!k->used)
			continue;
		if (ks == T_RUN || es == T_RUN) {
			fprintf(stderr, "\nafter the release of every uffd, toucher %d:\n", i);
			fprintf(stderr, "    kernel   %s\n    emulated %s\n",
				ks == T_RUN ? "still waiting" : "finished",
				es == T_RUN ? "still waiting" : "finished");
			if (ks == T_RUN && es == T_RUN)
				die("a toucher waits on both back-ends after the release");
			difference("hang: toucher %d %s", i,
				   ks == T_RUN ? "never resumes on the kernel" : "never resumes on the emulation");
		}
	}
	settle_compare(g_nops, 1000000000L);
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < S[s].nt; i++)
			if (S[s].t[i].used && !S[s].t[i].joined) {
				pthread_join(S[s].t[i].th, NULL);
				S[s].t[i].joined = 1;
			}
	/* Every byte of both regions (now unregistered: pages never installed
	 * read as zero on both). */
	for (int pg = 0; pg < NALL; pg++) {
		const unsigned char *k = (const unsigned char *)S[KER].base + pg * PS;
		const unsigned char *e = (const unsigned char *)S[EMU].base + pg * PS;
		if (memcmp(k, e, PS)) {
			unsigned off = 0;
			while (k[off] == e[off])
				off++;
			difference("memory: page %d differs at offset %#x: kernel %#x, emulated %#x", pg,
				   off, k[off], e[off]);
		}
	}
	for (int s = 0; s < 2; s++)
		if (munmap((void *)S[s].base, NALL * PS))
			die("munmap: %s", strerror(errno));
	{
		struct uf_emu_stats st;
		if (uf_emu_stats(&st) == 0 && st.registered_bytes)
			difference("the emulation still has %llu bytes registered after every uffd was closed",
				   (unsigned long long)st.registered_bytes);
	}
	/* Another thread (libFuzzer's, the sanitizers') may hold a descriptor
	 * for a moment: a leak is one that stays. */
	for (int tries = 0; (fds = fd_count()) > g_fds_before && g_fds_before >= 0 && tries < 20; tries++)
		nap_us(5000);
	if (g_fds_before >= 0 && fds > g_fds_before) {
		DIR *d = opendir("/proc/self/fd");
		struct dirent *de;
		while (d && (de = readdir(d))) {
			char path[300], link[256];
			ssize_t n;
			snprintf(path, sizeof path, "/proc/self/fd/%s", de->d_name);
			if (de->d_name[0] != '.' && (n = readlink(path, link, sizeof link - 1)) > 0) {
				link[n] = 0;
				fprintf(stderr, "  fd %s -> %s\n", de->d_name, link);
			}
		}
		if (d)
			closedir(d);
		difference("descriptor leak: %d open before the program, %d after", g_fds_before, fds);
	}
}

static void run_touch(int at, const struct op *o)
{
	static const unsigned offs[8] = { 0, 1, 0x7ff, 0xfff, 0x10, 0x123, 0x800, 0xffe };
	int idx = S[KER].nt;
	int pg = o->b[0] % NALL, write = (o->b[2] & 1) && pg < NREG;
	unsigned off = offs[o->b[1] % 8];
	volatile unsigned char *addr = (volatile unsigned char *)(S[KER].base + pg * PS + off);

	if (idx >= NTOUCH)
		return;
	/* Two touchers waiting for one byte, one of them to write it, would
	 * race once woken together: the outcome would not be the back-end's.
	 * Such a touch is not made (on either side). */
	for (int i = 0; i < S[KER].nt; i++) {
		const struct toucher *t = &S[KER].t[i];
		if (t->used && t->cls == C_BLOCKED && t->addr == addr && (t->write || write)) {
			if (g_trace) {
				op_print(stderr, at, o);
				fprintf(stderr, "    not made: toucher %d waits to %s that byte\n", i,
					t->write ? "write" : "read");
			}
			return;
		}
	}
	for (int s = 0; s < 2; s++)
		touch_start(&S[s], idx, pg, off, write, (unsigned char)(o->b[2] | 1));
	if (g_trace)
		op_print(stderr, at, o);
	settle_compare(at, 2000000000L);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rd r = { data, size, HDR };
	static struct res rk, re;

	if (!g_inited)
		LLVMFuzzerInitialize(NULL, NULL);
	g_input = data;
	g_input_size = size;
	g_nops = 0;
	g_remote_copied = 0;
	while (r.i < r.n && g_nops < MAXOPS) {
		struct op *o = &g_prog[g_nops++];
		uint8_t c = u8(&r);
		o->code = c >= OP_FORK_BYTE ? OP_FORK : c % NOPS;
		memset(o->b, 0, sizeof o->b);
		for (int k = 0; k < ops[o->code].nargs; k++)
			o->b[k] = u8(&r);
	}
	program_begin(data, size);
	for (int i = 0; i < g_nops; i++) {
		const struct op *o = &g_prog[i];

		enum known_id kd;

		if (o->code == OP_TOUCH) {
			run_touch(i, o);
			continue;
		}
		if ((kd = known_skip(o))) {
			if (g_trace) {
				op_print(stderr, i, o);
				fprintf(stderr, "    not run: known difference %s\n", known_what[kd]);
			}
			continue;
		}
		exec_op(&S[KER], o, &rk);
		exec_op(&S[EMU], o, &re);
		g_op_end_ns = now_ns();
		compare(i, o, &rk, &re);
		if (!ops[o->code].quiet)
			settle_compare(i, 2000000000L);
	}
	program_end();
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sigaction sa;
	const char *v;
	FILE *f;
	char *p;
	int fd;

	(void)argc;
	(void)argv;
	if (g_inited)
		return 0;
	g_inited = 1;
	v = getenv("UFFD_DIFF_TRACE");
	g_trace = v && *v && *v != '0';
	v = getenv("UFFD_DIFF_STRICT");
	g_strict = v && *v && *v != '0';
	g_mmin = PS;
	if ((f = fopen("/proc/sys/vm/mmap_min_addr", "re"))) {
		unsigned long x;
		if (fscanf(f, "%lu", &x) == 1)
			g_mmin = x;
		fclose(f);
	}
	/* Source pages: a pattern, read-only, an unmapped page either side;
	 * then scratch for struct arguments: rw, unmapped, read-only,
	 * unmapped.  At fixed addresses too: the sanitizers' shadow of the
	 * unmapped pages there is clean, so that a bad pointer handed on to a
	 * system call (as the emulation does with pwrite) is the kernel's to
	 * refuse, not an ASan report. */
	p = mmap((void *)FIXTURES, (NREG + 2) * PS, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p != (void *)FIXTURES)
		die("mmap at %#lx: %s", FIXTURES, strerror(errno));
	munmap(p, PS);
	munmap(p + (NREG + 1) * PS, PS);
	g_src = p + PS;
	for (unsigned long i = 0; i < NREG * PS; i++)
		g_src[i] = (char)(i * 13 + (i >> 12) * 101 + 0x5a);
	mprotect(g_src, NREG * PS, PROT_READ);
	p = mmap((void *)(FIXTURES + (1UL << 20)), 4 * PS, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p != (void *)(FIXTURES + (1UL << 20)))
		die("mmap: %s", strerror(errno));
	munmap(p + PS, PS);
	munmap(p + 3 * PS, PS);
	mprotect(p + 2 * PS, PS, PROT_READ);
	g_scr = p;
	g_rbuf = malloc(8192);
	if (!g_rbuf)
		die("malloc");
	/* SIGBUS (UFFD_FEATURE_SIGBUS) ends a toucher. */
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL))
		die("sigaction: %s", strerror(errno));
	/* Make the emulation's lasting resources (its watcher thread, its
	 * epoll descriptor) exist before the first program counts descriptors. */
	if (uf_set_backend(UF_BACKEND_EMULATED) < 0)
		die("the emulated back-end does not work here");
	fd = uf_userfaultfd(O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		die("uf_userfaultfd (emulated): %s", strerror(errno));
	uf_close(fd);
	uf_set_backend(UF_BACKEND_KERNEL);
	fd = uf_userfaultfd(O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		die("uf_userfaultfd (kernel): %s: the kernel is the oracle", strerror(errno));
	uf_close(fd);
	return 0;
}

#ifdef UFFD_DIFF_REPLAY
/* ---------------------------------------------------------------------- */
/* Replay: run files (or every file of directories) as inputs.             */
/* ---------------------------------------------------------------------- */

static int g_replayed;

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	static uint8_t buf[1 << 16];
	size_t n;

	if (!f) {
		fprintf(stderr, "uffd-diff-replay: %s: %s\n", path, strerror(errno));
		return 1;
	}
	n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	if (g_trace)
		fprintf(stderr, "== %s\n", path);
	alarm(60);		/* a hang of the main thread kills the run */
	LLVMFuzzerTestOneInput(buf, n);
	alarm(0);
	g_replayed++;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_path(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int bad = 0;

	if (stat(path, &st)) {
		fprintf(stderr, "uffd-diff-replay: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path);
	if (!(d = opendir(path)))
		return 1;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			names = realloc(names, cap * sizeof *names);
			if (!names)
				die("realloc");
		}
		if (asprintf(&names[n], "%s/%s", path, de->d_name) < 0)
			die("asprintf");
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof *names, cmp_names);
	for (size_t i = 0; i < n; i++) {
		bad |= replay_path(names[i]);
		free(names[i]);
	}
	free(names);
	return bad;
}

int main(int argc, char **argv)
{
	int bad = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n"
			"Replays uffd-diff inputs on the kernel and the emulated back-ends;\n"
			"aborts at the first difference.\n", argv[0]);
		return 2;
	}
	LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++)
		bad |= replay_path(argv[i]);
	printf("uffd-diff-replay: %d inputs, no difference\n", g_replayed);
	if (g_late[KER] || g_late[EMU])
		printf("  wake-ups seen late (under %ld ms, tolerated): kernel %ld, emulated %ld\n",
		       LATE_NS / 1000000, g_late[KER], g_late[EMU]);
	for (int i = 1; i < KD_COUNT; i++)
		if (known_hits[i])
			printf("  known difference met %ld times: %s\n", known_hits[i], known_what[i]);
	return bad;
}
#endif
