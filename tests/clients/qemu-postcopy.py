#!/usr/bin/env python3
"""QMP driver and RAM checker of tests/clients/qemu-postcopy.sh.

Talks QMP to a source and a destination QEMU (unix sockets), runs a
post-copy live migration between them, takes a dump-guest-memory of the
destination while post-copy runs, saves the RAM of both sides at the end and
checks it against the guest's write pattern (see qemu-postcopy-guest.asm).

Standard library only.  Exit status 0: pass; 1: mismatch, QEMU error or
timeout.  Every wait is bounded.
"""

import argparse
import json
import os
import socket
import struct
import sys
import time
from array import array

MAGIC = 0x4D514655  # "UFQM"


class Fail(Exception):
    pass


def log(msg):
    print("  " + msg, file=sys.stderr, flush=True)


def alive(pid):
    """Is the process running (not gone, not a zombie)?"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


class QMP:
    def __init__(self, name, path, deadline, pid=None):
        self.name = name
        self.events = []
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                break
            except OSError as e:
                s.close()
                if pid and not alive(pid):
                    raise Fail("%s: QEMU (pid %d) exited before its QMP socket was up"
                               % (name, pid))
                if time.monotonic() > deadline:
                    raise Fail("%s: cannot connect to QMP %s: %s" % (name, path, e))
                time.sleep(0.1)
        self.sock = s
        self.f = s.makefile("rwb", buffering=0)
        self.deadline = deadline
        greeting = self._recv()
        if "QMP" not in greeting:
            raise Fail("%s: no QMP greeting: %r" % (name, greeting))
        self.cmd("qmp_capabilities")

    def _recv(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Fail("%s: timed out waiting for QMP" % self.name)
        self.sock.settimeout(left)
        try:
            line = self.f.readline()
        except socket.timeout:
            raise Fail("%s: timed out waiting for QMP" % self.name)
        except OSError as e:
            raise Fail("%s: QMP connection lost (QEMU exited?): %s" % (self.name, e))
        if not line:
            raise Fail("%s: QMP connection closed (QEMU exited?)" % self.name)
        return json.loads(line)

    def cmd(self, execute, **args):
        msg = {"execute": execute}
        if args:
            msg["arguments"] = args
        try:
            self.f.write(json.dumps(msg).encode() + b"\n")
        except OSError as e:
            raise Fail("%s: %s: QMP connection lost (QEMU exited?): %s" % (self.name, execute, e))
        while True:
            r = self._recv()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise Fail("%s: %s %s failed: %s: %s" % (
                    self.name, execute, json.dumps(args),
                    r["error"].get("class"), r["error"].get("desc")))
            return r.get("return")


def read_counter(q, counter, path):
    q.cmd("pmemsave", val=counter, size=16, filename=path)
    with open(path, "rb") as f:
        L, magic, base, npages = struct.unpack("<4I", f.read(16))
    return L, magic, base, npages


def mig_status(q):
    return q.cmd("query-migrate")


# ---------------------------------------------------------------- checking

def expected_page(t, p):
    """Page p as pass t leaves it (pass -1: never written, zero)."""
    if t < 0:
        return bytes(4096)
    v = (t + p * 1024) & 0xFFFFFFFF
    if v + 1024 <= 1 << 32:
        a = array("I", range(v, v + 1024))
    else:
        a = array("I", [(v + j) & 0xFFFFFFFF for j in range(1024)])
    return a.tobytes()


def check_region(name, image, base, npages, counter):
    """image: callable(addr, size) -> bytes.  Returns the progress point
    P = (L, k): L from the counter, k the dwords of page L % npages written
    in pass L / npages.  Raises Fail on any page that does not fit."""
    L, magic, b, n = struct.unpack("<4I", image(counter, 16))
    if magic != MAGIC or b != base or n != npages:
        raise Fail("%s: guest header not found at 0x%x (magic 0x%x base 0x%x npages %d)"
                   % (name, counter, magic, b, n))
    t, c = divmod(L, npages)
    bad = []
    k = None
    for p in range(npages):
        got = image(base + p * 4096, 4096)
        if p < c:
            ok = got == expected_page(t, p)
        elif p > c:
            ok = got == expected_page(t - 1, p)
        else:
            new, old = expected_page(t, p), expected_page(t - 1, p)
            k = None
            for kk in range(1025):  # prefix of kk dwords from pass t
                if got[:4 * kk] != new[:4 * kk]:
                    break
                if got[4 * kk:] == old[4 * kk:]:
                    k = kk
                    break
            ok = k is not None
        if not ok:
            bad.append(p)
    if bad:
        p = bad[0]
        got = image(base + p * 4096, 16)
        raise Fail("%s: %d of %d pages do not fit the guest's pattern at counter L=%d "
                   "(pass %d, page %d); first bad page %d (0x%x) starts %s"
                   % (name, len(bad), npages, L, t, c, p, base + p * 4096, got.hex()))
    return L, k


def compare_outside(name_a, img_a, name_b, ranges_b, base, npages, counter):
    """Bytes outside the written region and the counter dword must be
    identical: nothing in the guest writes them after boot."""
    skip = [(base, base + npages * 4096), (counter, counter + 4)]
    total = 0
    for lo, hi in ranges_b:
        # cut [lo, hi) by the skipped ranges
        pieces = [(lo, hi)]
        for s0, s1 in skip:
            nxt = []
            for a, b in pieces:
                if b <= s0 or a >= s1:
                    nxt.append((a, b))
                else:
                    if a < s0:
                        nxt.append((a, s0))
                    if b > s1:
                        nxt.append((s1, b))
            pieces = nxt
        for a, b in pieces:
            x, y = img_a[0](a, b - a), img_a[1](a, b - a)
            if x != y:
                i = next(i for i in range(len(x)) if x[i] != y[i])
                raise Fail("%s and %s differ at guest-physical 0x%x (outside the written "
                           "region): %02x vs %02x" % (name_a[0], name_a[1], a + i, x[i], y[i]))
            total += b - a
    return total


def compare_unrewritten(name, src, img, Ps, Pi, base, npages):
    """Dword j of page p is written at the sequence numbers
    pass * nwords + p * 1024 + j.  Those the destination wrote, in [Ps, Pi),
    form one cyclic interval of positions; the others must hold the source's
    bytes.  Returns how many bytes were compared."""
    nwords = npages * 1024
    if Pi - Ps >= nwords:
        keep = []
    else:
        lo, hi = Pi % nwords, Ps % nwords  # positions [lo, hi), cyclically
        keep = [(lo, hi)] if lo < hi else [(lo, nwords), (0, hi)] if lo > hi else [(0, nwords)]
    same = 0
    for lo, hi in keep:
        x = src(base + 4 * lo, 4 * (hi - lo))
        y = img(base + 4 * lo, 4 * (hi - lo))
        if x != y:
            i = next(i for i in range(len(x)) if x[i] != y[i])
            raise Fail("%s: region byte at 0x%x, not rewritten on the destination, differs "
                       "from the source's" % (name, base + 4 * lo + i))
        same += 4 * (hi - lo)
    return same


def flat_image(path):
    data = open(path, "rb").read()

    def img(addr, size):
        if addr + size > len(data):
            raise Fail("%s: address 0x%x+%d beyond the saved RAM" % (path, addr, size))
        return data[addr:addr + size]
    return img, [(0, len(data))]


def elf_image(path):
    """dump-guest-memory's ELF: PT_LOAD segments by physical address."""
    data = open(path, "rb").read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise Fail("%s: not an ELF64 file" % path)
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    if phnum == 0xFFFF:  # PN_XNUM: the real count is in section 0's sh_info
        shoff, = struct.unpack_from("<Q", data, 0x28)
        phnum, = struct.unpack_from("<I", data, shoff + 0x2C)
    segs = []
    for i in range(phnum):
        ptype, flags, off, vaddr, paddr, filesz, memsz, align = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize)
        if ptype == 1 and filesz:
            segs.append((paddr, paddr + filesz, off))
    segs.sort()

    def img(addr, size):
        out = b""
        while size:
            for lo, hi, off in segs:
                if lo <= addr < hi:
                    n = min(size, hi - addr)
                    out += data[off + addr - lo: off + addr - lo + n]
                    addr += n
                    size -= n
                    break
            else:
                raise Fail("%s: guest-physical 0x%x not in the dump" % (path, addr))
        return out
    return img, [(lo, hi) for lo, hi, _ in segs]


