#!/usr/bin/env bash
# QEMU post-copy live migration (TCG) with the destination QEMU under
# `userfault run`: a real client of the userfaultfd ABI.
#
#   tests/clients/qemu-postcopy.sh [BUILD_DIR]        (default: build)
#
# Environment:
#   BACKEND=emulated|kernel|auto   back-end of the destination (default emulated)
#   MEMFD=1                        guest RAM in a shared memfd on both sides
#                                  (memory-backend-memfd,share=on)
#   MEMFD=anon                     guest RAM shared anonymous memory on both
#                                  sides (memory-backend-ram,share=on); the
#                                  emulation maps it as a memfd of its own
#                                  (USERFAULT_SHARED_ANON=memfd, as it does
#                                  by itself without /proc/self/map_files)
#   RAM_MB=64  REGION_MB=32        guest RAM, and the part the guest rewrites
#   PRECOPY_S=1.5                  seconds of pre-copy before post-copy
#   DUMP_AFTER_S=1                 seconds of post-copy before the dump
#   DUMP=0                         the snapshot during post-copy by stop +
#                                  pmemsave + cont (user-mode copies) instead
#                                  of dump-guest-memory (system calls)
#   POSTCOPY_BW=8388608            max-postcopy-bandwidth (bytes/s): keeps the
#                                  post-copy phase long enough for the dump
#   KEEP=1                         keep the temporary directory
#   DST_WRAP="strace -f -o F"      a command in front of the destination QEMU
#
# The guest (qemu-postcopy-guest.asm, a boot sector) rewrites REGION_MB of its
# RAM in a loop.  The source QEMU runs natively; the destination runs under
# `$BUILD/userfault run --backend $BACKEND`.  The migration switches to
# post-copy after a short pre-copy; while post-copy runs, the destination is
# asked for dump-guest-memory (QEMU write()s guest RAM, pages still missing,
# to a file).  After completion both RAMs are saved and checked
# (qemu-postcopy.py): the guest's pattern must be exact in the source's RAM,
# in the dump and in the destination's RAM, and everything the destination's
# guest has not rewritten since the switch-over must equal the source's.
#
# Exit: 0 pass, 1 fail (mismatch, QEMU error, timeout), 77 skip.
set -u

here=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-build}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "FAIL: no build directory ${1:-build}" >&2; exit 1; }
BACKEND=${BACKEND:-emulated}
MEMFD=${MEMFD:-0}
RAM_MB=${RAM_MB:-64}
REGION_MB=${REGION_MB:-32}
PRECOPY_S=${PRECOPY_S:-1.5}
DUMP_AFTER_S=${DUMP_AFTER_S:-1}
POSTCOPY_BW=${POSTCOPY_BW:-8388608}
TIMEOUT_S=${TIMEOUT_S:-300}

skip() { echo "SKIP: $*" >&2; exit 77; }
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"
command -v nasm >/dev/null || skip "nasm not installed (apt-get install nasm)"
command -v python3 >/dev/null || skip "python3 not installed"
[ -x "$BUILD/userfault" ] || { echo "FAIL: $BUILD/userfault missing (make all)" >&2; exit 1; }
# Shared guest RAM needs MISSING mode on shared memory from the back-end.
if [ "$MEMFD" != 0 ] && [ "$BACKEND" = emulated ] &&
	! "$BUILD/userfault" probe 2>/dev/null | sed -n '/^emulated/,$p' | grep -q UFFD_FEATURE_MISSING_SHMEM; then
	skip "the emulated back-end has no MISSING_SHMEM here (guard markers on shared memory need Linux 6.15)"
fi

