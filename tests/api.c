/* SPDX-License-Identifier: MIT */
/* UFFDIO_API: everything before it is EINVAL (ioctls, read; poll POLLERR on
 * the kernel); bad api / unsupported features → EINVAL with the struct zeroed,
 * after which a good call still works; the reply (api, features advertised,
 * ioctls); a second call → EINVAL, struct zeroed; each feature bit alone is
 * accepted iff the back-end advertises it; EFAULT for a bad argument. */
#include "t.h"

#define API_IOCTLS 0x8000000000000003ULL

static int api_call(int fd, uint64_t api_val, uint64_t features,
		    struct uffdio_api *out)
{
	out->api = api_val;
	out->features = features;
	out->ioctls = 0x5a5a5a5a;
	return uf_ioctl(fd, UFFDIO_API, out);
}

#define CHECK_ZEROED(a) do {						\
		CHECK_EQ((a).api, 0);					\
		CHECK_EQ((a).features, 0);				\
		CHECK_EQ((a).ioctls, 0);				\
	} while (0)

static uint64_t advertised(void)
{
	return t_emulated() ? uf_emulated_features() : UFFD_API_FEATURES;
}

static void before_api(void)
{
	int fd = uf_userfaultfd(O_CLOEXEC | O_NONBLOCK);
	char *p = t_map(1);
	struct uffd_msg m[2];
	struct uffdio_register reg = {
		.range = { (uintptr_t)p, (uint64_t)t_ps },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	struct uffdio_range r = { (uintptr_t)p, (uint64_t)t_ps };
	struct uffdio_copy c = { (uintptr_t)p, (uintptr_t)p, (uint64_t)t_ps, 0, 0 };
	struct uffdio_zeropage z = { r, 0, 0 };
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	T_REQUIRE(fd >= 0);
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_REGISTER, &reg), EINVAL);
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_UNREGISTER, &r), EINVAL);
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_WAKE, &r), EINVAL);
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_COPY, &c), EINVAL);
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_ZEROPAGE, &z), EINVAL);
	CHECK_ERRNO(uf_ioctl(fd, _IOWR(UFFDIO, 0x20, struct uffdio_range), &r), EINVAL);
	/* Even a bad pointer: the state is checked before the argument. */
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_REGISTER, (void *)8), EINVAL);
	CHECK_ERRNO(uf_read(fd, m, sizeof m), EINVAL);
	CHECK_ERRNO(uf_read(fd, m, sizeof m[0]), EINVAL);
	if (t_emulated()) {
		T_NOTE("poll before UFFDIO_API: not asserted on emulated");
	} else {
		CHECK_EQ(poll(&pfd, 1, 0), 1);
		CHECK_EQ(pfd.revents, POLLERR);
	}
	CHECK_EQ(uf_close(fd), 0);
	munmap(p, (size_t)t_ps);
}

static void bad_then_good(void)
{
	int fd = uf_userfaultfd(O_CLOEXEC);
	struct uffdio_api a;
	uint64_t unsupported = ~advertised() & UFFD_API_FEATURES;

	T_REQUIRE(fd >= 0);
	CHECK_ERRNO(api_call(fd, 0xAB, 0, &a), EINVAL);
	CHECK_ZEROED(a);
	CHECK_ERRNO(api_call(fd, 0, 0, &a), EINVAL);
	CHECK_ZEROED(a);
	CHECK_ERRNO(api_call(fd, UFFD_API | (1ULL << 32), 0, &a), EINVAL);
	CHECK_ZEROED(a);
	CHECK_ERRNO(api_call(fd, UFFD_API, 1ULL << 17, &a), EINVAL);
	CHECK_ZEROED(a);
	CHECK_ERRNO(api_call(fd, UFFD_API, 1ULL << 40, &a), EINVAL);
	CHECK_ZEROED(a);
	CHECK_ERRNO(api_call(fd, UFFD_API, UFFD_FEATURE_THREAD_ID | (1ULL << 63), &a),
		    EINVAL);
	CHECK_ZEROED(a);
	if (unsupported) {
		CHECK_ERRNO(api_call(fd, UFFD_API, unsupported, &a), EINVAL);
		CHECK_ZEROED(a);
	}
	/* Bad argument pointers: EFAULT, state unchanged. */
	CHECK_ERRNO(uf_ioctl(fd, UFFDIO_API, (void *)8), EFAULT);
	{
		char *ro = t_map_prot(1, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);

		CHECK_ERRNO(uf_ioctl(fd, UFFDIO_API, ro), EFAULT);
		munmap(ro, (size_t)t_ps);
	}

	/* The ctx is still uninitialised: a good call works. */
	CHECK_EQ(api_call(fd, UFFD_API, 0, &a), 0);
	CHECK_EQ(a.api, UFFD_API);
	CHECK_EQ(a.features, advertised());
	CHECK_EQ(a.ioctls, API_IOCTLS);

	/* Only once, even after features = 0. */
	CHECK_ERRNO(api_call(fd, UFFD_API, 0, &a), EINVAL);
	CHECK_ZEROED(a);
	CHECK_ERRNO(api_call(fd, UFFD_API, UFFD_FEATURE_THREAD_ID, &a), EINVAL);
	CHECK_ZEROED(a);
	CHECK_ERRNO(api_call(fd, 0xAB, 0, &a), EINVAL);
	CHECK_ZEROED(a);
	CHECK_EQ(uf_close(fd), 0);
}

static void each_feature(void)
{
	uint64_t adv = advertised();

	if (t_emulated()) {
		CHECK_EQ(adv & ~UFFD_API_FEATURES, 0);
		CHECK_EQ(adv & (UFFD_FEATURE_SIGBUS | UFFD_FEATURE_THREAD_ID |
				UFFD_FEATURE_EXACT_ADDRESS),
			 UFFD_FEATURE_SIGBUS | UFFD_FEATURE_THREAD_ID |
			 UFFD_FEATURE_EXACT_ADDRESS);
	} else {
		CHECK_EQ(adv, 0x1ffff);
	}
	for (int bit = 0; bit < 17; bit++) {
		uint64_t f = 1ULL << bit;
		int fd = uf_userfaultfd(O_CLOEXEC);
		int before = t_failures;
		struct uffdio_api a;

		T_REQUIRE(fd >= 0);
		if (adv & f) {
			CHECK_EQ(api_call(fd, UFFD_API, f, &a), 0);
			CHECK_EQ(a.features, adv);
			CHECK_EQ(a.ioctls, API_IOCTLS);
		} else {
			CHECK_ERRNO(api_call(fd, UFFD_API, f, &a), EINVAL);
			CHECK_ZEROED(a);
		}
		if (t_failures != before)
			fprintf(stderr, "  (after feature bit %d)\n", bit);
		uf_close(fd);
	}
	/* All advertised features at once. */
	{
		int fd = uf_userfaultfd(O_CLOEXEC);
		struct uffdio_api a;

		T_REQUIRE(fd >= 0);
		CHECK_EQ(api_call(fd, UFFD_API, adv, &a), 0);
		CHECK_EQ(a.features, adv);
		uf_close(fd);
	}
}

int main(void)
{
	t_start(20);
	before_api();
	bad_then_good();
	each_feature();
	return t_done();
}
