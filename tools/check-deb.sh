#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check-deb.sh [--worktree]: `make check-deb`, the Debian packages of
# debian/ built and used as a user would use them:
#
#   1. build    a copy of the tree (git archive HEAD; with --worktree the
#               tracked and untracked, not ignored, files as they are now)
#               goes through `dpkg-buildpackage -us -uc -b` in a temporary
#               folder, which gets the .debs;
#   2. lintian  on the .changes: any error fails, warnings are printed;
#   3. install  a clean root (debootstrap --variant=minbase of the host's
#               suite, with gcc, libc6-dev and pkg-config to build programs
#               against the packages) gets the three .debs with dpkg -i,
#               and /proc mounted;
#   4. use      in that root: `userfault probe`, `userfault demo` on the
#               default back-end and the emulation, `userfault run
#               --backend emulated` of a program written against the
#               kernel's ABI alone (it must get the installed drop-in), and
#               a program built with `pkg-config --cflags --libs userfault`,
#               dynamically and statically (--static), run on the default
#               back-end and the emulation; each serves 16 pages with
#               UFFDIO_COPY from a handler thread and checks every byte;
#   5. remove   dpkg --purge leaves none of the packages' files.
#
# Installs what the build needs (build-essential, debhelper, dpkg-dev,
# lintian, debootstrap) with apt-get if it is missing.  Needs root (for
# debootstrap, chroot and mount) and the network (the Debian mirror:
# UF_DEB_MIRROR, default http://deb.debian.org/debian; UF_DEB_SUITE, default
# the host's codename).  Everything it makes is in one folder of /tmp,
# removed at the end, /proc unmounted first, whatever happens; set
# UF_DEB_CHROOT_CACHE=/tmp/NAME.tar to keep the clean root as a tarball
# between local runs (off by default: CI starts from nothing).  Prints one
# line per check, then "N passed, N failed"; exit 0 when all passed.
set -u
cd "$(dirname "$0")/.." || exit 2

worktree=0
for arg in "$@"; do
	case $arg in
	--worktree) worktree=1 ;;
	-h|--help) sed -n '3,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "usage: check-deb.sh [--worktree]" >&2; exit 2 ;;
	esac
done

pass=0 fail=0
ok()  { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
finish() {	# the result line; the EXIT trap cleans up
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ] && exit 0
	exit 1
}

if [ "$(id -u)" -ne 0 ]; then
	bad "check-deb needs root (debootstrap, chroot, mount)"
	finish
fi
if ! git rev-parse --git-dir >/dev/null 2>&1; then
	bad "check-deb needs the tree to be a git checkout (it builds from git archive HEAD)"
	finish
fi