tmp=$(mktemp -d /tmp/uf-qemu-postcopy.XXXXXX)
src_pid= dst_pid=
cleanup() {
	# the QEMUs, and a DST_WRAP's child (the real destination QEMU)
	for p in $src_pid $dst_pid; do pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
	sleep 0.2
	for p in $src_pid $dst_pid; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Guest layout: region at 16 MiB, the counter in the page below it.
base=$((16 << 20))
npages=$((REGION_MB * 256))
counter=$((base - 4096))
# QEMU before 9.0 (Debian 12 has 7.2) can lose TCG writes from migration's
# dirty tracking: when it syncs a RAM block whose size is a multiple of
# 256 KiB it clears the dirty bits a word at a time without re-arming the
# TLB entries that skip tracking (fixed upstream by 03bfc2188f "physmem: Fix
# migration dirty bitmap coherency with TCG memory access"), so a page that
# stays in the vCPU's TLB, like this guest's counter, may be sent once and
# never again (seen here on the kernel back-end: the destination's counter
# thirty passes behind its region).  The other path, page by page, re-arms
# them; it is taken for a block of another size, hence 8 KiB more RAM than
# RAM_MB (QEMU rounds -m up to 8 KiB).  TCG_DIRTY_FIX=0 leaves the size alone.
extra_kb=8
[ "${TCG_DIRTY_FIX:-1}" = 0 ] && extra_kb=0
ram_kb=$((RAM_MB * 1024 + extra_kb))
ram=$((ram_kb << 10))
[ $((base + npages * 4096)) -le $((ram - (4 << 20))) ] || { echo "FAIL: REGION_MB too big for RAM_MB" >&2; exit 1; }

nasm -f bin -DBASE=$base -DNPAGES=$npages -DCOUNTER=$counter \
	-o "$tmp/boot.bin" "$here/qemu-postcopy-guest.asm" || exit 1
head -c 1048576 /dev/zero >"$tmp/boot.img"
dd if="$tmp/boot.bin" of="$tmp/boot.img" conv=notrunc status=none || exit 1

# A free loopback port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

common=(-machine pc -accel tcg -m "${ram_kb}K" -smp 1 -nodefaults -display none
	-serial none -monitor none -no-user-config
	-drive "file=$tmp/boot.img,format=raw,if=ide,index=0,file.locking=off")
if [ "$MEMFD" = 1 ]; then
	common+=(-object "memory-backend-memfd,id=ram0,size=${ram_kb}K,share=on"
		-machine memory-backend=ram0)
elif [ "$MEMFD" = anon ]; then
	common+=(-object "memory-backend-ram,id=ram0,size=${ram_kb}K,share=on"
		-machine memory-backend=ram0)
	export USERFAULT_SHARED_ANON=memfd
fi

qemu-system-x86_64 "${common[@]}" -name source \
	-qmp "unix:$tmp/src.qmp,server=on,wait=off" \
	>"$tmp/src.log" 2>&1 &
src_pid=$!
# DST_WRAP: a command put in front of the destination QEMU, for diagnostics
# (e.g. DST_WRAP="strace -f -o /tmp/dst.strace")
"$BUILD/userfault" run --backend "$BACKEND" -- ${DST_WRAP:-} qemu-system-x86_64 "${common[@]}" -name destination \
	-qmp "unix:$tmp/dst.qmp,server=on,wait=off" -incoming defer \
	>"$tmp/dst.log" 2>&1 &
dst_pid=$!

label="qemu-postcopy backend=$BACKEND memfd=$MEMFD dump=${DUMP:-1} ram=${RAM_MB}M region=${REGION_MB}M"
start=$(date +%s.%N)
timeout -k 5 "$TIMEOUT_S" python3 "$here/qemu-postcopy.py" --dir "$tmp" --port "$port" \
	--src-pid "$src_pid" --dst-pid "$dst_pid" \
	--ram "$ram" --base "$base" --npages "$npages" --counter "$counter" \
	--precopy "$PRECOPY_S" --dump-after "$DUMP_AFTER_S" $([ "${DUMP:-1}" = 0 ] && echo --no-dump) --postcopy-bw "$POSTCOPY_BW" --timeout $((TIMEOUT_S - 10)) \
	>"$tmp/result" 2>"$tmp/driver.log"
rc=$?
secs=$(python3 -c "import time; print('%.1f' % (time.time() - $start))")
cat "$tmp/driver.log" >&2
[ $rc = 124 ] && echo "FAIL: timed out after ${TIMEOUT_S}s" >&2
for side in src dst; do
	pid=$([ $side = src ] && echo "$src_pid" || echo "$dst_pid")
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid"; echo "  $side QEMU exited early, status $?" >&2
	fi
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
