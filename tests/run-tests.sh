#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run-tests.sh BUILD_DIR - run the behaviour tests of userfault.
#
#   1. Every executable BUILD_DIR/tests/* (not helpers/) once per back-end:
#      USERFAULT_BACKEND=kernel, then emulated; then emulated again without
#      guard markers (USERFAULT_GUARD_MARKERS=0), as on kernels before 6.15,
#      and without spinning (USERFAULT_SPIN_US=0: every waiter sleeps).
#   2. The seccomp pass: every test again with the back-end left at "auto",
#      under BUILD_DIR/tests/helpers/seccomp-run MODE, which takes the kernel
#      userfaultfd away (MODE eperm, enosys, kill); the tests must then run on
#      the emulation (USERFAULT_EXPECT_BACKEND=emulated, checked by
#      backend-select).
#   3. The drop-in checks of the examples (run_dropin_tests below).
#
# One line per run: "PASS name [backend] (0.12s)", "FAIL ..." followed by the
# tail of the test's output, or "SKIP ... : reason".  The last line is
# "N passed, N failed, N skipped"; the exit status is 1 if anything failed.
# A test exits 0 (pass), 77 (skip) or anything else (fail).
#
# Environment:
#   BACKENDS="kernel emulated"       back-ends of pass 1
#   SECCOMP_MODES="eperm enosys kill" modes of pass 2 ("" to skip the pass)
#   TEST_TIMEOUT=60                  seconds per run
#   TESTS="api copy ..."             run only these tests (default: all)
#   DROPIN=1                         0 to skip the drop-in checks
#   NOMARKERS=1                      0 to skip the emulated pass without
#                                    guard markers (USERFAULT_GUARD_MARKERS=0)
#   VERBOSE=1                        print the output of every run
set -u

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
B=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
BACKENDS=${BACKENDS-"kernel emulated"}
SECCOMP_MODES=${SECCOMP_MODES-"eperm enosys kill"}
TEST_TIMEOUT=${TEST_TIMEOUT:-60}
DROPIN=${DROPIN:-1}
NOMARKERS=${NOMARKERS:-1}
VERBOSE=${VERBOSE:-0}
SECCOMP_RUN=$B/tests/helpers/seccomp-run

passed=0
failed=0
skipped=0
failures=()
OUT=$(mktemp "${TMPDIR:-/tmp}/uf-tests.XXXXXX")
trap 'rm -f "$OUT" "$OUT".*' EXIT

now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }

secs() {	# microseconds -> "1.23"
	local us=$1
	printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000))
}

indent() { sed 's/^/    | /'; }

# record STATUS NAME LABEL ELAPSED_US [REASON]
record() {
	local st=$1 name=$2 label=$3 us=$4 reason=${5-}
	case $st in
	PASS)	passed=$((passed + 1))
		echo "PASS $name [$label] ($(secs "$us")s)" ;;
	SKIP)	skipped=$((skipped + 1))
		echo "SKIP $name [$label] ($(secs "$us")s)${reason:+: $reason}" ;;
	*)	failed=$((failed + 1))
		failures+=("$name [$label]")
		echo "FAIL $name [$label] ($(secs "$us")s)${reason:+: $reason}" ;;
	esac
}

# run_one NAME LABEL CMD... : run CMD under timeout, output to $OUT, record.
run_one() {
	local name=$1 label=$2 t0 t1 rc reason=
	shift 2
	t0=$(now_us)
	timeout --kill-after=5 "$TEST_TIMEOUT" "$@" >"$OUT" 2>&1 </dev/null
	rc=$?
	t1=$(now_us)
	case $rc in
	0)	record PASS "$name" "$label" $((t1 - t0)) ;;
	77)	reason=$(grep -m1 -i '^skip' "$OUT" | sed 's/^[Ss][Kk][Ii][Pp]:* *//')
		record SKIP "$name" "$label" $((t1 - t0)) "${reason:-no reason given}" ;;
	124|137)
		record FAIL "$name" "$label" $((t1 - t0)) "timed out after ${TEST_TIMEOUT}s" ;;
	*)	if [ "$rc" -gt 128 ]; then
			reason="killed by signal $((rc - 128))"
		else
			reason="exit status $rc"
		fi
		record FAIL "$name" "$label" $((t1 - t0)) "$reason" ;;
	esac
	if [ "$VERBOSE" = 1 ]; then
		indent <"$OUT"
	elif [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		tail -n 20 "$OUT" | indent
	fi
}

