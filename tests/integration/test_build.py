"""``minidocker build``: a Dockerfile of every supported instruction, checked inside the
image it makes; a second build comes entirely from the cache."""

from __future__ import annotations

import json
import os
import tarfile

from tests.integration.conftest import one_error


def _context(tmp_path, base):
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "hello.txt").write_text("hello\n")
    (ctx / "secret.key").write_text("secret\n")
    (ctx / "sub" / "one").write_text("s1\n")
    (ctx / "sub" / "skip.tmp").write_text("s2\n")
    (ctx / "run.sh").write_text("#!/bin/sh\necho script $*\n")
    os.chmod(ctx / "run.sh", 0o755)
    src = tmp_path / "arch"
    (src / "in").mkdir(parents=True)
    (src / "in" / "f").write_text("inarch\n")
    with tarfile.open(ctx / "files.tar.gz", "w:gz") as t:
        t.add(src / "in", "in")
    (ctx / ".dockerignore").write_text("# not sent\n*.key\nsub/*.tmp\n")
    (ctx / "Dockerfile").write_text(f"""\
# a comment
ARG BASE={base}
FROM $BASE
ARG GREETING=hi
ENV APP=/srv/app \\
    MODE="two words"
WORKDIR $APP
COPY hello.txt ./
COPY sub /srv/sub/
COPY --chown=1000:50 run.sh /usr/local/bin/
ADD files.tar.gz /opt/
RUN echo "$GREETING $MODE" > greeting && \\
    chown 1000 greeting
RUN ["sh", "-c", "echo exec-form > /srv/exec"]
USER 1000
LABEL built=yes
EXPOSE 8080
CMD ["cat", "greeting"]
""")
    return ctx


def test_build_and_rebuild_from_cache(md_run, bb, tmp_path):
    md = md_run
    ctx = _context(tmp_path, bb)
    tag = f"built:{os.getpid()}"
    r = md.ok("build", "-t", tag, "--build-arg", "GREETING=hey", str(ctx))
    assert r.stdout.splitlines()[0].startswith("Step 1/15 : ARG BASE=")
    assert f"Successfully tagged {tag}" in r.stdout and "Using cache" not in r.stdout
    image = json.loads(md.ok("inspect", tag).stdout)[0]
    assert md.ok("run", "--rm", tag).stdout == "hey two words\n"  # CMD, WORKDIR, ARG, ENV
    r = md.ok(
        "run",
        "--rm",
        tag,
        "sh",
        "-c",
        "pwd; id -u; echo $MODE; ls -A /srv/app; ls -A /srv/sub; cat /opt/in/f; cat /srv/exec;"
        "stat -c '%u:%g %a' /usr/local/bin/run.sh /srv/app/greeting; run.sh x; ls -ld /tmp | cut -c1-10",
    )
    assert r.stdout.splitlines() == [
        "/srv/app",
        "1000",
        "two words",
        "greeting",
        "hello.txt",
        "one",
        "inarch",
        "exec-form",
        "1000:50 755",
        "1000:0 644",
        "script x",
        "drwxrwxrwt",
    ]
    cfg = image["Config"]
    assert cfg["Labels"] == {"built": "yes"} and cfg["ExposedPorts"] == {"8080/tcp": {}} and cfg["User"] == "1000"
    history = md.ok("history", tag).stdout.splitlines()
    assert 'CMD ["cat", "greeting"]' in history[1] and "0B" in history[1]
    assert any("|1 GREETING=hey /bin/sh -c echo" in line for line in history)

    layers_before = sorted(os.listdir(md.root / "layers"))
    r = md.ok("build", "-t", tag + "b", "--build-arg", "GREETING=hey", str(ctx))
    assert r.stdout.count(" ---> Using cache") == 13, r.stdout  # every step after FROM
    assert json.loads(md.ok("inspect", tag + "b").stdout)[0]["Id"] == image["Id"]
    assert sorted(os.listdir(md.root / "layers")) == layers_before
    # a changed file in the context: COPY of it and every step after it run again
    (ctx / "hello.txt").write_text("changed\n")
    r = md.ok("build", "-t", tag + "c", "--build-arg", "GREETING=hey", str(ctx))
    assert r.stdout.count(" ---> Using cache") == 3  # ARG, ENV, WORKDIR: the steps before COPY hello.txt
    assert md.ok("run", "--rm", tag + "c", "cat", "/srv/app/hello.txt").stdout == "changed\n"


def test_build_errors(md_run, bb, tmp_path):
    md = md_run
    ctx = tmp_path / "bad"
    ctx.mkdir()
    for dockerfile, words in [
        (f"FROM {bb}\nRUN exit 3\n", "returned a non-zero code: 3"),
        (f"FROM {bb}\nFROB x\n", "line 2: unknown instruction: FROB"),
        (f"FROM {bb}\nCOPY missing /x\n", "file not found in build context"),
        ("RUN true\n", "first instruction must be FROM"),
    ]:
        (ctx / "Dockerfile").write_text(dockerfile)
        r = md("build", "-t", "bad:1", str(ctx))
        assert r.returncode == 125 and one_error(r.stderr) and words in r.stderr, (dockerfile, r.stderr)
    # the repository column only: a short image ID is hex and may itself read "bad..."
    assert "bad" not in md.ok("images", "--format", "{{.Repository}}").stdout.split()
    assert md.ok("ps", "-aq").stdout == ""  # the failed RUN's container is removed too