# shellcheck disable=SC1091
suite=${UF_DEB_SUITE:-$( . /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-bookworm}")}
mirror=${UF_DEB_MIRROR:-http://deb.debian.org/debian}
cache=${UF_DEB_CHROOT_CACHE:-}
case $cache in
''|/tmp/*) ;;
*) echo "check-deb: UF_DEB_CHROOT_CACHE must be under /tmp" >&2; exit 2 ;;
esac
arch=$(dpkg --print-architecture)
packages=(libuserfault0 libuserfault-dev userfault)

# The build's tools, installed as .ci/run installs gcc.
need=()
for p in build-essential debhelper dpkg-dev lintian debootstrap; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! { apt-get install -y -qq --no-install-recommends "${need[@]}" ||
	       { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; }; } \
	       >/tmp/uf-deb-apt.log 2>&1; then
		tail -n 20 /tmp/uf-deb-apt.log
		bad "apt-get install ${need[*]} (see /tmp/uf-deb-apt.log)"
		finish
	fi
	rm -f /tmp/uf-deb-apt.log
fi

# Everything below lives in $work.  The clean-up unmounts whatever is
# mounted under it (innermost first) and removes it only when nothing is
# left mounted there: a failed umount must not let rm reach /proc.
work=$(mktemp -d /tmp/uf-check-deb.XXXXXX) || { bad "mktemp"; finish; }
root=$work/root
# shellcheck disable=SC2317  # (called by the trap)
cleanup() {
	local m left
	awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "check-deb: cannot unmount $m"
	done
	left=$(awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts)
	if [ -n "$left" ]; then
		echo "check-deb: still mounted, $work left in place: $left"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'bad "interrupted (SIGINT)"; finish' INT
trap 'bad "terminated (SIGTERM)"; finish' TERM

# 1. Build.
mkdir "$work/src"
if [ "$worktree" -eq 1 ]; then
	git ls-files -co --exclude-standard -z | tar --null --ignore-failed-read -T - -cf - 2>/dev/null |
		tar -x -C "$work/src"
else
	git archive HEAD | tar -x -C "$work/src"
fi
if [ ! -f "$work/src/debian/control" ]; then
	bad "no debian/ in the copied tree$([ "$worktree" -eq 0 ] && echo ' (committed? --worktree takes the working tree)')"
	finish
fi
export DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-parallel=$(nproc)}
t0=$(date +%s)
if (cd "$work/src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b ($(($(date +%s) - t0)) s, DEB_BUILD_OPTIONS=$DEB_BUILD_OPTIONS)"
else
	tail -n 40 "$work/build.log"
	bad "dpkg-buildpackage -us -uc -b"
	finish
fi
grep -E 'dpkg-gensymbols: warning' "$work/build.log"
debs=()
for p in "${packages[@]}"; do
	f=$(find "$work" -maxdepth 1 -name "${p}_*_$arch.deb" | head -n 1)
	if [ -z "$f" ]; then
		bad "no ${p}_*_$arch.deb"
		finish
	fi
	debs+=("$f")
	echo "  ${f##*/}: $(dpkg-deb -c "$f" | grep -vc '/$') files"
done

# 2. Lintian: errors fail, warnings (and the rest) are printed.
changes=$(ls "$work"/*.changes)
lintian --allow-root --display-info --fail-on error "$changes" >"$work/lintian.log" 2>&1
rc=$?
sed 's/^/  /' "$work/lintian.log"
if [ "$rc" -eq 0 ]; then
	ok "lintian: $(grep -c '^E:' "$work/lintian.log") errors, $(grep -c '^W:' "$work/lintian.log") warnings"
else
	bad "lintian (exit $rc)"
fi

# 3. A clean root with the packages installed.
t0=$(date +%s)
if [ -n "$cache" ] && [ -s "$cache" ]; then
	mkdir "$root" && tar -xf "$cache" -C "$root"
	how="from $cache"
else
	if ! debootstrap --variant=minbase --include=gcc,libc6-dev,pkg-config \
		"$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
		tail -n 20 "$work/debootstrap.log"
		bad "debootstrap --variant=minbase $suite $mirror"
		finish
	fi
	how="debootstrap --variant=minbase $suite"
	[ -n "$cache" ] && tar -cf "$cache" -C "$root" .
fi
ok "clean root: $how ($(($(date +%s) - t0)) s)"
mount -t proc proc "$root/proc" || { bad "mount /proc in the root"; finish; }
mkdir -p "$root/tmp/uf"
cp "${debs[@]}" "$root/tmp/uf/"

# Runs a shell command in the root, with a clean environment and a time
# limit: in_root 'COMMAND'.
in_root() {
	timeout 120 chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LC_ALL=C /bin/sh -c "$1"
}
# check NAME 'COMMAND' [PATTERN]: COMMAND (in the root) must exit 0 and,
# given a PATTERN, print a line that matches it (grep -E).  Its output is
# printed, indented: the last lines when it passes, all of it when not.
check() {
	local name=$1 cmd=$2 want=${3:-} out rc
	out=$(in_root "$cmd" 2>&1)
	rc=$?
	if [ "$rc" -ne 0 ]; then
		printf '%s\n' "$out" | sed 's/^/  /'
		bad "$name (exit $rc)"
	elif [ -n "$want" ] && ! grep -Eq -- "$want" <<<"$out"; then
		printf '%s\n' "$out" | sed 's/^/  /'
		bad "$name (no line matching: $want)"
	else
		[ -n "$out" ] && printf '%s\n' "$out" | tail -n 3 | sed 's/^/  /'
		ok "$name"
	fi
}

check "dpkg -i ${packages[*]}" "dpkg -i /tmp/uf/*.deb >/tmp/uf/dpkg.log 2>&1 || { cat /tmp/uf/dpkg.log; exit 1; }
	dpkg-query -W ${packages[*]}"
if ! in_root "command -v userfault" >/dev/null; then
	bad "userfault is not installed in the root"
	finish
fi

# 4. Use them.
check "userfault probe" "userfault probe" "auto"
check "userfault demo (default back-end)" "userfault demo 4" "main: read"
check "userfault --backend emulated demo" "userfault --backend emulated demo 4" "emulated back-end"

# One program, two ways: against the kernel's ABI alone (the drop-in gives
# it the emulation), or, with -DUSE_LIB, through libuserfault's API.  A
# handler thread serves each of 16 pages with UFFDIO_COPY (a byte of its
# own, then its letter); the main thread reads every byte; argv[1] names the
# back-end that must have served the descriptor.
cat >"$root/tmp/uf/pages.c" <<'EOF'
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef USE_LIB
#include <userfault.h>
#define UFFD_CREATE(flags)	uf_userfaultfd(flags)
#define UFFD_IOCTL		uf_ioctl
#define UFFD_READ		uf_read
#define UFFD_CLOSE		uf_close
#else
#include <linux/userfaultfd.h>
#define UFFD_CREATE(flags)	((int)syscall(__NR_userfaultfd, flags))
#define UFFD_IOCTL		ioctl
#define UFFD_READ		read
#define UFFD_CLOSE		close
#endif

#define NPAGES 16
static long psz;
static char *area;
static int uffd, stop[2], served;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void *serve(void *arg)
{
	(void)arg;
	char *page = mmap(NULL, psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (page == MAP_FAILED)
		die("mmap");
	for (;;) {
		struct pollfd p[2] = { { .fd = uffd, .events = POLLIN }, { .fd = stop[0], .events = POLLIN } };
		struct uffd_msg msg;
		ssize_t n;

		if (poll(p, 2, 20000) <= 0)
			die("handler: poll (no fault for 20 s)");
		if (p[1].revents)
			return NULL;
		n = UFFD_READ(uffd, &msg, sizeof msg);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n != sizeof msg)
			die("read of the uffd");
		if (msg.event != UFFD_EVENT_PAGEFAULT) {
			fprintf(stderr, "unexpected event %u\n", msg.event);
			exit(1);
		}
		unsigned long addr = msg.arg.pagefault.address & ~(unsigned long)(psz - 1);
		long i = (long)(addr - (unsigned long)area) / psz;
		memset(page, 'a' + i % 26, psz);
		page[0] = (char)i;
		struct uffdio_copy copy = { .dst = addr, .src = (unsigned long)page, .len = psz };
		if (UFFD_IOCTL(uffd, UFFDIO_COPY, &copy) < 0)
			die("UFFDIO_COPY");
		served++;
	}
}

int main(int argc, char **argv)
{
	const char *want = argc > 1 ? argv[1] : NULL, *name;
	long i, j, wrong = 0;
	pthread_t t;

	psz = sysconf(_SC_PAGESIZE);
	uffd = UFFD_CREATE(O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		die("userfaultfd");
	struct uffdio_api api = { .api = UFFD_API };
	if (UFFD_IOCTL(uffd, UFFDIO_API, &api) < 0)
		die("UFFDIO_API");
	area = mmap(NULL, NPAGES * psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		die("mmap");
	struct uffdio_register reg = {
		.range = { .start = (unsigned long)area, .len = NPAGES * psz },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (UFFD_IOCTL(uffd, UFFDIO_REGISTER, &reg) < 0)
		die("UFFDIO_REGISTER");
	if (pipe(stop) < 0 || pthread_create(&t, NULL, serve, NULL) != 0)
		die("pipe, pthread_create");
	for (i = 0; i < NPAGES; i++) {
		const volatile char *p = area + i * psz;
		wrong += p[0] != (char)i;
		for (j = 1; j < psz; j++)
			wrong += p[j] != 'a' + i % 26;
	}
	if (write(stop[1], "", 1) != 1)
		die("write");
	pthread_join(t, NULL);
#ifdef USE_LIB
	int b = uf_fd_backend(uffd);
	name = b > 0 ? uf_backend_name(b) : "unknown";
#else
	/* The kernel's uffd is an anon inode; the emulation's, a pipe. */
	char path[64], link[64] = "", line[512];
	int dropin = 0;
	snprintf(path, sizeof path, "/proc/self/fd/%d", uffd);
	if (readlink(path, link, sizeof link - 1) < 0)
		die("readlink");
	name = !strncmp(link, "pipe:", 5) ? "emulated" : strstr(link, "userfaultfd") ? "kernel" : link;
	FILE *maps = fopen("/proc/self/maps", "r");
	if (!maps)
		die("/proc/self/maps");
	while (fgets(line, sizeof line, maps))
		dropin |= strstr(line, "/libuserfault-preload.so") != NULL;
	fclose(maps);
	printf("drop-in %s\n", dropin ? "loaded" : "not loaded");
#endif
	printf("%s back-end: %d faults served, %ld bytes read, %ld wrong\n",
	       name, served, NPAGES * psz, wrong);
	if (UFFD_CLOSE(uffd) < 0)
		die("close");
	if (wrong || served != NPAGES)
		return 1;
	if (want && strcmp(want, name)) {
		fprintf(stderr, "expected the %s back-end\n", want);
		return 1;
	}
	return 0;
}
EOF

check "raw-ABI program built (gcc, no userfault flags)" \
	"gcc -std=gnu11 -O2 -Wall -Wextra -Werror -pthread -o /tmp/uf/raw /tmp/uf/pages.c"
check "userfault run --backend emulated: raw-ABI program, installed drop-in" \
	"userfault run --backend emulated -- /tmp/uf/raw emulated" "^drop-in loaded"
check "program built with pkg-config --cflags --libs userfault" \
	"gcc -std=gnu11 -O2 -Wall -Wextra -Werror -DUSE_LIB -o /tmp/uf/lib /tmp/uf/pages.c \$(pkg-config --cflags --libs userfault) &&
	 ldd /tmp/uf/lib | grep libuserfault" "libuserfault\.so\.0 => (/usr)?/lib/"
check "  ... run on the default back-end" "/tmp/uf/lib" "faults served"
check "  ... run with USERFAULT_BACKEND=emulated" "USERFAULT_BACKEND=emulated /tmp/uf/lib emulated" "^emulated back-end"
check "static program built with pkg-config --static" \
	"gcc -std=gnu11 -O2 -Wall -Wextra -Werror -DUSE_LIB -static -o /tmp/uf/lib-static /tmp/uf/pages.c \$(pkg-config --static --cflags --libs userfault) &&
	 ! ldd /tmp/uf/lib-static >/dev/null 2>&1 && echo 'statically linked'" "statically linked"
check "  ... run on the default back-end" "/tmp/uf/lib-static" "faults served"
check "  ... run with USERFAULT_BACKEND=emulated" "USERFAULT_BACKEND=emulated /tmp/uf/lib-static emulated" "^emulated back-end"

# 5. Removal leaves nothing of the packages behind.
check "dpkg --purge ${packages[*]}" "dpkg --purge ${packages[*]} >/dev/null &&
	left=\$(ls -d /usr/bin/userfault /usr/include/userfault* /usr/lib/*/libuserfault* \
		/usr/lib/*/pkgconfig/userfault.pc /usr/share/man/man*/uf_* /usr/share/man/man*/userfault.* \
		/usr/share/doc/*userfault* 2>/dev/null); [ -z \"\$left\" ] || { echo \"left: \$left\"; exit 1; }
	echo nothing left"

finish
