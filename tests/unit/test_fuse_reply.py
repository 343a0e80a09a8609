"""reply_buffers: the ``struct fuse_bufvec`` a read_buf reply hands libfuse (fuse_common.h),
read back from the memory it built, as libfuse reads it."""

import ctypes
import struct

from minidocker.linux.fuse import FUSE_BUF_FD_RETRY, FUSE_BUF_FD_SEEK, FUSE_BUF_IS_FD, reply_buffers

libc = ctypes.CDLL(None)
libc.free.argtypes = [ctypes.c_void_p]
BUF = struct.Struct("@NiPiq")  # struct fuse_buf with the platform's own alignment: size, flags, mem, fd, pos
VEC = struct.Struct("@NNN")  # count, idx, off


def read_back(slot: ctypes.c_void_p, count: int) -> tuple[tuple, list[tuple]]:
    head = VEC.unpack(ctypes.string_at(slot.value, VEC.size))
    step = struct.calcsize("@NiPiq0N")  # (an array's element: padded to its alignment)
    assert step == 40
    raw = ctypes.string_at(slot.value + VEC.size, step * count)
    return head, [BUF.unpack_from(raw, i * step) for i in range(count)]


def test_ranges_of_files_and_bytes_in_order():
    slot = ctypes.c_void_p()
    reply_buffers(ctypes.pointer(slot), [(7, 1 << 33, 100), b"hello", (9, 0, 4096)])
    try:
        (count, idx, off), bufs = read_back(slot, 3)
        assert (count, idx, off) == (3, 0, 0)
        fd_flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY
        assert (bufs[0][0], bufs[0][1], bufs[0][3], bufs[0][4]) == (100, fd_flags, 7, 1 << 33)
        assert (bufs[2][0], bufs[2][1], bufs[2][3], bufs[2][4]) == (4096, fd_flags, 9, 0)
        size, flags, mem, _, _ = bufs[1]
        assert (size, flags) == (5, 0) and ctypes.string_at(mem, 5) == b"hello"
    finally:
        libc.free(bufs[1][2])
        libc.free(slot.value)


def test_an_empty_reply_is_one_empty_buffer():
    """(end of file: libfuse sends a reply of no bytes)"""
    slot = ctypes.c_void_p()
    reply_buffers(ctypes.pointer(slot), [])
    try:
        (count, _, _), bufs = read_back(slot, 1)
        assert count == 1 and bufs[0][0] == 0 and bufs[0][1] == 0
    finally:
        libc.free(slot.value)
