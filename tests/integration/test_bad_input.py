"""Bad values for ``run``, ``rename``, ``exec`` and ``cp`` fail cleanly (issue #9, item 7).

Each value below once ended in a Python traceback, was accepted where docker refuses it, or
failed late with a raw ``[Errno N]``. Now each gets one ``Error:`` line in docker's words,
exit 125 (126 for ``exec -w``, as docker), and leaves nothing behind: no container, no
renamed one, no changed file. ``run`` is tried through both of its parsers: the fast path
(``python -m minidocker``) and the typer app that takes the lines the fast path leaves.
The image exists (busybox), so a flag that slipped through would start a container.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import one_error

TYPER = [sys.executable, "-c", "import sys; from minidocker.cli.app import typer_main; typer_main(sys.argv[1:])"]

RUN_CASES = [  # (flags, words in the error); {bad_env} is a file that is not UTF-8
    (["--cpus", "nan"], "Range of CPUs is from 0.01 to"),
    (["--cpus", "inf"], "Range of CPUs is from 0.01 to"),
    (["--cpus", "-2"], "Range of CPUs is from 0.01 to"),
    (["--cpuset-cpus", "99"], "Requested CPUs are not available - requested 99, available: 0"),
    (["--cpuset-cpus", "0-x"], "Invalid value 0-x for cpuset cpus"),
    (["--cpuset-cpus", "\udcff"], "Invalid value \\xff for cpuset cpus"),
    (["--env-file", "{bad_env}"], "bad.env is not UTF-8 text"),
    (["--name", "a/b"], "Invalid container name (a/b), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
    (["--name", "../../x"], "Invalid container name (../../x)"),
    (["--name", "a" * 10_000], "Invalid container name (aaaa"),
    (["--name", "\udcff\udcfe"], "Invalid container name (\\xff\\xfe)"),
    (["--name", "x"], "Invalid container name (x)"),  # docker's pattern wants two characters at least
    (["-h", "a/b"], "invalid hostname format for --hostname: a/b"),
    (["-h", "x" * 65], "invalid hostname format"),
    (["-h", "\udcff"], "invalid hostname format for --hostname: \\xff"),
    (["-w", "relative"], "the working directory 'relative' is invalid, it needs to be an absolute path"),
    (["-w", "rel\udcff"], "the working directory 'rel\\xff' is invalid"),
    (["-p", "1.2.3.4.5:80:80"], "invalid IP address '1.2.3.4.5'"),
    (["-p", "[::1]:8080:80"], "publishing on an IPv6 address is not supported"),
    (["-p", "127.0.0.1:70000:80"], "invalid port '70000'"),
    (["-p", "\udcff:80"], "invalid port '\\xff'"),
    (["-m", "infm"], "invalid size: 'infm'"),
    (["--network", "../../x"], "network ../../x not found"),
]


def _via(md, parser: str, *args: str) -> subprocess.CompletedProcess:
    if parser == "fast path":
        return md(*args)
    return subprocess.run([*TYPER, *args], check=False, capture_output=True, text=True, env=md.env(), timeout=120)


def _container_dirs(md) -> list[str]:
    path = md.root / "containers"
    return sorted(os.listdir(path)) if path.exists() else []


@pytest.mark.parametrize("parser", ["fast path", "typer"])
@pytest.mark.parametrize("flags, words", RUN_CASES, ids=[" ".join(f)[:30] for f, _ in RUN_CASES])
def test_run_refuses_bad_values(md_run, bb, tmp_path, parser, flags, words):
    (tmp_path / "bad.env").write_bytes(b"GOOD=1\nBAD=\xff\xfe\n")
    flags = [f.replace("{bad_env}", str(tmp_path / "bad.env")) for f in flags]
    before = _container_dirs(md_run)
    r = _via(md_run, parser, "run", "--rm", *flags, bb, "true")
    assert r.returncode == 125 and one_error(r.stderr) and words in r.stderr, (parser, flags, r.stderr)
    assert "[Errno" not in r.stderr and len(r.stderr) < 1000
    assert _container_dirs(md_run) == before  # no container was made


def test_rename_refuses_bad_names(md_run, bb):
    name = f"keep{time.time_ns()}"
    md_run.ok("run", "--name", name, bb, "true")
    for bad in ("a/b", "../../x", "a" * 10_000, "\udcff", "_x"):
        r = md_run("rename", name, bad)
        assert r.returncode == 125 and one_error(r.stderr) and "Invalid container name" in r.stderr, r.stderr
    assert md_run.ok("ps", "-a", "--format", "json").stdout.count(f'"{name}"') == 1  # still its old name
    md_run.ok("rm", name)


def test_exec_into_a_missing_workdir(md_run, bb):
    cid = md_run.ok("run", "-d", bb, "sleep", "60").stdout.strip()
    try:
        r = md_run("exec", "-w", "/nope", cid, "true")
        assert r.returncode == 126 and one_error(r.stderr), r.stderr
        assert 'chdir to cwd ("/nope") set in config.json failed: no such file or directory' in r.stderr
        assert "[Errno" not in r.stderr
        assert md_run.ok("exec", "-w", "/etc", cid, "pwd").stdout == "/etc\n"
    finally:
        md_run("rm", "-f", cid)


def test_cp_errors_name_the_path(md_run, bb, tmp_path):
    cid = md_run.ok(
        "run", "-d", bb, "sh", "-c", "mkdir /d && echo in > /d/f && echo y > /file; exec sleep 60"
    ).stdout.strip()
    time.sleep(0.3)
    (tmp_path / "hostdir").mkdir()
    (tmp_path / "hostdir" / "f").write_text("z\n")
    (tmp_path / "hostfile").write_text("keep\n")
    try:
        for args, words in (
            ([str(tmp_path / "hostdir"), f"{cid}:/file"], 'cannot overwrite non-directory "/file"'),
            ([f"{cid}:/d", str(tmp_path / "hostfile")], f'cannot overwrite non-directory "{tmp_path / "hostfile"}"'),
            ([f"{cid}:/file", str(tmp_path / "hostfile" / "x")], str(tmp_path / "hostfile")),
            ([str(tmp_path / "hostfile"), f"{cid}:/d/f/x"], "/d/f"),
        ):
            r = md_run("cp", *args)
            assert r.returncode == 125 and one_error(r.stderr) and words in r.stderr, (args, r.stderr)
            assert "[Errno" not in r.stderr
        assert (tmp_path / "hostfile").read_text() == "keep\n"  # nothing lost
        assert md_run.ok("exec", cid, "sh", "-c", "cat /file /d/f").stdout == "y\nin\n"
    finally:
        md_run("rm", "-f", cid)
