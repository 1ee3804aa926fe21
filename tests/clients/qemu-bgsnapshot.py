#!/usr/bin/env python3
"""QMP driver and checker of tests/clients/qemu-bgsnapshot.sh.

Talks QMP to a source QEMU (the one under `userfault run`) whose guest
rewrites a region of its RAM (qemu-postcopy-guest.asm), takes a background
snapshot of it (capability background-snapshot: the RAM is write-protected
with userfaultfd at the instant the vCPU stops, the vCPU runs on, and a page
it writes is saved before the write goes through), then loads the snapshot
into a second QEMU (started here, natively, with -S and -incoming defer,
then migrate-incoming "exec:cat FILE"), saves that one's RAM and checks it
is the guest's RAM of one instant: the guest's exact pattern at one
progress point, the point the loaded vCPU's registers say, before the
guest's state at the end of the snapshot.

The QMP client and the RAM checks are qemu-postcopy.py's.  Standard library
only.  Exit status 0: pass; 1: mismatch, QEMU error or timeout.  Every wait
is bounded.
"""

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the tests
_spec = importlib.util.spec_from_file_location(
    "qemu_postcopy", os.path.join(os.path.dirname(os.path.abspath(__file__)), "qemu-postcopy.py"))
pc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pc)
Fail, QMP, log, read_counter = pc.Fail, pc.QMP, pc.log, pc.read_counter
MAGIC = pc.MAGIC


def guest_labels(listing):
    """Offsets in the boot sector (nasm -l listing) of the guest's loop:
    pass, page, fill, the instruction after `jnz fill` and the end of
    `jmp pass`."""
    lab, pending, prev = {}, None, None
    want = {"inc esi": "after_fill", "inc ebx": "inc_ebx"}
    for line in open(listing):
        m = re.match(r"\s*\d+\s+(\w+):\s*(;.*)?$", line)
        if m:
            pending = m.group(1)
            continue
        m = re.match(r"\s*\d+\s+([0-9A-F]{8})\s+[0-9A-F\[\]()-]+\s+(.*)$", line)
        if not m:
            continue
        off, src = int(m.group(1), 16), m.group(2).split(";")[0].strip()
        if pending:
            lab[pending] = off
            pending = None
        src = " ".join(src.split())
        if src in want:
            lab[want[src]] = off
        if prev == "jmp pass":
            lab["end"] = off
        prev = src
    for k in ("pass", "page", "fill", "after_fill", "inc_ebx", "end"):
        if k not in lab:
            raise Fail("%s: no %s in the guest's listing" % (listing, k))
    return lab


def regs_progress(regs, lab, org=0x7C00):
    """The progress point P = L * 1024 + k (L: sequence number of the page
    being written, k: dwords of it written) that the vCPU registers imply.
    The vCPU stops between translation blocks, which start at pass, page,
    fill, after_fill or inc_ebx."""
    eip, esi, edx = regs["EIP"], regs["ESI"], regs["EDX"]
    if org + lab["fill"] <= eip <= org + lab["after_fill"]:
        return esi * 1024 + 1024 - edx, "in fill"
    if org + lab["pass"] <= eip < org + lab["fill"] or org + lab["after_fill"] < eip < org + lab["end"]:
        return esi * 1024, "between pages"
    raise Fail("loaded vCPU: EIP 0x%x outside the guest's loop 0x%x-0x%x"
               % (eip, org + lab["pass"], org + lab["end"]))


def parse_regs(text):
    regs = {}
    for name in ("EAX", "EBX", "ECX", "EDX", "ESI", "EDI", "EIP"):
        m = re.search(r"\b%s=([0-9a-fA-F]+)" % name, text)
        if not m:
            raise Fail("loaded QEMU: no %s in `info registers`: %r" % (name, text[:300]))
        regs[name] = int(m.group(1), 16)
    return regs


def mig_status(q):
    return q.cmd("query-migrate")


