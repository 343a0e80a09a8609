"""The course VM, provisioned for real: ``vagrant/provision.sh --course`` in the cgroup v2 guest.

The Vagrantfile's course VM is a Debian 12 machine with cgroup v2 only, provisioned by
``vagrant/provision.sh --course``. The guest of tests/v2guest is such a machine, so this test
runs that very script there (not a copy of its steps), reboots, and then does what a student
does: ``minidocker run debian`` through the machine's own registry and ``minidocker lesson
check``.

The guest has no network beyond ssh (guest.py boots qemu's user network with ``restrict=on``),
so nothing here can download: provision.sh gets its Python packages from the wheelhouse that
build.sh keeps (``MINIDOCKER_WHEELS``), finds its Debian packages already in the image, and
finds the images it seeds (images/build.py) already built: the host's cached layouts are
copied in, and they count as cached because their recipe fingerprints (the recipe's code, the
busybox binary, the Debian mirror) are the same in the guest.

Every guest command runs with ``env -i`` and a root login's PATH: no MINIDOCKER_* variable
helps, just as in a student's ``sudo -i`` shell.

Runs in the session's guest, after test_cgroup_v2.py (file order): that module's layout
registry on the guest's 127.0.0.1:5000 is gone by then, and the course registry takes the port.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tests.v2guest.guest import REMOTE_PROJECT

pytestmark = pytest.mark.timeout(2400)  # provisioning under emulation takes minutes

LESSONS = ["mount-namespaces", "pid-uts-ipc-namespaces", "overlayfs", "cgroups"]
LOGIN = "env -i HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WHEELS = "/root/wheels"
IMAGE_CACHE = "/var/cache/minidocker/images"


def timed(timings: dict, key: str, guest, command: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``command`` in the guest as a root login shell would, and record its seconds."""
    t = time.monotonic()
    r = guest.run(f"{LOGIN} bash -c {shlex.quote(command)}", timeout=timeout)
    timings[key] = round(time.monotonic() - t, 1)
    return r


def put_tree(guest, local: Path, remote_parent: str, name: str) -> None:
    """Copy the directory ``local`` to ``remote_parent/name`` in the guest (tar over ssh)."""
    tar = subprocess.run(["tar", "-C", str(local.parent), "-c", local.name], stdout=subprocess.PIPE, check=True).stdout
    guest.run(
        f"mkdir -p {remote_parent}/.in && rm -rf {remote_parent}/.in/* {remote_parent}/{name} && "
        f"tar -x -C {remote_parent}/.in && mv {remote_parent}/.in/{local.name} {remote_parent}/{name} && "
        f"rmdir {remote_parent}/.in",
        input=tar,
        check=True,
        timeout=300,
    )


def put_inputs(guest) -> None:
    """The wheelhouse and the host's cached busybox and debian layouts, into the guest."""
    from images.build import BuildError, build_image

    wheels = guest.cache / "wheels"
    if not any(wheels.glob("*.whl")):
        pytest.fail(f"{wheels} has no wheels: rebuild the guest (vagrant/v2-guest/build.sh --force)", pytrace=False)
    put_tree(guest, wheels, "/root", "wheels")
    for name in ("busybox", "debian"):
        try:
            layout = build_image(name)
        except BuildError as e:
            pytest.fail(str(e), pytrace=False)
        put_tree(guest, layout, IMAGE_CACHE, name)
    # provision.sh must find them cached, or it would debootstrap (and fail: no network)
    r = guest.run(
        f"cd {REMOTE_PROJECT} && /usr/bin/python3 -c 'from images.build import RECIPES, _read_stamp, cache_root\n"
        f'for n in ("busybox", "debian"):\n'
        f"    print(n, _read_stamp(cache_root() / n) == RECIPES[n].fingerprint())'",
        check=True,
    )
    assert r.stdout.split() == ["busybox", "True", "debian", "True"], (
        f"the host's layouts do not count as cached in the guest (a different busybox or mirror?): {r.stdout}"
    )


@pytest.fixture(scope="module")
def course_vm(guest, guest_timings):
    """The session's guest, provisioned with ``provision.sh --course`` and rebooted."""
    put_inputs(guest)
    r = timed(
        guest_timings,
        "course_provision_s",
        guest,
        f"cd {REMOTE_PROJECT} && MINIDOCKER_WHEELS={WHEELS} ./vagrant/provision.sh --course",
        timeout=1800,
    )
    assert r.returncode == 0, f"provision.sh --course exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "provision.sh: ready" in r.stdout, r.stdout
    guest_timings["course_reboot_s"] = round(guest.reboot(timeout=120), 1)
    return guest


def test_registry_starts_at_boot_on_loopback_only(course_vm):
    r = course_vm.run(f"{LOGIN} systemctl is-active minidocker-registry.service docker-registry.service")
    assert r.stdout.split() == ["active", "inactive"], (r.stdout, r.stderr)
    assert course_vm.run("systemctl is-enabled minidocker-registry.service").stdout.strip() == "enabled"
    listening = course_vm.run("ss -ltnH", check=True).stdout.split("\n")
    on_5000 = [line.split()[3] for line in listening if line.strip() and line.split()[3].endswith(":5000")]
    assert on_5000 == ["127.0.0.1:5000"], listening
    assert course_vm.run("cat /etc/minidocker/daemon.json", check=True).stdout.strip() == (
        '{"registry-mirrors": ["http://127.0.0.1:5000"]}'
    )


def test_run_debian_through_the_mirror(course_vm, guest_timings):
    # debian is not in the store yet: `run` pulls it from the machine's registry
    assert "debian" not in course_vm.run(f"{LOGIN} minidocker images", check=True).stdout
    r = timed(
        guest_timings, "course_first_run_debian_s", course_vm, "minidocker run --rm debian cat /etc/debian_version"
    )
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.strip().splitlines()[-1].startswith("12."), r.stdout
    info = course_vm.run(f"{LOGIN} minidocker images", check=True).stdout
    assert "debian" in info and "busybox" in info, info


def test_run_it_debian_bash_through_a_pty(course_vm):
    # what the README promises: `minidocker run -it debian bash`, here through script(1)'s pty
    r = course_vm.run(
        f"{LOGIN} script -qec \"minidocker run -it --rm debian bash -c 'echo hi from \\$(tty)'\" /dev/null",
        timeout=300,
    )
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "hi from /dev/pts/" in r.stdout, r.stdout


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_check_passes(course_vm, guest_timings, lesson):
    r = timed(guest_timings, f"lesson_check_{lesson}_s", course_vm, f"minidocker lesson check {lesson}", timeout=900)
    print(r.stdout)
    assert r.returncode == 0, f"lesson check {lesson} exited {r.returncode}:\n{r.stdout[-4000:]}\n{r.stderr[-3000:]}"
    assert "FAILED" not in r.stdout and "PASSED: " in r.stdout, r.stdout
    if lesson == "cgroups":  # this machine graded the cgroup v2 view; the v1 checks are the host's
        assert "more for cgroup v1 machines, not this one" in r.stdout, r.stdout