def test_multi_stage_build(md_run, bb, tmp_path):
    """FROM ... AS name, COPY --from=name|N: only what is copied reaches the final image."""
    md = md_run
    ctx = tmp_path / "ms"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"""\
FROM {bb} AS builder
RUN mkdir -p /out/sub && echo built > /out/sub/file && ln -s file /out/sub/link \\
    && chown 1000:1000 /out/sub/file && echo junk > /junk
FROM {bb}
COPY --from=builder /out /app
COPY --from=0 /out/sub/file /single
COPY --from=builder --chown=7:7 /out/sub/file /owned
COPY --from=builder --chown=app:staff /out/sub/file /named
CMD ["cat", "/single"]
""")
    tag = f"multistage:{os.getpid()}"
    md.ok("build", "-t", tag, str(ctx))
    assert md.ok("run", "--rm", tag).stdout == "built\n"
    out = md.ok(
        "run",
        "--rm",
        tag,
        "sh",
        "-c",
        "stat -c '%u %n' /app/sub/file /single /owned; stat -c '%u:%g' /named; readlink /app/sub/link; "
        "test -e /junk || echo no-junk",
    )
    assert out.stdout.splitlines() == ["1000 /app/sub/file", "1000 /single", "7 /owned", "1000:50", "file", "no-junk"]
    info = json.loads(md.ok("inspect", tag).stdout)[0]
    assert len(info["RootFS"]["Layers"]) == 5  # busybox + four COPY layers: the builder's RUN stays behind
    again = md.ok("build", "-t", tag, str(ctx)).stdout
    assert again.count("Using cache") == 6
    assert json.loads(md.ok("inspect", tag).stdout)[0]["Id"] == info["Id"]
    r = md("build", "-t", "x:1", str(_bad(tmp_path, f"FROM {bb} AS a\nCOPY --from=a /bin/sh /sh\n")))
    assert r.returncode == 125 and one_error(r.stderr) and "stage being built" in r.stderr
    r = md("build", "-t", "x:1", str(_bad(tmp_path, f"FROM {bb}\nCOPY --chown=nobody-here Dockerfile /d\n")))
    assert r.returncode == 125 and one_error(r.stderr) and "no user 'nobody-here'" in r.stderr
    md.ok("rmi", tag)


def _bad(tmp_path, dockerfile: str):
    ctx = tmp_path / "bad"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def test_shell_and_healthcheck(md_run, bb, tmp_path):
    ctx = _bad(
        tmp_path,
        f"""FROM {bb}
SHELL ["/bin/busybox", "sh", "-c"]
RUN echo "ran by $0" > /ran
HEALTHCHECK --interval=5s --retries=2 CMD test -e /ran
CMD cat /ran
""",
    )
    tag = f"shell:{os.getpid()}"
    md_run.ok("build", "-t", tag, str(ctx))
    config = json.loads(md_run.ok("inspect", tag).stdout)[0]["Config"]
    assert config["Shell"] == ["/bin/busybox", "sh", "-c"]
    assert config["Cmd"] == ["/bin/busybox", "sh", "-c", "cat /ran"]
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "test -e /ran"], "Interval": 5_000_000_000, "Retries": 2}
    assert md_run.ok("run", "--rm", tag).stdout == "ran by sh\n"
    md_run.ok("rmi", tag)


def test_add_from_a_url(md_run, bb, tmp_path):
    """ADD http://...: fetched by the builder (from a server on 127.0.0.1 here), stored as
    is with mode 0600, cached by its content: a changed file makes a new layer."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    served = tmp_path / "served"
    served.mkdir()
    (served / "payload.txt").write_text("version 1\n")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/payload.txt"
        ctx = _bad(tmp_path, f'FROM {bb}\nADD {url} /srv/\nCMD ["cat", "/srv/payload.txt"]\n')
        tag = f"addurl:{os.getpid()}"
        md_run.ok("build", "-t", tag, str(ctx))
        assert md_run.ok("run", "--rm", tag).stdout == "version 1\n"
        mode = md_run.ok("run", "--rm", tag, "stat", "-c", "%a", "/srv/payload.txt").stdout.strip()
        assert mode == "600"
        assert "Using cache" in md_run.ok("build", "-t", tag, str(ctx)).stdout
        (served / "payload.txt").write_text("version 2\n")
        md_run.ok("build", "-t", tag, str(ctx))
        assert md_run.ok("run", "--rm", tag).stdout == "version 2\n"
        r = md_run("build", "-t", "x:1", str(_bad(tmp_path, f"FROM {bb}\nADD {url}.missing /x\n")))
        assert r.returncode == 125 and one_error(r.stderr) and "404" in r.stderr
        r = md_run("build", "-t", "x:1", str(_bad(tmp_path, f"FROM {bb}\nCOPY {url} /x\n")))
        assert r.returncode == 125 and "ADD fetches URLs" in r.stderr
        md_run.ok("rmi", tag)
    finally:
        httpd.shutdown()
        httpd.server_close()