def drive(a):
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    d = a.dir
    lab = guest_labels(a.listing)
    src = QMP("source", os.path.join(d, "src.qmp"), deadline, a.src_pid)
    ver = src.cmd("query-version")["qemu"]
    ver = (ver["major"], ver["minor"])

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

    # 2. the snapshot: "file:" from QEMU 8.2, before that "exec:"
    snap = os.path.join(d, "snapshot.mig")
    scheme = a.uri
    if scheme == "auto":
        scheme = "file" if ver >= (8, 2) else "exec"
    if scheme == "file":
        uri_out, uri_in = "file:" + snap, "file:" + snap
    else:
        uri_out, uri_in = "exec:cat > '%s'" % snap, "exec:cat '%s'" % snap
    src.cmd("migrate-set-capabilities",
            capabilities=[{"capability": "background-snapshot", "state": True}])
    src.cmd("migrate-set-parameters", **{"max-bandwidth": a.bw})
    L0 = read_counter(src, a.counter, os.path.join(d, "ctr"))[0]
    log("QEMU %d.%d: background-snapshot on, max-bandwidth %d B/s, migrate to %s"
        % (ver[0], ver[1], a.bw, uri_out))
    t_m = time.monotonic()
    src.cmd("migrate", uri=uri_out)

    # 3. while it runs, the guest's counter (pmemsave reads guest RAM)
    samples = []  # (seconds since migrate, migration status before, L)
    while True:
        st = mig_status(src)
        s = st.get("status")
        if s == "completed":
            break
        if s in ("failed", "cancelled"):
            raise Fail("source: background snapshot %s: %s" % (s, st.get("error-desc", "")))
        if time.monotonic() > deadline:
            raise Fail("source: background snapshot still %s at the timeout" % s)
        L = read_counter(src, a.counter, os.path.join(d, "ctr"))[0]
        samples.append((time.monotonic() - t_m, s, L))
        time.sleep(0.05)
    t_snap = time.monotonic() - t_m
    info = mig_status(src)
    rs = src.cmd("query-status").get("status")
    L1 = read_counter(src, a.counter, os.path.join(d, "ctr"))[0]
    ram = info.get("ram", {})
    log("snapshot completed in %.2fs (total-time %s ms, downtime %s ms, setup %s ms): "
        "%s bytes transferred, %s normal pages, %s zero pages; source %s"
        % (t_snap, info.get("total-time"), info.get("downtime"), info.get("setup-time"),
           ram.get("transferred"), ram.get("normal"), ram.get("duplicate"), rs))
    if rs != "running":
        raise Fail("source: run state %s after the snapshot, not running" % rs)
    time.sleep(0.2)
    # the source's guest at the end: stopped, its RAM saved
    src.cmd("stop")
    fram = os.path.join(d, "final.ram")
    src.cmd("pmemsave", val=0, size=a.ram, filename=fram)
    log("snapshot file: %d bytes" % os.path.getsize(snap))

    # 4. a second QEMU loads the snapshot and stays stopped
    lqmp = os.path.join(d, "load.qmp")
    # -incoming defer, then migrate-incoming: an -incoming URI starts loading
    # before QMP is up, and QEMU 7.2 may then send a MIGRATION event before
    # the QMP greeting
    cmd = a.loader + ["-qmp", "unix:%s,server=on,wait=off" % lqmp, "-S", "-incoming", "defer"]
    with open(os.path.join(d, "load.log"), "wb") as lf:
        t_l = time.monotonic()
        ld = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf)
    with open(os.path.join(d, "load.pid"), "w") as f:
        f.write("%d\n" % ld.pid)
    try:
        lq = QMP("loader", lqmp, deadline, ld.pid)
        lq.cmd("migrate-incoming", uri=uri_in)
        while True:
            if ld.poll() is not None:
                raise Fail("loader: QEMU exited with status %d while loading" % ld.returncode)
            ls = mig_status(lq).get("status")
            rs = lq.cmd("query-status").get("status")
            if ls == "completed" and rs != "inmigrate":
                break
            if ls == "failed":
                raise Fail("loader: incoming migration failed")
            if time.monotonic() > deadline:
                raise Fail("loader: still loading at the timeout (migration %s, run state %s)"
                           % (ls, rs))
            time.sleep(0.05)
        t_load = time.monotonic() - t_l
        if rs == "running":
            raise Fail("loader: the guest runs after loading despite -S")
        regs = parse_regs(lq.cmd("human-monitor-command", **{"command-line": "info registers"}))
        sram = os.path.join(d, "snap.ram")
        lq.cmd("pmemsave", val=0, size=a.ram, filename=sram)
        log("loaded in %.2fs, run state %s; EIP=0x%x ESI=%d EDX=%d"
            % (t_load, rs, regs["EIP"], regs["ESI"], regs["EDX"]))
    finally:
        if ld.poll() is None:
            ld.kill()
        ld.wait()
        os.unlink(os.path.join(d, "load.pid"))

    # 5. checks
    S, F = pc.flat_image(sram), pc.flat_image(fram)
    Ls, ks = pc.check_region("snapshot RAM", S[0], a.base, a.npages, a.counter)
    Lf, kf = pc.check_region("source RAM at the end", F[0], a.base, a.npages, a.counter)
    Ps, Pf = Ls * 1024 + ks, Lf * 1024 + kf
    Pr, where = regs_progress(regs, lab)
    if Pr != Ps:
        raise Fail("snapshot RAM (L=%d+%d, P=%d) and the loaded vCPU's registers (P=%d, %s: "
                   "EIP=0x%x ESI=%d EDX=%d) are not of the same instant"
                   % (Ls, ks, Ps, Pr, where, regs["EIP"], regs["ESI"], regs["EDX"]))
    if Ls < L0:
        raise Fail("snapshot (L=%d) older than the guest before the migrate command (L=%d)"
                   % (Ls, L0))
    if Pf <= Ps:
        raise Fail("the guest made no progress after the snapshot's instant: snapshot "
                   "L=%d+%d, end L=%d+%d" % (Ls, ks, Lf, kf))
    during = [L for (t, s, L) in samples if s in ("setup", "active")]
    if not during or max(during) <= Ls:
        raise Fail("no sample of the counter while the snapshot was active shows the guest "
                   "past the snapshot's instant (snapshot L=%d, samples %s): the snapshot "
                   "did not run while the guest wrote; lower SNAPSHOT_BW"
                   % (Ls, [(round(t, 2), s, L) for t, s, L in samples][:8]))
    out = pc.compare_outside(("snapshot RAM", "source RAM at the end"), (S[0], F[0]), None,
                             S[1], a.base, a.npages, a.counter)
    Lmax = max(during)
    log("snapshot: pattern exact at L=%d+%d (pass %d, page %d), as the loaded vCPU's "
        "registers say (%s); %d bytes outside the region identical to the source's"
        % (Ls, ks, Ls // a.npages, Ls % a.npages, where, out))
    log("guest progress: L=%d before migrate, %d at the snapshot, %d at the last sample while "
        "active (%d samples), %d after completion, %d at the end"
        % (L0, Ls, Lmax, len(during), L1, Lf))
    return ("boot %.1fs, snapshot %.2fs (total-time %s ms, downtime %s ms), load %.2fs, "
            "guest rewrote %d pages while the snapshot ran (%.1f passes), %d before it ended"
            % (t_boot, t_snap, info.get("total-time"), info.get("downtime"), t_load,
               Lmax - Ls, (Lmax - Ls) / a.npages, L1 - Ls))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--src-pid", type=int)
    ap.add_argument("--ram", type=lambda s: int(s, 0), required=True)
    ap.add_argument("--base", type=lambda s: int(s, 0), required=True)
    ap.add_argument("--npages", type=int, required=True)
    ap.add_argument("--counter", type=lambda s: int(s, 0), required=True)
    ap.add_argument("--listing", required=True, help="nasm -l listing of the guest")
    ap.add_argument("--bw", type=int, default=16 << 20, help="max-bandwidth of the snapshot")
    ap.add_argument("--uri", choices=("auto", "exec", "file"), default="auto")
    ap.add_argument("--boot-timeout", type=int, default=60)
    ap.add_argument("--timeout", type=int, default=240)
    ap.add_argument("loader", nargs="+", help="-- the loading QEMU's command line")
    a = ap.parse_args()
    try:
        print(drive(a), flush=True)
    except Fail as e:
        print("FAIL: %s" % e, file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
