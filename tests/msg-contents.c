/* SPDX-License-Identifier: MIT */
/* Contents of a page-fault message: event 0x12, reserved bytes 0, flags 0 for
 * a read and WRITE (1) for a write, address masked to the page unless
 * UFFD_FEATURE_EXACT_ADDRESS, ptid = gettid() of the faulting thread with
 * UFFD_FEATURE_THREAD_ID and 0 without, trailing bytes 0. */
#include "t.h"

static void one(uint64_t features, int write, size_t offset)
{
	int fd = t_uffd(features);
	char *p = t_map_reg(fd, 2);
	char *addr = p + offset;
	uintptr_t want = (uintptr_t)addr;
	struct t_touch t;
	struct uffd_msg m;
	unsigned char raw[32];
	int before = t_failures;

	if (!(features & UFFD_FEATURE_EXACT_ADDRESS))
		want &= ~(uintptr_t)(t_ps - 1);
	t_touch_start(&t, addr, write, 0x2b);
	if (T_MSG(fd, &m, 2000)) {
		memcpy(raw, &m, sizeof raw);
		CHECK_EQ(m.event, UFFD_EVENT_PAGEFAULT);
		CHECK_EQ(raw[1] | raw[2] | raw[3] | raw[4] | raw[5] | raw[6] | raw[7], 0);
		CHECK_EQ(m.arg.pagefault.flags, write ? UFFD_PAGEFAULT_FLAG_WRITE : 0);
		CHECK_EQ(m.arg.pagefault.address, want);
		if (features & UFFD_FEATURE_THREAD_ID) {
			CHECK(t_touch_tid(&t) > 0);
			CHECK_EQ(m.arg.pagefault.feat.ptid, t_touch_tid(&t));
			CHECK(m.arg.pagefault.feat.ptid != (uint32_t)t_gettid());
		} else {
			CHECK_EQ(m.arg.pagefault.feat.ptid, 0);
		}
		CHECK_EQ(raw[28] | raw[29] | raw[30] | raw[31], 0);
	}
	CHECK_EQ(t_copy_byte(fd, p + (offset & ~(size_t)(t_ps - 1)), 0x19, 1, 0), 0);
	CHECK(t_touch_wait(&t, 2000));
	if (write)
		CHECK_EQ(*addr, 0x2b);
	else
		CHECK_EQ(t.val, 0x19);
	T_NO_MSG(fd, 0);
	if (t_failures != before)
		fprintf(stderr, "  (features %#llx, %s at page offset %#zx)\n",
			(unsigned long long)features, write ? "write" : "read", offset);
	CHECK_EQ(uf_close(fd), 0);
	munmap(p, 2 * (size_t)t_ps);
}

int main(void)
{
	static const uint64_t feats[] = {
		0, UFFD_FEATURE_THREAD_ID, UFFD_FEATURE_EXACT_ADDRESS,
		UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EXACT_ADDRESS,
	};

	t_start(30);
	for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++) {
		one(feats[i], 0, 0x123);
		one(feats[i], 1, (size_t)t_ps + 0x77);
		one(feats[i], 0, 0);
		one(feats[i], 1, 2 * (size_t)t_ps - 1);
	}
	return t_done();
}
