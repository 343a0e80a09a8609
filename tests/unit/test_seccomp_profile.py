"""The seccomp profile, checked as data: no root, no libseccomp needed (see linux/seccomp.py)."""

from __future__ import annotations

import json

import pytest

from minidocker.errors import MinidockerError
from minidocker.linux import seccomp
from minidocker.runtime.lifecycle import reporting_seccomp_errors

# Docker's default capability set (the real constant lives in linux/capabilities.py).
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

# What a container with Docker's default capabilities must never be allowed to call outright.
REFUSED = [
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "reboot",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "unshare",
    "clone",
    "clone3",
    "setns",
    "swapon",
    "swapoff",
    "acct",
    "settimeofday",
    "stime",
    "clock_settime",
    "clock_settime64",
    "open_by_handle_at",
    "userfaultfd",
    "iopl",
    "ioperm",
    "syslog",
    "mount_setattr",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "personality",
    "quotactl",
    "sethostname",
    "lookup_dcookie",
    "io_uring_setup",
]

# (architecture, kernel) the rules are evaluated for; fixed so the test means the same everywhere.
X86_64, KERNEL = "X86_64", (6, 18)


@pytest.fixture(scope="module")
def profile():
    return seccomp.load_profile(None)


def allowed(profile, caps, arch=X86_64, kernel=KERNEL):
    """syscall name -> list of argument conditions of the ALLOW rules that apply ([()] = always)."""
    out: dict[str, list] = {}
    for rule in seccomp.rules_for(profile, caps, arch, kernel):
        if rule.action == "SCMP_ACT_ALLOW":
            out.setdefault(rule.name, []).append(rule.args)
    return out


def test_default_profile_parses_in_docker_format(profile):
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile.get("defaultErrnoRet", 1) == 1
    assert seccomp.check_profile(profile) is None
    assert len(seccomp.rules_for(profile, DOCKER_DEFAULT_CAPS, X86_64, KERNEL)) > 300


def test_everyday_syscalls_are_allowed(profile):
    ok = allowed(profile, DOCKER_DEFAULT_CAPS)
    for name in [
        "read",
        "write",
        "openat",
        "execve",
        "fork",
        "vfork",
        "wait4",
        "getpid",
        "mmap",
        "futex",
        "rt_sigaction",
        "arch_prctl",
        "chroot",
    ]:
        assert ok.get(name) == [()], name


@pytest.mark.parametrize("name", REFUSED)
def test_dangerous_syscall_not_allowed_unconditionally(profile, name):
    # Neither in the profile as written (an ALLOW without args needs a capability Docker does
    # not grant) nor among the rules selected for Docker's default capabilities.
    for rule in profile["syscalls"]:
        if rule["action"] == "SCMP_ACT_ALLOW" and name in rule["names"] and not rule.get("args"):
            caps = set((rule.get("includes") or {}).get("caps") or [])
            assert caps and not caps <= DOCKER_DEFAULT_CAPS, rule
    assert () not in allowed(profile, DOCKER_DEFAULT_CAPS).get(name, [])


def test_ptrace_is_allowed_on_kernels_from_4_8(profile):
    assert allowed(profile, DOCKER_DEFAULT_CAPS)["ptrace"] == [()]
    assert "ptrace" not in allowed(profile, DOCKER_DEFAULT_CAPS, kernel=(4, 4))


def test_namespace_flags_masked_for_clone_and_unshare(profile):
    ns = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
    ok = allowed(profile, DOCKER_DEFAULT_CAPS)
    assert ok["clone"] == [({"index": 0, "value": ns, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"},)]
    (unshare_args,) = ok["unshare"]
    assert unshare_args[0]["op"] == "SCMP_CMP_MASKED_EQ" and unshare_args[0]["value"] & ns == ns
    # s390 passes the flags in the second argument
    assert allowed(profile, DOCKER_DEFAULT_CAPS, arch="S390X")["clone"][0][0]["index"] == 1


def test_cap_sys_admin_lifts_the_masks(profile):
    ok = allowed(profile, DOCKER_DEFAULT_CAPS | {"CAP_SYS_ADMIN"})
    for name in ["mount", "umount2", "unshare", "clone", "clone3", "setns", "bpf"]:
        assert () in ok[name], name
    assert "pivot_root" not in ok and "keyctl" not in ok and "kexec_load" not in ok


def test_personality_only_safe_values(profile):
    values = {args[0]["value"] for args in allowed(profile, DOCKER_DEFAULT_CAPS)["personality"]}
    assert values == {0, 8, 0x20000, 0x20008, 0xFFFFFFFF}


def test_arch_conditions(profile):
    assert "arch_prctl" in allowed(profile, set(), arch="X86_64")
    assert "arch_prctl" not in allowed(profile, set(), arch="AARCH64")
    assert "set_tls" in allowed(profile, set(), arch="AARCH64")


BAD = {
    "not json": "{",
    "not an object": "[]",
    "unknown default action": '{"defaultAction": "SCMP_ACT_MAYBE"}',
    "bad errno": '{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": "EPERM"}',
    "syscalls not a list": '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}',
    "no names": '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}',
    "unknown action": '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getcwd"], "action": "NOPE"}]}',
    "bad arg index": '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getcwd"], '
    '"action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}',
    "bad operator": '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getcwd"], '
    '"action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_LIKE"}]}]}',
    "bad minKernel": '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getcwd"], '
    '"action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "four"}}]}',
}


@pytest.mark.parametrize("text", BAD.values(), ids=BAD.keys())
def test_malformed_profile_is_one_clear_error(tmp_path, text):
    path = tmp_path / "profile.json"
    path.write_text(text)
    with pytest.raises(MinidockerError) as info, reporting_seccomp_errors():
        seccomp.load_profile(str(path))
    message = str(info.value)
    assert message.startswith(f"seccomp profile {path}: ") and "\n" not in message


def test_missing_profile_file(tmp_path):
    with pytest.raises(MinidockerError, match="cannot read"), reporting_seccomp_errors():
        seccomp.load_profile(str(tmp_path / "nope.json"))


def test_install_filter_checks_a_dict_profile_before_touching_the_kernel():
    with pytest.raises(MinidockerError, match="defaultAction"), reporting_seccomp_errors():
        seccomp.install_filter({"syscalls": []}, set())


def test_a_custom_profile_file_loads(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
            }
        )
    )
    rules = seccomp.rules_for(seccomp.load_profile(str(path)), set(), X86_64, KERNEL)
    assert rules == [seccomp.Rule("getcwd", "SCMP_ACT_ERRNO", 1, ())]


def test_seccomp_raises_the_kernel_layers_errors_not_ours(tmp_path):
    """linux/ raises OSError (with the path) and ValueError; the runtime words them."""
    path = tmp_path / "profile.json"
    path.write_text("[]")
    with pytest.raises(ValueError, match=f"seccomp profile {path}: the top level") as bad:
        seccomp.load_profile(str(path))
    assert not isinstance(bad.value, MinidockerError)
    with pytest.raises(OSError) as missing:
        seccomp.filter_for(str(tmp_path / "nope.json"), set(), None)
    assert missing.value.filename == str(tmp_path / "nope.json") and not isinstance(missing.value, MinidockerError)
    with pytest.raises(MinidockerError) as worded, reporting_seccomp_errors():
        seccomp.filter_for(str(tmp_path / "nope.json"), set(), None)
    assert str(worded.value) == f"seccomp profile {tmp_path / 'nope.json'}: cannot read it: No such file or directory"
