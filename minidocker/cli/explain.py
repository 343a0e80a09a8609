"""What ``run --explain`` prints: one sentence per kernel-facing step.

Every wrapper in ``linux/`` emits a structured event once it has made its call
(``linux/events.py``: a dict with the step's name, ``t`` and the call's arguments). The CLI
installs a listener through ``api.listen_events``; this module turns each event into the
command line or syscall a student would type or look up, followed by what it achieved::

    [   86.1 ms] pid 19335  unshare(CLONE_NEWPID)  -> new pid namespace(s)
    [   89.7 ms] pid 1      sethostname('aa3545adabf0')
    [  105.9 ms] pid 1      pivot_root(., .)  -> the overlay is now /

A step with no sentence here is shown as its name and arguments, so a new event is never
lost, only plainer. See it: ``minidocker run --rm --explain busybox true``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def describe_mount(ev: dict[str, Any]) -> str:
    """mount(2) as the mount(8) command that makes the same call."""
    flags = ev.get("flags") or 0
    if ev.get("fstype") == "overlay":
        return f"mount -t overlay overlay {ev['target']}  ({ev.get('data')})"
    if flags & 4096:  # MS_BIND; with MS_REMOUNT (32) it changes the flags of an existing bind mount
        return f"mount --bind {ev.get('source')} {ev['target']}" + ("  (remount)" if flags & 32 else "")
    if ev.get("source") is None and ev.get("fstype") is None:  # only a propagation flag (MS_PRIVATE | MS_REC)
        return f"mount --make-rprivate {ev['target']}  (mount events no longer propagate)"
    return f"mount -t {ev.get('fstype')} {ev.get('source')} {ev['target']}" + (
        f"  ({ev['data']})" if ev.get("data") else ""
    )


def describe_capabilities(ev: dict[str, Any]) -> str:
    """The two capability steps: shrink the bounding set (inherited by every child), then
    set the permitted and effective sets the program starts with."""
    if ev.get("action") == "drop bounding":
        return f"prctl(PR_CAPBSET_DROP) x{ev['dropped']}  -> the bounding set keeps {len(ev['kept'])} capabilities"
    return f"capset(permitted = effective = {len(ev['kept'])} capabilities), ambient cleared"


# One sentence a student can follow, for each kind of kernel-facing step (see --explain).
_DESCRIBE: dict[str, Callable[[dict[str, Any]], str]] = {
    "unshare": lambda ev: (
        f"unshare({' | '.join('CLONE_NEW' + f.upper().replace('MNT', 'NS') for f in ev['flags'])})"
        f"  -> new {', '.join(ev['flags'])} namespace(s)"
    ),
    "mount": describe_mount,
    "umount2": lambda ev: (
        f"umount2({ev['target']}, MNT_DETACH)  -> the old root is gone from our view"
        if ev.get("flags", 2) & 2
        else f"umount2({ev['target']}, 0)"
    ),
    "pivot_root": lambda ev: f"pivot_root({ev['new_root']}, {ev['put_old']})  -> the overlay is now /",
    "fuse_mount": lambda ev: (
        f"mount -t {ev['fstype']} {ev['source']} {ev['target']}  -> process {ev['server']} answers its "
        "requests through /dev/fuse"
    ),
    "fuse_unmount": lambda ev: f"umount {ev['target']} ({ev['how']})  -> its FUSE server {ev['server']} {ev['ended']}",
    "lazy_layer": lambda ev: (
        f"GET {ev['requests']} byte ranges of layer {ev['layer']} ({ev['bytes']} of {ev['size']} bytes)  -> its "
        f"{ev['format']} table of contents: {ev['files']} files, left in the registry until read"
    ),
    "lazy_fetch": lambda ev: (
        f"GET Range: bytes={ev['range']} of layer {ev['layer']} ({ev['bytes']} bytes, {ev['ms']} ms)  -> "
        f"{ev['file']}, read for the first time, checked against its TOC digest"
    ),
    "lazy_read": lambda ev: (
        f"lazy layer {ev['layer']}: {ev['chunks']} chunks fetched by range, {ev['bytes']} bytes  -> "
        "kept in the store's chunk cache: the next run fetches none of them"
    ),
    "chroot": lambda ev: (
        f"chroot({ev['path']})  -> / is now {ev['path']} for this process only (cp, a stopped container)"
    ),
    "sethostname": lambda ev: f"sethostname({ev['hostname']!r})",
    "cgroup": lambda ev: f"cgroup {ev['action']} {ev['path']}" + (f" <- {ev['value']}" if ev.get("value") else ""),
    "setuid": lambda ev: f"setgroups({ev['groups']}), setgid({ev['gid']}), setuid({ev['uid']})",
    "step": lambda ev: f"step {ev['name']} done ({ev['ms']:.1f} ms)",
    "execve": lambda ev: f"execve({ev['argv']})  -> the image's program replaces us, still PID 1",
    "link": lambda ev: f"ip link set {ev['name']} {ev['state']}",
    "pty": lambda ev: f"open /dev/ptmx -> {ev['path']} becomes the controlling terminal",
    "capabilities": describe_capabilities,
    "no_new_privs": lambda ev: "prctl(PR_SET_NO_NEW_PRIVS, 1)  -> no setuid binary can raise privileges again",
    "seccomp": lambda ev: (
        f"prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)  -> {ev.get('rules')} syscall rules, "
        f"default {ev.get('default_action')}"
    ),
    "addr": lambda ev: f"ip addr add {ev['address']} dev {ev['dev']}",
    "sysctl": lambda ev: f"sysctl {ev['key']}={ev['value']}",
    "iptables": lambda ev: f"iptables {ev['rule']}",
    "netlink": lambda ev: (
        f"netlink {ev['msg']} " + " ".join(f"{k}={v}" for k, v in ev.items() if k not in ("t", "step", "msg", "pid"))
    ),
    "resolver": lambda ev: f"resolver of network {ev['network']} (pid {ev['pid']}): {ev['action']}",
    "bpf_device_filter": lambda ev: (
        f"bpf(BPF_PROG_LOAD, CGROUP_DEVICE) + bpf(BPF_PROG_ATTACH) {ev['path']}"
        f"  -> {ev['rules']} device rules, every other device refused"
    ),
    "idmap": lambda ev: (
        f"write /proc/{ev['pid']}/{ev['kind']}_map <- '{ev['inside']} {ev['outside']} {ev['count']}'"
        f"  -> {ev['kind']} {ev['inside']} inside is {ev['outside']} on the host"
    ),
    "idmapped_mount": lambda ev: (
        f"open_tree + mount_setattr(MOUNT_ATTR_IDMAP) + move_mount {ev['source']} -> "
        f"{ev['target']}  (owners shown through the user namespace)"
    ),
    "chown_copy": lambda ev: (
        f"copy {ev['source']} -> {ev['target']}, owners shifted by {ev['shift']} (no idmapped mounts here)"
    ),
    "copy_up": lambda ev: (
        f"cp -a {ev['source']}/. {ev['target']}  -> the empty volume gets the image's files (owners, modes)"
    ),
    "volume_owner": lambda ev: f"chown {ev['uid']}:{ev['gid']} {ev['path']}  -> the container's root owns the volume",
    "volume_create": lambda ev: f"mkdir {ev['path']}  -> volume {ev['name']} (the local driver)",
    "volume_remove": lambda ev: f"rm -r volume {ev['name']}  -> its files are gone",
    "prctl": lambda ev: (
        f"prctl({ev['option']}, {ev['value']})  -> until execve, the container cannot open this "
        "process's /proc/PID/exe (the host's Python)"
    ),
    "setns": lambda ev: (
        f"setns({', '.join(ev['nstype'])})  -> {ev.get('why') or 'join the container' + chr(39) + 's namespace'}"
    ),
}


def describe_pause(facts: dict[str, Any]) -> str:
    """``--pause-at``'s guide: the paused PID 1 and where to look at the half-built container
    from the host (``facts``: step, pid, cgroups {controller: path}, keys: Enter resumes)."""
    pid = facts["pid"]
    lines = [
        f"paused before {facts['step']}: the container's PID 1 is pid {pid} on the host (state T, stopped)",
        f"  namespaces:  ls -l /proc/{pid}/ns/   (compare: ls -l /proc/self/ns/)",
        f"  mounts:      cat /proc/{pid}/mountinfo",
        f"  its root:    ls -l /proc/{pid}/root/",
        f"  capabilities, state: grep -E 'State|Cap' /proc/{pid}/status",
    ]
    lines += [f"  cgroup ({controller}): ls {path}" for controller, path in sorted(facts["cgroups"].items())]
    lines.append(f"  enter it:    nsenter -t {pid} -m -u -i -n -p sh")
    go_on = f"kill -CONT {pid} (the container's PID 1)"
    lines.append(f"to go on: press Enter, or {go_on}" if facts["keys"] else f"to go on: {go_on}")
    return "\n".join(lines) + "\n"


def describe_event(ev: dict[str, Any]) -> str:
    """One sentence a student can follow, for each kernel-facing step; a ``why`` the step
    gave is added after an arrow."""
    describe = _DESCRIBE.get(ev["step"])
    if describe is None:
        return f"{ev['step']} {', '.join(f'{k}={v}' for k, v in ev.items() if k not in ('t', 'step'))}"
    text = describe(ev)
    if ev.get("why") and ev["step"] != "setns":
        text += f"  -> {ev['why']}"
    return text
