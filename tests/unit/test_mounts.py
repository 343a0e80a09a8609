"""``-v``, ``--mount`` and ``--volumes-from`` read as docker reads them (runtime/mounts.py),
and the local driver's ``--opt`` rules (runtime/volumes.py): no root, nothing mounted."""

from __future__ import annotations

import pytest

from minidocker.errors import MinidockerError
from minidocker.runtime.mounts import (
    MountSpec,
    check_duplicates,
    container_mounts,
    inherit_mounts,
    parse_mount_flag,
    parse_volume_flag,
    parse_volumes_from,
)
from minidocker.runtime.volumes import check_options, filter_volumes  # (check_options: mounts.py's)


@pytest.mark.parametrize(
    "raw, want",
    [
        ("data:/d", dict(type="volume", source="data", target="/d", readonly=False, nocopy=False)),
        ("data:/d:ro", dict(type="volume", source="data", readonly=True, mode="ro")),
        ("data:/d:rw,nocopy", dict(type="volume", nocopy=True, readonly=False, mode="rw")),
        ("data:/d:Z", dict(type="volume", mode="Z", readonly=False)),
        ("/srv:/d", dict(type="bind", source="/srv", propagation="rprivate")),
        ("/srv:/d:ro,z,rshared", dict(type="bind", readonly=True, propagation="rshared")),
        ("/srv/:/d/../e/", dict(type="bind", source="/srv", target="/e")),
    ],
)
def test_volume_flag(raw, want):
    got = parse_volume_flag(raw)
    assert {k: getattr(got, k) for k in want} == want


def test_a_bare_path_is_an_anonymous_volume():
    got = parse_volume_flag("/cache")
    assert got.type == "volume" and got.anonymous and got.target == "/cache"
    assert len(got.source) == 64 and int(got.source, 16) >= 0
    assert parse_volume_flag("/cache").source != got.source  # a new name each time


BAD_VOLUME_FLAGS = [
    ("a:b:c:d", "invalid volume specification"),
    ("data:", "invalid volume specification"),
    ("/x:ro", "invalid volume specification"),
    ("data:rel", "must be absolute"),
    ("rel", "must be absolute"),
    ("data:/", "destination can't be '/'"),
    ("data:/d:rx", "invalid mode: rx"),
    ("data:/d:ro,rw", "invalid mode"),
    ("/srv:/d:nocopy", "nocopy is for volumes"),
    ("data:/d:shared", "a propagation is for host paths"),
    ("x:/d", "includes invalid characters for a local volume name"),
    ("bad name:/d", "includes invalid characters"),
]


def test_mount_flag_each_type(tmp_path):
    bind = parse_mount_flag(f"type=bind,source={tmp_path},target=/b,readonly,bind-propagation=rslave")
    assert (bind.type, bind.source, bind.target, bind.readonly, bind.propagation) == (
        "bind",
        str(tmp_path),
        "/b",
        True,
        "rslave",
    )
    vol = parse_mount_flag(
        "type=volume,src=data,dst=/v,volume-nocopy,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-label=a=b"
    )
    assert (vol.type, vol.source, vol.target, vol.nocopy) == ("volume", "data", "/v", True)
    assert vol.volume_opts == {"type": "tmpfs", "device": "tmpfs"} and vol.volume_labels == {"a": "b"}
    tmp = parse_mount_flag("type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=700,ro=true")
    assert (tmp.type, tmp.data, tmp.readonly) == ("tmpfs", f"size={64 << 20},mode=700", True)
    anon = parse_mount_flag("dst=/a")  # type defaults to volume; no source: an anonymous one
    assert anon.type == "volume" and anon.anonymous and len(anon.source) == 64
    assert parse_mount_flag("type=volume,src=data,dst=/v,readonly=false").readonly is False


BAD_MOUNT_FLAGS = [
    ("type=bind,src=/,dst=/x,colour=red", "unexpected key 'colour' in 'colour=red'"),
    ("type=bind,src,dst=/x", "invalid field 'src' must be a key=value pair"),
    ("type=floppy,dst=/x", 'invalid mount config for type "floppy": mount type unknown'),
    ("type=bind,dst=/x", 'invalid mount config for type "bind": field Source must not be empty'),
    ("type=volume,src=data", 'invalid mount config for type "volume": field Target must not be empty'),
    ("type=bind,src=/no/such/dir/anywhere,dst=/x", "bind source path does not exist: /no/such/dir/anywhere"),
    ("type=tmpfs,src=x,dst=/x", 'invalid mount config for type "tmpfs": field Source must not be specified'),
    ("type=bind,src=/,dst=/x,tmpfs-size=1m", "field TmpfsOptions must not be specified"),
    ("type=volume,src=data,dst=/x,bind-propagation=shared", "field BindOptions must not be specified"),
    ("type=tmpfs,dst=/x,volume-nocopy", "field VolumeOptions must not be specified"),
    ("type=tmpfs,dst=/x,tmpfs-mode=9", "invalid tmpfs-mode"),
    ("type=tmpfs,dst=/x,tmpfs-size=lots", "invalid size"),
    ("type=volume,src=data,dst=/x,readonly=maybe", "invalid value for readonly"),
    ("type=bind,src=/,dst=/x,bind-propagation=sideways", "invalid bind-propagation"),
    ("type=volume,src=data,dst=/x,volume-driver=nfs", "not found"),
]


