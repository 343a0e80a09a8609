"""The values of run's newer flags, parsed and refused in docker's (or runc's) words
(runtime/spec.py): --ulimit, --sysctl, --log-driver/--log-opt, -a, --pull, --shm-size."""

import pytest

from minidocker.errors import MinidockerError
from minidocker.options import RunOptions
from minidocker.runtime.spec import check_run_flags, parse_log_opts, parse_sysctls, parse_ulimit


@pytest.mark.parametrize(
    "text, entry",
    [
        ("nofile=1024:2048", {"Name": "nofile", "Soft": 1024, "Hard": 2048}),
        ("nproc=100", {"Name": "nproc", "Soft": 100, "Hard": 100}),
        ("core=-1", {"Name": "core", "Soft": -1, "Hard": -1}),
        ("memlock=64:-1", {"Name": "memlock", "Soft": 64, "Hard": -1}),
    ],
)
def test_ulimit(text, entry):
    assert parse_ulimit(text) == entry


@pytest.mark.parametrize(
    "text, words",
    [
        ("bogus=1", "invalid ulimit type: bogus"),
        ("nofile", "invalid ulimit argument: nofile"),
        ("nofile=1:x", "invalid ulimit argument: nofile=1:x"),
        ("nofile=5:1", "ulimit soft limit must be less than or equal to hard limit: 5 > 1"),
        ("nofile=-1:5", "ulimit soft limit must be less than or equal to hard limit: -1 > 5"),
    ],
)
def test_bad_ulimit(text, words):
    with pytest.raises(MinidockerError) as e:
        parse_ulimit(text)
    assert e.value.message == words


@pytest.mark.parametrize(
    "items, network, result",
    [
        (["net.ipv4.ip_forward=1"], "bridge", {"net.ipv4.ip_forward": "1"}),
        (["kernel.shmmax=1", "fs.mqueue.msg_max=20"], "host", {"kernel.shmmax": "1", "fs.mqueue.msg_max": "20"}),
        (["kernel.sem=1 2 3 4"], "none", {"kernel.sem": "1 2 3 4"}),
    ],
)
def test_sysctl(items, network, result):
    assert parse_sysctls(items, network) == result


@pytest.mark.parametrize(
    "item, network, words",
    [
        ("vm.swappiness=1", "bridge", 'sysctl "vm.swappiness" is not in a separate kernel namespace'),
        ("kernel.hostname=x", "bridge", 'sysctl "kernel.hostname" is not in a separate kernel namespace'),
        ("net.ipv4.ip_forward=1", "host", 'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'),
        ("net.core.somaxconn=1", "container:abc", "not allowed in container network namespace"),
        ("../../etc/x=1", "bridge", "invalid sysctl value"),
        ("kernel.shmmax", "bridge", "invalid sysctl value"),
    ],
)
def test_bad_sysctl(item, network, words):
    with pytest.raises(MinidockerError) as e:
        parse_sysctls([item], network)
    assert words in e.value.message


@pytest.mark.parametrize(
    "driver, opts, words",
    [
        ("syslog", [], "logger: no log driver named 'syslog' is registered"),
        ("json-file", ["compress=true"], "unknown log opt 'compress' for json-file log driver"),
        ("none", ["max-size=1m"], "unknown log opt 'max-size' for none log driver"),
        ("local", ["max-file=0"], "max-file cannot be less than 1"),
        ("json-file", ["max-size=0"], "invalid max-size: 0"),
    ],
)
def test_bad_log_options(driver, opts, words):
    with pytest.raises(MinidockerError) as e:
        parse_log_opts(driver, opts)
    assert e.value.message == words


def test_log_options():
    assert parse_log_opts("local", ["max-size=10m", "max-file=3"]) == {"max-size": "10m", "max-file": "3"}


@pytest.mark.parametrize(
    "flags, words",
    [
        ({"attach": ["stdout"], "detach": True}, "Conflicting options: -a and -d"),
        ({"attach": ["stdio"]}, 'invalid argument "stdio" for "-a, --attach" flag'),
        ({"pull": "sometimes"}, "invalid pull option: 'sometimes': must be one of"),
        ({"stop_signal": "SIGNOPE"}, "Invalid signal: SIGNOPE"),
        ({"shm_size": "0"}, "SHM size must be greater than 0"),
        ({"ulimit": ["nofile=1"], "userns": "auto"}, "--ulimit is not supported with --userns=auto"),
    ],
)
def test_flags_checked_before_anything_is_pulled(flags, words):
    with pytest.raises(MinidockerError) as e:
        check_run_flags(RunOptions(**flags))
    assert words in e.value.message


def test_a_cidfile_that_exists_is_refused(tmp_path):
    (tmp_path / "cid").write_text("old")
    with pytest.raises(MinidockerError) as e:
        check_run_flags(RunOptions(cidfile=str(tmp_path / "cid")))
    assert e.value.message.startswith("Container ID file found, make sure the other container isn't running")
