#!/usr/bin/env bash
# fuzz/check.sh BUILD_DIR [FUZZ_CC] - what `make fuzz-check` runs (CI).
#  1. replay every input of fuzz/corpus on both back-ends with the replay
#     binary (built with $(CC)): with guard markers, then without them;
#  2. list the reproducers of known differences (fuzz/corpus/diff-*) that
#     still differ when nothing is excused (UFFD_DIFF_STRICT=1; informational);
#  3. if FUZZ_CC can build libFuzzer targets: a short fixed-seed fuzzing pass.
# Exit status 0 only if no difference (other than the known ones) showed.
set -u
cd "$(dirname "$0")/.."
B=${1:-build}
FCC=${2:-clang}
RUNS=${UFFD_DIFF_RUNS:-6000}
replay=$B/fuzz/uffd-diff-replay
status=0

echo "=== uffd-diff: replay fuzz/corpus"
timeout 600 "$replay" fuzz/corpus || status=1
echo "=== uffd-diff: replay fuzz/corpus without guard markers, without spinning"
USERFAULT_GUARD_MARKERS=0 USERFAULT_SPIN_US=0 timeout 600 "$replay" fuzz/corpus || status=1

echo "=== uffd-diff: known differences (fuzz/corpus/diff-*, UFFD_DIFF_STRICT=1)"
for f in fuzz/corpus/diff-*; do
	[ -e "$f" ] || continue
	if (UFFD_DIFF_STRICT=1 timeout 60 "$replay" "$f") >/dev/null 2>&1; then
		echo "  no longer differs: $f (fixed: its entry in known_on[] of fuzz/uffd-diff.c goes)"
	else
		echo "  still differs:     $f"
	fi
done

if command -v "$FCC" >/dev/null 2>&1 &&
   echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' |
	"$FCC" -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then
	echo "=== uffd-diff: libFuzzer, -seed=1 -runs=$RUNS"
	if make --no-print-directory -j"$(nproc)" B="$B" FUZZ_CC="$FCC" fuzz; then
		tmp=$(mktemp -d)
		timeout 1200 "$B/fuzz/uffd-diff" -seed=1 -runs="$RUNS" -timeout=10 -rss_limit_mb=4096 \
			-artifact_prefix="$tmp/" "$tmp" fuzz/corpus 2>&1 |
			grep -E '^#[0-9]+.*(DONE|INITED)|DIFFERENCE|ERROR|^Done|crash-|timeout-|leak-|==== ' || true
		found=
		for f in "$tmp"/crash-* "$tmp"/timeout-* "$tmp"/leak-* "$tmp"/oom-*; do
			[ -e "$f" ] && found=1
		done
		if [ -n "$found" ]; then
			echo "=== uffd-diff: libFuzzer found something; inputs kept in $tmp"
			status=1
		else
			rm -rf "$tmp"
		fi
	else
		status=1
	fi
else
	echo "=== uffd-diff: libFuzzer pass skipped ($FCC cannot build -fsanitize=fuzzer)"
fi
[ $status -eq 0 ] && echo "=== uffd-diff: ok" || echo "=== uffd-diff: FAILED"
exit $status
