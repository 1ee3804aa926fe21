#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check-arch.sh BUILD_DIR [--diagram]: the architecture rules of src/,
# checked on the built objects (HACKING.md explains them):
#
#   1. layers   every call from one file of src/ to another (an undefined
#               symbol of one object defined by another, found with nm) and
#               every #include "..." goes to a file listed before it in
#               src/LAYERS: calls only go down, and no two files call each
#               other (no loop between files);
#   2. raw      no object outside src/interpose/ uses, by its public name, a
#               C library function that src/interpose/ replaces (the library
#               calls the sys_ wrappers of src/base/sys.h instead);
#   3. exports  the shared library and the drop-in export exactly what
#               src/exports.txt lists (nm -D).
#
# With --diagram, it also prints the layers with their line counts and the
# calls between layers.  Exit 0 when every rule holds, 1 otherwise.
set -u
B=${1:?usage: check-arch.sh BUILD_DIR [--diagram]}
DIAGRAM=${2:-}
cd "$(dirname "$0")/.." || exit 2
fail=0
err() { echo "check-arch: $*"; fail=1; }

# rank[file] (position in src/LAYERS), layer[file] (its layer's name).
declare -A rank layer lnum
i=0
while read -r num name files; do
	case $num in ''|\#*) continue ;; esac
	for f in $files; do
		i=$((i + 1))
		rank[$f]=$i
		layer[$f]=$name
		lnum[$f]=$num
	done
done < src/LAYERS

# Every source and header of src/ must be placed.
while read -r f; do
	f=${f#src/}
	[ -n "${rank[$f]-}" ] || err "$f is in no layer of src/LAYERS"
done < <(find src -name '*.[ch]' | sort)

# ---- 1a. includes ----
while read -r f; do
	rel=${f#src/}
	[ -n "${rank[$rel]-}" ] || continue
	while read -r inc; do
		[ -n "${rank[$inc]-}" ] || continue	# not a file of src/ (userfault.h, ...)
		if [ "${rank[$inc]}" -ge "${rank[$rel]}" ]; then
			err "$rel (layer ${layer[$rel]}) includes $inc (layer ${layer[$inc]}), which is not below it"
		fi
	done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
done < <(find src -name '*.[ch]' | sort)

# ---- 1b. calls, from the objects ----
objs=()
for f in $(find src -name '*.c' | sort); do
	o=$B/obj/${f#src/}
	o=${o%.c}.o
	[ -f "$o" ] || { err "no object $o: build first (make B=$B)"; continue; }
	objs+=("$o")
done
defs=$(mktemp) unds=$(mktemp)
trap 'rm -f "$defs" "$unds"' EXIT
for o in "${objs[@]}"; do
	src=${o#$B/obj/}
	src=${src%.o}.c
	nm -P "$o" | awk -v f="$src" '$2 ~ /^[TDBRVWC]$/ { print $1, f }' >>"$defs"
	nm -P "$o" | awk -v f="$src" '$2 == "U" { print $1, f }' >>"$unds"
done
# edges: caller callee symbol
edges=$(awk 'NR == FNR { def[$1] = $2; next } ($1 in def) && def[$1] != $2 { print $2, def[$1], $1 }' "$defs" "$unds" | sort -u)
while read -r caller callee sym; do
	[ -n "$caller" ] || continue
	case $callee in interpose/*)
		# A call by name to an interposer: rule 2 (below), not a layer edge.
		continue ;;
	esac
	if [ "${rank[$callee]}" -ge "${rank[$caller]}" ]; then
		err "$caller (layer ${layer[$caller]}) calls $sym of $callee (layer ${layer[$callee]}), which is not below it"
	fi
done <<<"$edges"

# ---- 2. raw calls ----
# Interposed names the library may call: pthread_create (the watcher thread
# getting an alternate signal stack of ours, as every thread does, is what
# the interposer is for).
MAY_CALL=" pthread_create "
while read -r f sym; do
	case $MAY_CALL in *" $sym "*) continue ;; esac
	[ -n "$f" ] && err "$f calls $sym(), which src/interpose/ replaces: use the sys_ wrapper (src/base/sys.h)"
done < <(awk 'NR == FNR { if ($2 ~ /^interpose\//) repl[$1] = 1; next }
	      ($1 in repl) && $2 !~ /^interpose\// { print $2, $1 }' "$defs" "$unds")

# ---- 3. exports ----
check_exports() {	# library, space-separated kinds of src/exports.txt
	local lib=$1 kinds=$2 want got
	[ -f "$lib" ] || { err "no $lib"; return; }
	want=$(awk -v k=" $kinds " 'index(k, " " $1 " ") { print $2 }' src/exports.txt | sort)
	got=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TWiDBV]$/ { print $3 }' | sed 's/@.*//' | sort -u)
	if [ "$want" != "$got" ]; then
		err "$lib exports differ from src/exports.txt (< listed only, > exported only):"
		diff <(echo "$want") <(echo "$got") | grep '^[<>]' | sed 's/^/    /'
	fi
}
check_exports "$B/libuserfault.so" "lib"
check_exports "$B/libuserfault-preload.so" "lib dropin"

# ---- the diagram ----
if [ "$DIAGRAM" = --diagram ]; then
	echo "layers of src/ (bottom last), lines, and the layers each one calls:"
	while read -r num name files; do
		case $num in ''|\#*) continue ;; esac
		lines=0
		for f in $files; do lines=$((lines + $(wc -l <"src/$f"))); done
		calls=$(while read -r caller callee sym; do
				[ -n "$caller" ] && [ "${layer[$caller]}" = "$name" ] || continue
				case $callee in interpose/*) continue ;; esac
				[ "${layer[$callee]}" != "$name" ] && echo "${lnum[$callee]} ${layer[$callee]}"
			done <<<"$edges" | sort -u -n | awk '{ print $2 }' | tr '\n' ' ')
		printf '%s %-9s %5d lines  calls: %s\n' "$num" "$name" "$lines" "${calls:-(nothing of src/)}"
	done < <(grep -v '^#' src/LAYERS | sort -rn)
fi

if [ $fail -eq 0 ]; then
	echo "check-arch: ok (${#objs[@]} objects: calls and includes only go down; no interposed name called; exports as listed)"
fi
exit $fail
