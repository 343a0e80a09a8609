"""libfuse's low-level API: a FUSE server that answers the kernel by inode, when it likes.

linux/fuse.py serves through libfuse's high-level API, which turns every request into a call
by path and waits for its answer. The low-level API is the kernel's protocol nearly as it is
(fuse_lowlevel.h): every request names the inode it is about (the kernel's node ID, here the
file system's own inode number; the root is 1), and carries a ``fuse_req_t`` that the server
answers with one ``fuse_reply_*`` call, from any thread, now or later. So:

* one thread reads /dev/fuse (``fuse_session_loop``) and answers at once whatever it can; a
  request that must wait (bytes still to fetch) is answered by the thread that waited, while
  the loop goes on with the next request;
* the server may also write to the kernel unasked: ``store`` (FUSE_NOTIFY_STORE) puts bytes of
  a file into the kernel's page cache, so a later read(2) of them is no request at all.

``Session`` mounts and serves an ``operations`` object with the methods below (each gets a
``Request`` to answer; one that raises OSError is answered with its errno)::

    ll_init(conn)                         the kernel's INIT (conn: struct fuse_conn_info)
    ll_lookup(req, parent, name)          req.entry(...), or req.no_entry()
    ll_getattr(req, ino)                  req.attr(...)
    ll_readlink(req, ino)                 req.readlink(...)
    ll_read(req, ino, size, offset)       req.data(parts)   (linux/fuse.py's reply parts)
    ll_readdir(req, ino, size, offset, plus)   req.listing(...)
    ll_getxattr(req, ino, name, size)     req.xattr(value, size)
    ll_listxattr(req, ino, size)          req.xattr(names, size)
    ll_statfs(req, ino)                   req.statfs(...)

The first OPEN and the first OPENDIR are answered ENOSYS: the kernel then opens files and
directories by itself, keeping their pages cached across opens, and sends no OPEN, RELEASE,
OPENDIR or RELEASEDIR again. FORGET is answered with nothing (a layer's inodes live as long
as its server).

See it: ``grep FUSE_NOTIFY /usr/include/linux/fuse.h``, and docs/lazy-fuse.md.
"""

from __future__ import annotations

import ctypes
import errno
import logging
from ctypes import CFUNCTYPE, POINTER, c_char_p, c_double, c_int, c_int64, c_size_t, c_uint64, c_void_p
from typing import Any

from minidocker.linux.fuse import pack_bufvec

log = logging.getLogger("minidocker.fuse")

# fuse_conn_info.want's bits (fuse_common.h) beside linux/fuse.py's FUSE_CAP_SPLICE_*
FUSE_CAP_READDIRPLUS = 1 << 13
FUSE_CAP_READDIRPLUS_AUTO = 1 << 14
FUSE_CAP_NO_OPEN_SUPPORT = 1 << 17
FUSE_CAP_CACHE_SYMLINKS = 1 << 23
FUSE_CAP_NO_OPENDIR_SUPPORT = 1 << 24

FUSE_BUF_SPLICE_MOVE = 1 << 3  # enum fuse_buf_copy_flags: a reply's pages may be moved, not copied

_ino, _off, _req = c_uint64, c_int64, c_void_p
_unused = c_void_p  # an operation left NULL: libfuse answers it (ENOSYS, or as the kernel expects)

