"""``--format`` (Go templates, ``table``, ``json``) and ``--filter`` on the listings and
inspects, as a docker user scripts them, against one scene made once for the module:

- images: busybox; ``fmt/labelled:v1`` built FROM it with ``LABEL tier=web team=core`` and a
  RUN (so it has intermediate images, and busybox is its ancestor); a dangling commit;
- containers, newest first: ``fmt-net`` (exited 0, on network ``fmtnet``), ``fmt-exit3``
  (exited 3, wrote 2 bytes, mounts volume ``fmtvol`` at /data), ``fmt-up`` (running
  ``fmt/labelled:v1``, no network);
- volumes ``fmtvol`` (``role=db``, used) and ``fmtfree`` (unused); network ``fmtnet``.

Each case is the command's arguments and its exact output (or exit code and error line).
"""

from __future__ import annotations

import json
import re

import pytest

from minidocker import __version__
from tests.integration.conftest import busybox_store, one_error

DOCKERFILE = "FROM {base}\nLABEL tier=web team=core\nRUN echo hi > /hi\n"


@pytest.fixture(scope="module")
def scene(tmp_path_factory, registry):
    with busybox_store(tmp_path_factory, registry, "format-filter") as (m, base):
        bb = f"{registry.host}/busybox:latest"
        ctx = base / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=bb))
        m.ok("build", "-q", "-t", "fmt/labelled:v1", str(ctx))
        m.ok("run", "--name", "fmt-dangling", "--network", "none", bb, "true")
        dangling = m.ok("commit", "fmt-dangling").stdout.strip()
        m.ok("rm", "fmt-dangling")
        m.ok("network", "create", "fmtnet")
        try:
            m.ok("volume", "create", "--label", "role=db", "fmtvol")
            m.ok("volume", "create", "fmtfree")
            up = m.ok("run", "-d", "--name", "fmt-up", "--network", "none", "fmt/labelled:v1", "sleep", "300")
            m(
                "run",
                "--name",
                "fmt-exit3",
                "--network",
                "none",
                "-v",
                "fmtvol:/data",
                bb,
                "sh",
                "-c",
                "echo x > /f; exit 3",
            )
            m.ok("run", "--name", "fmt-net", "--network", "fmtnet", bb, "true")
            ids = {n: m.ok("inspect", "-f", "{{.Id}}", n).stdout.strip() for n in ("fmt-up", "fmt-exit3", "fmt-net")}
            assert ids["fmt-up"] == up.stdout.strip()
            images = {
                "bb": m.ok("inspect", "-f", "{{.Id}}", bb).stdout.strip(),
                "labelled": m.ok("inspect", "-f", "{{.Id}}", "fmt/labelled:v1").stdout.strip(),
                "dangling": dangling,
            }
            yield {"m": m, "bb": bb, "ids": ids, "images": images, "root": m.root, "facts": facts(m, bb)}
        finally:
            m("rm", "-f", "fmt-up", "fmt-exit3", "fmt-net")
            m("network", "rm", "fmtnet")


def facts(m, bb: str) -> dict[str, str]:
    """What the expected outputs quote from the scene, read once."""
    return {
        "size": m.ok("images", "-f", f"reference={bb}", "--format", "{{.Size}}").stdout.strip(),
        "subnet": json.loads(m.ok("network", "inspect", "fmtnet").stdout)[0]["IPAM"]["Config"][0]["Subnet"],
        "nimages": str(len(m.ok("images", "-q").stdout.split())),
        "ncache": str(len(json.loads((m.root / "build-cache.json").read_text() or "{}"))),
        "bb": bb,
        "root": str(m.root),
    }


def short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


