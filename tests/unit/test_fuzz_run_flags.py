"""A fuzz target for ``run``'s flags: random command lines, made from the real flag table
(``cli/fastpath.py``'s RUN_FLAGS, which the typer command matches), with hostile values:
NaN and huge numbers, paths that climb, 10,000 characters, bytes that are not UTF-8.

Each command line runs the real CLI in a subprocess, through the fast path or the typer
app, against an empty store and an image that cannot be pulled (``127.0.0.1:1/nope``:
port 1 on loopback refuses at once), so no container starts and nothing leaves the
machine. Whatever the flags say, the CLI must end with one ``Error:`` line and exit 125
(or docker's exit 1 for ``-it`` without a terminal), never a traceback nor the "internal
error" line that stands in for one, and write nothing
outside its store: its working directory, its TMPDIR and a bait directory that the hostile
paths point into stay empty.

Bounded: hypothesis with a fixed seed (derandomize), a fixed number of examples, no
shrinking (a failure reports the command line as it was generated).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import minidocker
from minidocker.cli.fastpath import RUN_FLAGS

IMAGE = "127.0.0.1:1/nope"
WORKTREE = str(Path(minidocker.__file__).parent.parent)  # the code under test, whatever the cwd
TYPER = "import sys; from minidocker.cli.app import typer_main; typer_main(sys.argv[1:])"
BAIT = "@BAIT@"  # replaced by the bait directory's path

HOSTILE = [
    "",
    "-",
    "--",
    "=",
    "=x",
    "K=V",
    "a/b",
    "../../x",
    "/",
    ".",
    "relative",
    ":",
    "::",
    "a" * 10_000,
    "\udcff\udcfe",
    "\u00e9",
    "a\nb",
    "\x1b[31m",
    "$(id)",
    "%s%n",
    f"{BAIT}/made",
    "/dev/null",
]
NUMBERS = ["nan", "-nan", "inf", "-inf", "1e999", "-1", "0", "0.001", "0x10", "99", "1_000", "\u0663", "2.5"]
BY_KIND = {  # hostile values in the shape each flag expects
    "memory": ["infm", "nanm", "1e999g", "-5m", "5m", "64m", "m", "9" * 40],
    "memory_swap": ["-1", "-2", "infg", "1k"],
    "cpuset_cpus": ["99", "0-1", "1-0", "0-99999999999", "0,,1", "-1", "0-", "\u0663"],
    "publish": [
        "1.2.3.4.5:80:80",
        "[::1]:80:80",
        "[x]:1:1",
        "[::1]80",
        "0.0.0.0:0:0",
        "65536",
        "80/sctp",
        "1:2:3:4",
        "01.2.3.4:8080:80",
        "8080:80",
    ],
    "volume": [f"{BAIT}/v:/v", f"{BAIT}/v:/v:ro", f"{BAIT}/v:rel", f"/x:{BAIT}/y", "rel:/x", "a:b:c:d"],
    "env_file": [f"{BAIT}/missing", "/dev/null", "/", "\udcff"],
    "name": ["a", "/ab", "a/b", "../../x", ".hidden", "a" * 256],
    "hostname": ["a/b", "x" * 64, "-a", "a.", "a..b"],
    "workdir": ["relative", "/ok", "", "./x"],
    "network": ["host", "none", "bridge", "default", "container:x", "../x"],
    "restart": ["always", "on-failure:x", "on-failure:-1", "unless-stopped:3"],
    "userns": ["auto", "host", "x"],
    "security_opt": ["seccomp=unconfined", f"seccomp={BAIT}/p.json", "no-new-privileges:false", "label=x"],
    "cap_add": ["ALL", "NET_RAW", "CAP_NOPE"],
    "cap_drop": ["ALL", "chown"],
    "tmpfs": ["rel", "/t:size=x"],
}
NOT_UTF8 = st.binary(max_size=24).filter(lambda b: b"\0" not in b).map(lambda b: b.decode("utf-8", "surrogateescape"))
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=24)
FLAGS = sorted(RUN_FLAGS)


def values_for(dest: str, kind: str) -> st.SearchStrategy[str]:
    """Mostly values in the flag's own shape (so its checks are reached), else anything."""
    shaped = BY_KIND.get(dest, NUMBERS if kind in ("int", "float") else HOSTILE)
    return st.one_of(st.sampled_from(shaped), st.sampled_from(shaped), st.sampled_from(HOSTILE), NOT_UTF8, TEXT)


@st.composite
def run_argv(draw) -> list[str]:
    """``run`` + random flags + ``--`` + the image (the ``--``: no value can become the image)."""
    argv: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        flag = draw(st.sampled_from(FLAGS))
        dest, kind = RUN_FLAGS[flag]
        if kind == "bool":
            argv.append(flag if draw(st.integers(0, 9)) else f"{flag}={draw(TEXT)}")
            continue
        value = draw(values_for(dest, kind))
        form = draw(st.sampled_from(["apart", "joined"]))
        if form == "joined":
            argv.append(f"{flag}={value}" if flag.startswith("--") else flag + value)
        else:
            argv += [flag, value]
    return ["run", *argv, "--", IMAGE, *draw(st.lists(TEXT | NOT_UTF8, max_size=2))]


def test_random_run_flags_fail_cleanly(tmp_path):
    store, cwd, tmp, bait = (tmp_path / n for n in ("store", "cwd", "tmp", "bait"))
    for d in (cwd, tmp, bait):
        d.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIDOCKER_")}
    # anything that would reach past loopback goes to a port that refuses instead
    proxy = "http://127.0.0.1:1"
    env.update(
        PYTHONPATH=WORKTREE,
        TMPDIR=str(tmp),
        HOME=str(tmp_path / "home"),
        MINIDOCKER_CONFIG=str(tmp_path / "config"),
        MINIDOCKER_REGISTRY_MIRROR=proxy,
        HTTP_PROXY=proxy,
        HTTPS_PROXY=proxy,
        ALL_PROXY=proxy,
        http_proxy=proxy,
        https_proxy=proxy,
    )

    @settings(
        max_examples=150,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(argv=run_argv(), through_typer=st.booleans())
    def check(argv: list[str], through_typer: bool) -> None:
        argv = [a.replace(BAIT, str(bait)) for a in argv]
        entry = [sys.executable, "-c", TYPER] if through_typer else [sys.executable, "-m", "minidocker"]
        r = subprocess.run(
            [*entry, "--root", str(store), *argv],
            check=False,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
        stderr = r.stderr.decode(errors="replace")
        brief = [a if len(a) < 80 else f"{a[:20]}...({len(a)} characters)" for a in argv]
        shown = f"{'typer' if through_typer else 'fast path'}: {brief!r}\n{stderr}"
        assert "Traceback" not in stderr and "internal error" not in stderr, shown  # (the CLI's last resort)
        assert r.returncode == 125 or (r.returncode == 1 and "not a TTY" in stderr), shown
        lines = stderr.splitlines()
        unknown_flag = (
            len(lines) == 2 and lines[0].startswith("unknown ") and lines[1] == "See 'minidocker run --help'."
        )
        assert unknown_flag or sum(line.startswith("Error: ") for line in lines) == 1, shown  # (docker's two lines)
        assert not list(cwd.iterdir()) and not list(tmp.iterdir()) and not list(bait.iterdir()), shown

    check()
