/* SPDX-License-Identifier: MIT */
/* Non-cooperative events REMOVE, UNMAP and REMAP (UFFD-SPEC section 12),
 * with the exact message contents the kernel sends: the thread that made
 * the change waits until the event is read, COPY and ZEROPAGE give EAGAIN
 * meanwhile, faults are read before events, and release frees the waiter.
 * Each memory call runs on its own thread (the caller blocks). */
#include "t.h"

struct op {
	int kind;		/* OP_* */
	char *addr, *addr2;
	size_t len, len2;
	int flags;
	long ret;
	int err;
	int done;
	pthread_t th;
};
enum { OP_DONTNEED, OP_FREE, OP_MUNMAP, OP_MAPFIXED, OP_MREMAP };

static void *op_fn(void *arg)
{
	struct op *o = arg;
	long r = 0;

	switch (o->kind) {
	case OP_DONTNEED:
		r = madvise(o->addr, o->len, MADV_DONTNEED);
		break;
	case OP_FREE:
		r = madvise(o->addr, o->len, MADV_FREE);
		break;
	case OP_MUNMAP:
		r = munmap(o->addr, o->len);
		break;
	case OP_MAPFIXED:
		r = (long)mmap(o->addr, o->len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		break;
	case OP_MREMAP:
		r = (long)mremap(o->addr, o->len, o->len2, o->flags, o->addr2);
		break;
	}
	o->err = errno;
	__atomic_store_n(&o->ret, r, __ATOMIC_SEQ_CST);
	__atomic_store_n(&o->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void op_start(struct op *o)
{
	o->done = 0;
	o->th = t_thread(op_fn, o);
}

static int op_done(struct op *o)
{
	return __atomic_load_n(&o->done, __ATOMIC_SEQ_CST);
}

static int op_wait(struct op *o, int ms)
{
	int64_t end = t_now_ms() + ms;

	while (!op_done(o)) {
		if (t_now_ms() >= end)
			return 0;
		t_msleep(1);
	}
	t_join(o->th);
	return 1;
}

#define P(n) ((size_t)(n) * (size_t)t_ps)

#define CHECK_EVENT(m, ev, a, b) do {					\
		CHECK_EQ((m).event, (ev));					\
		CHECK_EQ((uintptr_t)(m).arg.remove.start, (uintptr_t)(a));	\
		CHECK_EQ((uintptr_t)(m).arg.remove.end, (uintptr_t)(b));	\
	} while (0)

/* While an event waits, its thread is blocked and COPY/ZEROPAGE on that
 * uffd give EAGAIN (WAKE works). */
static void check_blocked(int fd, struct op *o, void *copy_dst)
{
	int64_t out = 0;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	/* (the event is raised once its message is queued: a thread slow to
	 * start, under a sanitizer on a busy machine, is not blocked yet) */
	CHECK_EQ(poll(&pfd, 1, 5000), 1);
	t_msleep(20);
	CHECK(!op_done(o));
	if (copy_dst) {
		char src[4096 * 4];
		memset(src, 0x7e, sizeof src);
		CHECK_ERRNO(t_copy(fd, copy_dst, src, (size_t)t_ps, 0, &out), EAGAIN);
		CHECK_EQ(out, -EAGAIN);
		CHECK_ERRNO(t_zeropage(fd, copy_dst, (size_t)t_ps, 0, &out), EAGAIN);
		CHECK_EQ(out, -EAGAIN);
		/* Before the argument is even looked at (an unaligned one). */
		out = 0;
		CHECK_ERRNO(t_copy(fd, (char *)copy_dst + 1, src, (size_t)t_ps, 0, &out), EAGAIN);
		CHECK_EQ(out, -EAGAIN);
		CHECK_OK(t_wake(fd, copy_dst, (size_t)t_ps));
	}
}

static void test_remove(uint64_t advice_kind)
{
	int fd = t_uffd(UFFD_FEATURE_EVENT_REMOVE);
	char *q = t_map(12), *p = q + P(2);
	char *other = t_map_reg(fd, 1);
	struct op o = { .kind = (int)advice_kind, .addr = q, .len = P(12) };
	struct uffd_msg m;

	CHECK_OK(t_register(fd, p, P(8)));
	CHECK_EQ(t_copy_byte(fd, p, 0x31, 8, 0), 0);
	op_start(&o);
	check_blocked(fd, &o, other);
	/* Clipped to the registered range. */
	if (T_MSG(fd, &m, 2000))
		CHECK_EVENT(m, UFFD_EVENT_REMOVE, p, p + P(8));
	CHECK(op_wait(&o, 2000));
	CHECK_EQ(o.ret, 0);
	T_NO_MSG(fd, 0);
	/* The pages are missing again; the range is still registered. */
	if (advice_kind == OP_DONTNEED)
		T_EXPECT_FAULT(fd, p + P(3) + 7, 0, 0x32);
	CHECK_EQ(t_copy_byte(fd, other, 0x33, 1, 0), 0);
	CHECK_OK(uf_close(fd));
	munmap(q, P(12));
	munmap(other, P(1));
}

static void test_remove_two_pieces(void)
{
	/* Two registered pieces with a hole between them: two events, each
	 * clipped, in address order. */
	int fd = t_uffd(UFFD_FEATURE_EVENT_REMOVE);
	char *q = t_map(8);
	struct op o = { .kind = OP_DONTNEED, .addr = q + P(1), .len = P(6) };
	struct uffd_msg m;

	CHECK_OK(t_register(fd, q, P(3)));
	CHECK_OK(t_register(fd, q + P(5), P(3)));
	op_start(&o);
	if (T_MSG(fd, &m, 2000))
		CHECK_EVENT(m, UFFD_EVENT_REMOVE, q + P(1), q + P(3));
	CHECK(!op_done(&o) || t_backend() == UF_BACKEND_EMULATED);
	if (T_MSG(fd, &m, 2000))
		CHECK_EVENT(m, UFFD_EVENT_REMOVE, q + P(5), q + P(7));
	CHECK(op_wait(&o, 2000));
	CHECK_EQ(o.ret, 0);
	T_NO_MSG(fd, 0);
	CHECK_OK(uf_close(fd));
	munmap(q, P(8));
}

static void test_unmap(void)
{
	int fd = t_uffd(UFFD_FEATURE_EVENT_UNMAP);
	char *q = t_map(8);
	char *other = t_map_reg(fd, 1);
	struct op o = { .kind = OP_MUNMAP, .addr = q, .len = P(8) };
	struct uffd_msg m;

	/* munmap of 8 pages holding a 2-page registered piece: the whole
	 * range is reported, after the unmap. */
	CHECK_OK(t_register(fd, q + P(3), P(2)));
	op_start(&o);
	check_blocked(fd, &o, other);
	if (T_MSG(fd, &m, 2000))
		CHECK_EVENT(m, UFFD_EVENT_UNMAP, q, q + P(8));
	CHECK(op_wait(&o, 2000));
	CHECK_EQ(o.ret, 0);
	T_NO_MSG(fd, 0);

	/* mmap(MAP_FIXED) over a registered range. */
	q = t_map(4);
	CHECK_OK(t_register(fd, q, P(4)));
	o = (struct op){ .kind = OP_MAPFIXED, .addr = q + P(1), .len = P(2) };
	op_start(&o);
	check_blocked(fd, &o, other);
	if (T_MSG(fd, &m, 2000))
		CHECK_EVENT(m, UFFD_EVENT_UNMAP, q + P(1), q + P(3));
	CHECK(op_wait(&o, 2000));
	CHECK_EQ(o.ret, (long)(q + P(1)));
	/* The new mapping is not registered: reads zero, no fault. */
	CHECK_EQ(q[P(1) + 5], 0);
	T_NO_MSG(fd, 0);
	/* The rest still is. */
	T_EXPECT_FAULT(fd, q + P(3), 1, 0x41);

	/* An munmap that meets no registered range: no event. */
	char *plain = t_map(2);
	CHECK_OK(munmap(plain, P(2)));
	T_NO_MSG(fd, 0);
	CHECK_OK(uf_close(fd));
	munmap(q, P(4));
	munmap(other, P(1));
}

static void test_remap(uint64_t features)
{
	int fd = t_uffd(features);
	char *other = t_map_reg(fd, 1);
	char *p = t_map(4), *dst = t_map(8);
	struct op o;
	struct uffd_msg m;

	/* Moved to a place chosen by the caller (kept mapped until then, so
	 * that no thread stack lands there): REMAP, then UNMAP of the old
	 * range; with EVENT_REMAP the registration follows. */
	CHECK_OK(t_register(fd, p, P(4)));
	CHECK_EQ(t_copy_byte(fd, p, 0x51, 2, 0), 0);
	o = (struct op){ .kind = OP_MREMAP, .addr = p, .len = P(4), .len2 = P(4),
			 .flags = MREMAP_MAYMOVE | MREMAP_FIXED, .addr2 = dst };
	op_start(&o);
	if (features & UFFD_FEATURE_EVENT_REMAP) {
		check_blocked(fd, &o, other);
			if (T_MSG(fd, &m, 2000)) {
			CHECK_EQ(m.event, UFFD_EVENT_REMAP);
			CHECK_EQ((uintptr_t)m.arg.remap.from, (uintptr_t)p);
			CHECK_EQ((uintptr_t)m.arg.remap.to, (uintptr_t)dst);
			CHECK_EQ((uintptr_t)m.arg.remap.len, P(4));
		}
	}
	if (features & UFFD_FEATURE_EVENT_UNMAP) {
		if (T_MSG(fd, &m, 2000))
			CHECK_EVENT(m, UFFD_EVENT_UNMAP, p, p + P(4));
	}
	CHECK(op_wait(&o, 2000));
	CHECK_EQ(o.ret, (long)dst);
	T_NO_MSG(fd, 0);
	CHECK_EQ(dst[P(1) + 3], 0x51);
	if (features & UFFD_FEATURE_EVENT_REMAP) {
		T_EXPECT_FAULT(fd, dst + P(2) + 9, 0, 0x52);
		CHECK_EQ(dst[P(2)], 0x52);
	} else {
		CHECK_EQ(dst[P(2) + 9], 0);	/* unregistered: zero */
		T_NO_MSG(fd, 0);
	}

	/* Shrink in place: UNMAP of the tail, no REMAP. */
	o = (struct op){ .kind = OP_MREMAP, .addr = dst, .len = P(4), .len2 = P(2),
			 .flags = 0 };
	op_start(&o);
	if ((features & UFFD_FEATURE_EVENT_UNMAP) && (features & UFFD_FEATURE_EVENT_REMAP)) {
		if (T_MSG(fd, &m, 2000))
			CHECK_EVENT(m, UFFD_EVENT_UNMAP, dst + P(2), dst + P(4));
	}
	CHECK(op_wait(&o, 2000));
	CHECK_EQ(o.ret, (long)dst);
	T_NO_MSG(fd, 0);
	CHECK_OK(uf_close(fd));
	munmap(dst, P(8));
	munmap(other, P(1));
}

/* A chain of mremaps of one registered range, with REMAP and UNMAP: each
 * move reports REMAP and UNMAP of the old place, the registration and the
 * data follow; a grow in place reports nothing and its tail is missing; a
 * shrink reports UNMAP of the tail. */
static void test_mremap_chain(void)
{
	int fd = t_uffd(UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_UNMAP);
	char *a = t_map(4), *b = t_map(4), *c = t_map(6), *cur = a;
	char *dst[2] = { b, c };
	struct uffd_msg m;
	struct op o;

	/* c's last 2 pages are a hole for the grow (too small for a thread's
	 * stack to land in). */
	CHECK_OK(munmap(c + P(4), P(2)));
	CHECK_OK(t_register(fd, a, P(4)));
	CHECK_EQ(t_copy_byte(fd, a, 0x71, 2, 0), 0);
	for (int k = 0; k < 2; k++) {
		o = (struct op){ .kind = OP_MREMAP, .addr = cur, .len = P(4), .len2 = P(4),
				 .flags = MREMAP_MAYMOVE | MREMAP_FIXED, .addr2 = dst[k] };
		op_start(&o);
		if (T_MSG(fd, &m, 2000)) {
			CHECK_EQ(m.event, UFFD_EVENT_REMAP);
			CHECK_EQ((uintptr_t)m.arg.remap.from, (uintptr_t)cur);
			CHECK_EQ((uintptr_t)m.arg.remap.to, (uintptr_t)dst[k]);
			CHECK_EQ((uintptr_t)m.arg.remap.len, P(4));
		}
		if (T_MSG(fd, &m, 2000))
			CHECK_EVENT(m, UFFD_EVENT_UNMAP, cur, cur + P(4));
		CHECK(op_wait(&o, 2000));
		CHECK_EQ(o.ret, (long)dst[k]);
		cur = dst[k];
		CHECK_EQ(cur[P(1) + 5], 0x71);
	}
	/* Grow in place: no event; the new tail is registered and missing. */
	o = (struct op){ .kind = OP_MREMAP, .addr = cur, .len = P(4), .len2 = P(6), .flags = 0 };
	op_start(&o);
	CHECK(op_wait(&o, 2000));
	CHECK_EQ(o.ret, (long)cur);
	T_NO_MSG(fd, 0);
	T_EXPECT_FAULT(fd, cur + P(5) + 1, 0, 0x72);
	/* Shrink: UNMAP of the tail. */
	o = (struct op){ .kind = OP_MREMAP, .addr = cur, .len = P(6), .len2 = P(3), .flags = 0 };
	op_start(&o);
	if (T_MSG(fd, &m, 2000))
		CHECK_EVENT(m, UFFD_EVENT_UNMAP, cur + P(3), cur + P(6));
	CHECK(op_wait(&o, 2000));
	CHECK_EQ(o.ret, (long)cur);
	T_EXPECT_FAULT(fd, cur + P(2), 1, 0x73);
	CHECK_EQ(cur[0], 0x71);
	CHECK_EQ(cur[P(2)], 0x73);
	T_NO_MSG(fd, 0);
	CHECK_OK(uf_close(fd));
	munmap(cur, P(3));
}

static void test_fault_before_event(void)
{
	int fd = t_uffd(UFFD_FEATURE_EVENT_REMOVE);
	char *p = t_map_reg(fd, 4);
	struct op o = { .kind = OP_DONTNEED, .addr = p + P(2), .len = P(2) };
	struct t_touch t;
	struct uffd_msg m[2];
	ssize_t n = -1;
	int64_t end;

	/* The event is queued first, then a fault; read gives the fault. */
	op_start(&o);
	t_msleep(100);
	t_touch_start(&t, p + 5, 0, 0);
	t_msleep(100);
	end = t_now_ms() + 2000;
	while (t_now_ms() < end && (n = uf_read(fd, m, sizeof m)) < 0 && errno == EAGAIN)
		t_msleep(5);
	CHECK_EQ(n, (ssize_t)sizeof m);
	if (n == (ssize_t)sizeof m) {
		CHECK_FAULT(&m[0], p, 0);
		CHECK_EVENT(m[1], UFFD_EVENT_REMOVE, p + P(2), p + P(4));
	}
	CHECK(op_wait(&o, 2000));
	CHECK_EQ(t_copy_byte(fd, p, 0x61, 1, 0), 0);
	CHECK(t_touch_wait(&t, 2000));
	CHECK_EQ(t.val, 0x61);
	CHECK_OK(uf_close(fd));
	munmap(p, P(4));
}

static void test_release_frees(void)
{
	/* The last close of the uffd ends the wait (the event is dropped). */
	int fd = t_uffd(UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP);
	char *p = t_map_reg(fd, 2);
	struct op o = { .kind = OP_DONTNEED, .addr = p, .len = P(2) };

	op_start(&o);
	t_msleep(100);
	CHECK(!op_done(&o));
	CHECK_OK(uf_close(fd));
	CHECK(op_wait(&o, 2000));
	CHECK_EQ(o.ret, 0);
	/* Unregistered now: zero, no fault. */
	CHECK_EQ(p[7], 0);
	munmap(p, P(2));
}

static void test_no_feature_no_event(void)
{
	/* Only the events asked for are sent. */
	int fd = t_uffd(UFFD_FEATURE_EVENT_REMAP);
	char *p = t_map_reg(fd, 4);

	CHECK_OK(madvise(p, P(4), MADV_DONTNEED));
	CHECK_OK(munmap(p + P(2), P(2)));
	T_NO_MSG(fd, 0);
	CHECK_OK(uf_close(fd));
	munmap(p, P(2));
}

int main(int argc, char **argv)
{
	int only = argc > 1 ? atoi(argv[1]) : 0;	/* run one part */

	t_start(60);
#define PART(n, call) do { if (!only || only == (n)) { call; } } while (0)
	PART(1, test_remove(OP_DONTNEED));
	PART(2, test_remove(OP_FREE));
	PART(3, test_remove_two_pieces());
	PART(4, test_unmap());
	PART(5, test_remap(UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_UNMAP));
	PART(6, test_remap(UFFD_FEATURE_EVENT_REMAP));
	PART(7, test_remap(UFFD_FEATURE_EVENT_UNMAP));
	PART(8, test_fault_before_event());
	PART(9, test_release_frees());
	PART(10, test_no_feature_no_event());
	PART(11, test_mremap_chain());
	return t_done();
}
