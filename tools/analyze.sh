#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# analyze.sh [BUILD_DIR] - static analysers and valgrind; `make analyze`.
# BUILD_DIR (default build) is relative to the top of the tree.
#
#   1. clang-tidy over src/*/, tools/, bench/, tests/
#      (helpers too) and examples/, with the checks of .clang-tidy and the
#      project's compile flags (a compilation database written into
#      BUILD_DIR/analyze/ from `make print-cflags`).  Every finding fails.
#   2. cppcheck over the same files (same database), warning, style,
#      performance and portability checks, inline suppressions, and the
#      suppressions (each with its reason) of tools/analyze/cppcheck.supp.
#   3. valgrind memcheck: every test of BUILD_DIR/tests on the emulated
#      back-end (valgrind does not know the userfaultfd system call), the
#      examples through the drop-in, and `userfault demo`; an error, a
#      definite leak or a failed test fails.  The suppressions (each with
#      its reason) are in tools/analyze/valgrind.supp; the tests that cannot
#      run under valgrind are listed below, with the reason.
#
# Missing tools are installed with apt-get (clang-tidy cppcheck valgrind) when
# run as root.  The last line is "analyze: ok" or "analyze: FAILED (...)";
# the exit status is 0 only if no tool found anything.
#
# Environment:
#   ANALYZE="clang-tidy cppcheck valgrind"   the passes to run
#   JOBS=N                                   parallel clang-tidy runs (nproc)
#   VG_TIMEOUT=300                           seconds per program under valgrind
set -u
unset MAKEFLAGS MFLAGS MAKELEVEL
cd "$(dirname "$0")/.."
SRC=$PWD
B=${1:-build}
ANALYZE=${ANALYZE-"clang-tidy cppcheck valgrind"}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
VG_TIMEOUT=${VG_TIMEOUT:-300}
CONF=$SRC/tools/analyze

# Tests that cannot run under valgrind, as "name: reason" (none today).
# What the valgrind pass leaves out, and why:
#  - the kernel back-end and the seccomp pass: valgrind 3.19 does not know the
#    userfaultfd system call (ENOSYS, "unhandled syscall"), and a seccomp
#    filter would apply to valgrind itself;
#  - the emulation without guard markers (USERFAULT_GUARD_MARKERS=0): memcheck
#    marks PROT_NONE pages unaddressable, so the very access that the
#    emulation catches (a missing page) is reported as an invalid read/write.
#    With guard markers (valgrind passes madvise 102/103 through) the pages
#    stay addressable and only real errors are reported;
#  - inside tests, under USERFAULT_TEST_VALGRIND=1: the checks that a SIGBUS
#    at SIG_DFL kills the process (pager, sigbus), since valgrind takes the
#    SIGBUS that the emulation queues to the faulting thread (si_code
#    BUS_ADRERR) for a fault in its own code and aborts; register-race's
#    floor on the rate of REGISTER rounds; poison's thread that waits on a
#    fault then gets SIGBUS (under valgrind its fault never arrives: seen,
#    not explained further);
#  - tests that skip themselves: large-noreserve (valgrind refuses a 64 GiB
#    mapping, EINVAL);
#  - the emulation's own alternate signal stacks (USERFAULT_ALTSTACK=0):
#    memcheck takes the frames of a handler on an alternate stack for
#    accesses to the normal stack ("client switching stacks?", invalid
#    writes in _dl_runtime_resolve);
#  - the tests listed in VG_EXCLUDE, for the reason given there.
VG_EXCLUDE=(
	"memory-calls: valgrind 3.19 does not know mlock2 (system call 325), and runs the write touch of a populating call as a load and then a compare-and-swap (the fault is reported as a read)"
	"close-others: it closes every descriptor it did not open, valgrind's own included (an 'invalid file descriptor' report for each)"
	"dup-onto-ours: it dup2()s a file onto every descriptor it did not open, valgrind's own included, which valgrind refuses (EBADF)"
	"stack-in-range: a thread on a stack carved out of a registered range needs the emulation's alternate signal stacks, which the valgrind pass turns off"
	"static-link: a program linked statically: memcheck cannot replace malloc in it, and reports the C library's own start-up"
	"signal-during-wait: under valgrind an access retried after a signal handler returns does not fault again (valgrind's own signal delivery; seen, not explained further)"
	"register-after-close: under valgrind the last close of a uffd by a child that has exited is seen after waitpid returns (EBUSY in a few of its 40 rounds; seen, not explained further)"
	"hugetlb: hugetlb has no guard markers, so missing huge pages are PROT_NONE, which memcheck marks unaddressable (as the emulation without guard markers above)"
	"shmem-procs: its hugetlb half, for the same reason as hugetlb (its memfd half skips itself under valgrind, which does not know cachestat: no MISSING_SHMEM)"
)
# Examples whose output is not compared with NAME.expect under valgrind (the
# exit status and memcheck still count), as "name: reason".
VG_NOEXPECT=(
	"syscalls-on-missing: the drop-in touches a buffer that the kernel will write with a locked OR of 0 (arch_touch_write, src/base/arch/), a read-modify-write; valgrind runs it as a load and then a compare-and-swap, so the fault is a read fault and the message lacks UFFD_PAGEFAULT_FLAG_WRITE ('fault on page 1 (read)' where the kernel, and the emulation without valgrind, say write)"
)

