/* SPDX-License-Identifier: MIT */
/*
 * t.h - the small harness shared by the behaviour tests.
 *
 * A test is one program: exit 0 = pass, 1 = fail, 77 = skip.  It calls
 * t_start() first and returns t_done() from main().  Checks keep going after
 * a failure (each prints file:line, expected and got); T_REQUIRE() and the
 * t_* set-up helpers stop the test at once when going on would make no sense
 * (or would hang).  A watchdog thread fails the test if it runs too long, so
 * a lost wake-up shows up as a failure, not as a hang.
 *
 * Tests talk to the library only through its ABI entry points (uf_userfaultfd,
 * uf_open_dev, uf_ioctl, uf_read, uf_close) plus plain system calls on the
 * descriptor; the back-end comes from USERFAULT_BACKEND, set by the runner.
 */
#ifndef USERFAULT_TESTS_T_H
#define USERFAULT_TESTS_T_H

#include <userfault.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define T_SKIP 77

/* Built with TSan (its runtime performs a test's atomics: one that faults
 * on a registered page is taken for the runtime's own crash). */
#if defined(__SANITIZE_THREAD__)
#define T_UNDER_TSAN 1
#else
#define T_UNDER_TSAN 0
#endif

static int t_failures;		/* failed checks (atomic) */
static int t_checks;		/* checks evaluated (atomic) */
static long t_ps;		/* page size */
static int t_backend_cached = -1;

/* ---------------------------------------------------------------------- */
/* Reporting.                                                               */
/* ---------------------------------------------------------------------- */

static inline const char *t_errname(int e)
{
	const char *n = e ? strerrorname_np(e) : "0";
	return n ? n : "E?";
}

__attribute__((format(printf, 3, 4)))
static inline void t_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	char buf[512];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s:%d: FAIL: %s\n", file, line, buf);
	__atomic_add_fetch(&t_failures, 1, __ATOMIC_SEQ_CST);
}

static inline void t_count(void)
{
	__atomic_add_fetch(&t_checks, 1, __ATOMIC_SEQ_CST);
}

/* Stop the test now (a precondition failed). */
#define T_BAIL(...) do {						\
		t_fail(__FILE__, __LINE__, __VA_ARGS__);		\
		fflush(stderr);						\
		_exit(1);						\
	} while (0)

#define CHECK(cond) do {						\
		t_count();						\
		if (!(cond))						\
			t_fail(__FILE__, __LINE__, "%s", #cond);	\
	} while (0)

/* CHECK_EQ(got, expected): integers, printed in decimal and hex. */
#define CHECK_EQ(got, want) do {					\
		long long t_g_ = (long long)(got);			\
		long long t_w_ = (long long)(want);			\
		t_count();						\
		if (t_g_ != t_w_)					\
			t_fail(__FILE__, __LINE__,			\
			       "%s: expected %lld (%#llx), got %lld (%#llx)", \
			       #got, t_w_, (unsigned long long)t_w_,	\
			       t_g_, (unsigned long long)t_g_);		\
	} while (0)

/* The call must fail with -1 and this errno. */
#define CHECK_ERRNO(call, err) do {					\
		long t_r_;						\
		int t_e_;						\
		errno = 0;						\
		t_r_ = (long)(call);					\
		t_e_ = errno;						\
		t_count();						\
		if (t_r_ != -1 || t_e_ != (err))			\
			t_fail(__FILE__, __LINE__,			\
			       "%s: expected -1 %s, got %ld %s",	\
			       #call, t_errname(err), t_r_,		\
			       t_r_ == -1 ? t_errname(t_e_) : "");	\
	} while (0)

/* The call must not return -1. */
#define CHECK_OK(call) do {						\
		long t_r_;						\
		errno = 0;						\
		t_r_ = (long)(call);					\
		t_count();						\
		if (t_r_ == -1)						\
			t_fail(__FILE__, __LINE__,			\
			       "%s: expected success, got -1 %s",	\
			       #call, t_errname(errno));		\
	} while (0)

/* A precondition: stop the test if it does not hold. */
#define T_REQUIRE(cond) do {						\
		t_count();						\
		if (!(cond))						\
			T_BAIL("required: %s (errno %s)", #cond,	\
			       t_errname(errno));			\
	} while (0)

#define T_SKIP_TEST(...) do {						\
		fprintf(stderr, "SKIP: " __VA_ARGS__);			\
		fputc('\n', stderr);					\
		exit(T_SKIP);						\
	} while (0)