# struct fuse_lowlevel_ops (fuse_lowlevel.h, libfuse 3.14), in its order
_OPS = [
    ("init", CFUNCTYPE(None, c_void_p, c_void_p)),
    ("destroy", _unused),
    ("lookup", CFUNCTYPE(None, _req, _ino, c_char_p)),
    ("forget", CFUNCTYPE(None, _req, _ino, c_uint64)),
    ("getattr", CFUNCTYPE(None, _req, _ino, c_void_p)),
    ("setattr", _unused),
    ("readlink", CFUNCTYPE(None, _req, _ino)),
    *[(name, _unused) for name in ("mknod", "mkdir", "unlink", "rmdir", "symlink", "rename", "link")],
    ("open", CFUNCTYPE(None, _req, _ino, c_void_p)),
    ("read", CFUNCTYPE(None, _req, _ino, c_size_t, _off, c_void_p)),
    *[(name, _unused) for name in ("write", "flush", "release", "fsync")],
    ("opendir", CFUNCTYPE(None, _req, _ino, c_void_p)),
    ("readdir", CFUNCTYPE(None, _req, _ino, c_size_t, _off, c_void_p)),
    ("releasedir", _unused),
    ("fsyncdir", _unused),
    ("statfs", CFUNCTYPE(None, _req, _ino)),
    ("setxattr", _unused),
    ("getxattr", CFUNCTYPE(None, _req, _ino, c_char_p, c_size_t)),
    ("listxattr", CFUNCTYPE(None, _req, _ino, c_size_t)),
    *[
        (name, _unused)
        for name in (
            "removexattr",
            "access",
            "create",
            "getlk",
            "setlk",
            "bmap",
            "ioctl",
            "poll",
            "write_buf",
            "retrieve_reply",
        )
    ],  # fmt: skip
    ("forget_multi", CFUNCTYPE(None, _req, c_size_t, c_void_p)),
    ("flock", _unused),
    ("fallocate", _unused),
    ("readdirplus", CFUNCTYPE(None, _req, _ino, c_size_t, _off, c_void_p)),
    ("copy_file_range", _unused),
    ("lseek", _unused),
]


class LowLevelOps(ctypes.Structure):
    _fields_ = _OPS  # type: ignore[assignment]


class FuseArgs(ctypes.Structure):
    _fields_ = [("argc", c_int), ("argv", POINTER(c_char_p)), ("allocated", c_int)]


def _lib() -> Any:
    from minidocker.linux.fuse import load_libfuse

    load_libfuse()
    import mfusepy

    lib = mfusepy._libfuse
    lib.fuse_session_new.restype = c_void_p
    lib.fuse_session_new.argtypes = [POINTER(FuseArgs), POINTER(LowLevelOps), c_size_t, c_void_p]
    lib.fuse_session_mount.argtypes = [c_void_p, c_char_p]
    lib.fuse_session_loop.argtypes = [c_void_p]
    lib.fuse_session_destroy.argtypes = [c_void_p]
    lib.fuse_set_signal_handlers.argtypes = [c_void_p]
    lib.fuse_remove_signal_handlers.argtypes = [c_void_p]
    lib.fuse_reply_err.argtypes = [_req, c_int]
    lib.fuse_reply_none.argtypes = [_req]
    lib.fuse_reply_entry.argtypes = [_req, c_void_p]
    lib.fuse_reply_attr.argtypes = [_req, c_void_p, c_double]
    lib.fuse_reply_readlink.argtypes = [_req, c_char_p]
    lib.fuse_reply_buf.argtypes = [_req, c_char_p, c_size_t]
    lib.fuse_reply_data.argtypes = [_req, c_void_p, c_int]
    lib.fuse_reply_xattr.argtypes = [_req, c_size_t]
    lib.fuse_reply_statfs.argtypes = [_req, c_void_p]
    lib.fuse_add_direntry_plus.restype = c_size_t
    lib.fuse_add_direntry_plus.argtypes = [_req, c_void_p, c_size_t, c_char_p, c_void_p, _off]
    lib.fuse_add_direntry.restype = c_size_t
    lib.fuse_add_direntry.argtypes = [_req, c_void_p, c_size_t, c_char_p, c_void_p, _off]
    lib.fuse_lowlevel_notify_store.argtypes = [c_void_p, _ino, _off, c_void_p, c_int]
    return lib


def _entry_param_type() -> Any:
    import mfusepy

    class EntryParam(ctypes.Structure):  # struct fuse_entry_param
        _fields_ = [
            ("ino", c_uint64),
            ("generation", c_uint64),
            ("attr", mfusepy.c_stat),
            ("attr_timeout", c_double),
            ("entry_timeout", c_double),
        ]

    return EntryParam


def bufvec(parts: list[tuple[int, int, int] | bytes]) -> tuple[Any, list[Any]]:
    """A ``struct fuse_bufvec`` of ``parts`` (linux/fuse.py ``pack_bufvec``) in memory Python
    owns, for a notify or a reply libfuse does not free, and the buffers it points into (keep
    them alive with it)."""
    keep: list[Any] = []

    def memory(data: bytes) -> int:
        keep.append(ctypes.create_string_buffer(data, len(data)))
        return ctypes.addressof(keep[-1])

    return ctypes.create_string_buffer(pack_bufvec(parts, memory)), keep


