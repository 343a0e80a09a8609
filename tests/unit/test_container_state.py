"""Container records are corrected when their process is gone (no root: a fake record)."""

import json
import os

from minidocker.linux.procfs import boot_id
from minidocker.linux.procfs import start_time as proc_start_time
from minidocker.runtime.container import ContainerStore
from minidocker.runtime.spec import ContainerSpec


def make(tmp_path, **state):
    store = ContainerStore(tmp_path)
    c = store.create(
        lambda cid, name: ContainerSpec(
            id=cid, name=name(), image="x", image_id="sha256:" + "0" * 64, argv=["true"], env=[]
        )
    )
    store.update(c, Status="running", **state)
    return store, c


def test_a_live_process_stays_up(tmp_path):
    store, c = make(tmp_path, Pid=os.getpid(), PidStartTime=proc_start_time(os.getpid()), BootId=boot_id())
    assert store.find(c.name).state["Status"] == "running"


def test_a_reused_pid_is_not_our_container(tmp_path):
    store, c = make(tmp_path, Pid=os.getpid(), PidStartTime=proc_start_time(os.getpid()) - 1, BootId=boot_id())
    assert store.find(c.id).state["Status"] == "exited"


def test_a_record_from_before_a_reboot_is_not_up(tmp_path):
    store, c = make(tmp_path, Pid=os.getpid(), PidStartTime=proc_start_time(os.getpid()), BootId="another-boot")
    found = store.find(c.id[:8])
    assert found.state["Status"] == "exited" and found.state["ExitCode"] == 137
    assert json.loads((c.dir / "state.json").read_text())["Status"] == "exited"


def test_names_are_unique_and_random(tmp_path):
    store = ContainerStore(tmp_path)
    names = set()
    for _ in range(20):
        c = store.create(
            lambda cid, name: ContainerSpec(id=cid, name=name(), image="x", image_id="x", argv=["true"], env=[])
        )
        names.add(c.name)
    assert len(names) == 20 and all("_" in n for n in names)
