/* SPDX-License-Identifier: MIT */
/* A large sparse registration: 64 GiB of MAP_NORESERVE memory registered at
 * once, 200,000 random pages installed with UFFDIO_COPY (known content per
 * page), then every installed page verified, and pages never installed still
 * fault.  Prints the /proc/self/maps line count before/after and VmRSS /
 * RssAnon / RssShmem; the maps count may grow by a few entries at most
 * (installing pages must not split the mapping).
 *
 * Emulated without guard markers (USERFAULT_GUARD_MARKERS=0, or a kernel
 * before 6.15), isolated pages each need mappings of their own: the
 * documented limit is vm.max_map_count, and reaching it must be a clean
 * ENOMEM from COPY (copy = -ENOMEM) with every page installed before intact
 * and the refused page still missing. */
#include "t.h"

#define REGION (64ULL << 30)
#define INSTALLS 200000
#define MAPS_SLACK 4

static int maps_lines(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int c, n = 0;

	T_REQUIRE(f);
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Lines of /proc/self/maps that lie in [p, p + len): the mappings of the
 * registered region alone (a sanitizer's allocator maps memory too). */
static int region_lines(const char *p, uint64_t len)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long s, e;
	int n = 0;

	T_REQUIRE(f);
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s < (uintptr_t)p + len && e > (uintptr_t)p)
			n++;
	fclose(f);
	return n;
}

static void print_status(const char *when)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];

	T_REQUIRE(f);
	fprintf(stderr, "%s:", when);
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, "VmRSS:", 6) || !strncmp(line, "RssAnon:", 8) ||
		    !strncmp(line, "RssShmem:", 9)) {
			line[strcspn(line, "\n")] = 0;
			fprintf(stderr, "  %s", line);
		}
	}
	fputc('\n', stderr);
	fclose(f);
}