/* A sub-check that does not apply to this back-end: say so on stderr. */
#define T_NOTE(...) do {						\
		fprintf(stderr, "note: " __VA_ARGS__);			\
		fputc('\n', stderr);					\
	} while (0)

/* ---------------------------------------------------------------------- */
/* Time, watchdog, threads.                                                 */
/* ---------------------------------------------------------------------- */

static inline int64_t t_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void t_msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static inline pid_t t_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static int t_watchdog_up;	/* the watchdog thread has started */

static inline void *t_watchdog_fn(void *arg)
{
	int secs = (int)(intptr_t)arg;

	__atomic_store_n(&t_watchdog_up, 1, __ATOMIC_SEQ_CST);
	t_msleep(secs * 1000);
	fprintf(stderr, "FAIL: watchdog: test still running after %d s (hang?)\n",
		secs);
	fflush(stderr);
	_exit(1);
	return NULL;
}

static inline pthread_t t_thread(void *(*fn)(void *), void *arg)
{
	pthread_t th;
	int e = pthread_create(&th, NULL, fn, arg);

	if (e)
		T_BAIL("pthread_create: %s", t_errname(e));
	return th;
}

static inline void t_join(pthread_t th)
{
	pthread_join(th, NULL);
}

static inline enum uf_backend t_backend(void)
{
	if (t_backend_cached < 0)
		t_backend_cached = (int)uf_get_backend();
	return (enum uf_backend)t_backend_cached;
}

static inline int t_emulated(void)
{
	return t_backend() == UF_BACKEND_EMULATED;
}

/* First call of every test: page size, back-end, watchdog (a thread, so
 * that tests keep SIGALRM and friends for themselves). */
static inline void t_start(int watchdog_secs)
{
	const char *name;

	setvbuf(stdout, NULL, _IOLBF, 0);
	t_ps = sysconf(_SC_PAGESIZE);
	name = uf_backend_name(t_backend());
	fprintf(stderr, "backend: %s\n", name ? name : "?");
	if (t_backend() != UF_BACKEND_KERNEL && t_backend() != UF_BACKEND_EMULATED)
		T_BAIL("uf_get_backend() = %d, not kernel or emulated", (int)t_backend());
	if (t_backend() == UF_BACKEND_KERNEL) {
		/* The oracle may be missing (container, seccomp, old kernel). */
		int fd = uf_userfaultfd(O_CLOEXEC);

		if (fd < 0 && (errno == ENOSYS || errno == EPERM || errno == EACCES))
			T_SKIP_TEST("the kernel userfaultfd is not available here: %s",
				    t_errname(errno));
		if (fd >= 0)
			uf_close(fd);
	}
	pthread_detach(t_thread(t_watchdog_fn, (void *)(intptr_t)watchdog_secs));
	/* Wait until it runs: a thread that is starting may hold a lock of
	 * the C library's or a sanitizer's allocator (ASan's thread start
	 * allocates), and a test that forks at once would give its child
	 * that lock held for ever: the child's first new thread (the
	 * emulation's watcher) then deadlocks. */
	while (!__atomic_load_n(&t_watchdog_up, __ATOMIC_SEQ_CST))
		t_msleep(1);
}

static inline int t_done(void)
{
	int f = __atomic_load_n(&t_failures, __ATOMIC_SEQ_CST);
	int c = __atomic_load_n(&t_checks, __ATOMIC_SEQ_CST);

	if (c == 0) {
		fprintf(stderr, "FAIL: the test checked nothing\n");
		return 1;
	}
	if (f)
		fprintf(stderr, "%d of %d checks failed\n", f, c);
	return f ? 1 : 0;
}

/* For a forked child: a default-action SIGALRM kills it if it hangs. */
static inline void t_child_watchdog(unsigned secs)
{
	signal(SIGALRM, SIG_DFL);
	alarm(secs);
}

static inline void t_sigaction(int sig, void (*fn)(int, siginfo_t *, void *),
			       int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = fn;
	sa.sa_flags = SA_SIGINFO | flags;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL))
		T_BAIL("sigaction(%d): %s", sig, t_errname(errno));
}

/* One access under temporary SIGSEGV/SIGBUS handlers: the signal it raised
 * (0 if none), with si_code and si_addr in *code and *addr.  Not for use in
 * several threads at once. */
struct t_sigcatch {
	sigjmp_buf jb;
	volatile int sig, code;
	void *volatile addr;
};

