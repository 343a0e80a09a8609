"""``minidocker run [OPTIONS] IMAGE [COMMAND] [ARG...]``"""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from minidocker import api
from minidocker.cli import render
from minidocker.cli.app import app, state

ARGS_AFTER_IMAGE = {"allow_interspersed_args": False, "ignore_unknown_options": True}


@app.command(context_settings=ARGS_AFTER_IMAGE, help="Create and run a new container from an image.")
def run(
    image: str = typer.Argument(..., metavar="IMAGE"),
    args: List[str] = typer.Argument(None, metavar="[COMMAND] [ARG...]"),
    interactive: bool = typer.Option(False, "--interactive", "-i", help="Keep STDIN open."),
    tty: bool = typer.Option(False, "--tty", "-t", help="Allocate a pseudo-TTY."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background, print the ID."),
    rm: bool = typer.Option(False, "--rm", help="Remove the container when it exits."),
    name: Optional[str] = typer.Option(None, "--name", help="Assign a name."),
    env: List[str] = typer.Option([], "--env", "-e", help="Set an environment variable (K=V)."),
    env_file: List[str] = typer.Option([], "--env-file", help="Read environment variables from a file."),
    workdir: Optional[str] = typer.Option(None, "--workdir", "-w", help="Working directory inside."),
    user: Optional[str] = typer.Option(None, "--user", "-u", help="USER[:GROUP] (name or number)."),
    hostname: Optional[str] = typer.Option(None, "--hostname", "-h", help="Container host name."),
    entrypoint: Optional[str] = typer.Option(None, "--entrypoint", help="Overwrite the image's ENTRYPOINT."),
    volume: List[str] = typer.Option([], "--volume", "-v", help="Bind mount HOST:CONTAINER[:ro]."),
    init: bool = typer.Option(False, "--init", help="Run a reaping init as PID 1."),
    network: str = typer.Option("default", "--network", "--net", help="none or host."),
    read_only: bool = typer.Option(False, "--read-only", help="Mount the root filesystem read-only."),
    tmpfs: List[str] = typer.Option([], "--tmpfs", help="Mount a tmpfs at PATH[:OPTIONS]."),
    memory: Optional[str] = typer.Option(None, "--memory", "-m", help="Memory limit (e.g. 64m)."),
    memory_swap: Optional[str] = typer.Option(None, "--memory-swap", help="Memory + swap limit; -1 unlimited."),
    cpus: Optional[float] = typer.Option(None, "--cpus", help="Number of CPUs (a CFS quota)."),
    cpu_shares: Optional[int] = typer.Option(None, "--cpu-shares", "-c", help="Relative CPU weight."),
    cpuset_cpus: Optional[str] = typer.Option(None, "--cpuset-cpus", help="CPUs allowed (0-1, 0,2)."),
    pids_limit: Optional[int] = typer.Option(None, "--pids-limit", help="Maximum number of processes."),
    cap_add: List[str] = typer.Option([], "--cap-add", help="Add a Linux capability (or ALL)."),
    cap_drop: List[str] = typer.Option([], "--cap-drop", help="Drop a Linux capability (or ALL)."),
    privileged: bool = typer.Option(False, "--privileged", help="All capabilities, no seccomp, no masked paths."),
    security_opt: List[str] = typer.Option([], "--security-opt", help="seccomp=unconfined|FILE.json, no-new-privileges."),
    userns: str = typer.Option("host", "--userns", help="host, or auto: root inside is an unprivileged host user."),
    publish: List[str] = typer.Option([], "--publish", "-p", help="[IP:][HOSTPORT:]PORT[/udp]: publish a port."),
    restart: str = typer.Option("no", "--restart", help="no, always, unless-stopped, on-failure[:N]."),
    explain: bool = typer.Option(False, "--explain", help="Narrate every kernel step on stderr."),
) -> None:
    if tty and interactive and not sys.stdin.isatty():
        render.error("the input device is not a TTY")
        raise typer.Exit(1)
    if explain:
        render.explain_to_stderr()
    with render.PullProgress(quiet=False) as progress:
        pulled = []
        result = api.run(image, args or [], root=state.root, name=name, entrypoint=entrypoint, env=env,
                         env_files=env_file, workdir=workdir, user=user, hostname=hostname, tty=tty,
                         interactive=interactive, detach=detach, auto_remove=rm, init=init, network=network,
                         volumes=volume, read_only=read_only, tmpfs=tmpfs, memory=memory, memory_swap=memory_swap,
                         cpus=cpus, cpu_shares=cpu_shares, cpuset_cpus=cpuset_cpus, pids_limit=pids_limit,
                         cap_add=cap_add, cap_drop=cap_drop, privileged=privileged, security_opt=security_opt,
                         userns=userns, publish=publish, restart=restart, progress=progress,
                         on_pull=lambda ref: (pulled.append(ref),
                                              progress._line(f"Unable to find image '{ref}' locally")),
                         on_created=lambda cid: progress.stop())
    if detach:
        print(result)
        return
    raise typer.Exit(int(result))