has() { [[ " $ANALYZE " == *" $1 "* ]]; }
want=()
has clang-tidy && want+=(clang-tidy)
has cppcheck && want+=(cppcheck)
has valgrind && want+=(valgrind)
missing=()
for t in "${want[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "analyze: installing ${missing[*]}"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
	for t in "${missing[@]}"; do
		command -v "$t" >/dev/null 2>&1 || { echo "analyze: $t is missing (apt-get install -y $t)"; exit 1; }
	done
fi

echo "=== build ($B)"
make -s -j"$JOBS" B="$B" all || { echo "analyze: FAILED (build)"; exit 1; }
B=$(cd "$B" && pwd)
A=$B/analyze
rm -rf "$A"
mkdir -p "$A/clang-tidy" "$A/valgrind"

# ---- the compilation database -------------------------------------------
# The Makefile's flags; the extra flags of each kind of file as in the
# Makefile (tools and bench: UF_PRELOAD_NAME; tests: -Itests).
read -r -a cflags <<<"$(make -s --no-print-directory print-cflags)"
files=()
for f in src/*/*.c tools/*.c bench/*.c tests/*.c tests/helpers/*.c \
	 examples/*.c; do
	[ -f "$f" ] && files+=("$f")
done
json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
{
	echo "["
	sep=
	for f in "${files[@]}"; do
		args=(cc "${cflags[@]}")
		case $f in
		tools/*|bench/*) args+=('-DUF_PRELOAD_NAME="libuserfault-preload.so"') ;;
		tests/*) args+=(-Itests) ;;
		esac
		args+=(-c "$f" -o /dev/null)
		printf '%s{"directory": %s, "file": %s, "arguments": [' "$sep" "$(json_str "$SRC")" \
			"$(json_str "$f")"
		s2=
		for a in "${args[@]}"; do printf '%s%s' "$s2" "$(json_str "$a")"; s2=", "; done
		printf ']}\n'
		sep=","
	done
	echo "]"
} >"$A/compile_commands.json"

failed=()
summary=()

# ---- 1. clang-tidy ------------------------------------------------------
run_clang_tidy() {
	local t0=$SECONDS n
	echo "=== clang-tidy ($(clang-tidy --version | sed -n 's/.*LLVM version \([0-9.]*\).*/\1/p'), ${#files[@]} files, .clang-tidy)"
	printf '%s\n' "${files[@]}" | xargs -P "$JOBS" -I{} sh -c \
		'log="$3/$(echo "$2" | tr / _).log"
		 clang-tidy --quiet -p "$1" "$2" >"$log" 2>&1 ||
			echo "$2: clang-tidy exit status $?" >>"$log"' \
		sh "$A" {} "$A/clang-tidy"
	# A header's finding comes once per file that includes it: print each
	# finding (with its notes and source lines) once.
	awk 'FNR == 1 { show = 1 }
	     /^[0-9]+ (warning|error)s? generated\.$/ { next }
	     /^[^ ].*:[0-9]+:[0-9]+: (warning|error): / { show = !($0 in seen); seen[$0] = 1 }
	     show { print }' "$A"/clang-tidy/*.log >"$A/clang-tidy.txt"
	n=$(grep -cE '^[^ ].*:[0-9]+:[0-9]+: (warning|error): |: clang-tidy exit status ' "$A/clang-tidy.txt")
	cat "$A/clang-tidy.txt"
	echo "=== clang-tidy: $n finding(s) ($((SECONDS - t0))s)"
	summary+=("clang-tidy $n")
	[ "$n" -eq 0 ] || failed+=(clang-tidy)
}