static inline struct t_sigcatch *t_sigcatch(void)
{
	static struct t_sigcatch c;

	return &c;
}

static inline void t_sigcatch_fn(int sig, siginfo_t *si, void *uc)
{
	struct t_sigcatch *c = t_sigcatch();

	(void)uc;
	c->sig = sig;
	c->code = si->si_code;
	c->addr = si->si_addr;
	siglongjmp(c->jb, 1);
}

static inline int t_access_signal(volatile char *addr, int write, int *code,
				  void **siaddr)
{
	struct t_sigcatch *c = t_sigcatch();
	struct sigaction sa, old_segv, old_bus;

	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = t_sigcatch_fn;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
	c->sig = 0;
	if (sigsetjmp(c->jb, 1) == 0) {
		if (write)
			*addr = 1;
		else
			(void)*addr;
	}
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	*code = c->code;
	*siaddr = c->addr;
	return c->sig;
}

/* The access must raise SIGSEGV with this si_code at exactly addr. */
#define CHECK_SEGV(addr, write, si_code) do {						int t_c_;								void *t_a_;								int t_s_ = t_access_signal((addr), (write), &t_c_, &t_a_); 		t_count();								if (t_s_ != SIGSEGV || t_c_ != (si_code) ||				    t_a_ != (void *)(addr))							t_fail(__FILE__, __LINE__,						       "%s of %p: expected SIGSEGV code %d, got signal %d code %d at %p", 			       (write) ? "write" : "read", (void *)(addr), 			       (si_code), t_s_, t_s_ ? t_c_ : 0, t_s_ ? t_a_ : NULL); 	} while (0)

/* ---------------------------------------------------------------------- */
/* Memory and descriptors.                                                  */
/* ---------------------------------------------------------------------- */

static inline char *t_map_prot(size_t pages, int prot, int flags)
{
	void *p = mmap(NULL, pages * (size_t)t_ps, prot, flags, -1, 0);

	if (p == MAP_FAILED)
		T_BAIL("mmap %zu pages: %s", pages, t_errname(errno));
	return p;
}

/* Private anonymous read-write pages. */
static inline char *t_map(size_t pages)
{
	return t_map_prot(pages, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS);
}

static inline int t_api_fd(int fd, uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	return uf_ioctl(fd, UFFDIO_API, &api);
}

