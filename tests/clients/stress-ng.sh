#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# stress-ng.sh [BUILD_DIR] [SECONDS]: stress-ng's userfaultfd stressor (a
# real client of the ABI, Debian's stress-ng), run natively, under the
# drop-in on the emulation, and under each seccomp filter that takes the
# kernel mechanism away with the back-end left at auto (where the drop-in
# must choose the emulation).  Each run must complete with no failure and
# count page faults (bogo ops > 0); without the drop-in, stress-ng skips the
# stressor under such a filter.  Exit 0 if every run passed, 1 if one
# failed, 77 (with the reason) if stress-ng is not installed.
set -u
B=${1:-build}
SECS=${2:-5}
cd "$(dirname "$0")/../.." || exit 1
if ! command -v stress-ng >/dev/null 2>&1; then
	echo "SKIP: stress-ng is not installed (apt-get install stress-ng)" >&2
	exit 77
fi
cli=$B/userfault sec=$B/tests/helpers/seccomp-run
fail=0
run() {	# label, command...
	local label=$1 out ops rate
	shift
	out=$("$@" --userfaultfd 2 --timeout "$SECS" --metrics-brief 2>&1)
	local rc=$?
	ops=$(awk '/metrc:.* userfaultfd +[0-9]/ { print $5; exit }' <<<"$out")
	rate=$(awk '/nanosecs per page fault/ { print $5; exit }' <<<"$out")
	if [ $rc -eq 0 ] && grep -q 'successful run completed' <<<"$out" && [ "${ops:-0}" -gt 0 ] 2>/dev/null; then
		printf 'PASS stress-ng %-34s %8s bogo ops, %10s ns per page fault\n' "$label" "$ops" "${rate:-?}"
	else
		printf 'FAIL stress-ng %-34s (exit %d)\n' "$label" "$rc"
		tail -n 15 <<<"$out" | sed 's/^/    | /'
		fail=1
	fi
}
run "native (kernel)" stress-ng
run "drop-in, emulated" "$cli" run --backend emulated -- stress-ng
run "drop-in, kernel" "$cli" run --backend kernel -- stress-ng
for mode in eperm enosys kill; do
	run "seccomp $mode, drop-in, auto" "$sec" "$mode" -- "$cli" run -- stress-ng
done
exit $fail
