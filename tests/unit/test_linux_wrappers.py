"""The wrappers that runtime/ calls instead of the kernel (linux/tty.py, linux/procfs.py), on
a real pty and this process's own /proc entries. No root: /dev/ptmx is open to everyone."""

from __future__ import annotations

import os
import struct
import termios

import pytest

from minidocker.linux import procfs, tty


@pytest.fixture
def pty():
    """A fresh pty pair, (master, slave, the slave's path), closed after the test."""
    master, slave, name = tty.open_pty()
    yield master, slave, name
    os.close(master)
    os.close(slave)


def test_open_pty_gives_a_pair_that_carries_bytes_and_a_window_size(pty):
    master, slave, name = pty
    assert name.startswith("/dev/pts/") and os.ttyname(slave) == name
    assert os.get_inheritable(master) is False  # close-on-exec: the container's program never sees it
    os.write(master, b"typed\n")
    assert os.read(slave, 64) == b"typed\n"
    size = struct.pack("HHHH", 33, 101, 0, 0)  # rows, columns, pixels unused
    tty.set_window_size(master, size)
    assert tty.get_window_size(slave) == size


def test_raw_mode_and_back(pty):
    _, slave, _ = pty
    saved = tty.tcgetattr(slave)
    assert saved[3] & termios.ECHO and saved[3] & termios.ICANON  # a new pty is cooked, and echoes
    tty.set_raw(slave)
    raw = tty.tcgetattr(slave)
    assert not raw[3] & (termios.ECHO | termios.ICANON | termios.ISIG)
    tty.tcsetattr(slave, saved)
    assert tty.tcgetattr(slave) == saved


def test_procfs_names_this_process_and_its_namespaces():
    assert procfs.parent_pid(os.getpid()) == os.getppid()
    assert procfs.start_time(os.getpid()) == procfs.start_time(os.getpid()) > 0
    assert len(procfs.boot_id()) == 36  # a UUID
    fd = procfs.open_namespace("self", "net")
    try:
        assert fd in procfs.open_fds()
        assert os.readlink(f"/proc/self/fd/{fd}") == os.readlink("/proc/self/ns/net")  # net:[inode]
    finally:
        os.close(fd)
