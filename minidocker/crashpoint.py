"""Named crash points: where a test may make minidocker die, exactly there, by SIGKILL.

"A SIGKILL at any point leaves a consistent store" is a claim about every instant of a
command. A test that kills after a delay lands anywhere, but rarely inside a narrow window
(between a rename and the index write, say). A crash point lands exactly in one:
``MINIDOCKER_TEST_KILL_AT=commit:before-index`` makes the process that reaches
``crashpoint("commit:before-index")`` send itself SIGKILL, which no handler and no
``finally`` can intercept, just as ``kill -9`` from another shell would.

Try it: ``MINIDOCKER_TEST_KILL_AT=commit:after-freeze minidocker commit c1``; the shell says
"Killed", and ``cat /sys/fs/cgroup/freezer/minidocker/<id>/freezer.state`` says THAWED.

The same points can fail instead of die: ``MINIDOCKER_TEST_FAIL_AT=NAME`` raises an
``OSError`` there, as a refused system call would, so a test can show that a step's failure
is reported once and undone, where no flag can make the kernel refuse any more (run's flags
are all checked before the start).

Unset (always, outside the tests) a crash point costs two dictionary lookups.
"""

from __future__ import annotations

import errno
import os
import signal

ENV = "MINIDOCKER_TEST_KILL_AT"
FAIL_ENV = "MINIDOCKER_TEST_FAIL_AT"


def crashpoint(name: str) -> None:
    """SIGKILL this process if ``$MINIDOCKER_TEST_KILL_AT`` names this point; raise an
    OSError (EIO) if ``$MINIDOCKER_TEST_FAIL_AT`` does."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(FAIL_ENV) == name:
        raise OSError(errno.EIO, f"failure injected at {name}")
