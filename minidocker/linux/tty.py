"""Terminals: the pty a container gets with ``-t``, and the user's terminal that drives it.

A pseudo-terminal is a pair of character devices: whatever is written to the *master*
reads from the *slave* as if typed, and what the slave's program writes reads from the
master. Opening /dev/ptmx makes a new pair and returns its master; the slave appears as
/dev/pts/N once unlocked (pts(4)). The container opens its pty in its own devpts (mounted
with ``newinstance``, so its numbering is its own), makes the slave its controlling terminal
and its stdin, stdout and stderr, and hands the master to us; we put the user's terminal in
raw mode (every key goes straight through, Ctrl-C included, as a byte) and copy both ways.

Imported only with ``-t`` (``run`` without it never loads this module), by the parent
before it forks the container (``init.preload_tty``): the child needs it after pivot_root,
when the host's files are out of sight.

See it: ``minidocker run -it --rm busybox sh``, then ``tty``, ``stty size`` and ``ls /dev/pts``.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios
from tty import setraw  # (the standard library's tty module, not this one)

TIOCSPTLCK = 0x40045431  # <asm-generic/ioctls.h>: lock/unlock a pty's slave (unlockpt)
TIOCGPTN = 0x80045430  # get the pty number (ptsname)


def unlockpt(master: int) -> None:
    """unlockpt(3), ioctl(TIOCSPTLCK, 0): a new pty's slave cannot be opened until unlocked."""
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))


def ptsname(master: int) -> str:
    """ptsname(3), ioctl(TIOCGPTN): the slave's path, /dev/pts/N of the devpts ``master`` is in."""
    return f"/dev/pts/{struct.unpack('i', fcntl.ioctl(master, TIOCGPTN, struct.pack('i', 0)))[0]}"


def open_pty() -> tuple[int, int, str]:
    """A new pty from /dev/ptmx (posix_openpt(3)): (master, slave, the slave's path).
    Neither becomes our controlling terminal (O_NOCTTY); the master is close-on-exec."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    unlockpt(master)
    name = ptsname(master)
    slave = os.open(name, os.O_RDWR | os.O_NOCTTY)
    return master, slave, name


def set_controlling_tty(fd: int) -> None:
    """setsid(2), then ioctl(TIOCSCTTY) (ioctl_tty(2)): only a session leader without a
    controlling terminal may take one, so we start a session; from then on the terminal's
    Ctrl-C and hangup reach our process group, and /dev/tty is ``fd``'s terminal."""
    os.setsid()
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def get_window_size(fd: int) -> bytes:
    """ioctl(TIOCGWINSZ) (ioctl_tty(2)): the terminal's ``struct winsize`` (rows, columns,
    and two unused pixel sizes), as the 8 bytes ``set_window_size`` takes."""
    return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)


def set_window_size(fd: int, size: bytes) -> None:
    """ioctl(TIOCSWINSZ): a new window size; the kernel sends SIGWINCH to the terminal's
    foreground process group, so a shell or an editor redraws itself."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, size)


def tcgetattr(fd: int) -> list:
    """tcgetattr(3): the terminal's modes (what ``tcsetattr`` puts back)."""
    return termios.tcgetattr(fd)


def tcsetattr(fd: int, attributes: list) -> None:
    """tcsetattr(3) with TCSAFLUSH: once pending output is written, ``attributes`` apply and
    input not yet read is discarded."""
    termios.tcsetattr(fd, termios.TCSAFLUSH, attributes)


def set_raw(fd: int) -> None:
    """cfmakeraw(3), then tcsetattr: no echo, no line editing, no signals from keys; every
    byte typed is read at once, as it is, and the container's own pty does the rest."""
    setraw(fd)
