"""RunOptions: the flags of ``minidocker run``, described once.

Each field of ``RunOptions`` is one of docker's ``run`` flags, and everything about the flag
is written on that one line:

* the field's name is the long flag's (``--env-file`` -> ``env_file``);
* its type is the flag's kind: ``bool`` a switch (``--rm``), ``str``, ``int`` or ``float``
  one value (``--name web``, ``--cpus 0.5``), ``list[str]`` a flag given any number of
  times (``-e A=1 -e B=2``);
* its default is what docker assumes when the flag is not given;
* ``flag(...)`` holds every spelling (the long name first, then short forms and aliases
  such as ``--net``) and the line ``--help`` shows.

The command line's two parsers, the typer command and the fast parser that starts a
container without importing typer, are both made from these fields (``cli/options.py``),
and ``api.run``, ``runtime.spec.build_spec`` and the builder's RUN step take one
``RunOptions`` whole. So a new flag is one field here plus the code that acts on it.

This module imports nothing of minidocker's and nothing heavy: the fast path reads it before
every container start.
"""

from __future__ import annotations

from minidocker.record import Field, field, record

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    from typing import Any


def flag(*names: str, help: str, default: Any = None, metavar: str | None = None) -> Any:
    """A record field that is also a command-line flag spelled ``names`` (long name first).
    ``metavar`` is the placeholder ``--help`` shows for the value (None: the type's name)."""
    meta = {"names": names, "help": help, "metavar": metavar}
    if default == []:  # a repeatable flag: each RunOptions gets a list of its own
        return field(default_factory=list, metadata=meta)
    return field(default=default, metadata=meta)


def kind_of(f: Field) -> str:
    """A field's flag kind from its annotation: "bool", "str", "int", "float" or "list"."""
    # the annotations are strings here (``from __future__ import annotations``)
    first = str(f.type).split(" ")[0]  # "str | None" -> "str"; "list[str]" -> "list[str]"
    return "list" if first.startswith("list") else first


