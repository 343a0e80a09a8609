"""A cgroup-v2-only Debian 12 guest under qemu (software emulation), driven over ssh.

The host's cgroups are hybrid, so minidocker's v2 backend meets a real v2 kernel only in a
guest. ``vagrant/v2-guest/build.sh`` builds the guest once (cached); this module boots it:

* a qcow2 overlay on the cached raw image per boot, so the cached base is never written;
* ``qemu-system-x86_64 -accel tcg`` (/dev/kvm here cannot run a stock kernel), booted with the
  guest's own kernel and initramfs, serial console to ``console.log``;
* ssh forwarded from 127.0.0.1:<free port> only (qemu user-mode networking, ``restrict=on``:
  the guest reaches neither the host nor the internet, so no test can download by accident),
  one multiplexed ssh connection for all commands;
* ``reboot()`` powers off and boots again on the same overlay (what a course VM does at boot);
* the project copied onto the guest's own disk with tar over ssh (git HEAD, plus the working
  tree's ``minidocker/`` and ``tests/`` as they are now);
* qemu is killed by its PID whatever happens (and dies with us: PR_SET_PDEATHSIG).

As a command (what ``vagrant/v2-guest/run.sh`` calls)::

    python -m tests.v2guest.guest [--results DIR] -- CMD...

boots, copies the project to /root/minidocker, runs CMD there (as root, the guest venv's
python first on PATH), copies the guest's /root/results back to DIR, powers off.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "vagrant" / "v2-guest" / "build.sh"
REMOTE_PROJECT = "/root/minidocker"
REMOTE_RESULTS = "/root/results"
GUEST_PYTHON = "/opt/venv/bin/python"
BOOT_TIMEOUT = 180.0


class GuestError(Exception):
    """Something about the guest failed; the message says what and what to install."""


def cache_dir() -> Path:
    return Path(os.environ.get("MINIDOCKER_GUEST_CACHE", "/var/cache/minidocker/v2-guest"))


def build(force: bool = False) -> Path:
    """Run build.sh (a no-op when the cache is current); return the cache directory."""
    cmd = [str(BUILD)] + (["--force"] if force else [])
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise GuestError(f"{BUILD} failed (exit {r.returncode}):\n{r.stdout[-4000:]}")
    return cache_dir()


def need_tools() -> None:
    missing = [
        (tool, pkg)
        for tool, pkg in (
            ("qemu-system-x86_64", "qemu-system-x86"),
            ("qemu-img", "qemu-utils"),
            ("ssh", "openssh-client"),
            ("debootstrap", "debootstrap"),
        )
        if shutil.which(tool) is None
    ]
    if missing:
        raise GuestError(
            "missing "
            + ", ".join(t for t, _ in missing)
            + "; install with: apt-get install "
            + " ".join(p for _, p in missing)
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the qemu child before exec: SIGKILL it if the process that started it dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Guest:
    def __init__(self, cache: Path | None = None, workdir: Path | None = None, memory_mb: int = 2048, cpus: int = 2):
        self.cache = cache or cache_dir()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="v2guest."))
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.qemu: subprocess.Popen | None = None
        self.port: int | None = None
        self.console = self.workdir / "console.log"
        self.timings: dict[str, float] = {}

    # ---- lifecycle -------------------------------------------------------------------------

    def boot(self, timeout: float = BOOT_TIMEOUT) -> float:
        """Start qemu and wait until ssh answers; return the seconds it took."""
        need_tools()
        for name in ("base.raw", "vmlinuz", "initrd.img", "cmdline", "id_ed25519"):
            if not (self.cache / name).exists():
                raise GuestError(f"{self.cache / name} is missing: run vagrant/v2-guest/build.sh")
        overlay = self.workdir / "overlay.qcow2"
        if not overlay.exists():  # a reboot boots the same disk again
            base = str(self.cache / "base.raw")
            subprocess.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", str(overlay)], check=True
            )
        start = time.monotonic()
        for attempt in range(3):  # the free port may be taken between our probe and qemu's bind
            self.port = _free_port()
            self._start_qemu(overlay)
            time.sleep(1.0)
            if self.qemu.poll() is None:
                break
            log = self.console.read_text(errors="replace")
            if "hostfwd" not in log or attempt == 2:
                raise GuestError(f"qemu exited with {self.qemu.returncode}:\n{log[-2000:]}")
        deadline = start + timeout
        while True:
            if self.qemu.poll() is not None:
                raise GuestError(f"qemu exited with {self.qemu.returncode} during boot; console:\n{self.tail()}")
            r = self._ssh_raw("true", timeout=20, connect_timeout=5)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise GuestError(f"no ssh after {timeout:.0f} s; console:\n{self.tail()}")
            time.sleep(1.0)
        self.timings["boot_to_ssh_s"] = time.monotonic() - start
        return self.timings["boot_to_ssh_s"]

    def _start_qemu(self, overlay: Path) -> None:
        cmdline = (self.cache / "cmdline").read_text().strip()
        argv = [
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-m",
            str(self.memory_mb),
            "-smp",
            str(self.cpus),
            "-nographic",
            "-no-reboot",
            "-kernel",
            str(self.cache / "vmlinuz"),
            "-initrd",
            str(self.cache / "initrd.img"),
            "-append",
            cmdline,
            "-drive",
            f"file={overlay},format=qcow2,if=virtio",
            "-netdev",
            f"user,id=n,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:22",
            "-device",
            "virtio-net-pci,netdev=n",
        ]
        out = open(self.console, "ab")
        try:
            self.qemu = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            out.close()

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.console.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no console log)"

    def reboot(self, timeout: float = 60.0) -> float:
        """Power off cleanly (so the disk is consistent) and boot the same overlay again, as
        a machine's next boot; return the seconds from poweroff to ssh. qemu runs with
        -no-reboot, so a reboot is a new qemu process (and a new ssh port)."""
        t = time.monotonic()
        self.power_off(timeout)
        self.boot()
        self.timings["reboot_s"] = time.monotonic() - t
        return self.timings["reboot_s"]

    def power_off(self, timeout: float = 30.0) -> None:
        """``systemctl poweroff`` and wait for qemu to exit (SIGKILL after ``timeout``); the
        ssh master goes too. The overlay and the work directory stay."""
        try:
            if self.qemu is not None and self.qemu.poll() is None:
                self._ssh_raw("systemctl poweroff --no-block", timeout=10)
                try:
                    self.qemu.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if self.qemu is not None and self.qemu.poll() is None:
                os.kill(self.qemu.pid, signal.SIGKILL)
                self.qemu.wait()
            if self.port is not None:
                subprocess.run(
                    self._ssh_base() + ["-O", "exit", "guest"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=10,
                )
            self.qemu, self.port = None, None

    def shutdown(self, timeout: float = 30.0) -> None:
        """Power off, then make sure qemu is gone (SIGKILL by PID) and the ssh master too."""
        try:
            self.power_off(timeout)
        finally:
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    # ---- commands --------------------------------------------------------------------------

    def _ssh_base(self, connect_timeout: int = 10) -> list[str]:
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.cache / "id_ed25519"),
            "-p",
            str(self.port),
            "-l",
            "root",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            f"ConnectTimeout={connect_timeout}",
            "-o",
            "HostKeyAlias=v2guest",
            # one connection for every command: a round trip without a new key exchange
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self.workdir}/ssh.ctl",
            "-o",
            "ControlPersist=300",
            "-o",
            "ServerAliveInterval=10",
        ]

    def _ssh_raw(self, command: str, timeout: float, connect_timeout: int = 10, **kw) -> subprocess.CompletedProcess:
        argv = self._ssh_base(connect_timeout) + ["127.0.0.1", command]
        try:
            return subprocess.run(argv, capture_output=True, timeout=timeout, **kw)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(argv, 124, e.stdout or b"", (e.stderr or b"") + b"\n(timed out)")

    def run(
        self, command: str | list[str], timeout: float = 300, check: bool = False, input: bytes | None = None
    ) -> subprocess.CompletedProcess:
        """Run a shell command in the guest (as root, in the project directory once copied);
        returns text stdout/stderr."""
        if isinstance(command, list):
            command = shlex.join(command)
        wrapped = (
            f"export PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1; "
            f"cd {REMOTE_PROJECT} 2>/dev/null || cd /root; {command}"
        )
        t = time.monotonic()
        r = self._ssh_raw(wrapped, timeout=timeout, input=input)
        self.timings.setdefault("commands", []).append(time.monotonic() - t)  # type: ignore[union-attr]
        out = subprocess.CompletedProcess(
            r.args, r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        )
        if check and r.returncode != 0:
            raise GuestError(
                f"guest command failed ({r.returncode}): {command}\nstdout:\n{out.stdout[-3000:]}"
                f"\nstderr:\n{out.stderr[-3000:]}"
            )
        return out

    def put_project(self, repo: Path = REPO) -> float:
        """Copy the project to REMOTE_PROJECT: git HEAD without minidocker/ and tests/, then those
        two directories from the working tree as they are (uncommitted edits included)."""
        t = time.monotonic()
        head = subprocess.run(
            [
                "git",
                "-C",
                str(repo),
                "archive",
                "--format=tar",
                "HEAD",
                "--",
                ".",
                ":(exclude)minidocker",
                ":(exclude)tests",
            ],
            stdout=subprocess.PIPE,
            check=True,
        ).stdout
        tree = subprocess.run(
            [
                "tar",
                "-C",
                str(repo),
                "-c",
                "--exclude=__pycache__",
                "--exclude=*.pyc",
                "--exclude=.pytest_cache",
                "minidocker",
                "tests",
            ],
            stdout=subprocess.PIPE,
            check=True,
        ).stdout
        site = "/opt/venv/lib/python3.11/site-packages"
        self.run(
            f"rm -rf {REMOTE_PROJECT} && mkdir -p {REMOTE_PROJECT} && tar -x -i -C {REMOTE_PROJECT} && "
            f"echo {REMOTE_PROJECT} > {site}/minidocker-src.pth && "
            f"printf '#!/bin/sh\\nexec {GUEST_PYTHON} -m minidocker \"$@\"\\n' > /usr/local/bin/minidocker && "
            f"chmod +x /usr/local/bin/minidocker && "
            f"printf '#!/bin/sh\\nexec {GUEST_PYTHON} -m minidocker.oci \"$@\"\\n' > /usr/local/bin/minidocker-runc && "
            f"chmod +x /usr/local/bin/minidocker-runc",
            input=head + tree,
            check=True,
            timeout=120,
        )
        self.timings["put_project_s"] = time.monotonic() - t
        return self.timings["put_project_s"]

    def get(self, remote_dir: str, local_dir: Path) -> None:
        """Copy a guest directory's contents back (tar over ssh)."""
        local_dir.mkdir(parents=True, exist_ok=True)
        r = self._ssh_raw(
            f"test -d {shlex.quote(remote_dir)} && tar -C {shlex.quote(remote_dir)} -c . || true", timeout=120
        )
        if r.stdout:
            subprocess.run(["tar", "-x", "-C", str(local_dir)], input=r.stdout, check=True)


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="run.sh", description="Run a command in the cgroup v2 guest.")
    p.add_argument(
        "--results",
        type=Path,
        default=Path("v2guest-results"),
        help="where the guest's /root/results goes (default ./v2guest-results)",
    )
    p.add_argument("--keep-console", type=Path, help="copy the guest's serial console log here")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give a command, e.g. run.sh -- cat /sys/fs/cgroup/cgroup.controllers")

    # SIGTERM/SIGHUP become exceptions so the finally below powers off and kills qemu.
    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, stop)

    t0 = time.monotonic()
    try:
        build()
        guest = Guest()
    except GuestError as e:
        print(f"run.sh: {e}", file=sys.stderr)
        return 125
    try:
        print("run.sh: booting (tcg) ...", file=sys.stderr)
        print(f"run.sh: ssh after {guest.boot():.1f} s", file=sys.stderr)
        print(f"run.sh: project copied in {guest.put_project():.1f} s", file=sys.stderr)
        guest.run(f"mkdir -p {REMOTE_RESULTS}")
        t = time.monotonic()
        r = guest.run(shlex.join(command) if len(command) > 1 else command[0], timeout=3600)
        sys.stdout.write(r.stdout)
        sys.stdout.flush()
        sys.stderr.write(r.stderr)
        print(f"run.sh: command exited {r.returncode} after {time.monotonic() - t:.1f} s", file=sys.stderr)
        guest.get(REMOTE_RESULTS, args.results)
        return r.returncode
    except GuestError as e:
        print(f"run.sh: {e}", file=sys.stderr)
        return 125
    finally:
        if args.keep_console:
            shutil.copy(guest.console, args.keep_console)
        guest.shutdown()
        print(f"run.sh: total {time.monotonic() - t0:.1f} s; qemu stopped", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
