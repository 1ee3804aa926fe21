#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check-signal.sh BUILD_DIR: the code that runs in our signal handlers,
# checked on the built objects of src/.
#
# The roots are the functions the kernel (or the signal chain) calls on a
# signal: the listed handlers and the interrupt hook.  From them the script
# follows every direct call and tail call in the disassembly (so after
# inlining, as the code really runs) and checks each function reached:
#
#   1. it calls no C library function outside ALLOWED below (each one is
#      async-signal-safe and is not replaced by a sanitizer's interceptor);
#   2. in a ThreadSanitizer build, it does not enter TSan's runtime
#      (no __tsan_ call): our handlers are installed behind TSan's back, so
#      the interrupted thread may be inside that runtime, holding a lock an
#      instrumented access would take again (the thread then hangs).
#      Such functions are marked SIG_SAFE (src/base/sys.h).
#
# Calls through a pointer (the program's own handlers) are not followed.
# Exit 0 when both hold, 1 otherwise.
set -u
B=${1:?usage: check-signal.sh BUILD_DIR}
cd "$(dirname "$0")/.." || exit 2

ROOTS="segv_handler trampoline on_interrupt sigbus_handler"
# C library calls allowed in a handler.  siglongjmp is replaced by TSan's
# interceptor, but is only called from a SIGSEGV raised by our own guarded
# copy (usercopy.c), never from an asynchronous signal.
ALLOWED="__errno_location __sigaction getpid sched_yield sigaddset sigdelset sigismember siglongjmp __stack_chk_fail"

# And these, async-signal-safe too, but not under TSan, which replaces them
# with its interceptors.
if ! nm "$B/obj/emu/fault.o" 2>/dev/null | grep -q __tsan_init; then
	ALLOWED="$ALLOWED clock_gettime memcpy memmove memset"
fi

objs=
for f in $(find src -name '*.c' ! -path 'src/interpose/*' | sort); do
	o=$B/obj/${f#src/}; o=${o%.c}.o
	[ -f "$o" ] || { echo "check-signal: $o is missing (build first)"; exit 2; }
	objs="$objs $o"
done

for o in $objs; do
	objdump -dr --no-show-raw-insn "$o" | awk '
	# A function starts; each call or jmp names its target either in the
	# relocation that follows it or, within the object, in <name>.
	/^[0-9a-f]+ <[^>]+>:$/ { flush(); fn = $2; gsub(/[<>:]/, "", fn); print "DEF", fn; next }
	/^[ \t]+[0-9a-f]+:[ \t]+(call|jmp)/ {
		flush()
		if (match($0, /<[^>]+>$/)) {
			t = substr($0, RSTART + 1, RLENGTH - 2)
			if (t !~ /\+0x/ && t != fn) pend = t
		}
		branch = 1; next
	}
	/R_X86_64_(PLT32|PC32)/ && branch {
		s = $NF; sub(/[-+]0x[0-9a-f]+$/, "", s); sub(/@plt$/, "", s)
		pend = s; branch = 0; next
	}
	{ flush() }
	function flush() { if (pend != "") print "EDGE", fn, pend; pend = ""; branch = 0 }
	END { flush() }'
done | awk -v roots="$ROOTS" -v allowed="$ALLOWED" '
	$1 == "DEF" { def[$2] = 1; next }
	$1 == "EDGE" { n = ++ne[$2]; edge[$2, n] = $3; next }
	END {
		split(allowed, a); for (i in a) ok[a[i]] = 1
		nr = split(roots, r)
		for (i = 1; i <= nr; i++) {
			if (!def[r[i]]) { print "check-signal: root " r[i] " is defined by no object"; bad = 1 }
			st[++sp] = r[i]; via[r[i]] = "(root)"
		}
		while (sp > 0) {
			f = st[sp--]
			if (seen[f]++) continue
			reached++
			for (j = 1; j <= ne[f]; j++) {
				t = edge[f, j]
				if (t ~ /^__tsan_/) {
					if (!tsan[f]++) { print "check-signal: " f " (reached from " via[f] ") enters the TSan runtime (" t ")"; bad = 1 }
				} else if (def[t]) {
					if (!(t in via)) via[t] = f
					st[++sp] = t
				} else if (!ok[t] && !ext[f, t]++) {
					print "check-signal: " f " (reached from " via[f] ") calls " t ", which is not allowed in a signal handler"; bad = 1
				}
			}
		}
		printf "check-signal: %d functions reached from %d roots%s\n", reached, nr, bad ? "" : ", ok"
		exit bad
	}'
