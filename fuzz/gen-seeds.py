#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the hand-made seed inputs of uffd-diff into a directory.

    fuzz/gen-seeds.py fuzz/corpus

The encoding (fuzz/README.md, "Input format") mirrors fuzz/uffd-diff.c:
HDR header bytes (how each page of the regions starts), then operations,
each an opcode byte followed by a fixed number of argument bytes.
"""
import os
import sys

(CREATE, OPEN_DEV, IOC_NEW, API, REGISTER, UNREGISTER, COPY, ZEROPAGE, WAKE,
 TOUCH, READ, POLL, CLOSE, DUP, FCNTL, IOCTL, MADVISE, PIPE, REMAP) = range(19)
FORK = 247    # opcode bytes 247..255 (added last: the others keep their meaning)
NARGS = {CREATE: 2, OPEN_DEV: 2, IOC_NEW: 3, API: 6, REGISTER: 6, UNREGISTER: 4,
         COPY: 7, ZEROPAGE: 6, WAKE: 4, TOUCH: 3, READ: 3, POLL: 1, CLOSE: 1,
         DUP: 2, FCNTL: 2, IOCTL: 2, MADVISE: 3, PIPE: 1, REMAP: 3, FORK: 4}

# Creation flags byte: bit0 O_CLOEXEC, bit1 O_NONBLOCK, bit2 UFFD_USER_MODE_ONLY,
# bits 3-5 one invalid flag, bit6 through /dev/userfaultfd, bit7 a bit above 32.
CLOEXEC, NONBLOCK, USER_ONLY, VIA_DEV = 1, 2, 4, 0x40
# Feature byte: bit0 SIGBUS, bit1 THREAD_ID, bit2 EXACT_ADDRESS, bit3 another
# known feature (second byte picks which), bit4 1<<17, bit5 1<<32, bit6 1<<63.
SIGBUS, THREAD_ID, EXACT = 1, 2, 4
# Read sizes by index.
RSIZE = {0: 0, 1: 1, 31: 2, 32: 3, 33: 4, 63: 5, 64: 6, 96: 7, 100: 8, 128: 9,
         256: 10, 2048: 11, 4096: 12, 8192: 13}
# Pointer modes: 0 fine; 0xA0 + k - 1 for k in 1..7:
P_NULL, P_ONE, P_UNMAPPED, P_RDONLY, P_CUT_OUT, P_CUT_IN, P_UNALIGNED = range(0xA0, 0xA7)


def page(p, sub=0):
    """Start byte: page p (-5..22) of the region, sub index 0..7."""
    assert -5 <= p <= 22
    return (p + 5) + 28 * sub


def special(k):
    """Start byte of the k-th address of interest (see dec_start)."""
    return 0xE0 + k


def pages(n, tweak=0):
    """Length byte: n pages (0..25), tweak 0, or 5 (+1), 6 (-1), 7 (+0x800)."""
    assert 0 <= n < 26
    return n + 26 * tweak


def src(p, sub=0):
    """Source byte: page p (0..17, 16 and 17 unmapped) of the source buffer."""
    return p + 18 * sub


def hdr(**pages_how):
    """Header: pN=0 untouched, 1 read (zero page), 2/3 written."""
    bits = 0
    for k, v in pages_how.items():
        bits |= v << (2 * int(k[1:]))
    return bits.to_bytes(5, 'little')


def op(code, *args):
    args = list(args) + [0] * (NARGS[code] - len(args))
    assert len(args) == NARGS[code], (code, args)
    return bytes([code] + [a & 0xff for a in args])


def prog(header, *ops):
    return header + b''.join(ops)


def uffd(slot=0, flags=CLOEXEC | NONBLOCK, features=0, start=page(0), npages=16):
    return [op(CREATE, slot, flags), op(API, slot, 0, features, 0, 0, 0),
            op(REGISTER, slot, start, pages(npages), 0, 0, 0)]


SEEDS = {
    # fork: the child COPYs into its parent through the inherited uffd
    # (waking the parent's toucher), then sums its own copy of the region.
    'fork-copy-into-parent': prog(hdr(p2=2, p5=1), *uffd(), op(TOUCH, 3, 0, 0),
                                  op(READ, 0, RSIZE[32], 0), op(FORK, 0, 3, 1, 0),
                                  op(FORK, 0, 3, 2, 0), op(FORK, 0, 20, 2, 1)),
    'fork-dontwake-then-wake': prog(hdr(), *uffd(), op(TOUCH, 6, 1, 0), op(FORK, 0, 6, 4, 1),
                                    op(WAKE, 0, page(6), pages(1), 0)),
    'fork-other-slots': prog(hdr(p0=3), op(PIPE, 1), op(OPEN_DEV, 2, 0), op(FORK, 1, 0, 0, 0),
                             op(FORK, 2, 0, 0, 0), op(FORK, 3, 0, 0, 0)),
    # The man page's example: fault, poll, read, copy, fault gone.
    'basic-copy': prog(hdr(), *uffd(), op(TOUCH, 3, 1, 0), op(POLL, 0),
                       op(READ, 0, RSIZE[64], 0), op(COPY, 0, page(3), pages(1), src(2), 0, 0, 0),
                       op(READ, 0, RSIZE[64], 0)),
    'basic-zeropage-write': prog(hdr(), *uffd(features=THREAD_ID | EXACT), op(TOUCH, 5, 2, 0x41),
                                 op(READ, 0, RSIZE[32], 0), op(ZEROPAGE, 0, page(5), pages(1), 0, 0, 0)),
    'wake-refault': prog(hdr(), *uffd(features=THREAD_ID), op(TOUCH, 1, 0, 0), op(READ, 0, RSIZE[32], 0),
                         op(WAKE, 0, page(1), pages(1), 0), op(READ, 0, RSIZE[64], 0),
                         op(COPY, 0, page(1), pages(1), src(0), 4, 0, 0), op(READ, 0, RSIZE[64], 0),
                         op(WAKE, 0, page(0), pages(4), 0)),
    'dontwake-then-wake': prog(hdr(), *uffd(), op(TOUCH, 2, 3, 1), op(TOUCH, 2, 4, 0),
                               op(READ, 0, RSIZE[100], 0),
                               op(COPY, 0, page(2), pages(1), src(5), 4, 0, 0),
                               op(WAKE, 0, page(2), pages(1), 0)),
    'sigbus': prog(hdr(), *uffd(features=SIGBUS | EXACT), op(TOUCH, 4, 5, 0), op(TOUCH, 6, 1, 1),
                   op(READ, 0, RSIZE[64], 0)),
    'partial-copy-eexist': prog(hdr(p3=2), *uffd(), op(COPY, 0, page(0), pages(6), src(0), 0, 0, 0),
                                op(COPY, 0, page(3), pages(2), src(1), 0, 0, 0)),
    'zero-page-present': prog(hdr(p0=1, p1=2, p2=1), *uffd(), op(TOUCH, 0, 0, 1), op(TOUCH, 2, 1, 0),
                              op(ZEROPAGE, 0, page(0), pages(4), 0, 0, 0)),
    'unregister-wakes': prog(hdr(), *uffd(), op(TOUCH, 7, 0, 0), op(TOUCH, 8, 0, 1),
                             op(UNREGISTER, 0, page(7), pages(1), 0), op(READ, 0, RSIZE[96], 0)),
    'close-releases': prog(hdr(), *uffd(), op(TOUCH, 9, 0, 0), op(DUP, 0, 1), op(CLOSE, 0),
                           op(POLL, 1), op(CLOSE, 1)),
    'two-uffds-ebusy': prog(hdr(), *uffd(0, npages=8), *uffd(1, start=page(4), npages=8),
                            op(REGISTER, 1, page(8), pages(8), 0, 0, 0),
                            op(UNREGISTER, 1, page(0), pages(16), 0), op(TOUCH, 10, 0, 0),
                            op(COPY, 0, page(10), pages(1), src(3), 0, 0, 0)),
    'holes-and-edges': prog(hdr(), op(CREATE, 0, 3), op(API, 0, 0, 0, 0, 0, 0),
                            op(REGISTER, 0, page(-2), pages(4), 0, 0, 0),
                            op(REGISTER, 0, page(14), pages(8), 0, 0, 0),
                            op(REGISTER, 0, page(-5), pages(25), 0, 0, 0),
                            op(UNREGISTER, 0, page(-5), pages(3), 0),
                            op(ZEROPAGE, 0, page(15), pages(2), 0, 0, 0),
                            op(COPY, 0, page(16), pages(1), src(0), 0, 0, 0)),
    'bad-ranges': prog(hdr(), *uffd(),
                       op(REGISTER, 0, page(0, 5), pages(1), 0, 0, 0),
                       op(REGISTER, 0, page(0), pages(1, 5), 0, 0, 0),
                       op(REGISTER, 0, page(0), pages(0), 0, 0, 0),
                       op(WAKE, 0, special(0), pages(1), 0),
                       op(WAKE, 0, special(1), pages(1), 0),
                       op(ZEROPAGE, 0, special(1), pages(1), 0, 0, 0),
                       op(COPY, 0, special(5), pages(1), src(0), 0, 0, 0),
                       op(COPY, 0, page(0), 0xD0, src(0), 0, 0, 0),
                       op(UNREGISTER, 0, special(6), pages(1), 0)),
    'bad-src': prog(hdr(), *uffd(), op(COPY, 0, page(0), pages(1), 0xC0, 0, 0, 0),
                    op(COPY, 0, page(1), pages(1), 0xC1, 0, 0, 0),
                    op(COPY, 0, page(2), pages(1), 0xCA, 0, 0, 0),
                    op(COPY, 0, page(3), pages(2), src(15), 0, 0, 0),
                    op(COPY, 0, page(6), pages(1), src(15, 8), 0, 0, 0),
                    op(COPY, 0, page(7), pages(1), 0xCB, 0, 0, 0),
                    op(COPY, 0, page(8), pages(1), src(4, 7), 0, 0, 0)),
    'bad-struct-pointers': prog(hdr(), op(CREATE, 0, 3), op(API, 0, 0, 0, 0, P_NULL, 0),
                                op(API, 0, 0, 0, 0, P_CUT_OUT, 0), op(API, 0, 0, 0, 0, P_UNALIGNED, 1),
                                op(REGISTER, 0, page(0), pages(4), 0, P_RDONLY, 0),
                                op(REGISTER, 0, page(4), pages(4), 0, P_CUT_OUT, 0),
                                op(REGISTER, 0, page(8), pages(4), 0, P_ONE, 0),
                                op(COPY, 0, page(0), pages(1), src(0), 0, P_CUT_OUT, 0),
                                op(ZEROPAGE, 0, page(1), pages(1), 0, P_RDONLY, 0),
                                op(WAKE, 0, page(0), pages(1), P_CUT_IN),
                                op(UNREGISTER, 0, page(0), pages(1), P_UNMAPPED)),
    'api-errors': prog(hdr(), op(CREATE, 0, 3), op(REGISTER, 0, page(0), pages(1), 0, 0, 0),
                       op(READ, 0, RSIZE[32], 0), op(API, 0, 5, 0, 0, 0, 1),
                       op(API, 0, 0, 0x10, 0, 0, 2), op(API, 0, 0, 8, 1, 0, 3),
                       op(API, 0, 0, 0x40, 0, 0, 0), op(API, 0, 0, 7, 0, 0, 0),
                       op(API, 0, 0, 7, 0, 0, 0), op(READ, 0, RSIZE[31], 0)),
    'api-rdonly': prog(hdr(), op(CREATE, 0, 3), op(API, 0, 6, 0, 0, P_RDONLY, 0),
                       op(API, 0, 0, 0, 0, P_RDONLY, 0), op(API, 0, 0, 0, 0, 0, 0)),
    'create-flags': prog(hdr(), op(CREATE, 0, 0), op(CREATE, 1, 7), op(CREATE, 2, 1 | 8),
                         op(CREATE, 3, 1 | 16), op(CREATE, 4, 1 | 32), op(CREATE, 5, 3 | VIA_DEV),
                         op(CREATE, 6, 3 | VIA_DEV | 0x80), op(CREATE, 7, 1 | 0x38),
                         op(FCNTL, 1, 2), op(FCNTL, 1, 3), op(FCNTL, 5, 2)),
    'dev-ops': prog(hdr(), op(OPEN_DEV, 0, 0), op(IOC_NEW, 0, 1, 3), op(IOC_NEW, 0, 2, 0x18),
                    op(API, 0, 0, 0, 0, 0, 0), op(READ, 0, RSIZE[32], 0), op(FCNTL, 0, 2),
                    op(API, 1, 0, 0, 0, 0, 0), op(IOC_NEW, 1, 3, 3), op(CLOSE, 0),
                    op(REGISTER, 1, page(0), pages(2), 0, 0, 0), op(TOUCH, 0, 0, 0), op(READ, 1, 12, 0)),
    'read-sizes': prog(hdr(), *uffd(), op(TOUCH, 0, 0, 0), op(TOUCH, 1, 1, 0), op(TOUCH, 2, 2, 1),
                       op(READ, 0, RSIZE[0], 0), op(READ, 0, RSIZE[31], 0), op(READ, 0, RSIZE[33], 0),
                       op(READ, 0, RSIZE[100], 0), op(READ, 0, RSIZE[32], 0), op(POLL, 0)),
    'read-bad-buffers': prog(hdr(), *uffd(), op(TOUCH, 0, 0, 0), op(TOUCH, 1, 0, 0), op(TOUCH, 2, 0, 0),
                             op(TOUCH, 3, 0, 0),
                             op(READ, 0, RSIZE[32], 0xC0), op(READ, 0, RSIZE[64], 0xC5),
                             op(READ, 0, RSIZE[32], 0xC2), op(READ, 0, RSIZE[4096], 0)),
    'read-cut-buffer': prog(hdr(), *uffd(), op(TOUCH, 0, 0, 0), op(TOUCH, 1, 0, 0),
                            op(READ, 0, RSIZE[4096], 0xC3), op(READ, 0, RSIZE[64], 0)),
    'blocking-uffd': prog(hdr(), *uffd(flags=CLOEXEC), op(TOUCH, 0, 0, 0), op(POLL, 0),
                          op(READ, 0, RSIZE[64], 0), op(READ, 0, RSIZE[64], 0), op(FCNTL, 0, 0),
                          op(POLL, 0), op(FCNTL, 0, 2)),
    'poll-uninitialised': prog(hdr(), op(CREATE, 0, 3), op(POLL, 0), op(CREATE, 1, 1), op(POLL, 1)),
    'madvise': prog(hdr(p0=2, p1=2, p2=2, p3=1), *uffd(npages=2),
                    op(MADVISE, 0, 3, 0), op(TOUCH, 0, 0, 0), op(TOUCH, 2, 0, 0), op(TOUCH, 3, 0, 1),
                    op(READ, 0, RSIZE[64], 0), op(MADVISE, 2, 0, 3)),
    'ro-neighbour': prog(hdr(p16=2), op(CREATE, 0, 3), op(API, 0, 0, 0, 0, 0, 0),
                         op(REGISTER, 0, page(12), pages(6), 0, 0, 0), op(TOUCH, 17, 0, 0),
                         op(TOUCH, 16, 0, 0), op(READ, 0, RSIZE[64], 0),
                         op(COPY, 0, page(17), pages(1), src(0), 0, 0, 0),
                         op(ZEROPAGE, 0, page(16), pages(2), 0, 0, 0)),
    'reregister-modes': prog(hdr(), *uffd(), op(REGISTER, 0, page(0), pages(4), 5, 0, 0),
                             op(REGISTER, 0, page(0), pages(4), 6, 0, 0),
                             op(REGISTER, 0, page(0), pages(4), 7, 0, 0),
                             op(REGISTER, 0, page(0), pages(4), 9, 0, 0),
                             op(REGISTER, 0, page(0), pages(4), 10, 0, 0),
                             op(REGISTER, 0, page(2), pages(4), 0, 0, 1)),
    'copy-modes': prog(hdr(), *uffd(), op(COPY, 0, page(0), pages(1), src(0), 6, 0, 0),
                       op(COPY, 0, page(1), pages(1), src(0), 8, 0, 0),
                       op(COPY, 0, page(2), pages(1), src(0), 9, 0, 0),
                       op(ZEROPAGE, 0, page(3), pages(1), 4, 0, 0),
                       op(ZEROPAGE, 0, page(3), pages(1), 5, 0, 0),
                       op(COPY, 0, page(20), pages(1), src(0), 6, 0, 0)),
    'other-ioctls': prog(hdr(), op(CREATE, 0, 3), op(IOCTL, 0, 5), op(IOCTL, 0, 8),
                         op(API, 0, 0, 0, 0, 0, 0), op(IOCTL, 0, 4), op(IOCTL, 0, 6), op(IOCTL, 0, 7),
                         op(IOCTL, 0, 9), op(IOCTL, 0, 12), op(PIPE, 1), op(IOCTL, 1, 4),
                         op(OPEN_DEV, 2, 0), op(IOCTL, 2, 5)),
    'generic-ioctls': prog(hdr(), op(CREATE, 0, 1), op(IOCTL, 0, 0), op(FCNTL, 0, 2), op(IOCTL, 0, 1),
                           op(IOCTL, 0, 2), op(FCNTL, 0, 3), op(IOCTL, 0, 3)),
    'pipe-and-empty-slots': prog(hdr(), op(PIPE, 0), op(READ, 0, RSIZE[32], 0), op(API, 0, 0, 0, 0, 0, 0),
                                 op(API, 3, 0, 0, 0, 0, 0), op(READ, 3, RSIZE[32], 0), op(CLOSE, 3),
                                 op(DUP, 3, 4), op(POLL, 0), op(POLL, 5)),
    'user-mode-only': prog(hdr(), *uffd(flags=CLOEXEC | NONBLOCK | USER_ONLY), op(TOUCH, 0, 0, 0),
                           op(READ, 0, RSIZE[32], 0), op(ZEROPAGE, 0, page(0), pages(16), 0, 0, 0)),
    'many-touchers': prog(hdr(p4=2), *uffd(features=THREAD_ID | EXACT),
                          *[op(TOUCH, p, p % 8, p & 1) for p in range(8)],
                          op(READ, 0, RSIZE[128], 0), op(READ, 0, RSIZE[256], 0),
                          op(ZEROPAGE, 0, page(0), pages(8), 0, 0, 0)),
    'split-merge': prog(hdr(), *uffd(), op(UNREGISTER, 0, page(4), pages(4), 0),
                        op(COPY, 0, page(2), pages(4), src(0), 0, 0, 0),
                        op(REGISTER, 0, page(4), pages(4), 0, 0, 0),
                        op(COPY, 0, page(2), pages(4), src(0), 0, 0, 0),
                        op(COPY, 0, page(6), pages(4), src(2), 0, 0, 0)),
    'full-range': prog(hdr(), *uffd(), op(REGISTER, 0, page(0), 0xD3, 0, 0, 0),
                       op(UNREGISTER, 0, page(0), 0xD3, 0), op(WAKE, 0, page(0), 0xD3, 0),
                       op(ZEROPAGE, 0, page(0), 0xD3, 0, 0, 0),
                       op(REGISTER, 0, page(0), 0xD0, 0, 0, 0)),
    'remap-registered': prog(hdr(p2=2, p5=2), *uffd(), op(REMAP, 2, 1, 0), op(TOUCH, 2, 0, 0),
                             op(REMAP, 5, 2, 1), op(TOUCH, 6, 1, 1), op(REMAP, 0, 3, 2),
                             op(COPY, 0, page(0), pages(2), src(0), 0, 0, 0), op(TOUCH, 8, 0, 0),
                             op(REGISTER, 0, page(0), pages(16), 0, 0, 0), op(TOUCH, 5, 0, 0),
                             op(READ, 0, RSIZE[96], 0)),
    'remap-under-waiter': prog(hdr(), *uffd(), op(TOUCH, 4, 0, 0), op(READ, 0, RSIZE[32], 0),
                               op(REMAP, 3, 3, 0), op(POLL, 0), op(TOUCH, 15, 0, 1), op(REMAP, 14, 3, 1),
                               op(REMAP, 16, 1, 2), op(WAKE, 0, page(0), pages(16), 0)),
    'stale-after-close': prog(hdr(), *uffd(), op(CLOSE, 0), op(API, 0, 0, 0, 0, 0, 0),
                              *uffd(1), op(TOUCH, 1, 0, 0), op(CLOSE, 1), op(TOUCH, 2, 0, 1)),
}


# Minimal reproducers of the real differences found (fuzz/README.md, "Differences
# found").  Each passes while its entry in known_on[] of uffd-diff.c excuses it,
# and fails with UFFD_DIFF_STRICT=1 until the emulation is fixed.
DIFFS = {
    'D1-api-refused-rdonly-struct': prog(hdr(), op(CREATE, 0, 3), op(API, 0, 5, 0, 0, P_RDONLY, 0)),
    'D2-copy-src-null': prog(hdr(), *uffd(), op(COPY, 0, page(0), pages(1), 0xC0, 0, 0, 0)),
    'D3-copy-wp-unregistered': prog(hdr(), *uffd(npages=4), op(COPY, 0, page(20), pages(1), src(0), 6, 0, 0)),
    'D4-fionbio-via-uf-ioctl': prog(hdr(), op(CREATE, 0, CLOEXEC), op(IOCTL, 0, 0), op(FCNTL, 0, 2)),
    'D5-poll-before-api': prog(hdr(), op(CREATE, 0, CLOEXEC | NONBLOCK), op(POLL, 0)),
    'D6-read-buffer-faults-after-first-message': prog(hdr(), *uffd(), op(TOUCH, 0, 0, 0), op(TOUCH, 1, 0, 0),
                                                      op(READ, 0, RSIZE[64], 0xC2), op(READ, 0, RSIZE[64], 0)),
    'D7-second-api-changes-features': prog(hdr(), *uffd(), op(API, 0, 0, THREAD_ID | EXACT, 0, 0, 0),
                                           op(TOUCH, 5, 2, 0), op(READ, 0, RSIZE[32], 0)),
    'D8-poll-dev': prog(hdr(), op(OPEN_DEV, 0, 0), op(POLL, 0)),
    'D9-dev-open-flags': prog(hdr(), op(OPEN_DEV, 0, 3), op(READ, 0, RSIZE[32], 0),
                              op(OPEN_DEV, 1, 2), op(FCNTL, 1, 2)),
    'D10-copy-across-two-registrations': prog(hdr(), op(CREATE, 0, 3), op(API, 0, 0, 0, 0, 0, 0),
                                              op(REGISTER, 0, page(0), pages(4), 0, 0, 0),
                                              op(REGISTER, 0, page(4), pages(4), 0, 0, 0),
                                              op(ZEROPAGE, 0, page(2), pages(4), 0, 0, 0)),
    'D11-poll-after-unregister-wake': prog(hdr(), *uffd(), op(TOUCH, 7, 0, 0), op(TOUCH, 8, 0, 1),
                                           op(UNREGISTER, 0, page(7), pages(4), 0), op(POLL, 0),
                                           op(READ, 0, RSIZE[64], 0)),
    'D12-copy-unwritable-result-wakes': prog(hdr(), *uffd(), op(TOUCH, 3, 1, 0), op(READ, 0, RSIZE[32], 0),
                                             op(COPY, 0, page(3), pages(1), src(2), 0, P_RDONLY, 0)),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'fuzz/corpus'
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, 'seed-' + name), 'wb') as f:
            f.write(data)
    for name, data in DIFFS.items():
        with open(os.path.join(out, 'diff-' + name), 'wb') as f:
            f.write(data)
    print(f'{len(SEEDS)} seeds and {len(DIFFS)} reproducers written to {out}')


if __name__ == '__main__':
    main()
