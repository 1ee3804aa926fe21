#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check-man.sh BUILD_DIR - `make check-man`: every page of man/ renders
# without a warning with `man -l` from the tree (a page that is a symbolic
# link shows its target); after `make install DESTDIR=...` every installed
# page renders through `man -M`, the links written as .so requests; then
# `make uninstall` leaves no file behind.  Installs man-db if `man` is
# missing.  Exit 0 when all is well.
set -u
B=${1:-build}
cd "$(dirname "$0")/.." || exit 1
if ! command -v man >/dev/null 2>&1; then
	echo "installing man-db (for man -l)"
	apt-get install -y -qq man-db >/dev/null 2>&1 ||
		{ apt-get update -qq && apt-get install -y -qq man-db >/dev/null 2>&1; } ||
		{ echo "check-man: cannot install man-db"; exit 1; }
fi
fail=0 n=0
# (MANWIDTH: no terminal here; --warnings: groff's warnings to stderr)
render() {	# what, then man's arguments
	local what=$1 out err
	shift
	err=$(MANWIDTH=80 MAN_KEEP_FORMATTING=0 man --warnings=w "$@" 2>&1 >/dev/null)
	out=$(MANWIDTH=80 man "$@" 2>/dev/null | wc -l)
	n=$((n + 1))
	if [ -n "$err" ] || [ "$out" -lt 10 ]; then
		echo "FAIL $what: ${err:-only $out lines}"
		fail=$((fail + 1))
	fi
}
for m in man/*.[0-9]; do
	render "$m (man -l)" -l "$m"
done
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
if ! make -s install DESTDIR="$dest" PREFIX=/usr B="$B" >/dev/null 2>"$dest.err"; then
	echo "FAIL make install DESTDIR=$dest: $(cat "$dest.err")"
	rm -f "$dest.err"
	exit 1
fi
rm -f "$dest.err"
for m in man/*.[0-9]; do
	sec=${m##*.}
	name=${m##*/}
	name=${name%.*}
	render "$name($sec) installed" -M "$dest/usr/share/man" "$sec" "$name"
done
make -s uninstall DESTDIR="$dest" PREFIX=/usr B="$B" >/dev/null 2>&1
left=$(find "$dest" -type f | sed "s|^$dest||")
if [ -n "$left" ]; then
	echo "FAIL make uninstall left: $left"
	fail=$((fail + 1))
fi
echo "check-man: $n renders, $fail failed"
[ "$fail" -eq 0 ]