/* The features this back-end advertises (UFFDIO_API with none asked). */
static inline uint64_t t_features(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd = uf_userfaultfd(O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		T_BAIL("uf_userfaultfd: %s", t_errname(errno));
	if (uf_ioctl(fd, UFFDIO_API, &api))
		T_BAIL("UFFDIO_API: %s", t_errname(errno));
	uf_close(fd);
	return api.features;
}

/* Shared memory in MISSING mode: the emulation has it only with guard
 * markers on shared memory (Linux 6.15+); without, REGISTER on it is
 * EINVAL (checked here), and the test skips. */
static inline void t_need_missing_shmem(void)
{
	if (t_features() & UFFD_FEATURE_MISSING_SHMEM)
		return;
	if (t_emulated()) {
		int fd = uf_userfaultfd(O_CLOEXEC | O_NONBLOCK);
		void *p = mmap(NULL, (size_t)t_ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		struct uffdio_api api = { .api = UFFD_API, .features = 0 };
		struct uffdio_register r = { .range = { (uintptr_t)p, (uint64_t)t_ps },
					     .mode = UFFDIO_REGISTER_MODE_MISSING };
		int ret, e;

		if (fd < 0 || p == MAP_FAILED || uf_ioctl(fd, UFFDIO_API, &api))
			T_BAIL("set-up: %s", t_errname(errno));
		ret = uf_ioctl(fd, UFFDIO_REGISTER, &r);
		e = errno;
		if (ret != -1 || e != EINVAL)
			T_BAIL("REGISTER on shared memory without MISSING_SHMEM: %d %s, expected EINVAL",
			       ret, t_errname(e));
		uf_close(fd);
	}
	T_SKIP_TEST("UFFD_FEATURE_MISSING_SHMEM not advertised%s",
		    t_emulated() ? " (the emulation needs guard markers on shared memory, Linux 6.15, "
				   "and cachestat, Linux 6.5)" : "");
}

/* ---------------------------------------------------------------------- */
/* Huge pages: n free 2 MiB pages, reserved through vm.nr_hugepages (given  */
/* back at exit) where there are fewer, or the test skips.                  */
/* ---------------------------------------------------------------------- */

static long t_huge_old_nr = -1;

static inline long t_read_long(const char *path)
{
	FILE *f = fopen(path, "r");
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

static inline int t_write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (!f)
		return 0;
	ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok;
}

static inline void t_huge_give_back(void)
{
	if (t_huge_old_nr >= 0)
		t_write_long("/proc/sys/vm/nr_hugepages", t_huge_old_nr);
}

static inline void t_need_hugepages(long n)
{
	const char *freep = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";
	long fr = t_read_long(freep), nr;

	if (fr < 0)
		T_SKIP_TEST("no 2 MiB huge pages on this kernel (%s)", freep);
	if (fr >= n)
		return;
	nr = t_read_long("/proc/sys/vm/nr_hugepages");
	if (nr < 0 || !t_write_long("/proc/sys/vm/nr_hugepages", nr + n - fr))
		T_SKIP_TEST("%ld free huge pages, %ld needed, and vm.nr_hugepages cannot be raised: %s",
			    fr, n, t_errname(errno));
	if (t_huge_old_nr < 0) {
		t_huge_old_nr = nr;
		atexit(t_huge_give_back);
	}
	if (t_read_long(freep) < n)
		T_SKIP_TEST("vm.nr_hugepages raised, but only %ld huge pages free (memory)", t_read_long(freep));
}

/* Can this process open its mappings' files through /proc/self/map_files
 * (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE)?  Without, the emulation
 * reaches a shared mapping's file only through a descriptor the program
 * still holds: shared anonymous memory cannot be registered (EINVAL). */
static inline int t_map_files_ok(void)
{
	char path[80];
	void *p = mmap(NULL, (size_t)t_ps, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int fd;

	if (p == MAP_FAILED)
		return 0;
	snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx", (unsigned long)p,
		 (unsigned long)p + (unsigned long)t_ps);
	fd = open(path, O_RDWR | O_CLOEXEC);
	munmap(p, (size_t)t_ps);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* After mmap of a shared memory file (a memfd, hugetlb memfd, tmpfs file)
 * that the test will register: close the program's descriptor, as the
 * kernel needs none, where the emulation can reach the file through
 * /proc/self/map_files.  Where it cannot (an ordinary user: no
 * CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), REGISTER needs a descriptor of
 * the program's still open on the file (README: else EINVAL), so the
 * descriptor is kept, until the test exits. */
static inline void t_close_mapped_file(int fd)
{
	if (fd >= 0 && t_map_files_ok())
		close(fd);
}

/* USERFAULT_SHARED_ANON=kernel, and /proc/self/map_files refused: the
 * emulation cannot reach shared anonymous memory (REGISTER gives EINVAL,
 * README).  By default it can: it makes such memory a memfd of its own. */
static inline int t_shared_anon_unreachable(void)
{
	const char *v = getenv("USERFAULT_SHARED_ANON");

	return t_emulated() && v && !strcmp(v, "kernel") && !t_map_files_ok();
}

/* A userfaultfd with these creation flags, UFFDIO_API done. */
static inline int t_uffd_flags(int flags, uint64_t features)
{
	int fd = uf_userfaultfd(flags);

	if (fd < 0)
		T_BAIL("uf_userfaultfd(%#x): %s", flags, t_errname(errno));
	if (t_api_fd(fd, features))
		T_BAIL("UFFDIO_API features %#" PRIx64 ": %s", features,
		       t_errname(errno));
	return fd;
}

/* Creation flags t_uffd adds (t_as_user: UFFD_USER_MODE_ONLY). */
static int t_uffd_extra;

/* The usual one: O_CLOEXEC | O_NONBLOCK, API done. */
static inline int t_uffd(uint64_t features)
{
	return t_uffd_flags(O_CLOEXEC | O_NONBLOCK | t_uffd_extra, features);
}

/* Run fn in a child process that is an ordinary user (nobody, if the test
 * runs as root), with no capability and /proc/self/map_files refused, as
 * in a container; its uffds have UFFD_USER_MODE_ONLY, which the kernel
 * grants an ordinary user under vm.unprivileged_userfaultfd=0.  Checks
 * that the child's checks passed. */
static inline void t_as_user(const char *what, void (*fn)(void))
{
	pid_t pid = fork();
	int st = 0;

	T_REQUIRE(pid >= 0);
	if (pid == 0) {
		t_child_watchdog(60);
		if (geteuid() == 0 && (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
				       setresuid(65534, 65534, 65534)))
			_exit(40);
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
		t_uffd_extra = UFFD_USER_MODE_ONLY;
		fn();
		_exit(t_done());
	}
	T_REQUIRE(waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		t_fail(__FILE__, __LINE__, "%s as an ordinary user: child %s %d", what,
		       WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	t_count();
}

/* UFFDIO_REGISTER; *ioctls (may be NULL) goes in and comes back as the
 * struct's ioctls field. */
static inline int t_register_mode(int fd, void *addr, size_t len,
				  uint64_t mode, uint64_t *ioctls)
{
	struct uffdio_register r = {
		.range = { (uintptr_t)addr, len }, .mode = mode,
		.ioctls = ioctls ? *ioctls : 0,
	};
	int ret = uf_ioctl(fd, UFFDIO_REGISTER, &r);

	if (ioctls)
		*ioctls = r.ioctls;
	return ret;
}

static inline int t_register(int fd, void *addr, size_t len)
{
	return t_register_mode(fd, addr, len, UFFDIO_REGISTER_MODE_MISSING, NULL);
}

static inline int t_unregister(int fd, void *addr, size_t len)
{
	struct uffdio_range r = { (uintptr_t)addr, len };

	return uf_ioctl(fd, UFFDIO_UNREGISTER, &r);
}

/* Map `pages` private anonymous pages and register them MISSING on fd.
 * (The helpers that wrap one ioctl return its result with errno as it left
 * it; the t_map* / t_uffd* set-up helpers stop the test on failure.) */
static inline char *t_map_reg(int fd, size_t pages)
{
	char *p = t_map(pages);

	if (t_register(fd, p, pages * (size_t)t_ps))
		T_BAIL("UFFDIO_REGISTER %zu pages: %s", pages, t_errname(errno));
	return p;
}

/* UNREGISTER, then munmap: retire a registered range without relying on
 * munmap alone to drop the registration (munmap-remap tests that). */
static inline void t_unmap_reg(int fd, void *p, size_t pages)
{
	if (t_unregister(fd, p, pages * (size_t)t_ps))
		T_BAIL("UFFDIO_UNREGISTER %p: %s", p, t_errname(errno));
	munmap(p, pages * (size_t)t_ps);
}

/* UFFDIO_COPY; *out gets .copy (may be NULL). */
static inline int t_copy(int fd, void *dst, const void *src, size_t len,
			 uint64_t mode, int64_t *out)
{
	struct uffdio_copy c = {
		.dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len,
		.mode = mode, .copy = 0x5a5a,
	};
	int ret = uf_ioctl(fd, UFFDIO_COPY, &c);

	if (out)
		*out = c.copy;
	return ret;
}

/* UFFDIO_COPY of `pages` pages filled with `byte`. */
static inline int t_copy_byte(int fd, void *dst, int byte, size_t pages,
			      uint64_t mode)
{
	size_t len = pages * (size_t)t_ps;
	/* NOLINTNEXTLINE(clang-analyzer-optin.portability.UnixAPI): t_ps > 0 */
	char *src = malloc(len);
	int ret, e;

	if (!src)
		T_BAIL("malloc");
	memset(src, byte, len);
	ret = t_copy(fd, dst, src, len, mode, NULL);
	e = errno;
	free(src);
	errno = e;
	return ret;
}

static inline int t_zeropage(int fd, void *dst, size_t len, uint64_t mode,
			     int64_t *out)
{
	struct uffdio_zeropage z = {
		.range = { (uintptr_t)dst, len }, .mode = mode, .zeropage = 0x5a5a,
	};
	int ret = uf_ioctl(fd, UFFDIO_ZEROPAGE, &z);

	if (out)
		*out = z.zeropage;
	return ret;
}

static inline int t_wake(int fd, void *addr, size_t len)
{
	struct uffdio_range r = { (uintptr_t)addr, len };

	return uf_ioctl(fd, UFFDIO_WAKE, &r);
}

/* ---------------------------------------------------------------------- */
/* Messages.                                                                */
/* ---------------------------------------------------------------------- */

/* Wait up to `ms` for one message on an O_NONBLOCK uffd.  1 = got one,
 * 0 = none in time, -1 = read() failed (errno).  Polls in short slices and
 * retries the read, so that it does not depend on poll() being right (poll
 * has its own test). */
static inline int t_read_msg(int fd, struct uffd_msg *m, int ms)
{
	int64_t end = t_now_ms() + ms;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n = uf_read(fd, m, sizeof *m);
		int64_t left;

		if (n == (ssize_t)sizeof *m)
			return 1;
		if (n >= 0) {
			fprintf(stderr, "t_read_msg: read returned %zd\n", n);
			errno = EIO;
			return -1;
		}
		if (errno != EAGAIN)
			return -1;
		left = end - t_now_ms();
		if (left <= 0)
			return 0;
		poll(&p, 1, left < 20 ? (int)left : 20);
	}
}

/* A message must arrive within `ms`: 1 if it did. */
#define T_MSG(fd, m, ms) t_want_msg_(__FILE__, __LINE__, (fd), (m), (ms))
static inline int t_want_msg_(const char *file, int line, int fd,
			      struct uffd_msg *m, int ms)
{
	int r = t_read_msg(fd, m, ms);

	t_count();
	if (r == 1)
		return 1;
	if (r == 0)
		t_fail(file, line, "expected a message within %d ms, got none", ms);
	else
		t_fail(file, line, "expected a message, read failed: %s",
		       t_errname(errno));
	return 0;
}

/* No message may arrive within `ms`. */
#define T_NO_MSG(fd, ms) t_no_msg_(__FILE__, __LINE__, (fd), (ms))
static inline void t_no_msg_(const char *file, int line, int fd, int ms)
{
	struct uffd_msg m;
	int r = t_read_msg(fd, &m, ms);

	t_count();
	if (r == 1)
		t_fail(file, line, "expected no message, got event %#x flags %#llx address %#llx",
		       m.event, (unsigned long long)m.arg.pagefault.flags,
		       (unsigned long long)m.arg.pagefault.address);
	else if (r < 0)
		t_fail(file, line, "expected no message (EAGAIN), read failed: %s",
		       t_errname(errno));
}

/* m must be a page fault at `addr` with these flags (ptid not checked). */
#define CHECK_FAULT(m, addr, flags)					\
	t_check_fault_(__FILE__, __LINE__, (m), (uintptr_t)(addr), (flags))
static inline void t_check_fault_(const char *file, int line,
				  const struct uffd_msg *m, uintptr_t addr,
				  uint64_t flags)
{
	t_count();
	if (m->event != UFFD_EVENT_PAGEFAULT ||
	    m->arg.pagefault.address != addr ||
	    m->arg.pagefault.flags != flags)
		t_fail(file, line,
		       "expected fault event 0x12 address %#lx flags %#llx, got event %#x address %#llx flags %#llx",
		       (unsigned long)addr, (unsigned long long)flags, m->event,
		       (unsigned long long)m->arg.pagefault.address,
		       (unsigned long long)m->arg.pagefault.flags);
}

/* ---------------------------------------------------------------------- */
/* Faulting threads.                                                        */
/* ---------------------------------------------------------------------- */

/* A thread that makes one access: a store of `val`, or a load into `val`
 * (after delay_ms, if set). */
struct t_touch {
	volatile char *addr;
	int write;
	char val;
	int delay_ms;
	pid_t tid;
	int done;
	pthread_t th;
};

static inline void *t_touch_fn(void *arg)
{
	struct t_touch *t = arg;

	__atomic_store_n(&t->tid, t_gettid(), __ATOMIC_SEQ_CST);
	if (t->delay_ms)
		t_msleep(t->delay_ms);
	if (t->write)
		*t->addr = t->val;
	else
		t->val = *t->addr;
	__atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static inline void t_touch_start_delayed(struct t_touch *t, void *addr,
					 int write, char val, int delay_ms)
{
	memset(t, 0, sizeof *t);
	t->addr = addr;
	t->write = write;
	t->val = val;
	t->delay_ms = delay_ms;
	t->th = t_thread(t_touch_fn, t);
}

static inline void t_touch_start(struct t_touch *t, void *addr, int write,
				 char val)
{
	t_touch_start_delayed(t, addr, write, val, 0);
}

/* The toucher's thread id (set before its access). */
static inline pid_t t_touch_tid(struct t_touch *t)
{
	return __atomic_load_n(&t->tid, __ATOMIC_SEQ_CST);
}

/* 1 if the access completed within `ms` (then the thread is joined). */
static inline int t_touch_wait(struct t_touch *t, int ms)
{
	int64_t end = t_now_ms() + ms;

	while (!__atomic_load_n(&t->done, __ATOMIC_SEQ_CST)) {
		if (t_now_ms() >= end)
			return 0;
		t_msleep(1);
	}
	t_join(t->th);
	return 1;
}

/* An access to `addr` must fault: one message (page-masked address, flags
 * for read/write), then COPY a page of `fill` resolves it and the access
 * completes.  Returns 1 if all went as expected. */
#define T_EXPECT_FAULT(fd, addr, write, fill)				\
	t_expect_fault_(__FILE__, __LINE__, (fd), (addr), (write), (fill))
static inline int t_expect_fault_(const char *file, int line, int fd,
				  void *addr, int write, int fill)
{
	uintptr_t page = (uintptr_t)addr & ~(uintptr_t)(t_ps - 1);
	struct t_touch t;
	struct uffd_msg m;
	int ok = 1;

	t_touch_start(&t, addr, write, (char)fill);
	if (!t_want_msg_(file, line, fd, &m, 2000)) {
		/* Unstick the thread so the test can go on. */
		t_zeropage(fd, (void *)page, (size_t)t_ps, 0, NULL);
		t_wake(fd, (void *)page, (size_t)t_ps);
		t_touch_wait(&t, 2000);
		return 0;
	}
	t_check_fault_(file, line, &m, page,
		       write ? UFFD_PAGEFAULT_FLAG_WRITE : 0);
	if (t_copy_byte(fd, (void *)page, fill, 1, 0)) {
		t_fail(file, line, "UFFDIO_COPY to resolve: %s", t_errname(errno));
		ok = 0;
	}
	t_count();
	if (!t_touch_wait(&t, 2000)) {
		t_fail(file, line, "faulting thread did not resume after COPY");
		return 0;
	}
	t_count();
	if (t.val != (char)fill) {
		t_fail(file, line, "access saw %#x, expected %#x",
		       (unsigned char)t.val, (unsigned char)fill);
		ok = 0;
	}
	return ok;
}

/* An access to `addr` must not fault: it completes within a second with no
 * message; a load must see `want`. */
#define T_EXPECT_NO_FAULT(fd, addr, write, want)			\
	t_expect_no_fault_(__FILE__, __LINE__, (fd), (addr), (write), (want))
static inline void t_expect_no_fault_(const char *file, int line, int fd,
				      void *addr, int write, int want)
{
	uintptr_t page = (uintptr_t)addr & ~(uintptr_t)(t_ps - 1);
	struct t_touch t;

	t_touch_start(&t, addr, write, (char)want);
	t_count();
	if (!t_touch_wait(&t, 1000)) {
		t_fail(file, line, "access to %p blocked (expected no fault)", addr);
		t_zeropage(fd, (void *)page, (size_t)t_ps, 0, NULL);
		t_wake(fd, (void *)page, (size_t)t_ps);
		t_touch_wait(&t, 2000);
		return;
	}
	if (t.val != (char)want)
		t_fail(file, line, "access to %p saw %#x, expected %#x", addr,
		       (unsigned char)t.val, (unsigned char)want);
	t_no_msg_(file, line, fd, 0);
}

/* UFFDIO_WRITEPROTECT of [addr, addr+len) with mode. */
static inline int t_wprotect(int fd, void *addr, size_t len, uint64_t mode)
{
	struct uffdio_writeprotect w = { { (uintptr_t)addr, len }, mode };

	return uf_ioctl(fd, UFFDIO_WRITEPROTECT, &w);
}

/* A write of val to addr by another thread faults: within ms a message
 * with `flags` for the unit (a page, or a huge page) holding it, and the
 * writer waits.  Then the fault is answered: a WP fault by clearing the
 * unit's protection (with a wake), a MISSING one by a COPY of the unit
 * filled with 0x77; and the write lands. */
#define T_EXPECT_WRITE_FAULT(fd, addr, val, flags, unit, ms) \
	t_expect_write_fault_(__FILE__, __LINE__, (fd), (addr), (val), (flags), (unit), (ms))
static inline void t_expect_write_fault_(const char *file, int line, int fd, char *addr, char val,
					 uint64_t flags, size_t unit, int ms)
{
	struct t_touch t;
	struct uffd_msg m;
	char *start = (char *)((uintptr_t)addr & ~(uintptr_t)(unit - 1));

	t_touch_start(&t, addr, 1, val);
	if (t_want_msg_(file, line, fd, &m, ms))
		t_check_fault_(file, line, &m, (uintptr_t)start, flags);
	t_msleep(20);
	CHECK(!__atomic_load_n(&t.done, __ATOMIC_SEQ_CST));	/* still waiting */
	if (flags & UFFD_PAGEFAULT_FLAG_WP) {
		CHECK_OK(t_wprotect(fd, start, unit, 0));
	} else {
		char *src = malloc(unit);
		if (!src)
			T_BAIL("malloc");
		memset(src, 0x77, unit);
		CHECK_OK(t_copy(fd, start, src, unit, 0, NULL));
		free(src);
	}
	CHECK(t_touch_wait(&t, ms));
	CHECK_EQ(*addr, val);
}

/* ---------------------------------------------------------------------- */
/* A resolver thread: reads messages and resolves each one, with ZEROPAGE,  */
/* or (copy = 1) with COPY of a page whose every 64-bit word is the page's  */
/* address; EEXIST (already there: a stale message) is answered with WAKE.  */
/* Counts the messages and the failed resolutions.                          */
/* ---------------------------------------------------------------------- */

struct t_handler {
	int fd;
	int copy;
	int stop;
	long msgs;
	long errors;
	pthread_t th;
};

static inline void t_handler_resolve(struct t_handler *h, uintptr_t a,
				     uint64_t *buf)
{
	int r;

	if (h->copy) {
		for (size_t w = 0; w < (size_t)t_ps / sizeof *buf; w++)
			buf[w] = a;
		r = t_copy(h->fd, (void *)a, buf, (size_t)t_ps, 0, NULL);
	} else {
		r = t_zeropage(h->fd, (void *)a, (size_t)t_ps, 0, NULL);
	}
	if (r && errno == EEXIST)
		r = t_wake(h->fd, (void *)a, (size_t)t_ps);
	if (r)
		__atomic_add_fetch(&h->errors, 1, __ATOMIC_SEQ_CST);
}

static inline void *t_handler_fn(void *arg)
{
	struct t_handler *h = arg;
	struct uffd_msg m[16];
	uint64_t *buf = malloc((size_t)t_ps);

	if (!buf)
		T_BAIL("malloc");
	while (!__atomic_load_n(&h->stop, __ATOMIC_SEQ_CST)) {
		struct pollfd p = { .fd = h->fd, .events = POLLIN };
		ssize_t n;

		poll(&p, 1, 20);
		n = uf_read(h->fd, m, sizeof m);
		for (ssize_t i = 0; i < n / (ssize_t)sizeof m[0]; i++) {
			__atomic_add_fetch(&h->msgs, 1, __ATOMIC_SEQ_CST);
			t_handler_resolve(h, m[i].arg.pagefault.address &
					  ~(uintptr_t)(t_ps - 1), buf);
		}
	}
	free(buf);
	return NULL;
}

static inline void t_handler_start(struct t_handler *h, int fd, int copy)
{
	memset(h, 0, sizeof *h);
	h->fd = fd;
	h->copy = copy;
	h->th = t_thread(t_handler_fn, h);
}

/* Stop it: the number of messages it handled. */
static inline long t_handler_stop(struct t_handler *h)
{
	__atomic_store_n(&h->stop, 1, __ATOMIC_SEQ_CST);
	t_join(h->th);
	return h->msgs;
}

/* Wait (up to ms) until *flag becomes nonzero: 1 if it did. */
static inline int t_wait_flag(const int *flag, int ms)
{
	int64_t end = t_now_ms() + ms;

	while (!__atomic_load_n(flag, __ATOMIC_SEQ_CST)) {
		if (t_now_ms() >= end)
			return 0;
		t_msleep(1);
	}
	return 1;
}

/* Pass descriptor fd over the unix socket sock (SCM_RIGHTS, one byte). */
static inline void t_send_fd(int sock, int fd)
{
	char byte = 'u';
	struct iovec iov = { &byte, 1 };
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof u.buf,
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	memset(&u, 0, sizeof u);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	T_REQUIRE(sendmsg(sock, &mh, 0) == 1);
}

/* The descriptor t_send_fd() passed (flags: recvmsg's, MSG_CMSG_CLOEXEC). */
static inline int t_recv_fd(int sock, int flags)
{
	char byte;
	struct iovec iov = { &byte, 1 };
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof u.buf,
	};
	struct cmsghdr *c;
	int fd = -1;

	T_REQUIRE(recvmsg(sock, &mh, flags) == 1);
	c = CMSG_FIRSTHDR(&mh);
	T_REQUIRE(c && c->cmsg_type == SCM_RIGHTS);
	memcpy(&fd, CMSG_DATA(c), sizeof fd);
	return fd;
}

#endif /* USERFAULT_TESTS_T_H */
