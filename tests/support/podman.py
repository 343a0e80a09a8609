"""podman as a peer in tests: a private store, runroot and configuration (as
bench/common.py's PodmanSandbox), in a short directory of /tmp (podman refuses a runroot
longer than 50 characters), with this host's needs (cgroupfs, the nofile/nproc limits of
host-notes.md). Everything it made is removed at the end, its conmon cgroups too."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

Podman = Callable[..., subprocess.CompletedProcess]


@contextlib.contextmanager
def podman_sandbox(conf: Path, runtime: str, prefix: str = "mdp-") -> Iterator[Podman]:
    """``run(*args, timeout=..., **kw)``: podman with ``runtime`` and its own everything;
    ``conf`` (an empty directory of the test's) holds its configuration."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: apt-get install podman", pytrace=False)
    short = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    (conf / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\nlog_driver = "k8s-file"\n'
        f'[network]\nnetwork_config_dir = "{conf}/networks"\n'
        f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nevents_logfile_path = "{conf}/events.log"\n'
        f'tmp_dir = "{conf}/tmp"\n'
    )  # (default_ulimits: root here may not raise nofile's hard limit to podman's default, 1048576)
    (conf / "registries.conf").write_text("unqualified-search-registries = []\n")
    env = dict(os.environ, CONTAINERS_CONF=str(conf / "containers.conf"))
    env["CONTAINERS_REGISTRIES_CONF"] = str(conf / "registries.conf")
    argv = ["podman", "--root", str(short / "g"), "--runroot", str(short / "r"), "--storage-driver", "overlay"]
    argv += ["--cgroup-manager", "cgroupfs", "--runtime", runtime]

    def run(*args: str, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*argv, *args], capture_output=True, text=True, env=env, timeout=timeout, **kw)

    try:
        yield run
    finally:
        run("rm", "-af", "-t", "0")
        run("system", "reset", "-f")
        subprocess.run(["rm", "-rf", "--one-file-system", str(short)], check=False)
        remove_podman_cgroups()


def remove_podman_cgroups() -> None:
    """podman's conmon cgroups (libpod_parent/conmon in each v1 hierarchy), once empty; one
    that another podman still uses is busy and stays (rmdir refuses it)."""
    for d in glob.glob("/sys/fs/cgroup/*/libpod_parent/conmon") + glob.glob("/sys/fs/cgroup/*/libpod_parent"):
        with contextlib.suppress(OSError):
            os.rmdir(d)