# ---------------------------------------------------------------- driving

def drive(a):
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    d = a.dir
    src = QMP("source", os.path.join(d, "src.qmp"), deadline, a.src_pid)
    dst = QMP("destination", os.path.join(d, "dst.qmp"), deadline, a.dst_pid)

    # 1. the guest has booted and made two passes over its region
    while True:
        L, magic, base, npages = read_counter(src, a.counter, os.path.join(d, "ctr"))
        if magic == MAGIC and L >= 2 * a.npages:
            break
        if time.monotonic() > t0 + a.boot_timeout:
            raise Fail("source: guest did not start writing within %ds (counter 0x%x magic 0x%x)"
                       % (a.boot_timeout, L, magic))
        time.sleep(0.2)
    t_boot = time.monotonic() - t0
    log("guest running on the source: L=%d (%.1fs)" % (L, t_boot))

    # 2. capabilities, incoming side first
    caps = [{"capability": "postcopy-ram", "state": True}]
    dst.cmd("migrate-set-capabilities", capabilities=caps)
    src.cmd("migrate-set-capabilities", capabilities=caps)
    src.cmd("migrate-set-parameters", **{"max-bandwidth": a.precopy_bw,
                                         "max-postcopy-bandwidth": a.postcopy_bw})
    uri = "tcp:127.0.0.1:%d" % a.port
    dst.cmd("migrate-incoming", uri=uri)
    log("destination listening on %s; precopy %d B/s, postcopy %d B/s"
        % (uri, a.precopy_bw, a.postcopy_bw))
    src.cmd("migrate", uri=uri)
    t_mig = time.monotonic()

    # 3. a short pre-copy, then post-copy
    while time.monotonic() < t_mig + a.precopy:
        s = mig_status(src).get("status")
        if s in ("failed", "cancelled", "completed"):
            raise Fail("source: migration %s during pre-copy" % s)
        time.sleep(0.1)
    info = mig_status(src)
    log("pre-copy: %s, %s bytes transferred"
        % (info.get("status"), info.get("ram", {}).get("transferred")))
    src.cmd("migrate-start-postcopy")
    t_pc = time.monotonic()

    # 4. destination running in post-copy
    while True:
        ds = mig_status(dst).get("status")
        rs = dst.cmd("query-status").get("status")
        if ds == "postcopy-active" and rs == "running":
            break
        if ds in ("failed", "cancelled", "completed"):
            raise Fail("destination: migration %s before the snapshot could be taken (run state %s)"
                       % (ds, rs))
        if time.monotonic() > t_pc + 30:
            raise Fail("destination: not running in post-copy after 30s (migration %s, run state %s)"
                       % (ds, rs))
        time.sleep(0.05)
    log("destination running in post-copy after %.2fs" % (time.monotonic() - t_pc))
    # let the guest run on the destination, faulting pages in, before the snapshot
    t_run = time.monotonic()
    while time.monotonic() < t_run + a.dump_after:
        if mig_status(dst).get("status") != "postcopy-active":
            raise Fail("destination: post-copy over before the snapshot (after %.2fs): "
                       "lower --postcopy-bw or --dump-after"
                       % (time.monotonic() - t_pc))
        time.sleep(0.05)
    remaining = mig_status(src).get("ram", {}).get("remaining")
    log("snapshot after %.1fs of post-copy; source has %s bytes left to send"
        % (time.monotonic() - t_pc, remaining))

    # 5. a snapshot of the destination's RAM while post-copy runs, pages
    #    still missing: dump-guest-memory (QEMU write()s guest RAM to a file:
    #    the kernel reads it), or with --no-dump stop + pmemsave + cont (QEMU
    #    copies guest RAM in user mode, then writes its own buffer)
    t_d = time.monotonic()
    if a.dump:
        mid = os.path.join(d, "mid.elf")
        dst.cmd("dump-guest-memory", paging=False, protocol="file:" + mid)
        while True:  # detach is false, but query the state all the same
            st = dst.cmd("query-dump")
            if st.get("status") == "completed":
                break
            if st.get("status") == "failed" or time.monotonic() > deadline:
                raise Fail("destination: dump-guest-memory %s" % st.get("status"))
            time.sleep(0.05)
        what = "dump-guest-memory"
    else:
        mid = os.path.join(d, "mid.ram")
        dst.cmd("stop")
        dst.cmd("pmemsave", val=0, size=a.ram, filename=mid)
        dst.cmd("cont")
        what = "stop, pmemsave, cont"
    t_dump = time.monotonic() - t_d
    ds_after = mig_status(dst).get("status")
    log("%s during post-copy: %.2fs, %d bytes; migration %s afterwards"
        % (what, t_dump, os.path.getsize(mid), ds_after))

    # 6. completion on both sides
    while True:
        ss = mig_status(src).get("status")
        ds = mig_status(dst).get("status")
        if ss == "completed" and ds == "completed":
            break
        if ss in ("failed", "cancelled") or ds in ("failed", "cancelled"):
            raise Fail("migration failed: source %s, destination %s" % (ss, ds))
        if time.monotonic() > deadline:
            raise Fail("timed out: source %s, destination %s" % (ss, ds))
        time.sleep(0.1)
    t_post = time.monotonic() - t_pc
    srcinfo = mig_status(src)
    log("completed: post-copy phase %.2fs, total %s ms, %s postcopy requests"
        % (t_post, srcinfo.get("total-time"),
           srcinfo.get("ram", {}).get("postcopy-requests")))

    # 7. the RAM of both sides: the source stopped at the switch-over; stop
    #    the destination's guest and save both
    rs = dst.cmd("query-status").get("status")
    if rs != "running":
        raise Fail("destination: run state %s after migration, not running" % rs)
    time.sleep(0.3)  # let the guest run on the destination a little more
    dst.cmd("stop")
    sram, dram = os.path.join(d, "src.ram"), os.path.join(d, "dst.ram")
    src.cmd("pmemsave", val=0, size=a.ram, filename=sram)
    dst.cmd("pmemsave", val=0, size=a.ram, filename=dram)

    # 8. checks
    S, D = flat_image(sram), flat_image(dram)
    Ls, ks = check_region("source RAM", S[0], a.base, a.npages, a.counter)
    Ld, kd = check_region("destination RAM", D[0], a.base, a.npages, a.counter)
    M = elf_image(mid) if a.dump else flat_image(mid)
    Lm, km = check_region("destination snapshot during post-copy", M[0], a.base, a.npages,
                          a.counter)
    Ps, Pm, Pd = Ls * 1024 + ks, Lm * 1024 + km, Ld * 1024 + kd
    if not Ps <= Pm <= Pd:
        raise Fail("progress out of order: source %d, snapshot %d, destination %d" % (Ps, Pm, Pd))
    if Pd == Ps:
        raise Fail("the guest made no progress on the destination (L=%d)" % Ld)
    # dwords of the region the destination's guest has not rewritten since
    # the switch-over: byte for byte the source's, in the snapshot and at the end
    same_m = compare_unrewritten("snapshot", S[0], M[0], Ps, Pm, a.base, a.npages)
    same_d = compare_unrewritten("destination RAM", S[0], D[0], Ps, Pd, a.base, a.npages)
    out_sd = compare_outside(("source RAM", "destination RAM"), (S[0], D[0]), None,
                             S[1], a.base, a.npages, a.counter)
    out_sm = compare_outside(("source RAM", "destination snapshot"), (S[0], M[0]), None,
                             [(lo, min(hi, a.ram)) for lo, hi in M[1] if lo < a.ram],
                             a.base, a.npages, a.counter)
    log("pattern exact in all three images: source L=%d+%d, snapshot L=%d+%d, destination L=%d+%d"
        % (Ls, ks, Lm, km, Ld, kd))
    log("identical to the source: snapshot: %d region bytes not rewritten since the switch-over "
        "and %d bytes outside the region; final RAM: %d and %d"
        % (same_m, out_sm, same_d, out_sd))
    return ("boot %.1fs, pre-copy %.1fs, post-copy %.2fs (%s), "
            "guest passes: source %d, destination %d"
            % (t_boot, a.precopy, t_post,
               "%s during it %.2fs" % ("dump" if a.dump else "pmemsave", t_dump),
               Ls // a.npages, Ld // a.npages))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--src-pid", type=int)
    ap.add_argument("--dst-pid", type=int)
    ap.add_argument("--ram", type=lambda s: int(s, 0), required=True)
    ap.add_argument("--base", type=lambda s: int(s, 0), required=True)
    ap.add_argument("--npages", type=int, required=True)
    ap.add_argument("--counter", type=lambda s: int(s, 0), required=True)
    ap.add_argument("--precopy", type=float, default=1.5)
    ap.add_argument("--precopy-bw", type=int, default=64 << 20)
    ap.add_argument("--postcopy-bw", type=int, default=8 << 20)
    ap.add_argument("--no-dump", dest="dump", action="store_false",
                    help="snapshot with stop + pmemsave + cont instead of dump-guest-memory")
    ap.add_argument("--dump-after", type=float, default=1.0)
    ap.add_argument("--boot-timeout", type=int, default=60)
    ap.add_argument("--timeout", type=int, default=240)
    a = ap.parse_args()
    try:
        print(drive(a), flush=True)
    except Fail as e:
        print("FAIL: %s" % e, file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