# (arguments, expected stdout); @{bb}, @{id:NAME}, @{img:KEY}, @{root}... are filled from the scene
OUTPUTS = [
    # ps: fields, table, filters (ORed within a key, ANDed across keys), -n/-l/-q
    (["ps", "--format", "{{.Names}}"], "fmt-up\n"),
    (["ps", "-a", "--format", "{{.Names}} {{.State}}"], "fmt-net exited\nfmt-exit3 exited\nfmt-up running\n"),
    (
        ["ps", "-a", "--format", "{{.ID}} {{.Image}}"],
        "@{id12:fmt-net} @{bb}\n@{id12:fmt-exit3} @{bb}\n@{id12:fmt-up} fmt/labelled:v1\n",
    ),
    (["ps", "--format", "table {{.Names}}\\t{{.State}}"], "NAMES     STATE\nfmt-up    running\n"),
    (["ps", "--format", "table {{.ID}}\\t{{.Names}}"], "CONTAINER ID   NAMES\n@{id12:fmt-up}   fmt-up\n"),
    (["ps", "--no-trunc", "--format", "{{.ID}}"], "@{id:fmt-up}\n"),
    (["ps", "--format", '{{.Label "team"}}|{{.Label "none"}}|{{.Command}}|{{.Networks}}'], 'core||"sleep 300"|none\n'),
    (["ps", "-a", "-f", "name=fmt-exit3", "--format", "{{.Command}}"], '"sh -c echo x > /f; …"\n'),
    (["ps", "-a", "-f", "name=fmt-exit3", "--no-trunc", "--format", "{{.Command}}"], '"sh -c echo x > /f; exit 3"\n'),
    (["ps", "-a", "-f", "name=fmt-exit3", "--format", "{{.Mounts}} {{.LocalVolumes}}"], "fmtvol 1\n"),
    (["ps", "-a", "-f", "name=fmt-net", "--format", "{{.Networks}} {{.State}}"], "fmtnet exited\n"),
    (["ps", "-f", "status=exited", "--format", "{{.Names}}"], "fmt-net\nfmt-exit3\n"),
    (
        ["ps", "-a", "-f", "status=running", "-f", "status=exited", "-q"],
        "@{id12:fmt-net}\n@{id12:fmt-exit3}\n@{id12:fmt-up}\n",
    ),
    (["ps", "-a", "-f", "status=exited", "-f", "name=net", "--format", "{{.Names}}"], "fmt-net\n"),
    (["ps", "-a", "-f", "exited=3", "--format", "{{.Names}}"], "fmt-exit3\n"),
    (["ps", "-a", "-f", "exited=0", "-f", "exited=3", "--format", "{{.Names}}"], "fmt-net\nfmt-exit3\n"),
    (["ps", "-a", "-f", "name=^/fmt-up$", "--format", "{{.Names}}"], "fmt-up\n"),
    (["ps", "-a", "-f", "name=exit", "-f", "name=net", "--format", "{{.Names}}"], "fmt-net\nfmt-exit3\n"),
    (["ps", "-a", "-f", "id=@{id6:fmt-exit3}", "--format", "{{.Names}}"], "fmt-exit3\n"),
    (["ps", "-a", "-f", "label=tier", "--format", "{{.Names}}"], "fmt-up\n"),
    (["ps", "-a", "-f", "label=tier=web", "-f", "label=team=core", "--format", "{{.Names}}"], "fmt-up\n"),
    (["ps", "-a", "-f", "label=tier=web", "-f", "label=nope", "--format", "{{.Names}}"], ""),
    (["ps", "-a", "-f", "ancestor=fmt/labelled:v1", "--format", "{{.Names}}"], "fmt-up\n"),
    (["ps", "-a", "-f", "ancestor=@{bb}", "--format", "{{.Names}}"], "fmt-net\nfmt-exit3\nfmt-up\n"),
    (["ps", "-a", "-f", "ancestor=@{img12:labelled}", "-q"], "@{id12:fmt-up}\n"),
    (["ps", "-a", "-f", "ancestor=nosuch:1", "-q"], ""),
    (["ps", "-a", "-f", "network=fmtnet", "--format", "{{.Names}}"], "fmt-net\n"),
    (["ps", "-a", "-f", "volume=fmtvol", "--format", "{{.Names}}"], "fmt-exit3\n"),
    (["ps", "-a", "-f", "before=fmt-net", "--format", "{{.Names}}"], "fmt-exit3\nfmt-up\n"),
    (["ps", "-a", "-f", "since=fmt-up", "--format", "{{.Names}}"], "fmt-net\nfmt-exit3\n"),
    (["ps", "-n", "2", "--format", "{{.Names}}"], "fmt-net\nfmt-exit3\n"),
    (["ps", "-l", "-q"], "@{id12:fmt-net}\n"),
    (["ps", "--last", "1", "-f", "exited=3", "--format", "{{.Names}}"], "fmt-exit3\n"),
    (["ps", "-a", "-s", "-f", "name=fmt-exit3", "--format", "{{.Size}}"], "2B (virtual @{size})\n"),
    (["ps", "-a", "-f", "name=fmt-exit3", "--format", "{{.Names}} {{.Size}}"], "fmt-exit3 2B (virtual @{size})\n"),
    # images
    (["images", "--format", "{{.Repository}}:{{.Tag}}"], "<none>:<none>\nfmt/labelled:v1\n@{bb}\n"),
    (
        ["images", "--format", "table {{.Repository}}\\t{{.Tag}}", "-f", "reference=fmt/*"],
        "REPOSITORY     TAG\nfmt/labelled   v1\n",
    ),
    (["images", "--format", "{{.ID}} {{.Digest}}", "fmt/labelled"], "@{img12:labelled} <none>\n"),
    (["images", "-f", "dangling=true", "-q"], "@{img12:dangling}\n"),
    (["images", "-f", "dangling=false", "-q"], "@{img12:labelled}\n@{img12:bb}\n"),
    (["images", "-f", "label=tier=web", "--format", "{{.Repository}}"], "fmt/labelled\n"),
    (["images", "-f", "reference=*labelled:v1", "-f", "reference=*/busybox", "-q"], "@{img12:labelled}\n@{img12:bb}\n"),
    (["images", "-f", "before=fmt/labelled:v1", "-q"], "@{img12:bb}\n"),
    (["images", "-f", "since=@{bb}", "-f", "dangling=false", "-q"], "@{img12:labelled}\n"),
    (["images", "--no-trunc", "-f", "reference=fmt/*", "-q"], "@{img:labelled}\n"),
    # inspect, by type and in any type
    (["inspect", "-f", "{{.State.ExitCode}} {{.State.Status}}", "fmt-exit3"], "3 exited\n"),
    (["inspect", "-f", "{{.Name}} {{.State.Running}}", "fmt-up", "fmt-exit3"], "/fmt-up true\n/fmt-exit3 false\n"),
    (["inspect", "-f", "{{.Config.Cmd}}", "fmt-exit3"], "[sh -c echo x > /f; exit 3]\n"),
    (["inspect", "-f", "{{range .Mounts}}{{.Name}}:{{.Destination}}{{end}}", "fmt-exit3"], "fmtvol:/data\n"),
    (["inspect", "-f", '{{index .Config.Labels "tier"}}', "fmt-up"], "web\n"),
    (
        ["inspect", "--type", "image", "-f", "{{json .Config.Labels}}", "fmt/labelled:v1"],
        '{"team":"core","tier":"web"}\n',
    ),
    (["inspect", "--type", "volume", "-f", "{{.Name}} {{.Labels.role}} {{.Driver}}", "fmtvol"], "fmtvol db local\n"),
    (["inspect", "--type", "network", "-f", "{{.Name}} {{.Driver}}", "fmtnet"], "fmtnet bridge\n"),
    (["inspect", "-f", "{{.Name}}", "fmtnet", "fmtfree"], "fmtnet\nfmtfree\n"),
    (["inspect", "-f", "{{if .State.Running}}up{{else}}down{{end}}", "fmt-up", "fmt-net"], "up\ndown\n"),
    (["inspect", "-s", "-f", "{{.SizeRw}}", "fmt-exit3"], "2\n"),
    (["container", "inspect", "-s", "-f", "{{.SizeRw}} {{.Config.Image}}", "fmt-up"], "0 fmt/labelled:v1\n"),
    (["image", "inspect", "-f", "{{.Os}} {{len .RootFS.Layers}}", "@{bb}"], "linux 1\n"),
    (["container", "inspect", "-f", '{{.State.Pid | printf "%05d"}}', "fmt-net"], "00000\n"),
    (["volume", "inspect", "-f", "{{.Mountpoint}}", "fmtvol"], "@{root}/volumes/fmtvol/_data\n"),
    (["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "fmtnet"], "@{subnet}\n"),
    # history, info, version
    (["info", "--format", "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}}"], "3 1 2\n"),
    (["version", "--format", "{{.Server.Version}} {{.Client.Version}}"], f"{__version__} {__version__}\n"),
    # networks, volumes
    (["network", "ls", "-f", "name=fmtnet", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"], "fmtnet bridge local\n"),
    (["network", "ls", "-f", "type=custom", "--format", "{{.Name}}"], "fmtnet\n"),
    (["network", "ls", "-f", "type=builtin", "--format", "{{.Name}}"], "bridge\n"),
    (
        ["network", "ls", "-f", "name=fmtnet", "-f", "name=bridge", "-f", "driver=bridge", "--format", "{{.Name}}"],
        "bridge\nfmtnet\n",
    ),
    (["volume", "ls", "--format", "{{.Name}}: {{.Driver}}"], "fmtfree: local\nfmtvol: local\n"),
    (
        ["volume", "ls", "--format", "table {{.Name}}\\t{{.Driver}}"],
        "VOLUME NAME   DRIVER\nfmtfree       local\nfmtvol        local\n",
    ),
    (["volume", "ls", "-f", "dangling=true", "-q"], "fmtfree\n"),
    (["volume", "ls", "-f", "label=role=db", "--format", '{{.Name}} {{.Label "role"}}'], "fmtvol db\n"),
    (["volume", "ls", "-f", "name=fmtvol", "-f", "name=fmtfree", "-q"], "fmtfree\nfmtvol\n"),
    # system df
    (
        ["system", "df", "--format", "{{.Type}}: {{.TotalCount}} {{.Active}}"],
        "Images: @{nimages} 2\nContainers: 3 1\nLocal Volumes: 2 1\nBuild Cache: @{ncache} 0\n",
    ),
]


def expand(text: str, s: dict) -> str:
    def one(match: re.Match) -> str:  # @{id:NAME} @{id12:NAME} @{img:KEY} @{img12:KEY} or a fact
        key, _, arg = match.group(1).partition(":")
        if key == "id":
            return s["ids"][arg]
        if key in ("id12", "id6"):
            return s["ids"][arg][: int(key[2:])]
        if key == "img":
            return s["images"][arg]
        if key == "img12":
            return short(s["images"][arg])
        return s["facts"][key + (":" + arg if arg else "")]

    return re.sub(r"@\{(\w+(?::[\w.-]+)?)\}", one, text)


@pytest.fixture(scope="module")
def ran(scene):
    """Every case's command, run once, three at a time (each is a whole CLI start-up, and
    they only read the scene): argument tuple -> CompletedProcess."""
    from concurrent.futures import ThreadPoolExecutor

    commands = {tuple(expand(a, scene) for a in args) for args, *_ in OUTPUTS + ERRORS}
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = dict(zip(commands, pool.map(lambda c: scene["m"](*c), commands)))
    return lambda args: done[tuple(expand(a, scene) for a in args)]


@pytest.mark.parametrize("args, expected", OUTPUTS, ids=[" ".join(a) for a, _ in OUTPUTS])
def test_output(scene, ran, args, expected):
    r = ran(args)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expand(expected, scene)


ERRORS = [  # (arguments, exit code, the error line's start)
    (["ps", "-f", "bogus=1"], 125, "Error: invalid filter 'bogus'"),
    (["ps", "-f", "status"], 125, "Error: bad format of filter 'status'"),
    (["ps", "-f", "status=sleeping"], 125, "Error: invalid filter 'status=sleeping'"),
    (["ps", "-f", "exited=x"], 125, "Error: invalid filter 'exited=x'"),
    (["ps", "-a", "-f", "before=nosuch"], 125, "Error: No such container: nosuch"),
    (["ps", "--format", "{{.Nope}}"], 125, "Error: template parsing error: template: :1: executing"),
    (["ps", "--format", "{{.Names"], 125, "Error: template parsing error: template: :1: unclosed action"),
    (["images", "-f", "dangling=maybe"], 125, "Error: invalid filter 'dangling=maybe'"),
    (["images", "-f", "since=nosuch:1"], 125, "Error: No such image: nosuch:1"),
    (
        ["images", "--format", "{{nosuch .ID}}"],
        125,
        'Error: template parsing error: template: :1: function "nosuch" not defined',
    ),
    (["inspect", "--type", "container", "fmtvol"], 1, "Error: No such container: fmtvol"),
    (["inspect", "nosuch-object"], 1, "Error: No such object: nosuch-object"),
    (["inspect", "--type", "bogus", "fmt-up"], 125, 'Error: "bogus" is not a valid value for --type'),
    (["inspect", "-f", "{{.State.Pid.X}}", "fmt-up"], 125, "Error: template parsing error: template: :1: executing"),
    (["network", "ls", "-f", "type=odd"], 125, "Error: invalid filter 'type=odd'"),
    (["volume", "ls", "-f", "size=1"], 125, "Error: invalid filter 'size'"),
    (["info", "--format", "{{if}}"], 125, "Error: template parsing error:"),
    (["system", "df", "--format", "{{.Nope}}"], 125, "Error: template parsing error:"),
]


@pytest.mark.parametrize("args, code, line", ERRORS, ids=[" ".join(a) for a, _, _ in ERRORS])
def test_errors(ran, args, code, line):
    r = ran(args)
    assert r.returncode == code and one_error(r.stderr), r.stderr
    assert r.stderr.startswith(line), r.stderr
    assert r.stdout == "" or args[0] == "inspect"


def test_inspect_json_and_the_default_array(scene):
    m = scene["m"]
    compact = m.ok("inspect", "--format", "json", "fmt-up").stdout
    assert compact.count("\n") == 1 and json.loads(compact)[0]["Name"] == "/fmt-up"
    assert json.loads(m.ok("inspect", "fmt-up").stdout) == json.loads(compact)
    r = m("inspect", "-f", "{{.Name}}", "fmt-up", "nosuch")  # what was found, then the error, exit 1
    assert (r.returncode, r.stdout) == (1, "/fmt-up\n") and r.stderr == "Error: No such object: nosuch\n"


def test_json_rows_and_default_tables(scene):
    m = scene["m"]
    rows = [json.loads(line) for line in m.ok("ps", "-a", "--format", "json").stdout.splitlines()]
    assert [r["Names"] for r in rows] == ["fmt-net", "fmt-exit3", "fmt-up"]
    assert rows[2]["Labels"] in ("tier=web,team=core", "team=core,tier=web") and rows[0]["Networks"] == "fmtnet"
    one = json.loads(m.ok("ps", "--format", "{{json .}}").stdout)
    assert {k: v for k, v in one.items() if k not in ("RunningFor", "Status")} == {
        k: v for k, v in rows[2].items() if k not in ("RunningFor", "Status")
    }
    assert re.fullmatch(r"Exited \(3\) (\d+ seconds|Less than a second) ago", rows[1]["Status"])
    assert list(one) == sorted(one) and rows[1]["Size"] == "0B"  # docker's keys, sorted; no size unless asked
    table = m.ok("ps").stdout.splitlines()
    assert re.split(r"\s{3,}", table[0]) == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert table[1].startswith(scene["ids"]["fmt-up"][:12] + "   fmt/labelled:v1") and table[1].endswith("fmt-up")
    assert "SIZE" in m.ok("ps", "-s").stdout.splitlines()[0]
    networks = m.ok("network", "ls", "-f", "name=fmtnet").stdout.splitlines()
    assert networks[0] == "NETWORK ID     NAME      DRIVER    SCOPE" and networks[1].split()[1:] == [
        "fmtnet",
        "bridge",
        "local",
    ]
    assert m.ok("images", "--format", "table").stdout.splitlines()[0].split() == [
        "REPOSITORY",
        "TAG",
        "IMAGE",
        "ID",
        "CREATED",
        "SIZE",
    ]
    assert len(m.ok("images", "-a", "-q").stdout.split()) > len(
        m.ok("images", "-q").stdout.split()
    )  # the build's steps
    stats = m.ok("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.MemPerc}}", "fmt-up").stdout
    assert stats == "fmt-up 1 --\n"
    streaming = m.popen("stats", "--format", "{{.Name}}", "fmt-up")  # a sample about every second until stopped
    try:
        assert [streaming.stdout.readline(), streaming.stdout.readline()] == ["fmt-up\n", "fmt-up\n"]
    finally:
        streaming.kill()
        streaming.wait()
    created_by = m.ok("history", "--no-trunc", "--format", "{{.CreatedBy}}", "fmt/labelled:v1").stdout
    assert "echo hi > /hi" in created_by.splitlines()[0]
    ids = m.ok("history", "--format", "{{.ID}}", "fmt/labelled:v1").stdout.splitlines()
    assert ids[0] == short(scene["images"]["labelled"]) and ids[-1] in (short(scene["images"]["bb"]), "<missing>")
    table = m.ok("history", "--format", "table {{.ID}}\\t{{.Size}}", "fmt/labelled:v1").stdout.splitlines()
    assert table[0].split() == ["IMAGE", "SIZE"] and len(table) == len(ids) + 1


def test_system_df(scene):
    m = scene["m"]
    table = m.ok("system", "df").stdout.splitlines()
    assert table[0] == "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE"
    assert [re.split(r"\s{3,}", line)[0] for line in table[1:]] == [
        "Images",
        "Containers",
        "Local Volumes",
        "Build Cache",
    ]
    containers = re.split(r"\s{3,}", table[2])
    assert containers[1:3] == ["3", "1"] and containers[4].endswith("%)")
    verbose = m.ok("system", "df", "-v").stdout
    for title in (
        "Images space usage:",
        "Containers space usage:",
        "Local Volumes space usage:",
        "Build cache usage: 0B",
    ):
        assert title in verbose
    assert re.search(r"^fmtvol\s+1\s+\d", verbose, re.M) and re.search(r"^fmtfree\s+0\s+0B", verbose, re.M)
    assert re.search(rf"^{scene['ids']['fmt-exit3'][:12]}\s+{re.escape(scene['bb'])}\s", verbose, re.M)
