"""fsutil.atomic_output: a streamed file replaces its target whole, or not at all."""

import os
import signal
import stat

import pytest

from minidocker.fsutil import atomic_output, atomic_write


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_the_new_content_replaces_the_old_and_no_temp_file_stays(tmp_path):
    target = tmp_path / "out.tar"
    target.write_bytes(b"old")
    with atomic_output(target) as f:
        f.write(b"new ")
        f.flush()
        os.write(f.fileno(), b"and more")  # a child or a C writer may use the descriptor
        assert target.read_bytes() == b"old"  # nothing shows before the block ends
    assert target.read_bytes() == b"new and more"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert leftovers(tmp_path) == []


def test_an_error_in_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.tar"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as f:
        f.write(b"half of it")
        raise RuntimeError("the tar writer failed")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_a_killed_writer_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "out.tar"
    target.write_bytes(b"old")
    pid = os.fork()
    if pid == 0:
        try:
            with atomic_output(target) as f:
                f.write(b"x" * 100_000)
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)  # no handler, no finally runs
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert target.read_bytes() == b"old"


def test_a_missing_directory_is_an_error_and_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_output(tmp_path / "no" / "such" / "out.tar"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_still_makes_its_directory_and_mode(tmp_path):
    target = tmp_path / "state" / "config.json"
    atomic_write(target, b"{}", mode=0o600)
    assert target.read_bytes() == b"{}"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