# The tests: executables directly in BUILD_DIR/tests, optionally filtered.
tests=()
for f in "$B"/tests/*; do
	[ -f "$f" ] && [ -x "$f" ] || continue
	n=${f##*/}
	if [ -n "${TESTS-}" ]; then
		case " $TESTS " in *" $n "*) ;; *) continue ;; esac
	fi
	tests+=("$n")
done
if [ ${#tests[@]} -eq 0 ]; then
	echo "no tests found in $B/tests (build them first: make)" >&2
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi

# ---- 1. each back-end ----------------------------------------------------
for be in $BACKENDS; do
	echo "== back-end: $be"
	for n in "${tests[@]}"; do
		run_one "$n" "$be" env -u USERFAULT_EXPECT_BACKEND \
			USERFAULT_BACKEND="$be" "$B/tests/$n"
	done
done

# ---- 1b. the emulation without guard markers -------------------------------
# What it does on kernels before 6.15: missing pages are PROT_NONE, within
# vm.max_map_count mappings.  Also without spinning, so that every faulting
# thread takes the futex path (the default spins first, see fault.c).
if [ "$NOMARKERS" = 1 ] && [[ " $BACKENDS " == *" emulated "* ]]; then
	echo "== back-end: emulated without guard markers or spinning (USERFAULT_GUARD_MARKERS=0 USERFAULT_SPIN_US=0)"
	for n in "${tests[@]}"; do
		run_one "$n" "emulated-nomarkers" env -u USERFAULT_EXPECT_BACKEND \
			USERFAULT_BACKEND=emulated USERFAULT_GUARD_MARKERS=0 USERFAULT_SPIN_US=0 "$B/tests/$n"
	done
fi

# ---- 2. seccomp: kernel userfaultfd blocked, back-end "auto" -------------
if [ -n "$SECCOMP_MODES" ]; then
	for mode in $SECCOMP_MODES; do
		echo "== seccomp: $mode (back-end auto, expect emulated)"
		for n in "${tests[@]}"; do
			if [ ! -x "$SECCOMP_RUN" ]; then
				record FAIL "$n" "seccomp-$mode" 0 "missing $SECCOMP_RUN"
				continue
			fi
			run_one "$n" "seccomp-$mode" env -u USERFAULT_BACKEND \
				USERFAULT_EXPECT_BACKEND=emulated \
				"$SECCOMP_RUN" "$mode" -- "$B/tests/$n"
		done
	done
fi

# ---- 3. drop-in checks ----------------------------------------------------
# HOOK: run_dropin_tests
# For every program BUILD_DIR/examples/NAME (written against the raw kernel
# ABI, no library) that has an expected-output file examples/NAME.expect in
# the source tree: run it as
#     BUILD_DIR/userfault run --backend kernel   -- BUILD_DIR/examples/NAME
#     BUILD_DIR/userfault run --backend emulated -- BUILD_DIR/examples/NAME
# filter addresses out of both stdouts (0x... -> ADDR) and require them to be
# equal, with equal exit statuses; if NAME.expect is not empty the filtered
# output must also equal it.  Programs without NAME.expect are skipped (for
# now: the examples and their .expect files are being written).
filter_addresses() { sed 's/0x[0-9a-f]\+/ADDR/g'; }

run_dropin_tests() {
	local ex name expect cli=$B/userfault t0 t1 rk re reason
	[ -d "$B/examples" ] || return 0
	echo "== drop-in: examples under '$cli run'"
	# Under ASan the drop-in comes before the sanitizer's runtime in the
	# load order, which ASan refuses unless told that this is intended.
	local ASAN_OPTIONS="verify_asan_link_order=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
	export ASAN_OPTIONS
	# Where the kernel refuses its userfaultfd (an ordinary user with
	# vm.unprivileged_userfaultfd=0, a seccomp filter), the kernel side of
	# each comparison is skipped, with the reason.
	local no_kernel=
	if [ -x "$cli" ] && ! "$cli" probe 2>/dev/null | grep -q '^kernel back-end: usable'; then
		no_kernel="kernel side skipped: $("$cli" probe 2>/dev/null | sed -n 's/^  userfaultfd(0) *//p' | head -n 1)"
		echo "   ($no_kernel)"
	fi
	for ex in "$B"/examples/*; do
		[ -f "$ex" ] && [ -x "$ex" ] || continue
		name=${ex##*/}
		expect=$SRC/examples/$name.expect
		if [ ! -e "$expect" ]; then
			record SKIP "$name" dropin 0 "no examples/$name.expect yet"
			continue
		fi
		if ldd "$B/libuserfault-preload.so" 2>/dev/null | grep -q libtsan &&
		   grep -q UFFD_FEATURE_EVENT_FORK "$SRC/examples/$name.c"; then
			record SKIP "$name" dropin 0 "TSan build: a fork that waits for its FORK event deadlocks inside TSan (its own locks are held across fork)"
			continue
		fi
		if [ "$name" = stack-in-range ] && ldd "$B/libuserfault-preload.so" 2>/dev/null | grep -q libasan; then
			record SKIP "$name" dropin 0 "ASan build: the emulation gives threads no alternate signal stack of its own under ASan (USERFAULT_ALTSTACK), which a thread on a registered stack needs"
			continue
		fi
		if [ "$name" = stack-in-range ] && ldd "$B/libuserfault-preload.so" 2>/dev/null | grep -q libtsan; then
			record SKIP "$name" dropin 0 "TSan build: the new thread writes TSan's thread state (about 900 KiB of thread-local storage at the top of its stack, beyond what the creator touches) before the emulation can give it a signal stack"
			continue
		fi
		if [ ! -x "$cli" ]; then
			record FAIL "$name" dropin 0 "missing $cli"
			continue
		fi
		t0=$(now_us)
		if [ -n "$no_kernel" ]; then
			# The kernel side is refused here: the emulated run alone,
			# against the expected output (written on the kernel).
			timeout --kill-after=5 "$TEST_TIMEOUT" "$cli" run --backend emulated -- "$ex" \
				</dev/null 2>"$OUT.eerr" | filter_addresses >"$OUT.e"
			re=${PIPESTATUS[0]}
			t1=$(now_us)
			if [ ! -s "$expect" ]; then
				record SKIP "$name" dropin $((t1 - t0)) "$no_kernel, and no expected output to compare with"
			elif [ "$re" -eq 0 ] && cmp -s "$OUT.e" "$expect"; then
				record PASS "$name" dropin-emulated $((t1 - t0))
			else
				record FAIL "$name" dropin-emulated $((t1 - t0)) "exit $re or stdout differs from examples/$name.expect"
				{ diff "$expect" "$OUT.e" | head -n 15; tail -n 5 "$OUT.eerr"; } | indent
			fi
			continue
		fi
		timeout --kill-after=5 "$TEST_TIMEOUT" "$cli" run --backend kernel -- "$ex" \
			</dev/null 2>"$OUT.kerr" | filter_addresses >"$OUT.k"
		rk=${PIPESTATUS[0]}
		timeout --kill-after=5 "$TEST_TIMEOUT" "$cli" run --backend emulated -- "$ex" \
			</dev/null 2>"$OUT.eerr" | filter_addresses >"$OUT.e"
		re=${PIPESTATUS[0]}
		t1=$(now_us)
		reason=
		if [ "$rk" -eq 124 ] || [ "$re" -eq 124 ]; then
			reason="timed out (kernel $rk, emulated $re)"
		elif [ "$rk" -ne "$re" ]; then
			reason="exit status kernel $rk, emulated $re"
		elif ! cmp -s "$OUT.k" "$OUT.e"; then
			reason="stdout differs between kernel and emulated"
		elif [ -s "$expect" ] && ! cmp -s "$OUT.k" "$expect"; then
			reason="stdout differs from examples/$name.expect"
		fi
		if [ -z "$reason" ]; then
			record PASS "$name" dropin $((t1 - t0))
		else
			record FAIL "$name" dropin $((t1 - t0)) "$reason"
			{
				echo "--- kernel (filtered), exit $rk"
				tail -n 15 "$OUT.k"
				tail -n 5 "$OUT.kerr"
				echo "--- emulated (filtered), exit $re"
				tail -n 15 "$OUT.e"
				tail -n 5 "$OUT.eerr"
				if [ -s "$expect" ]; then
					echo "--- diff expect kernel"
					diff "$expect" "$OUT.k" | head -n 15
				fi
			} | indent
		fi
	done
}

if [ "$DROPIN" = 1 ]; then
	run_dropin_tests
fi

# ---- 4. the drop-in in set-user-ID programs -------------------------------
# A set-user-ID program run by another user (AT_SECURE) must get the kernel,
# never the emulation, even with LD_PRELOAD and USERFAULT_BACKEND set: the
# dynamic loader drops a preload given by path, and a drop-in loaded anyway
# (by name, from a trusted directory, with the set-user-ID bit, which the
# loader accepts) must stay inert.  The control run (same program, no
# set-user-ID bit) must get the emulation.  Needs root (chown, setpriv).
#
# "setuid" checks the control run and the preload by path.  "setuid-trusted"
# puts the drop-in into the loader's trusted directory (/usr/lib/<triplet>)
# inside a private mount namespace (unshare): an overlay on that directory,
# its upper layer on a tmpfs of the namespace, so the system's directory is
# never written and no other process sees the library; where no such
# namespace can be made (no unshare, no overlayfs, a container without
# CAP_SYS_ADMIN) it skips and says why.
#
# The namespace's part: ARGS dir libdir lib preload; set-up failures exit 3
# with "setup: REASON", else the output of the set-user-ID program.
setuid_trusted_ns='
	dir=$1 libdir=$2 lib=$3 pre=$4
	setup() { echo "setup: $*"; exit 3; }
	err=$(mount -t tmpfs -o mode=0755 uf-setuid-test "$dir/ns" 2>&1) ||
		setup "cannot mount a tmpfs in a private mount namespace: $err"
	mkdir "$dir/ns/up" "$dir/ns/work" || setup "mkdir on the tmpfs"
	err=$(mount -t overlay uf-setuid-test \
		-o "lowerdir=$libdir,upperdir=$dir/ns/up,workdir=$dir/ns/work" "$libdir" 2>&1) ||
		setup "cannot mount an overlay on $libdir: $err"
	install -m 4755 "$pre" "$libdir/$lib" || setup "install into the overlay"
	[ -e "$dir/ns/up/$lib" ] || setup "the overlay did not take $lib in its upper layer"
	exec setpriv --reuid=65534 --regid=65534 --clear-groups \
		env LD_PRELOAD="$lib" USERFAULT_BACKEND=emulated "$dir/kind" 2>&1
'

run_setuid_tests() {
	local kind=$B/tests/helpers/raw-uffd-kind pre=$B/libuserfault-preload.so
	local dir libdir=/usr/lib/x86_64-linux-gnu lib=libuserfault-preload-setuid-test.so
	local out rc reason skip t0 t1
	echo "== drop-in: set-user-ID programs"
	if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null 2>&1; then
		record SKIP setuid dropin 0 "needs root and setpriv (makes a set-user-ID root program, runs it as nobody)"
		record SKIP setuid-trusted dropin 0 "needs root and setpriv (makes a set-user-ID root program, runs it as nobody)"
		return 0
	fi
	if ldd "$pre" 2>/dev/null | grep -Eq 'lib(a|t|ub)san'; then
		record SKIP setuid dropin 0 "sanitizer runtimes refuse set-user-ID programs"
		record SKIP setuid-trusted dropin 0 "sanitizer runtimes refuse set-user-ID programs"
		return 0
	fi
	[ -d "$libdir" ] || libdir=/usr/lib
	t0=$(now_us)
	dir=$(mktemp -d)
	chmod 755 "$dir"
	cp "$kind" "$dir/kind"
	chmod 755 "$dir/kind"
	# User nobody may not reach the build tree: use copies it can read.
	cp "$pre" "$dir/libuserfault-preload.so"
	chmod 755 "$dir/libuserfault-preload.so"
	pre=$dir/libuserfault-preload.so
	reason=
	# Control: not set-user-ID, run as nobody: the drop-in works.
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
		env LD_PRELOAD="$pre" USERFAULT_BACKEND=emulated "$dir/kind" 2>&1)
	[ "$out" = "emulated preloaded" ] || reason="control run (no set-user-ID bit): '$out', expected 'emulated preloaded'"
	# Set-user-ID root, run as nobody, preload by path.
	chown root:root "$dir/kind" && chmod 4755 "$dir/kind"
	if [ -z "$reason" ]; then
		out=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
			env LD_PRELOAD="$pre" USERFAULT_BACKEND=emulated "$dir/kind" 2>&1)
		[ "$out" = kernel ] || reason="set-user-ID, preload by path: '$out', expected 'kernel'"
	fi
	t1=$(now_us)
	if [ -z "$reason" ]; then
		record PASS setuid dropin $((t1 - t0))
	else
		record FAIL setuid dropin $((t1 - t0)) "$reason"
	fi
	# Set-user-ID, preload by name from a trusted directory: loaded, inert.
	t0=$(now_us)
	reason= skip=
	if [ -e "$libdir/$lib" ]; then
		reason="$libdir/$lib exists outside the namespace (left by an older run?): remove it"
	elif ! command -v unshare >/dev/null 2>&1; then
		skip="no unshare(1) for a private mount namespace"
	else
		mkdir "$dir/ns"
		out=$(unshare --mount --propagation private -- \
			bash -c "$setuid_trusted_ns" setuid-trusted "$dir" "$libdir" "$lib" "$pre" 2>&1)
		rc=$?
		if [ "$rc" -eq 3 ] && [[ $out == setup:* ]]; then
			skip="${out#setup: }"
		elif [ "$rc" -ne 0 ] && [[ $out == unshare:* ]]; then
			skip="no private mount namespace: $out"
		elif [ "$out" = kernel ]; then
			reason="the loader did not load $libdir/$lib: the check proves nothing"
		elif [ "$out" != "kernel preloaded" ]; then
			reason="set-user-ID, drop-in loaded from $libdir: '$out', expected 'kernel preloaded'"
		fi
		# The namespace is gone: nothing of it may be left outside.
		if [ -z "$reason" ] && [ -e "$libdir/$lib" ]; then
			reason="$libdir/$lib appeared outside the private mount namespace"
		fi
	fi
	rm -rf "$dir"
	t1=$(now_us)
	if [ -n "$skip" ] && [ -z "$reason" ]; then
		record SKIP setuid-trusted dropin $((t1 - t0)) "$skip"
	elif [ -z "$reason" ]; then
		record PASS setuid-trusted dropin $((t1 - t0))
	else
		record FAIL setuid-trusted dropin $((t1 - t0)) "$reason"
	fi
}

