"""oci/bundle.py: a config.json read into the runtime's ContainerSpec, and every field the
runtime cannot honour yet refused by name (no root needed: a temp dir is the bundle)."""

import copy
import json

import pytest

from minidocker.errors import BundleError
from minidocker.linux.procfs import MASKED_PATHS, READONLY_PATHS
from minidocker.oci.bundle import default_config, load_bundle, parse_config
from minidocker.oci.hooks import Hook


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def parsed(bundle, change=None):
    config = copy.deepcopy(default_config(terminal=False))
    if change:
        change(config)
    return parse_config(config, str(bundle), "c1")


def test_default_config_round_trips(bundle):
    (bundle / "config.json").write_text(json.dumps(default_config()))
    b = load_bundle(str(bundle), "c1")
    spec = b.spec
    assert b.rootfs == str(bundle / "rootfs")
    assert spec.argv == ["sh"] and spec.cwd == "/" and spec.user == "0:0" and spec.tty
    assert spec.readonly_rootfs and spec.no_new_privileges and spec.hostname == "minidocker"
    assert spec.capabilities == ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert spec.ulimits == [{"Name": "nofile", "Soft": 1024, "Hard": 1024}]
    assert spec.network == "none" and spec.pid_mode == "" and spec.ipc_mode == "private"
    assert spec.volumes == [] and spec.seccomp == "unconfined"
    assert b.masked_paths == list(MASKED_PATHS) and b.readonly_paths == list(READONLY_PATHS)


def test_resources_become_limits(bundle):
    def change(c):
        c["linux"]["resources"].update(
            memory={"limit": 64 << 20},
            cpu={"quota": 30000, "period": 200000, "cpus": "0", "mems": "0"},
            pids={"limit": 20},
        )

    limits = parsed(bundle, change).spec.limits
    assert limits == {
        "memory": 64 << 20, "cpus": 0.15, "cpu_period": 200000, "cpuset_cpus": "0", "cpuset_mems": "0", "pids": 20
    }  # fmt: skip
    from minidocker.linux.cgroups import Limits

    assert Limits(**limits).cpu_quota_us() == 30000


def test_absent_namespaces_are_the_hosts(bundle):
    def change(c):
        c["linux"]["namespaces"] = [{"type": "mount"}, {"type": "uts"}]

    spec = parsed(bundle, change).spec
    assert (spec.network, spec.pid_mode, spec.ipc_mode) == ("host", "host", "host")


def test_binds_and_tmpfs_become_volumes(bundle):
    def change(c):
        c["mounts"] += [
            {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro"]},
            {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m"]},
        ]

    bind, tmpfs = parsed(bundle, change).spec.volumes
    assert (bind.source, bind.target, bind.readonly, bind.type) == ("/srv", "/data", True, "bind")
    assert (tmpfs.target, tmpfs.type, tmpfs.data) == ("/t", "tmpfs", "size=1m")


def test_each_capability_set_is_kept_as_given(bundle):
    def change(c):
        c["process"]["user"] = {"uid": 1000, "gid": 1000}
        c["process"]["capabilities"] = {
            "bounding": ["CAP_KILL", "CAP_CHOWN"], "permitted": ["CAP_KILL"], "effective": [],
            "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"],
        }  # fmt: skip

    spec = parsed(bundle, change).spec
    assert spec.capabilities == ["CAP_CHOWN", "CAP_KILL"]
    assert spec.capability_sets == {
        "bounding": ["CAP_CHOWN", "CAP_KILL"], "permitted": ["CAP_KILL"], "effective": [],
        "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"],
    }  # fmt: skip


def test_additional_gids_are_the_supplementary_groups(bundle):
    def change(c):
        c["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 100, 5], "username": "app"}

    spec = parsed(bundle, change).spec
    assert (spec.user, spec.additional_gids) == ("1000:1000", [5, 100])


def test_mount_options_are_flags_propagation_and_data():
    from minidocker.oci.bundle import mount_options

    flags, propagation, data = mount_options(
        ["nosuid", "strictatime", "mode=755", "size=65536k", "rshared", "ro", "rw"]
    )
    assert (flags, propagation, data) == (2 | 1 << 24, "rshared", "mode=755,size=65536k")


def test_device_allow_rules_become_cgroup_rules(bundle):
    def change(c):
        c["linux"]["resources"]["devices"] += [
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": True, "type": "c", "major": 136, "access": "rw"},
        ]

    assert parsed(bundle, change).spec.device_cgroup_rules == ["c 1:3 rwm", "c 136:* rw"]


def test_seccomp_is_kept_in_the_specs_form(bundle):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}

    def change(c):
        c["linux"]["seccomp"] = profile

    assert parsed(bundle, change).seccomp == profile


def test_hooks_are_kept_by_kind(bundle):
    def change(c):
        c["hooks"] = {
            "createRuntime": [{"path": "/bin/a", "args": ["a", "-x"], "env": ["K=V"], "timeout": 3}],
            "poststop": [{"path": "/bin/b"}],
        }

    hooks = parsed(bundle, change).hooks
    assert hooks["createRuntime"] == [Hook("/bin/a", ["a", "-x"], ["K=V"], 3)]
    assert hooks["poststop"] == [Hook("/bin/b", ["/bin/b"], [], None)]  # (no args: argv[0] is the path)
    assert parsed(bundle).hooks == {}