# A record, not a dataclass: this class is defined before every container start, and the
# dataclasses module costs more to import than the rest of this file (minidocker/record.py).
@record
class RunOptions:
    """What ``minidocker run`` was asked to do, apart from the image and its command."""

    interactive: bool = flag("--interactive", "-i", default=False, help="Keep STDIN open.")
    tty: bool = flag("--tty", "-t", default=False, help="Allocate a pseudo-TTY.")
    detach: bool = flag("--detach", "-d", default=False, help="Run in the background, print the ID.")
    rm: bool = flag("--rm", default=False, help="Remove the container when it exits.")
    attach: list[str] = flag(
        "--attach", "-a", default=[], help="Attach to STDIN, STDOUT or STDERR (the others: logged only)."
    )
    name: str | None = flag("--name", help="Assign a name.")
    env: list[str] = flag("--env", "-e", default=[], help="Set an environment variable (K=V).")
    env_file: list[str] = flag("--env-file", default=[], help="Read environment variables from a file.")
    workdir: str | None = flag("--workdir", "-w", help="Working directory inside.")
    user: str | None = flag("--user", "-u", help="USER[:GROUP] (name or number).")
    hostname: str | None = flag("--hostname", "-h", help="Container host name.")
    entrypoint: str | None = flag("--entrypoint", help="Overwrite the image's ENTRYPOINT.")
    volume: list[str] = flag(
        "--volume", "-v", default=[], help="[NAME|/HOST:]/CONTAINER[:ro|rw][,nocopy][,z|Z]: a volume or a bind mount."
    )
    mount: list[str] = flag(
        "--mount",
        default=[],
        help="Attach a mount: type=bind|volume|tmpfs, source=, target=, readonly, volume-nocopy, tmpfs-size=.",
    )
    volumes_from: list[str] = flag(
        "--volumes-from", default=[], help="CONTAINER[:ro|rw]: mount the volumes of another container."
    )
    init: bool = flag("--init", default=False, help="Run a reaping init as PID 1.")
    network: str = flag(
        "--network", "--net", default="default", help="bridge (the default), none, host, NAME or container:NAME."
    )
    network_alias: list[str] = flag(
        "--network-alias", default=[], metavar="<name>", help="Another name for the container on a user network."
    )
    ip: str | None = flag("--ip", help="The container's IPv4 address on its user network.")
    dns: list[str] = flag("--dns", default=[], help="A DNS server for /etc/resolv.conf.")
    dns_search: list[str] = flag("--dns-search", default=[], help="A DNS search domain.")
    dns_option: list[str] = flag("--dns-option", default=[], help="A resolv.conf option (ndots:2).")
    add_host: list[str] = flag("--add-host", default=[], help="HOST:IP (or HOST:host-gateway) in /etc/hosts.")
    publish_all: bool = flag("--publish-all", "-P", default=False, help="Publish every EXPOSEd port to a free port.")
    read_only: bool = flag("--read-only", default=False, help="Mount the root filesystem read-only.")
    tmpfs: list[str] = flag("--tmpfs", default=[], help="Mount a tmpfs at PATH[:OPTIONS].")
    memory: str | None = flag("--memory", "-m", help="Memory limit (e.g. 64m).")
    memory_swap: str | None = flag("--memory-swap", help="Memory + swap limit; -1 unlimited.")
    cpus: float | None = flag("--cpus", help="Number of CPUs (a CFS quota).")
    cpu_shares: int | None = flag("--cpu-shares", "-c", help="Relative CPU weight.")
    cpuset_cpus: str | None = flag("--cpuset-cpus", help="CPUs allowed (0-1, 0,2).")
    pids_limit: int | None = flag("--pids-limit", help="Maximum number of processes.")
    cap_add: list[str] = flag("--cap-add", default=[], help="Add a Linux capability (or ALL).")
    cap_drop: list[str] = flag("--cap-drop", default=[], help="Drop a Linux capability (or ALL).")
    privileged: bool = flag("--privileged", default=False, help="All capabilities, no seccomp, no masked paths.")
    security_opt: list[str] = flag(
        "--security-opt", default=[], help="seccomp=unconfined|FILE.json, no-new-privileges."
    )
    userns: str = flag("--userns", default="host", help="host, or auto: root inside is an unprivileged host user.")
    publish: list[str] = flag("--publish", "-p", default=[], help="[IP:][HOSTPORT:]PORT[/udp]: publish a port.")
    restart: str = flag("--restart", default="no", help="no, always, unless-stopped, on-failure[:N].")
    ulimit: list[str] = flag("--ulimit", default=[], help="NAME=SOFT[:HARD] resource limit (nofile=1024:2048).")
    pid: str | None = flag("--pid", help="PID namespace: host, or container:NAME to share another's.")
    ipc: str | None = flag(
        "--ipc", help="IPC namespace: private (the default), shareable, host, none or container:NAME."
    )
    device: list[str] = flag("--device", default=[], help="HOST[:CONTAINER][:PERMS]: a host device (PERMS of rwm).")
    device_cgroup_rule: list[str] = flag(
        "--device-cgroup-rule", default=[], help="A rule for the device cgroup: 'c 42:* rmw' (type major:minor access)."
    )
    sysctl: list[str] = flag("--sysctl", default=[], help="A namespaced kernel parameter: net.*, kernel.shm*, ...")
    shm_size: str | None = flag("--shm-size", help="Size of /dev/shm (e.g. 128m; default 64m).")
    log_driver: str = flag("--log-driver", default="json-file", help="json-file, local (rotated: 20m x 5) or none.")
    log_opt: list[str] = flag("--log-opt", default=[], help="A log driver option: max-size=10m, max-file=3.")
    pull: str = flag(
        "--pull",
        default="missing",
        help="Pull the image first: always, missing (when absent), never, lazy.",
    )
    platform: str | None = flag("--platform", help="os/arch[/variant] of the image to run (pulled if need be).")
    label: list[str] = flag("--label", "-l", default=[], help="Set a label on the container (K=V).")
    label_file: list[str] = flag("--label-file", default=[], help="Read labels from a file (K=V lines).")
    cidfile: str | None = flag("--cidfile", help="Write the container's ID to this file (it must not exist).")
    stop_signal: str | None = flag("--stop-signal", help="The signal stop sends (default: the image's, or SIGTERM).")
    stop_timeout: int | None = flag("--stop-timeout", help="Seconds stop waits before SIGKILL (default 10).")
    explain: bool = flag(
        "--explain", default=False, help="Narrate every kernel step on stderr."
    )  # the CLI's: it renders the events
    pause_at: str | None = flag(
        "--pause-at",
        metavar="STEP",
        help="Stop the container's PID 1 before this step (pivot_root, execve, ...) until Enter or SIGCONT.",
    )  # the CLI's too: runtime/pausing.py
