/* SPDX-License-Identifier: MIT */
/* A thread whose operation raised an event (MADV_DONTNEED: UFFD_EVENT_REMOVE)
 * waits until the message is read: meanwhile it shows as D in /proc (the
 * kernel's killable wait), a signal sent to it is handled only once the
 * wait is over, and COPY, ZEROPAGE, MOVE, POISON, CONTINUE and
 * WRITEPROTECT give EAGAIN (the first five with -EAGAIN in their output
 * field, even on a range they would refuse).  Then reading the message
 * lets the thread go on. */
#include "t.h"

static char *area;
static volatile pid_t g_tid;
static volatile int g_sig, g_done;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	g_sig = 1;
}

static void *remover(void *arg)
{
	(void)arg;
	g_tid = t_gettid();
	if (madvise(area, (size_t)t_ps, MADV_DONTNEED))
		T_BAIL("madvise: %s", t_errname(errno));
	g_done = 1;
	return NULL;
}

/* The State: letter of thread tid ('?' if unknown). */
static char state_of(pid_t tid)
{
	char path[64], line[256], st = '?';
	FILE *f;

	snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "State:", 6))
			st = line[7];
	if (f)
		fclose(f);
	return st;
}

#define OUT_EAGAIN(req, type, field, len) do {					\
		type a_;							\
		memset(&a_, 0, sizeof a_);					\
		a_.field = 1;							\
		CHECK_ERRNO(uf_ioctl(fd, (req), &a_), EAGAIN);			\
		CHECK_EQ(a_.field, -EAGAIN);					\
		(void)(len);							\
	} while (0)

/* Does the emulation wait in a vfork here (USERFAULT_EVENT_WAIT, not under
 * valgrind)?  Otherwise it waits on a futex: S, and signals are handled. */
static int killable(void)
{
	const char *v = getenv("USERFAULT_EVENT_WAIT"), *pre = getenv("LD_PRELOAD");

	if (!t_emulated())
		return 1;
	if (v && *v)
		return strcmp(v, "futex") != 0;
	return !(pre && strstr(pre, "vgpreload")) && !getenv("USERFAULT_TEST_VALGRIND");
}

int main(void)
{
	int fd;
	pthread_t th;
	struct uffd_msg m;
	char st = '?';

	t_start(30);
#if defined(__SANITIZE_THREAD__)
	/* (the plain and ASan builds run it) */
	T_SKIP_TEST("a TSan build waits for events on a futex (TSan cannot follow a vfork child that shares "
		    "the thread), and this test trips a CHECK in TSan's own allocator on the kernel back-end too");
#endif
	fd = t_uffd(UFFD_FEATURE_EVENT_REMOVE);
	area = t_map_reg(fd, 4);
	CHECK_OK(t_copy_byte(fd, area, 1, 4, 0));
	t_sigaction(SIGUSR1, on_usr1, 0);
	th = t_thread(remover, NULL);
	while (!g_tid)
		t_msleep(1);
	if (killable()) {
		for (int i = 0; i < 400 && st != 'D'; i++) {
			t_msleep(5);
			st = state_of(g_tid);
		}
		CHECK_EQ(st, 'D');
		CHECK_EQ(g_done, 0);
		/* A signal waits for the end of the wait. */
		CHECK_OK(pthread_kill(th, SIGUSR1));
		t_msleep(50);
		CHECK_EQ(g_sig, 0);
	} else {
		T_NOTE("USERFAULT_EVENT_WAIT=futex (or valgrind): the wait is not killable-only, not checked");
		t_msleep(50);
		g_sig = 1;
	}
	CHECK_EQ(g_done, 0);
	/* Every resolution ioctl: EAGAIN, whatever its range. */
	OUT_EAGAIN(UFFDIO_COPY, struct uffdio_copy, copy, 0);
	OUT_EAGAIN(UFFDIO_ZEROPAGE, struct uffdio_zeropage, zeropage, 0);
	OUT_EAGAIN(UFFDIO_MOVE, struct uffdio_move, move, 0);
	OUT_EAGAIN(UFFDIO_POISON, struct uffdio_poison, updated, 0);
	OUT_EAGAIN(UFFDIO_CONTINUE, struct uffdio_continue, mapped, 0);
	if (t_features() & UFFD_FEATURE_PAGEFAULT_FLAG_WP) {
		struct uffdio_writeprotect wp = { .range = { (uintptr_t)area, (uint64_t)t_ps } };
		CHECK_ERRNO(uf_ioctl(fd, UFFDIO_WRITEPROTECT, &wp), EAGAIN);
	}
	/* Reading the message lets it go on; then the signal is handled. */
	if (T_MSG(fd, &m, 2000)) {
		CHECK_EQ(m.event, UFFD_EVENT_REMOVE);
		CHECK_EQ(m.arg.remove.start, (uintptr_t)area);
	}
	t_join(th);
	CHECK_EQ(g_done, 1);
	CHECK_EQ(g_sig, 1);
	CHECK_OK(t_copy_byte(fd, area, 2, 1, 0));
	uf_close(fd);
	return t_done();
}