REFUSED = [
    ("hooks.preStart is not", lambda c: c.update(hooks={"preStart": []})),
    ("must be absolute", lambda c: c.update(hooks={"poststop": [{"path": "bin/true"}]})),
    ("timeout must be", lambda c: c.update(hooks={"poststart": [{"path": "/bin/true", "timeout": 0}]})),
    ("needs a path", lambda c: c.update(hooks={"createRuntime": [{"args": ["x"]}]})),
    ("process.apparmorProfile", lambda c: c["process"].update(apparmorProfile="x")),
    ("additionalGids must be a list", lambda c: c["process"]["user"].update(additionalGids=["wheel"])),
    ("capabilities.nope", lambda c: c["process"]["capabilities"].update(nope=[])),
    ("unknown capability", lambda c: c["process"].update(capabilities={"bounding": ["CAP_NOPE"]} | {
        k: ["CAP_NOPE"] for k in ("permitted", "effective")})),
    ("unknown type 'RLIMIT_NOPE'", lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_NOPE"})),
    ("joining the user namespace /x", lambda c: c["linux"].update(namespaces=[
        {"type": "mount"}, {"type": "user", "path": "/x"}])),
    ("mount namespace /x: No such file", lambda c: c["linux"].update(namespaces=[
        {"type": "mount", "path": "/x"}, {"type": "uts"}])),
    ("network namespace /x: No such file", lambda c: c["linux"].update(namespaces=[
        {"type": "mount"}, {"type": "uts"}, {"type": "network", "path": "/x"}])),
    ("uidMappings are needed with a user namespace", lambda c: c["linux"]["namespaces"].append({"type": "user"})),
    ("a time namespace", lambda c: c["linux"]["namespaces"].append({"type": "time"})),
    ("hostname without a private UTS namespace", lambda c: c.update(hostname="h") or c["linux"].update(
        namespaces=[{"type": "mount"}])),
    ("restrict sys entries without a private MNT", lambda c: c["linux"].update(
        namespaces=[{"type": "uts"}], maskedPaths=["/proc/kcore"])),
    ("read-only without a private MNT", lambda c: c["root"].update(readonly=True) or c["linux"].update(
        namespaces=[{"type": "uts"}], maskedPaths=[], readonlyPaths=[])),
    ("uidMappings needs a user namespace", lambda c: c["linux"].update(
        uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])),
    ("must map the container's ID 0", lambda c: c["linux"]["namespaces"].append({"type": "user"}) or c["linux"].update(
        uidMappings=[{"containerID": 1, "hostID": 1000, "size": 10}],
        gidMappings=[{"containerID": 0, "hostID": 1000, "size": 10}])),
    ("each needs a containerID, a hostID and a size", lambda c: c["linux"]["namespaces"].append({"type": "user"})
        or c["linux"].update(uidMappings=[{"containerID": 0}], gidMappings=[])),
    ("a path beside a new user namespace", lambda c: c["linux"].update(namespaces=[
        {"type": "mount"}, {"type": "user"}, {"type": "network", "path": "/proc/self/ns/net"}])),
    ("without mount and PID namespaces", lambda c: c["linux"].update(namespaces=[{"type": "mount"}, {"type": "user"}])),
    ("needs an absolute path and a type", lambda c: c["linux"].update(devices=[{"path": "/dev/fuse"}])),
    ("needs major and minor", lambda c: c["linux"].update(devices=[{"path": "/dev/fuse", "type": "c"}])),
    ("linux.resources.blockIO", lambda c: c["linux"]["resources"].update(blockIO={})),
    ("only as the first", lambda c: c["linux"]["resources"]["devices"].append({"type": "c", "major": 1})),
    ("oomScoreAdj 5000", lambda c: c["process"].update(oomScoreAdj=5000)),
    ("needs a type", lambda c: c["mounts"].append({"destination": "/mq", "source": "x"})),
    ("linux.seccomp: flags", lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_ALLOW", "flags": ["x"]})),
    ("process.args", lambda c: c["process"].update(args=[])),
    ("not a propagation type", lambda c: c["linux"].update(rootfsPropagation="sideways")),
]  # fmt: skip


@pytest.mark.parametrize(("words", "change"), REFUSED, ids=[w for w, _ in REFUSED])
def test_what_the_runtime_cannot_do_is_refused_by_name(bundle, words, change):
    with pytest.raises(BundleError) as e:
        parsed(bundle, change)
    assert words in e.value.message


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(BundleError, match="config.json: No such file"):
        load_bundle(str(tmp_path), "c1")
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(str(tmp_path), "c1")
    (tmp_path / "config.json").write_text(json.dumps(default_config()))
    with pytest.raises(BundleError, match="root.path .*no such directory"):
        load_bundle(str(tmp_path), "c1")


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("", ("minidocker", "c1")),
        ("/libpod_parent/libpod-c1", ("libpod_parent", "libpod-c1")),
        ("a/b", ("a", "b")),
        ("/a/b/c", ("a/b", "c")),
        ("/c1", ("", "c1")),
    ],
)
def test_cgroups_path_is_parent_and_name(bundle, path, want):
    assert parsed(bundle, lambda c: c["linux"].update(cgroupsPath=path)).cgroup == want


@pytest.mark.parametrize("path", ["/", "system.slice:docker:c1", "/../x"])
def test_other_cgroups_paths_are_refused(bundle, path):
    with pytest.raises(BundleError, match="only a path of cgroups"):
        parsed(bundle, lambda c: c["linux"].update(cgroupsPath=path))


def test_podmans_umask_and_shm_bind(bundle):
    def change(c):
        c["process"]["user"]["umask"] = 0o22
        c["mounts"].append({"destination": "/dev/shm", "type": "bind", "source": "/srv/shm", "options": ["bind"]})

    b = parsed(bundle, change)
    assert (b.umask, b.shm) == (0o22, "/srv/shm") and b.spec.volumes == []
