#!/usr/bin/env bash
# QEMU background snapshot (TCG) with the QEMU under `userfault run`: a real
# client of the userfaultfd ABI's write-protect mode (UFFDIO_REGISTER_MODE_WP,
# UFFDIO_WRITEPROTECT, UFFD_PAGEFAULT_FLAG_WP).
#
#   tests/clients/qemu-bgsnapshot.sh [BUILD_DIR]      (default: build)
#
# Environment:
#   BACKEND=emulated|kernel|auto   back-end of the snapshotting QEMU (default
#                                  emulated)
#   RAM_MB=64  REGION_MB=32        guest RAM, and the part the guest rewrites
#   SNAPSHOT_BW=16777216           max-bandwidth (bytes/s) of the snapshot (QEMU
#                                  7.2 finishes in about 1 to 3 s whatever it
#                                  is: the guest's write faults keep it busy)
#   URI=auto|exec|file             where the snapshot goes: "exec:cat > FILE",
#                                  or "file:FILE" (QEMU 8.2 and later); auto:
#                                  file where QEMU has it
#   TIMEOUT_S=300                  the whole run
#   KEEP=1                         keep the temporary directory
#   SRC_WRAP="strace -f -o F"      a command in front of the snapshotting QEMU
#
# The guest is qemu-postcopy.sh's (qemu-postcopy-guest.asm, a boot sector): it
# rewrites REGION_MB of its RAM in a loop, page after page, storing before
# each page its sequence number L in a counter.  The source QEMU runs under
# `$BUILD/userfault run --backend $BACKEND` with guest RAM in ordinary private
# anonymous memory (QEMU's default).  Once the guest has made two passes, the
# driver (qemu-bgsnapshot.py) sets the capability background-snapshot and
# migrates to a file: QEMU stops the vCPU, write-protects all guest RAM
# (UFFDIO_REGISTER_MODE_WP + UFFDIO_WRITEPROTECT), saves the devices, lets the
# vCPU run on, and saves the RAM in the background; a page the guest writes
# meanwhile faults (PAGEFAULT_FLAG_WP), is saved first and then
# unprotected.  Then a second QEMU, natively, loads the file (-S, -incoming
# defer, migrate-incoming), and its RAM is saved (pmemsave) and checked: one
# instant's RAM has exactly the guest's pattern at one progress point (pages
# before the counter in pass t, after it in pass t - 1, the page itself a
# prefix; a page saved after the guest rewrote it, a missed write-protect
# fault, breaks this), at the point the loaded vCPU's registers imply (ESI,
# EDX, EIP), no earlier than the counter before the migrate command; the guest
# wrote past that point while the snapshot ran (the counter read during it)
# and at the end; and RAM outside the region is byte for byte the source's at
# the end.
#
# Exit: 0 pass, 1 fail (mismatch, QEMU error, timeout), 77 skip.
set -u

here=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-build}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "FAIL: no build directory ${1:-build}" >&2; exit 1; }
BACKEND=${BACKEND:-emulated}
RAM_MB=${RAM_MB:-64}
REGION_MB=${REGION_MB:-32}
SNAPSHOT_BW=${SNAPSHOT_BW:-16777216}
URI=${URI:-auto}
TIMEOUT_S=${TIMEOUT_S:-300}

skip() { echo "SKIP: $*" >&2; exit 77; }
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"
command -v nasm >/dev/null || skip "nasm not installed (apt-get install nasm)"
command -v python3 >/dev/null || skip "python3 not installed"
[ -x "$BUILD/userfault" ] || { echo "FAIL: $BUILD/userfault missing (make all)" >&2; exit 1; }
# Write-protect mode from the back-end.
if [ "$BACKEND" != auto ]; then
	"$BUILD/userfault" probe 2>/dev/null | sed -n "/^$BACKEND back-end/,/^[a-z]* back-end/p" |
		grep -q UFFD_FEATURE_PAGEFAULT_FLAG_WP ||
		skip "the $BACKEND back-end is not usable or has no UFFD_FEATURE_PAGEFAULT_FLAG_WP here (userfault probe)"
