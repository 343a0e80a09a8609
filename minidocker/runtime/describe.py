"""``ps`` and ``inspect``: a container's record, in the fields docker shows.

A container is two JSON files in ``containers/<id>/``: ``config.json``, the spec it was
created with (what never changes: image, command, limits, mounts), and ``state.json``, what
happened to it (status, PID, exit code, times, its network attachment). ``ps`` shows one
summary line of each; ``inspect`` shows both in docker's layout, with the paths of its
overlay (GraphDriver) so a reader can ``ls`` from a container to its files.

See it: ``minidocker inspect c1`` beside ``cat /var/lib/minidocker/containers/<id>/state.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def container_summary(c) -> dict[str, Any]:
    """One row of ``ps``: published ports only while the container runs (no one listens else)."""
    return {
        "ID": c.id,
        "Image": c.spec.image,
        "Command": " ".join(c.spec.argv),
        "Created": c.state.get("Created", ""),
        "Status": c.state.get("Status", ""),
        "ExitCode": c.state.get("ExitCode", 0),
        "StartedAt": c.state.get("StartedAt", ""),
        "FinishedAt": c.state.get("FinishedAt", ""),
        "Names": c.name,
        "Pid": c.state.get("Pid", 0),
        "Ports": c.spec.ports if c.running else [],
        "ImageID": c.spec.image_id,
        "Labels": dict(c.spec.labels),
        "Mounts": [{"Type": m.type, "Source": m.source, "Destination": m.target} for m in c.spec.volumes],
        "Networks": _network_names(c),
    }


def _network_names(c) -> list[str]:
    """The networks ``ps`` shows: those the container is configured on, else its mode."""
    from minidocker.runtime.attach import endpoints

    return list(endpoints(c)) or [c.spec.network]


def describe_container(c, store) -> dict[str, Any]:
    """``docker container inspect``'s fields for one container of ``store``'s images."""
    st, spec = c.state, c.spec
    lower = (
        ":".join(str(p) for p in store.get(spec.image_id, mount=False))
        if spec.image_id in store.read_index()["images"]
        else ""
    )
    return {
        "Id": c.id,
        "Created": st.get("Created", ""),
        "Path": (spec.argv or [""])[0],
        "Args": spec.argv[1:],
        "RestartCount": st.get("RestartCount", 0),
        "State": _state(c),
        "Image": spec.image_id,
        "Name": "/" + c.name,
        "HostnamePath": str(c.layout.hostname),
        "HostsPath": str(c.layout.hosts),
        "ResolvConfPath": str(c.layout.resolv_conf),
        "LogPath": str(c.layout.log),
        "Driver": "overlay",
        "HostConfig": _host_config(spec),
        "Mounts": [describe_mount(m, c.layout.store) for m in spec.volumes],
        "Config": {
            "Hostname": spec.hostname,
            "User": spec.user,
            "Env": spec.env,
            "Cmd": spec.cmd,
            "Entrypoint": spec.entrypoint or None,
            "WorkingDir": spec.cwd,
            "Image": spec.image,
            "Tty": spec.tty,
            "OpenStdin": spec.stdin_open,
            "Labels": spec.labels,
            **({"StopSignal": spec.stop_signal} if spec.stop_signal else {}),  # (docker leaves out an unset one)
            **({"StopTimeout": spec.stop_timeout} if spec.stop_timeout is not None else {}),
        },
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": lower,
                "UpperDir": str(c.layout.upper),
                "WorkDir": str(c.layout.work),
                "MergedDir": str(c.layout.merged),
            },
        },
        "Cgroup": st.get("Cgroup", {}),
        "NetworkSettings": _network_settings(c),
    }


def describe_mount(m, layout) -> dict[str, Any]:
    """One of ``inspect``'s ``Mounts``, as docker shows it: a volume by its name, driver and
    ``_data`` path; a bind by its host path and propagation; a tmpfs by its destination."""
    entry: dict[str, Any] = {"Type": m.type}
    if m.type == "volume":
        entry.update(Name=m.source, Source=str(layout.volume(m.source).data), Driver="local")
    else:
        entry["Source"] = m.source
    entry.update(
        Destination=m.target,
        Mode=m.mode if m.type != "volume" or m.mode else "z",
        RW=not m.readonly,
        Propagation=(m.propagation or "rprivate") if m.type == "bind" else "",
    )
    return entry


def _network_settings(c) -> dict[str, Any]:
    from minidocker.runtime.attach import attachments, endpoints

    return network_settings(c.spec.network, endpoints(c), attachments(c), c.spec.ports)


def _state(c) -> dict[str, Any]:
    st = c.state
    return {
        "Status": st.get("Status", ""),
        "Running": c.running,
        "Paused": st.get("Status") == "paused",
        "OOMKilled": st.get("OOMKilled", False),
        "Dead": c.damaged,
        "Pid": st.get("Pid", 0),
        "ExitCode": st.get("ExitCode", 0),
        "Error": st.get("Error", ""),
        "StartedAt": st.get("StartedAt", ""),
        "FinishedAt": st.get("FinishedAt", ""),
    }


def _host_config(spec) -> dict[str, Any]:
    return {
        "NetworkMode": spec.network,
        "PublishAllPorts": spec.publish_all,
        "Dns": spec.dns,
        "DnsSearch": spec.dns_search,
        "DnsOptions": spec.dns_options,
        "ExtraHosts": spec.extra_hosts or None,
        "AutoRemove": spec.auto_remove,
        "Init": spec.init,
        "ReadonlyRootfs": spec.readonly_rootfs,
        "Privileged": spec.privileged,
        "UsernsMode": "" if spec.userns == "host" else spec.userns,
        "IdMap": spec.idmap,
        "RestartPolicy": {"Name": spec.restart["name"], "MaximumRetryCount": spec.restart["max"]},
        "SecurityOpt": None if spec.seccomp == "default" else [f"seccomp={spec.seccomp}"],
        "Ulimits": spec.ulimits or None,
        "LogConfig": {"Type": spec.log_driver, "Config": spec.log_opts},
        "Memory": spec.limits.get("memory", 0),  # (docker's 0: no limit)
        "ShmSize": spec.shm_size or 64 << 20,
        "Sysctls": spec.sysctls or None,
        "PidMode": spec.pid_mode,
        "IpcMode": spec.ipc_mode,
        "Devices": spec.devices,  # (docker shows [] for none, and null for no rules)
        "DeviceCgroupRules": spec.device_cgroup_rules or None,
    }


def network_settings(
    mode: str, endpoints: dict[str, dict], attachments: dict[str, dict], ports: Sequence[dict] = ()
) -> dict[str, Any]:
    """The container's networks as docker shows them: ``Networks`` has one entry per network
    it is configured on (``endpoints``), with its address there while it runs
    (``attachments``); the top-level IPAddress and Gateway are its first network's. Published
    ports are keyed ``PORT/PROTO`` as docker keys them."""
    published = {
        f"{p['port']}/{p['proto']}": [{"HostIp": p["host_ip"] or "0.0.0.0", "HostPort": str(p["host_port"])}]
        for p in ports
    }
    networks = {}
    for name, ep in endpoints.items():
        att = attachments.get(name)
        networks[name] = {
            "IPAMConfig": {"IPv4Address": ep["IPAddress"]} if ep.get("IPAddress") else None,
            "Aliases": list(ep.get("Aliases") or []) or None,
            "IPAddress": att["address"] if att else "",
            "IPPrefixLen": int(att["subnet"].rsplit("/", 1)[1]) if att else 0,
            "Gateway": att["gateway"] if att else "",
        }
    if not endpoints:  # none, host, container:X
        networks = {mode: {}}
    first = next((networks[n] for n in endpoints if attachments.get(n)), None)
    top = (
        {"IPAddress": first["IPAddress"], "IPPrefixLen": first["IPPrefixLen"], "Gateway": first["Gateway"]}
        if first
        else {}
    )
    return {"IPAddress": "", "Gateway": "", **top, "Ports": published, "Networks": networks}


def ps_rows(container_pids: list[int], ps_options: list[str]) -> str:
    """The host's ``ps`` with ``ps_options``: its header, and the rows whose PID column is one
    of ``container_pids`` (docker top's and minidocker-runc ps's table)."""
    import shutil
    import subprocess

    from minidocker.errors import MinidockerError

    if shutil.which("ps") is None:
        raise MinidockerError("ps options need ps", hint="apt-get install procps")
    r = subprocess.run(["ps", *ps_options], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise MinidockerError(f"ps: {(r.stderr.strip().splitlines() or ['failed'])[0]}")
    header, *rows = r.stdout.splitlines()
    if "PID" not in header.split():
        raise MinidockerError("Couldn't find PID field in ps output")
    column = header.split().index("PID")
    pids = {str(pid) for pid in container_pids}
    mine = [row for row in rows if len(row.split()) > column and row.split()[column] in pids]
    return "".join(line + "\n" for line in [header, *mine])