@pytest.mark.parametrize(
    "parse, raw, words",
    [(parse_volume_flag, *case) for case in BAD_VOLUME_FLAGS] + [(parse_mount_flag, *case) for case in BAD_MOUNT_FLAGS],
)
def test_bad_flags_are_refused_in_docker_words(parse, raw, words):
    with pytest.raises(MinidockerError) as e:
        parse(raw)
    assert words in e.value.message


def test_duplicate_mount_points():
    a, b = MountSpec("v1", "/x", type="volume"), MountSpec("/srv", "/x")
    with pytest.raises(MinidockerError, match="Duplicate mount point: /x"):
        check_duplicates([a, b], [])
    with pytest.raises(MinidockerError, match="Duplicate mount point: /t"):
        check_duplicates([MountSpec("v1", "/t", type="volume")], ["/t:size=1m"])
    check_duplicates([a, MountSpec("/srv", "/y")], ["/z"])


def test_container_mounts_precedence_and_order(tmp_path):
    inherited = [MountSpec("shared", "/s", type="volume"), MountSpec("other", "/data", type="volume")]
    got = container_mounts(
        [f"{tmp_path}:/data/deep", "named:/data"], [], ["/tmpfs"], inherited, {"/img": {}, "/s": {}, "/tmpfs": {}}
    )
    assert [(m.target, m.source if not m.anonymous else "anon") for m in got] == [
        ("/data", "named"),  # -v replaces the inherited mount at /data
        ("/img", "anon"),  # the image's VOLUME, where nothing else mounts
        ("/s", "shared"),  # inherited; the image's VOLUME /s is covered by it
        ("/data/deep", str(tmp_path)),  # deeper paths after their parents
    ]


def test_a_missing_bind_source_of_v_is_made(tmp_path):
    container_mounts([f"{tmp_path}/new/dir:/x"], [], [], [], None)
    assert (tmp_path / "new" / "dir").is_dir()


def test_volumes_from():
    assert parse_volumes_from("web") == ("web", None)
    assert parse_volumes_from("web:ro") == ("web", True)
    assert parse_volumes_from("web:rw") == ("web", False)
    with pytest.raises(MinidockerError):
        parse_volumes_from("web:rx")
    specs = [MountSpec("v", "/v", type="volume", anonymous=True), MountSpec("", "/t", type="tmpfs")]
    got = inherit_mounts(specs, True)
    assert [(m.target, m.readonly, m.anonymous) for m in got] == [
        ("/v", True, False)
    ]  # no tmpfs; the volume is not ours


@pytest.mark.parametrize(
    "options, words",
    [
        ({"colour": "red"}, 'invalid option key: "colour"'),
        ({"type": "tmpfs"}, 'missing required option: "device"'),
        ({"device": "/srv"}, 'missing required option: "type"'),
        ({"o": "size=1m", "type": "tmpfs"}, 'missing required option: "device"'),
    ],
)
def test_local_driver_options(options, words):
    with pytest.raises(MinidockerError) as e:
        check_options(options)
    assert words in e.value.message


def test_local_driver_options_that_hold():
    check_options({})
    check_options({"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    check_options({"type": "none", "device": "/srv", "o": "bind"})


def test_volume_filters():
    vols = [
        {"Name": "web-data", "Driver": "local", "Labels": {"team": "blue"}},
        {"Name": "db", "Driver": "local", "Labels": {"team": "red", "keep": ""}},
        {"Name": "cache", "Driver": "local", "Labels": {}},
    ]
    users = lambda: {"db": ["c" * 64]}  # noqa: E731

    def names(*filters):
        return [v["Name"] for v in filter_volumes(vols, list(filters), users)]

    assert names() == ["web-data", "db", "cache"]
    assert names("dangling=true") == ["web-data", "cache"]
    assert names("dangling=false") == ["db"]
    assert names("name=data") == ["web-data"]
    assert names("label=team") == ["web-data", "db"]
    assert names("label=team=red") == ["db"]
    assert names("label=team", "dangling=true") == ["web-data"]
    assert names("driver=local") == ["web-data", "db", "cache"]
    for bad in ("colour=red", "dangling=maybe", "name"):
        with pytest.raises(MinidockerError, match="invalid filter"):
            names(bad)