class Request:
    """One request of the kernel's, answered exactly once by one of these methods."""

    __slots__ = ("session", "req")

    def __init__(self, session: Session, req: int):
        self.session, self.req = session, req

    def error(self, err: int) -> None:
        self.session.lib.fuse_reply_err(self.req, err)

    def entry(self, ino: int, attrs: dict[str, int], timeout: float) -> None:
        e = self.session.entry_param(ino, attrs, timeout)
        self.session.lib.fuse_reply_entry(self.req, ctypes.byref(e))

    def no_entry(self, timeout: float) -> None:
        """No such name, and the kernel may remember that for ``timeout`` s (ino 0)."""
        e = self.session.EntryParam()
        e.entry_timeout = timeout
        self.session.lib.fuse_reply_entry(self.req, ctypes.byref(e))

    def attr(self, attrs: dict[str, int], timeout: float) -> None:
        import mfusepy

        st = mfusepy.c_stat()
        mfusepy.set_st_attrs(st, attrs, use_ns=True)
        self.session.lib.fuse_reply_attr(self.req, ctypes.byref(st), timeout)

    def readlink(self, target: bytes) -> None:
        self.session.lib.fuse_reply_readlink(self.req, target)

    def data(self, parts: list[tuple[int, int, int] | bytes]) -> None:
        """Bytes of a file: ranges of open files (libfuse splices them) or bytes."""
        if len(parts) == 1 and isinstance(parts[0], bytes):
            self.session.lib.fuse_reply_buf(self.req, parts[0], len(parts[0]))
            return
        vec, keep = bufvec(parts)
        self.session.lib.fuse_reply_data(self.req, vec, FUSE_BUF_SPLICE_MOVE)
        del keep

    def xattr(self, value: bytes, size: int) -> None:
        """An xattr's value (or the list of names): its size when asked for 0 bytes, ERANGE
        when it is longer than ``size``, else the bytes."""
        if size == 0:
            self.session.lib.fuse_reply_xattr(self.req, len(value))
        elif len(value) > size:
            self.error(errno.ERANGE)
        else:
            self.session.lib.fuse_reply_buf(self.req, value, len(value))

    def statfs(self, fields: dict[str, int]) -> None:
        import mfusepy

        st = mfusepy.c_statvfs()
        for k, v in fields.items():
            setattr(st, k, v)
        self.session.lib.fuse_reply_statfs(self.req, ctypes.byref(st))

    def listing(self, entries: list[tuple[bytes, int, dict[str, int]]], size: int, offset: int, plus: bool) -> None:
        """A directory's entries from ``offset`` (each ``(name, ino, attrs)``; entry N's
        offset is N + 1, where the next request goes on), as many as fit in ``size`` bytes;
        with ``plus`` each with its whole entry (the kernel then needs no LOOKUP of it)."""
        lib, buf, used = self.session.lib, ctypes.create_string_buffer(size), 0
        for n in range(offset, len(entries)):
            name, ino, attrs = entries[n]
            at = ctypes.addressof(buf) + used
            if plus:
                e = self.session.entry_param(ino, attrs, self.session.timeout)
                need = lib.fuse_add_direntry_plus(self.req, at, size - used, name, ctypes.byref(e), n + 1)
            else:
                import mfusepy

                st = mfusepy.c_stat()
                st.st_ino, st.st_mode = ino, attrs["st_mode"]
                need = lib.fuse_add_direntry(self.req, at, size - used, name, ctypes.byref(st), n + 1)
            if used + need > size:
                break
            used += need
        lib.fuse_reply_buf(self.req, buf, used)


