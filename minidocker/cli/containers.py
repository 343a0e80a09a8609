"""``ps``, ``logs``, ``stop``, ``kill``, ``rm``, ``wait``, ``container prune``, ``inspect``."""

from __future__ import annotations

import json
import sys

import typer

from minidocker import api
from minidocker.cli import render
from minidocker.cli.app import app, state
from minidocker.cli.manage import add_inspect, management_app
from minidocker.errors import MinidockerError


@app.command(help="List containers.")
def ps(
    all: bool = typer.Option(False, "--all", "-a", help="Show all containers (default shows just running)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only display container IDs."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output."),
    fmt: str | None = typer.Option(None, "--format", help="'table', 'json', 'table TEMPLATE' or a Go template."),
    filters: list[str] = typer.Option([], "--filter", "-f", help="Filter output based on conditions provided."),
    last: int = typer.Option(-1, "--last", "-n", help="Show n last created containers (includes all states)."),
    latest: bool = typer.Option(False, "--latest", "-l", help="Show the latest created container (all states)."),
    size: bool = typer.Option(False, "--size", "-s", help="Display total file sizes."),
) -> None:
    from minidocker.cli import formatter, listing

    wanted = listing.parse_filters(filters, listing.PS_FILTERS)
    formatter.check_format(fmt)
    if latest:
        last = 1
    rows = api.ps(all=all or last > 0 or "status" in wanted, root=state.root, size=size or _asks_size(fmt))
    rows = listing.filter_containers(rows, wanted, _image_chain)
    if last > 0:
        rows = rows[:last]
    if quiet:
        formatter.print_text("".join((r["ID"] if no_trunc else r["ID"][:12]) + "\n" for r in rows))
        return
    if fmt in (None, "", "table"):
        fmt = _PS_TABLE + ("\t{{.Size}}" if size else "")
    contexts = [listing.ps_struct(r, trunc=not no_trunc) for r in rows]
    formatter.print_text(formatter.format_rows(fmt, contexts, listing.PS_HEADERS))


_PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def _image_chain(ref: str) -> tuple[str | None, str | None]:
    """``ancestor=REF``: the image and its top layer; an unknown image matches nothing
    (docker only warns), but a container whose image was named REF still matches."""
    try:
        return api.image_chain(ref, root=state.root)
    except MinidockerError:
        return None, None


def _asks_size(fmt: str | None) -> bool:
    return fmt is not None and ".Size" in fmt  # docker's rule: sizes only when the template shows them


def _each(names: list[str], action) -> None:
    """Run ``action([name])`` for each name, printing what it yields, as docker does; on an
    error print it and go on with the next name; exit 1 at the end if any failed."""
    failed = False
    for name in names:
        try:
            for out in action([name]):
                print(out)
        except MinidockerError as e:
            render.error(e)
            failed = True
    if failed:
        raise typer.Exit(1)


@app.command(help="Fetch the logs of a container.")
def logs(
    container: str,
    follow: bool = typer.Option(False, "--follow", "-f", help="Follow log output."),
    tail: str | None = typer.Option(None, "--tail", "-n", help="Number of lines from the end ('all')."),
    timestamps: bool = typer.Option(False, "--timestamps", "-t", help="Show timestamps."),
    since: str | None = typer.Option(
        None, "--since", help="Since a time (2024-05-01T10:00:00Z, 1714557600) or for 42m."
    ),
    until: str | None = typer.Option(
        None, "--until", help="Before a time (2024-05-01T10:00:00Z, 1714557600) or 42m ago."
    ),
    details: bool = typer.Option(False, "--details", help="Show the extra attributes given to the log."),
) -> None:
    n = None if tail in (None, "all") else int(tail)
    # --details: a record's attributes (docker's --log-opt labels/env, none here) and a space
    prefix = " " if details else ""
    for stream, when, line in api.logs(container, root=state.root, follow=follow, tail=n, since=since, until=until):
        out = sys.stdout if stream == "stdout" else sys.stderr
        out.write((when + " " if timestamps else "") + prefix + line)
        out.flush()


@app.command(help="Stop one or more running containers (SIGTERM, then SIGKILL).")
def stop(
    containers: list[str],
    time: int | None = typer.Option(
        None, "--time", "-t", help="Seconds to wait before killing (default: its --stop-timeout, else 10)."
    ),
    signal: str | None = typer.Option(
        None, "--signal", "-s", help="The signal to send (default: its --stop-signal, else SIGTERM)."
    ),
) -> None:
    _each(containers, lambda names: api.stop(names, timeout=time, root=state.root, signal_name=signal))


@app.command(help="Kill one or more running containers.")
def kill(containers: list[str], signal: str = typer.Option("KILL", "--signal", "-s")) -> None:
    _each(containers, lambda names: api.kill(names, sig=signal, root=state.root))


@app.command(
    help="Copy files between a container and the host: cp C:SRC DEST, or cp SRC C:DEST. "
    "SRC - reads a tar from stdin (into a directory C:DEST); DEST - writes a tar to stdout."
)
def cp(
    src: str,
    dest: str,
    archive: bool = typer.Option(False, "--archive", "-a", help="Archive mode (copy all uid/gid information)."),
) -> None:
    api.cp(src, dest, root=state.root, archive=archive, stdin=sys.stdin.buffer, stdout=sys.stdout.buffer)


@app.command(help="Rename a container.")
def rename(container: str, new_name: str) -> None:
    api.rename(container, new_name, root=state.root)


@app.command(help="List a container's published ports.")
def port(container: str) -> None:
    for line in api.port(container, root=state.root):
        print(line)


@app.command(
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
    help="Show the processes of a container: top CONTAINER [ps OPTIONS].",
)
def top(container: str, ps_options: list[str] = typer.Argument(None, metavar="[ps OPTIONS]")) -> None:
    if ps_options:
        print(api.top_ps(container, ps_options, root=state.root), end="")
        return
    rows = api.top(container, root=state.root)
    print(f"{'UID':<10}{'PID':<9}{'PPID':<9}CMD")
    for r in rows:
        print(f"{r['UID']:<10}{r['PID']:<9}{r['PPID']:<9}{r['CMD']}")


@app.command(help="Pause all processes within one or more containers (cgroup freezer).")
def pause(containers: list[str]) -> None:
    _each(containers, lambda names: api.pause(names, root=state.root))


@app.command(help="Unpause all processes within one or more containers.")
def unpause(containers: list[str]) -> None:
    _each(containers, lambda names: api.unpause(names, root=state.root))


@app.command(help="Remove one or more containers.")
def rm(
    containers: list[str],
    force: bool = typer.Option(False, "--force", "-f", help="Kill a running one first."),
    volumes: bool = typer.Option(False, "--volumes", "-v", help="Remove its anonymous volumes too."),
) -> None:
    _each(containers, lambda names: api.rm(names, force=force, root=state.root, volumes=volumes))


@app.command(help="Block until containers stop, then print their exit codes.")
def wait(containers: list[str]) -> None:
    _each(containers, lambda names: api.wait(names, root=state.root))


container_app = management_app("container")
add_inspect(container_app, "container", "{{.State.Pid}}", sizes=True)


@container_app.command("prune", help="Remove all stopped containers.")
def container_prune(force: bool = typer.Option(False, "--force", "-f")) -> None:
    removed = api.prune(root=state.root)
    if removed:
        print("Deleted Containers:")
        for r in removed:
            print(r)
    print(f"Total reclaimed containers: {len(removed)}")


@app.command(
    "exec",
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
    help="Run a command in a running container.",
)
def exec_(
    container: str,
    command: list[str] = typer.Argument(..., metavar="COMMAND [ARG...]"),
    interactive: bool = typer.Option(False, "--interactive", "-i"),
    tty: bool = typer.Option(False, "--tty", "-t"),
    env: list[str] = typer.Option([], "--env", "-e"),
    workdir: str | None = typer.Option(None, "--workdir", "-w"),
    user: str | None = typer.Option(None, "--user", "-u"),
) -> None:
    raise typer.Exit(
        api.exec_(
            container, command, root=state.root, env=env, workdir=workdir, user=user, tty=tty, interactive=interactive
        )
    )


@app.command(help="Start one or more stopped containers.")
def start(
    containers: list[str],
    attach: bool = typer.Option(False, "--attach", "-a", help="Attach stdout/stderr, wait, exit with its code."),
    interactive: bool = typer.Option(False, "--interactive", "-i", help="Attach stdin too (implies -a)."),
) -> None:
    if attach or interactive:
        if len(containers) != 1:
            raise typer.BadParameter("you cannot start and attach multiple containers at once")
        raise typer.Exit(api.start_attached(containers[0], root=state.root))
    _each(containers, lambda names: api.start(names, root=state.root))


@app.command(help="Attach local standard input, output, and error streams to a running container.")
def attach(
    container: str,
    no_stdin: bool = typer.Option(False, "--no-stdin", help="Do not attach STDIN."),
    detach_keys: str | None = typer.Option(
        None, "--detach-keys", help="The key sequence that detaches (default: ctrl-p,ctrl-q)."
    ),
    sig_proxy: str = typer.Option("true", "--sig-proxy", help="Proxy received signals to the process (true|false)."),
) -> None:
    raise typer.Exit(
        api.attach(
            container, root=state.root, stdin=not no_stdin, detach_keys=detach_keys, sig_proxy=boolean(sig_proxy)
        )
    )


def boolean(text: str) -> bool:
    """A docker boolean flag's value, as scripts give it: ``--sig-proxy=false``."""
    if text.lower() in ("true", "1", "t"):
        return True
    if text.lower() in ("false", "0", "f"):
        return False
    raise MinidockerError(f'invalid argument "{text}": strconv.ParseBool: parsing "{text}": invalid syntax')


@app.command(help="Update the resource limits (and restart policy) of one or more containers.")
def update(
    containers: list[str],
    memory: str | None = typer.Option(None, "--memory", "-m", help="Memory limit (e.g. 64m)."),
    memory_swap: str | None = typer.Option(None, "--memory-swap", help="Memory + swap limit; -1 unlimited."),
    cpus: float | None = typer.Option(None, "--cpus", help="Number of CPUs (a CFS quota)."),
    cpu_shares: int | None = typer.Option(None, "--cpu-shares", "-c", help="Relative CPU weight."),
    cpuset_cpus: str | None = typer.Option(None, "--cpuset-cpus", help="CPUs allowed (0-1, 0,2)."),
    pids_limit: int | None = typer.Option(None, "--pids-limit", help="Maximum number of processes (-1: none)."),
    restart: str | None = typer.Option(None, "--restart", help="no, always, unless-stopped, on-failure[:N]."),
) -> None:
    flags = {
        "memory": memory,
        "memory_swap": memory_swap,
        "cpus": cpus,
        "cpu_shares": cpu_shares,
        "cpuset_cpus": cpuset_cpus,
        "pids_limit": pids_limit,
        "restart": restart,
    }
    _each(containers, lambda names: api.update(names, flags, root=state.root))


@app.command(help="Restart one or more containers.")
def restart(
    containers: list[str],
    time: int | None = typer.Option(
        None, "--time", "-t", help="Seconds to wait (default: its --stop-timeout, else 10)."
    ),
) -> None:
    _each(containers, lambda names: api.restart(names, timeout=time, root=state.root))


@app.command(help="Display a live stream of containers' resource usage.")
def stats(
    containers: list[str] | None = typer.Argument(None),
    no_stream: bool = typer.Option(False, "--no-stream", help="Print one sample and exit."),
    fmt: str | None = typer.Option(None, "--format", help="'json' for one JSON object per line, or a Go template."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output."),
) -> None:
    from minidocker.cli import formatter, listing

    if fmt == "json":
        rows = api.stats(containers or None, root=state.root)
        formatter.print_text("".join(json.dumps(r) + "\n" for r in rows))
        return
    if fmt not in (None, "", "table"):
        formatter.check_format(fmt)

        def sample() -> str:
            rows = api.stats(containers or None, root=state.root)
            return formatter.format_rows(fmt, [listing.stats_struct(r) for r in rows], listing.STATS_HEADERS)

        if no_stream:
            formatter.print_text(sample())
        else:
            render.stream(sample)
        return
    if no_stream:
        render.table(*render.stats_table(api.stats(containers or None, root=state.root)))
        return
    render.live(lambda: render.stats_table(api.stats(containers or None, root=state.root)))