# The CLI moved away from the build tree: without the drop-in next to it
# it says so (exit 1); USERFAULT_PRELOAD names it; a copy next to it is
# found.
run_relocate_test() {
	local kind=$B/tests/helpers/raw-uffd-kind dir out reason= t0 t1
	# (under ASan the drop-in comes before the sanitizer's runtime, as in
	# run_dropin_tests)
	local ASAN_OPTIONS="verify_asan_link_order=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
	export ASAN_OPTIONS
	t0=$(now_us)
	dir=$(mktemp -d)
	cp "$B/userfault" "$dir/userfault"
	out=$("$dir/userfault" run --backend emulated -- "$kind" 2>&1)
	[ $? -eq 1 ] && [[ $out == *"drop-in library $dir/libuserfault-preload.so"* ]] ||
		reason="moved, no drop-in next to it: '$out', expected exit 1 naming $dir/libuserfault-preload.so"
	if [ -z "$reason" ]; then
		out=$(USERFAULT_PRELOAD=$B/libuserfault-preload.so "$dir/userfault" run --backend emulated -- "$kind" 2>&1)
		[ "$out" = "emulated preloaded" ] || reason="USERFAULT_PRELOAD: '$out', expected 'emulated preloaded'"
	fi
	if [ -z "$reason" ]; then
		cp "$B/libuserfault-preload.so" "$dir/"
		out=$("$dir/userfault" run --backend emulated -- "$kind" 2>&1)
		[ "$out" = "emulated preloaded" ] || reason="drop-in next to it: '$out', expected 'emulated preloaded'"
	fi
	rm -rf "$dir"
	t1=$(now_us)
	if [ -z "$reason" ]; then
		record PASS relocate dropin $((t1 - t0))
	else
		record FAIL relocate dropin $((t1 - t0)) "$reason"
	fi
}

if [ "$DROPIN" = 1 ]; then
	run_setuid_tests
	run_relocate_test
fi

if [ ${#failures[@]} -gt 0 ]; then
	echo "failed:"
	printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