class Session:
    """A low-level FUSE session of ``operations`` at ``mountpoint`` (see the module docstring)."""

    def __init__(self, operations: Any, mountpoint: str, options: str, timeout: float):
        self.lib = _lib()
        self.EntryParam = _entry_param_type()
        self.operations, self.timeout = operations, timeout
        self._callbacks = self._wrap_all()  # (kept: libfuse holds only their addresses)
        self.ops = LowLevelOps(**self._callbacks)
        argv = [b"minidocker-fuse", b"-o", options.encode()]
        self._argv = (c_char_p * len(argv))(*argv)
        args = FuseArgs(len(argv), self._argv, 0)
        self.se = self.lib.fuse_session_new(ctypes.byref(args), ctypes.byref(self.ops), ctypes.sizeof(self.ops), None)
        if not self.se:
            raise OSError(errno.EINVAL, f"libfuse refused the options {options!r}")
        if self.lib.fuse_session_mount(self.se, mountpoint.encode()) != 0:
            self.lib.fuse_session_destroy(self.se)
            raise OSError(errno.EIO, f"libfuse could not mount {mountpoint}")

    def serve(self) -> None:
        """Answer the kernel until the mount goes (or SIGTERM, SIGINT, SIGHUP)."""
        self.lib.fuse_set_signal_handlers(self.se)
        try:
            self.lib.fuse_session_loop(self.se)
        finally:
            self.lib.fuse_remove_signal_handlers(self.se)

    def store(self, ino: int, offset: int, parts: list[tuple[int, int, int] | bytes]) -> int:
        """Put bytes of ``ino`` from ``offset`` into the kernel's page cache (FUSE_NOTIFY_STORE):
        0, or -ENOENT when the kernel holds no such inode now (nothing to do then)."""
        vec, keep = bufvec(parts)
        try:
            return int(self.lib.fuse_lowlevel_notify_store(self.se, ino, offset, vec, 0))
        finally:
            del keep

    def entry_param(self, ino: int, attrs: dict[str, int], timeout: float) -> Any:
        import mfusepy

        e = self.EntryParam()
        e.ino, e.attr_timeout, e.entry_timeout = ino, timeout, timeout
        mfusepy.set_st_attrs(e.attr, attrs, use_ns=True)
        return e

    # -- the callbacks: C arguments to the operations' methods, errors to replies ---------------
    def _wrap_all(self) -> dict[str, Any]:
        types: dict[str, Any] = dict(_OPS)
        ops = self.operations

        def answered(method: Any) -> Any:
            def call(req: int, *args: Any) -> None:
                request = Request(self, req)
                try:
                    method(request, *args)
                except OSError as e:
                    request.error(e.errno or errno.EIO)
                except BaseException:  # noqa: BLE001 - a bug: the reader gets EIO, the log the rest
                    log.exception("FUSE request failed")
                    request.error(errno.EIO)

            return call

        def init(userdata: int, conn: int) -> None:
            import mfusepy

            try:
                ops.ll_init(ctypes.cast(conn, POINTER(mfusepy.fuse_conn_info)).contents)
            except BaseException:  # noqa: BLE001 - the mount then fails: the parent hears no word
                log.exception("FUSE init failed")

        def no_open(req: int, ino: int, fi: int) -> None:
            self.lib.fuse_reply_err(req, errno.ENOSYS)

        def forget(req: int, ino: int, nlookup: int) -> None:
            self.lib.fuse_reply_none(req)

        def forget_multi(req: int, count: int, forgets: int) -> None:
            self.lib.fuse_reply_none(req)

        c: dict[str, Any] = {
            "init": types["init"](init),
            "open": types["open"](no_open),
            "opendir": types["opendir"](no_open),
            "forget": types["forget"](forget),
            "forget_multi": types["forget_multi"](forget_multi),
            "lookup": types["lookup"](answered(ops.ll_lookup)),
            "getattr": types["getattr"](answered(lambda r, ino, fi: ops.ll_getattr(r, ino))),
            "readlink": types["readlink"](answered(ops.ll_readlink)),
            "read": types["read"](answered(lambda r, ino, size, off, fi: ops.ll_read(r, ino, size, off))),
            "readdir": types["readdir"](answered(lambda r, ino, s, off, fi: ops.ll_readdir(r, ino, s, off, False))),
            "readdirplus": types["readdirplus"](
                answered(lambda r, ino, s, off, fi: ops.ll_readdir(r, ino, s, off, True))
            ),
            "statfs": types["statfs"](answered(ops.ll_statfs)),
            "getxattr": types["getxattr"](answered(ops.ll_getxattr)),
            "listxattr": types["listxattr"](answered(ops.ll_listxattr)),
        }
        return c


def want(conn: Any, capabilities: int, without: int = 0) -> None:
    """Ask the kernel, in the reply to INIT, for what of ``capabilities`` it offers."""
    conn.want = (conn.want | (conn.capable & capabilities)) & ~without