fi

tmp=$(mktemp -d /tmp/uf-qemu-bgsnapshot.XXXXXX)
src_pid=
cleanup() {
	# the source QEMU (and a SRC_WRAP's child, the real QEMU) and the loader
	load_pid=$(cat "$tmp/load.pid" 2>/dev/null)
	for p in $src_pid; do pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
	[ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
	sleep 0.2
	for p in $src_pid; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	[ -n "$load_pid" ] && kill -9 "$load_pid" 2>/dev/null
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Guest layout: region at 16 MiB, the counter in the page below it.
base=$((16 << 20))
npages=$((REGION_MB * 256))
counter=$((base - 4096))
# 8 KiB more than RAM_MB: see qemu-postcopy.sh (QEMU before 9.0 can lose TCG
# writes from the dirty tracking of a RAM block whose size is a multiple of
# 256 KiB; a background snapshot does not use that tracking, but the same
# RAM size keeps the two tests alike).
ram_kb=$((RAM_MB * 1024 + 8))
ram=$((ram_kb << 10))
[ $((base + npages * 4096)) -le $((ram - (4 << 20))) ] || { echo "FAIL: REGION_MB too big for RAM_MB" >&2; exit 1; }

nasm -f bin -DBASE=$base -DNPAGES=$npages -DCOUNTER=$counter -l "$tmp/boot.lst" \
	-o "$tmp/boot.bin" "$here/qemu-postcopy-guest.asm" || exit 1
head -c 1048576 /dev/zero >"$tmp/boot.img"
dd if="$tmp/boot.bin" of="$tmp/boot.img" conv=notrunc status=none || exit 1

common=(-machine pc -accel tcg -m "${ram_kb}K" -smp 1 -nodefaults -display none
	-serial none -monitor none -no-user-config
	-drive "file=$tmp/boot.img,format=raw,if=ide,index=0,file.locking=off")

# SRC_WRAP: a command put in front of the source QEMU, for diagnostics
# (e.g. SRC_WRAP="strace -f -o /tmp/src.strace")
"$BUILD/userfault" run --backend "$BACKEND" -- ${SRC_WRAP:-} qemu-system-x86_64 "${common[@]}" -name source \
	-qmp "unix:$tmp/src.qmp,server=on,wait=off" \
	>"$tmp/src.log" 2>&1 &
src_pid=$!

label="qemu-bgsnapshot backend=$BACKEND ram=${RAM_MB}M region=${REGION_MB}M bw=$SNAPSHOT_BW"
start=$(date +%s.%N)
timeout -k 5 "$TIMEOUT_S" python3 "$here/qemu-bgsnapshot.py" --dir "$tmp" \
	--src-pid "$src_pid" --ram "$ram" --base "$base" --npages "$npages" --counter "$counter" \
	--listing "$tmp/boot.lst" --bw "$SNAPSHOT_BW" --uri "$URI" --timeout $((TIMEOUT_S - 10)) \
	-- qemu-system-x86_64 "${common[@]}" -name loader \
	>"$tmp/result" 2>"$tmp/driver.log"
rc=$?
secs=$(python3 -c "import time; print('%.1f' % (time.time() - $start))")
cat "$tmp/driver.log" >&2
[ $rc = 124 ] && echo "FAIL: timed out after ${TIMEOUT_S}s" >&2
if ! kill -0 "$src_pid" 2>/dev/null; then
	wait "$src_pid"; echo "  source QEMU exited early, status $?" >&2
fi
for side in src load; do
	if [ -s "$tmp/$side.log" ]; then
		echo "  --- $side QEMU stderr:" >&2
		tail -n 30 "$tmp/$side.log" | sed 's/^/  /' >&2
	fi
done
if [ $rc = 0 ]; then
	echo "PASS: $label in ${secs}s: $(cat "$tmp/result")"
	exit 0
fi
echo "FAIL: $label after ${secs}s" >&2
exit 1