static void fill(uint64_t *w, uint64_t idx, size_t words)
{
	uint64_t x = idx * 0x9E3779B97F4A7C15ULL + 1;

	w[0] = idx;
	for (size_t i = 1; i < words; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
}

/* Without guard markers: COPY said ENOMEM at install number `installed`. */
static int at_the_limit(int fd, char *p, const uint64_t *pages, int installed, uint64_t *src,
			size_t words, int before)
{
	long max = 0, bad = 0;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	char *refused = p + pages[installed] * (uint64_t)t_ps;
	int now = maps_lines(), after;
	int64_t out;

	T_REQUIRE(f && fscanf(f, "%ld", &max) == 1);
	fclose(f);
	fprintf(stderr, "no guard markers: COPY ENOMEM after %d installs; maps lines %d -> %d (max_map_count %ld)\n",
		installed, before, now, max);
	print_status("at the limit");
	CHECK(installed >= 10000);		/* about max_map_count / 2 */
	CHECK(now <= max + 1);			/* [vsyscall] is listed, not counted */
	for (int i = 0; i < installed; i++) {
		fill(src, pages[i], words);
		if (memcmp(p + pages[i] * (uint64_t)t_ps, src, (size_t)t_ps) != 0)
			bad++;
	}
	CHECK_EQ(bad, 0);
	/* At the limit the process cannot even make a thread: the refused
	 * page is checked without one.  Asking again is the same clean error;
	 * ZEROPAGE too. */
	fill(src, pages[installed], words);
	CHECK_ERRNO(t_copy(fd, refused, src, (size_t)t_ps, 0, &out), ENOMEM);
	CHECK_EQ(out, -ENOMEM);
	CHECK_ERRNO(t_zeropage(fd, refused, (size_t)t_ps, 0, &out), ENOMEM);
	CHECK_EQ(out, -ENOMEM);
	/* UNREGISTER opens everything: the region is one mapping again, the
	 * refused page reads zero (never installed), installed ones keep their
	 * data. */
	CHECK_EQ(t_unregister(fd, p, REGION), 0);
	after = region_lines(p, REGION);
	fprintf(stderr, "after UNREGISTER: %d mapping(s) in the region\n", after);
	CHECK_EQ(after, 1);
	CHECK_EQ(refused[5], 0);
	fill(src, pages[0], words);
	CHECK_EQ(memcmp(p + pages[0] * (uint64_t)t_ps, src, (size_t)t_ps), 0);
	CHECK_EQ(uf_close(fd), 0);
	CHECK_EQ(munmap(p, REGION), 0);
	return t_done();
}

int main(void)
{
	uint64_t npages, *pages, rng = 0x2545F4914F6CDD1DULL;
	uint8_t *bitmap;
	size_t words;
	uint64_t *src;
	char *p;
	int fd, before, after, limited, installed = INSTALLS;
	long bad = 0;
	int64_t t0;
	struct uf_probe pr;

	t_start(120);
	limited = t_emulated() && uf_probe(&pr) == 0 && !pr.guard_markers;
	npages = REGION / (uint64_t)t_ps;
	words = (size_t)t_ps / sizeof(uint64_t);
	p = mmap(NULL, REGION, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		T_SKIP_TEST("cannot map 64 GiB MAP_NORESERVE here: %s", t_errname(errno));
	fd = t_uffd(0);
	t0 = t_now_ms();
	CHECK_EQ(t_register(fd, p, REGION), 0);
	bitmap = calloc(npages / 8, 1);
	pages = malloc(INSTALLS * sizeof *pages);
	src = malloc((size_t)t_ps);
	T_REQUIRE(bitmap && pages && src);
	before = maps_lines();
	print_status("before");
	for (int i = 0; i < INSTALLS; ) {
		uint64_t pg;

		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		pg = (rng >> 16) % npages;
		if (bitmap[pg / 8] & (1u << (pg % 8)))
			continue;
		bitmap[pg / 8] |= (uint8_t)(1u << (pg % 8));
		pages[i++] = pg;
	}
	for (int i = 0; i < INSTALLS; i++) {
		int64_t out;

		fill(src, pages[i], words);
		if (t_copy(fd, p + pages[i] * (uint64_t)t_ps, src, (size_t)t_ps, 0, &out) ||
		    out != t_ps) {
			if (limited && errno == ENOMEM && out == -ENOMEM) {
				installed = i;
				break;
			}
			t_fail(__FILE__, __LINE__, "install %d (page %llu): COPY %s, copy = %lld",
			       i, (unsigned long long)pages[i], t_errname(errno),
			       (long long)out);
			break;
		}
	}
	if (limited) {
		int r = at_the_limit(fd, p, pages, installed, src, words, before);
		free(bitmap);
		free(pages);
		free(src);
		return r;
	}
	fprintf(stderr, "%d installs: %lld ms\n", INSTALLS, (long long)(t_now_ms() - t0));
	for (int i = 0; i < installed; i++) {
		fill(src, pages[i], words);
		if (memcmp(p + pages[i] * (uint64_t)t_ps, src, (size_t)t_ps) != 0 && bad++ < 5)
			fprintf(stderr, "  page %llu: content differs (word 0 = %#llx)\n",
				(unsigned long long)pages[i],
				(unsigned long long)*(uint64_t *)(p + pages[i] * (uint64_t)t_ps));
	}
	CHECK_EQ(bad, 0);
	T_NO_MSG(fd, 0);
	fprintf(stderr, "installs + verify: %lld ms\n", (long long)(t_now_ms() - t0));
	after = maps_lines();
	print_status("after");
	fprintf(stderr, "/proc/self/maps lines: before %d, after %d; mappings in the region: %d\n",
		before, after, region_lines(p, REGION));
	CHECK(after - before <= MAPS_SLACK);
	CHECK_EQ(region_lines(p, REGION), 1);	/* installs never split it */

	/* Pages never installed (first, last, one in between) still fault. */
	{
		uint64_t probe[3] = { 0, npages - 1, npages / 2 + 1 };

		for (int i = 0; i < 3; i++) {
			uint64_t pg = probe[i];

			while (bitmap[pg / 8] & (1u << (pg % 8)))
				pg = (pg + 1) % npages;
			T_EXPECT_FAULT(fd, p + pg * (uint64_t)t_ps + 3, i & 1, 0x5d + i);
		}
	}
	CHECK_EQ(uf_close(fd), 0);
	CHECK_EQ(munmap(p, REGION), 0);
	free(bitmap);
	free(pages);
	free(src);
	return t_done();
}