# ---- 2. cppcheck --------------------------------------------------------
run_cppcheck() {
	local t0=$SECONDS n arch rc
	case $(uname -m) in
	x86_64) arch=-D__x86_64__ ;;
	aarch64) arch=-D__aarch64__ ;;
	*) arch= ;;
	esac
	echo "=== cppcheck ($(cppcheck --version | sed 's/^Cppcheck //'), tools/analyze/cppcheck.supp)"
	# The compiler's own predefined macros are not in the database: the
	# architecture's and Linux's are given, so that src/base/arch/ and src/base/sys.h
	# pick their real branch.
	cppcheck --project="$A/compile_commands.json" $arch -D__linux__ \
		--platform=unix64 --std=c11 --library=posix --library=gnu \
		--enable=warning,style,performance,portability --inline-suppr \
		--suppressions-list="$CONF/cppcheck.supp" -j "$JOBS" --quiet \
		--error-exitcode=1 --template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
		>"$A/cppcheck.out" 2>"$A/cppcheck.txt"
	rc=$?
	n=$(grep -cE '^[^ ].*:[0-9]+:[0-9]+: [a-z]+: ' "$A/cppcheck.txt")
	cat "$A/cppcheck.txt"
	echo "=== cppcheck: $n finding(s), exit status $rc ($((SECONDS - t0))s)"
	summary+=("cppcheck $n")
	[ "$n" -eq 0 ] && [ "$rc" -eq 0 ] || failed+=(cppcheck)
}

# ---- 3. valgrind --------------------------------------------------------
VG=(valgrind --vex-iropt-register-updates=allregs-at-mem-access --leak-check=full
    --errors-for-leak-kinds=definite --show-leak-kinds=definite --error-exitcode=1
    --suppressions="$CONF/valgrind.supp")
vg_pass=0 vg_fail=0 vg_skip=0 vg_preload=

vg_listed() {	# name "${list[@]}" -> the reason given there, or nothing
	local n=$1 e
	shift
	for e in "$@"; do
		[ "${e%%:*}" = "$n" ] && { echo "${e#*: }"; return; }
	done
}

