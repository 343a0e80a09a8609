"""seccomp on the real kernel: a forked child installs the filter and tries system calls.

Every refused call is made with arguments that would be harmless (an unknown filesystem type,
a wrong reboot magic, an unknown keyctl/bpf command) in case the filter were not there, so a
failing test cannot hurt the host: without the filter they fail with ENODEV/EINVAL/..., with
it they fail with EPERM.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import traceback

import pytest

from minidocker.linux import seccomp

DOCKER_DEFAULT_CAPS = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
}

CLONE_FS, CLONE_NEWUSER = 0x00000200, 0x10000000


@pytest.fixture(scope="module")
def libs():
    """pyseccomp (syscall numbers for this machine) and python-prctl, or say what to install."""
    try:
        import prctl
    except ImportError:
        pytest.fail("python-prctl is missing: .venv/bin/pip install python-prctl")
    try:
        import pyseccomp
    except ImportError:
        pytest.fail("pyseccomp is missing: .venv/bin/pip install pyseccomp (and apt-get install libseccomp2)")
    return prctl, pyseccomp


def run_filtered(libs, profile, caps, probe):
    """Fork; the child sets no_new_privs, installs the filter, runs probe() -> dict; returns (dict, status)."""
    prctl, _ = libs
    seccomp.preload()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            os.close(r)
            prctl.set_no_new_privs(1)
            result = {"rules": seccomp.install_filter(profile, caps)}
            result.update(probe())
        except BaseException:
            result, code = {"error": traceback.format_exc()}, 1
        try:
            os.write(w, json.dumps(result).encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    result = json.loads(data) if data else {}
    assert "error" not in result, result["error"]
    return result, status


def syscall(libs, name, *args):
    """libc.syscall(number of ``name`` on this machine, *args) -> (return value, errno)."""
    _, pyseccomp = libs
    libc = ctypes.CDLL(None, use_errno=True)
    number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    assert number >= 0, f"{name} has no number here"
    ctypes.set_errno(0)
    ret = libc.syscall(number, *[ctypes.c_void_p(a) if isinstance(a, int) else a for a in args])
    return ret, ctypes.get_errno()


def test_default_profile_refuses_dangerous_calls(libs):
    def probe():
        out = {
            "mount": syscall(libs, "mount", b"none", b"/", b"minidocker-no-such-fs", 0, None),
            "unshare_newuser": syscall(libs, "unshare", CLONE_NEWUSER),
            "unshare_fs": syscall(libs, "unshare", CLONE_FS),
            "reboot": syscall(libs, "reboot", 0, 0, 0, None),
            "keyctl": syscall(libs, "keyctl", 9999, 0, 0, 0, 0),
            "add_key": syscall(libs, "add_key", b"user", b"minidocker", None, 0, 0),
            "bpf": syscall(libs, "bpf", 9999, None, 0),
            "setns": syscall(libs, "setns", -1 & 0xFFFFFFFF, 0),
            "init_module": syscall(libs, "init_module", None, 0, b""),
            "personality_addr_no_randomize": syscall(libs, "personality", 0x0040000),
            "personality_query": syscall(libs, "personality", 0xFFFFFFFF),
            "clone3": syscall(libs, "clone3", None, 0),
            "getpid": [syscall(libs, "getpid")[0], os.getpid()],
        }
        rd, wr = os.pipe()
        out["write"] = os.write(wr, b"hello")
        out["read"] = os.read(rd, 5).decode()
        fd = os.open("/proc/self/status", os.O_RDONLY)  # openat
        with os.fdopen(fd) as f:
            out["status"] = [line for line in f if line.startswith("Seccomp:")]
        child = os.fork()  # clone without namespace flags still works
        if child == 0:
            os._exit(7)
        out["fork"] = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
        return out

    result, status = run_filtered(libs, seccomp.load_profile(None), DOCKER_DEFAULT_CAPS, probe)
    assert os.waitstatus_to_exitcode(status) == 0
    assert result["rules"] > 300
    for name in (
        "mount",
        "unshare_newuser",
        "reboot",
        "keyctl",
        "add_key",
        "bpf",
        "setns",
        "init_module",
        "personality_addr_no_randomize",
    ):
        assert result[name] == [-1, errno.EPERM], name
    assert result["clone3"] == [-1, errno.ENOSYS]  # so that glibc falls back to clone
    assert result["unshare_fs"] == [0, 0]
    assert result["personality_query"][0] != -1
    assert result["getpid"][0] == result["getpid"][1]
    assert result["write"] == 5 and result["read"] == "hello"
    assert result["status"] == ["Seccomp:\t2\n"]
    assert result["fork"] == 7


def test_cap_sys_admin_allows_namespaces(libs):
    def probe():
        return {
            "unshare_newuser": syscall(libs, "unshare", CLONE_NEWUSER),
            "keyctl": syscall(libs, "keyctl", 9999, 0, 0, 0, 0),
        }

    result, _ = run_filtered(libs, seccomp.load_profile(None), DOCKER_DEFAULT_CAPS | {"CAP_SYS_ADMIN"}, probe)
    assert result["unshare_newuser"] == [0, 0]
    assert result["keyctl"] == [-1, errno.EPERM]  # the keyring is never allowed


def test_custom_profile_file(libs, tmp_path):
    path = tmp_path / "deny-getcwd.json"
    path.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                    # getpriority(PRIO_USER, ...) only: an argument comparison with its own errno
                    {
                        "names": ["getpriority"],
                        "action": "SCMP_ACT_ERRNO",
                        "errnoRet": errno.EACCES,
                        "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}],
                    },
                    {"names": ["no_such_syscall_anywhere"], "action": "SCMP_ACT_ERRNO"},
                ],
            }
        )
    )

    def probe():
        out = {}
        try:
            out["getcwd"] = os.getcwd()
        except OSError as e:
            out["getcwd"] = e.errno
        out["getpriority_user"] = syscall(libs, "getpriority", 2, 0)
        out["getpriority_process"] = syscall(libs, "getpriority", 0, 0)
        out["mount"] = syscall(libs, "mount", b"none", b"/", b"minidocker-no-such-fs", 0, None)
        return out

    result, status = run_filtered(libs, seccomp.load_profile(str(path)), set(), probe)
    assert result["rules"] == 2  # the unknown syscall name is skipped, as Docker does
    assert result["getcwd"] == errno.EPERM
    assert result["getpriority_user"] == [-1, errno.EACCES]
    assert result["getpriority_process"][1] == 0
    assert result["mount"] == [-1, errno.ENODEV]  # default ALLOW: the kernel itself answers


def test_kill_process_action(libs):
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_KILL_PROCESS"}],
    }
    prctl, _ = libs
    seccomp.preload()
    pid = os.fork()
    if pid == 0:
        try:
            prctl.set_no_new_privs(1)
            seccomp.install_filter(profile, set())
            os.getcwd()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_install_filter_is_quick(libs):
    import time

    profile = seccomp.load_profile(None)

    def probe():
        start = time.perf_counter()
        seccomp.install_filter(profile, DOCKER_DEFAULT_CAPS)  # a second filter, stacked on the first
        return {"ms": (time.perf_counter() - start) * 1000}

    result, _ = run_filtered(libs, profile, DOCKER_DEFAULT_CAPS, probe)
    print(f"install_filter: {result['ms']:.1f} ms")
    assert result["ms"] < 500