# vg_run NAME EXPECT_FILE CMD...: CMD under valgrind (a log per process, as
# tests fork); PASS if it exits 0 (77: SKIP), no log counts an error, and its
# standard output matches EXPECT_FILE (if given and not empty).
vg_run() {
	local name=$1 expect=$2 t0=$SECONDS rc errs reason= log
	shift 2
	log=$A/valgrind/$name
	env USERFAULT_BACKEND=emulated USERFAULT_TEST_VALGRIND=1 USERFAULT_ALTSTACK=0 ${vg_preload:+LD_PRELOAD="$vg_preload"} \
		timeout --kill-after=5 "$VG_TIMEOUT" "${VG[@]}" --log-file="$log.%p.vg" "$@" \
		</dev/null >"$log.out" 2>"$log.err"
	rc=$?
	errs=$(cat "$log".*.vg 2>/dev/null | sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' |
	       awk '{ s += $1 } END { print s + 0 }')
	if [ "$rc" -eq 77 ] && [ "$errs" -eq 0 ]; then
		vg_skip=$((vg_skip + 1))
		echo "SKIP $name ($((SECONDS - t0))s): $(grep -m1 -i '^skip' "$log.err" | sed 's/^[Ss][Kk][Ii][Pp]:* *//')"
		return
	fi
	if [ "$errs" -ne 0 ]; then
		reason="$errs valgrind error(s)"
	elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		reason="timed out after ${VG_TIMEOUT}s"
	elif [ "$rc" -ne 0 ]; then
		reason="exit status $rc"
	elif [ -n "$expect" ] && [ -s "$expect" ] &&
	     ! sed 's/0x[0-9a-f]\+/ADDR/g' "$log.out" | cmp -s - "$expect"; then
		reason="output differs from ${expect#"$SRC"/}"
	fi
	if [ -z "$reason" ]; then
		vg_pass=$((vg_pass + 1))
		echo "PASS $name ($((SECONDS - t0))s)"
	else
		vg_fail=$((vg_fail + 1))
		echo "FAIL $name ($((SECONDS - t0))s): $reason"
		tail -n 20 "$log.out" "$log.err" | sed 's/^/    | /'
		cat "$log".*.vg 2>/dev/null | grep -v '^==[0-9]*== *$' | sed 's/^/    | /' | head -n 200
	fi
}

run_valgrind() {
	local t0=$SECONDS f n why expect
	echo "=== valgrind ($(valgrind --version), memcheck, back-end emulated, tools/analyze/valgrind.supp)"
	for f in "$B"/tests/*; do
		[ -f "$f" ] && [ -x "$f" ] || continue
		n=${f##*/}
		why=$(vg_listed "$n" "${VG_EXCLUDE[@]}")
		if [ -n "$why" ]; then
			vg_skip=$((vg_skip + 1))
			echo "SKIP $n: not run under valgrind: $why"
			continue
		fi
		vg_run "$n" "" "$f"
	done
	# The raw-ABI examples through the drop-in (no kernel uffd under
	# valgrind: the drop-in serves them), output against NAME.expect.
	for f in "$B"/examples/*; do
		[ -f "$f" ] && [ -x "$f" ] || continue
		n=${f##*/}
		expect=$SRC/examples/$n.expect
		why=$(vg_listed "$n" "${VG_EXCLUDE[@]}")
		if [ -n "$why" ]; then
			vg_skip=$((vg_skip + 1))
			echo "SKIP dropin-$n: not run under valgrind: $why"
			continue
		fi
		why=$(vg_listed "$n" "${VG_NOEXPECT[@]}")
		if [ -n "$why" ]; then
			echo "note: dropin-$n: output not compared with examples/$n.expect under valgrind: $why"
			expect=
		fi
		vg_preload=$B/libuserfault-preload.so
		vg_run "dropin-$n" "$expect" "$f"
		vg_preload=
	done
	vg_run "userfault-demo" "" "$B/userfault" --backend emulated demo 8
	echo "=== valgrind: $vg_pass passed, $vg_fail failed, $vg_skip skipped ($((SECONDS - t0))s)"
	summary+=("valgrind $vg_fail failed")
	[ "$vg_fail" -eq 0 ] || failed+=(valgrind)
}

has clang-tidy && run_clang_tidy
has cppcheck && run_cppcheck
has valgrind && run_valgrind

if [ ${#failed[@]} -eq 0 ]; then
	echo "analyze: ok (${summary[*]})"
	exit 0
fi
echo "analyze: FAILED (${failed[*]}; ${summary[*]})"
exit 1
