"""``minidocker-runc``: the runc-compatible command (what podman's conmon and containerd's
shim call), parsed with argparse so that each call starts fast; the work is in container.py.

    minidocker-runc [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND ...

A failure is one ``Error: ...`` line on stderr (and, with --log, one line in the log in
its format: the shims read the reason from there), exit status 125.

See it: ``minidocker-runc spec; minidocker-runc features``.
"""

from __future__ import annotations

import argparse
import json
import sys

from minidocker.errors import ExitCode, MinidockerError

DEFAULT_ROOT = "/run/minidocker-runc"


class Parser(argparse.ArgumentParser):
    """A usage error is our one-line error, not argparse's usage and exit 2."""

    def error(self, message: str):
        raise MinidockerError(message, hint=f"see: {self.prog} --help")


def parser() -> Parser:
    p = Parser(prog="minidocker-runc", description="A runc-compatible OCI runtime over minidocker's runtime.")
    p.add_argument("--root", default=DEFAULT_ROOT, help="where containers' states are kept")
    p.add_argument("--log", help="also write errors to this file")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    p.add_argument("--systemd-cgroup", action="store_true", help="refused: minidocker manages cgroupfs itself")
    p.add_argument("--version", action="store_true")
    sub = p.add_subparsers(dest="command", parser_class=Parser)
    for name in ("create", "run"):
        c = sub.add_parser(name)
        c.add_argument("--bundle", "-b", default=".")
        c.add_argument("--pid-file")
        c.add_argument("--console-socket")
        c.add_argument("--no-pivot", action="store_true")
        if name == "run":
            c.add_argument("--detach", "-d", action="store_true")
        c.add_argument("id")
    for name in ("start", "state"):
        sub.add_parser(name).add_argument("id")
    k = sub.add_parser("kill")
    k.add_argument("--all", "-a", action="store_true")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="SIGTERM")
    d = sub.add_parser("delete")
    d.add_argument("--force", "-f", action="store_true")
    d.add_argument("id")
    add_exec(sub)
    add_ops(sub)
    sub.add_parser("features")
    s = sub.add_parser("spec")
    s.add_argument("--bundle", "-b", default=".")
    return p


def add_exec(sub) -> None:
    e = sub.add_parser("exec")
    e.add_argument("--process", "-p")
    e.add_argument("--tty", "-t", action="store_true")
    e.add_argument("--console-socket")
    e.add_argument("--detach", "-d", action="store_true")
    e.add_argument("--pid-file")
    e.add_argument("--cwd")
    e.add_argument("--env", "-e", action="append")
    e.add_argument("--user", "-u")
    e.add_argument("--cap", "-c", action="append")
    e.add_argument("--no-new-privs", action="store_true")
    e.add_argument("--process-label")
    e.add_argument("--apparmor", help="refused unless empty: no AppArmor here")
    e.add_argument("--preserve-fds", type=int, default=0)
    e.add_argument("id")
    e.add_argument("args", nargs=argparse.REMAINDER)


def add_ops(sub) -> None:
    p = sub.add_parser("ps")
    p.add_argument("--format", "-f", default="table")
    p.add_argument("id")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)
    for name in ("pause", "resume"):
        sub.add_parser(name).add_argument("id")
    ev = sub.add_parser("events")
    ev.add_argument("--stats", action="store_true")
    ev.add_argument("--interval", default="5s")
    ev.add_argument("id")
    u = sub.add_parser("update")
    u.add_argument("--resources", "-r")
    for flag in ("memory", "memory-swap", "cpu-quota", "cpu-period", "cpu-shares", "cpuset-cpus", "pids-limit"):
        u.add_argument(f"--{flag}")
    u.add_argument("id")
    ls = sub.add_parser("list")
    ls.add_argument("--quiet", "-q", action="store_true")
    ls.add_argument("--format", "-f", default="table")


def dispatch_ops(args: argparse.Namespace) -> int | None:
    """The commands of oci/ops.py and oci/exec.py; None for any other."""
    from minidocker.oci import ops

    if args.command == "exec":
        return exec_command(args)
    if args.command == "ps":
        sys.stdout.write(ops.ps(args.root, args.id, args.format, [a for a in args.ps_args if a != "--"]))
    elif args.command == "pause":
        ops.pause(args.root, args.id)
    elif args.command == "resume":
        ops.resume(args.root, args.id)
    elif args.command == "events":
        ops.events(args.root, args.id, args.stats, args.interval)
    elif args.command == "update":
        flags = {k: getattr(args, k) for k in ops.RESOURCE_FLAGS}
        ops.update(args.root, args.id, args.resources, flags)
    elif args.command == "list":
        sys.stdout.write(ops.list_containers(args.root, args.quiet, args.format))
    else:
        return None
    return 0


def exec_command(args: argparse.Namespace) -> int:
    from minidocker.oci.exec import ExecOptions, exec_process

    if args.apparmor:
        raise MinidockerError("--apparmor is not supported: no AppArmor here")
    argv = args.args[1:] if args.args[:1] == ["--"] else args.args
    opts = ExecOptions(**vars(args) | {"args": argv})
    return exec_process(args.root, args.id, opts, args.console_socket, args.pid_file, args.detach)


def dispatch(args: argparse.Namespace) -> int:
    from minidocker.oci import container

    if args.systemd_cgroup:
        raise MinidockerError("--systemd-cgroup is not supported: minidocker-runc manages cgroupfs itself")
    if args.command in ("create", "run") and args.no_pivot:
        raise MinidockerError("--no-pivot is not supported: minidocker-runc always uses pivot_root")
    done = dispatch_ops(args)
    if done is not None:
        return done
    if args.command == "create":
        container.create(args.root, args.id, args.bundle, args.pid_file, args.console_socket)
    elif args.command == "run":
        return container.run(args.root, args.id, args.bundle, args.pid_file, args.console_socket, args.detach)
    elif args.command == "start":
        container.start(args.root, args.id)
    elif args.command == "state":
        print(json.dumps(container.oci_state(args.root, args.id), indent=2))
    elif args.command == "kill":
        from minidocker.runtime.spec import parse_signal

        container.kill(args.root, args.id, parse_signal(args.signal), args.all)
    elif args.command == "delete":
        container.delete(args.root, args.id, args.force)
    elif args.command == "features":
        print(json.dumps(features(), indent=2))
    elif args.command == "spec":
        write_spec(args.bundle)
    else:
        raise MinidockerError("no command given", hint="see: minidocker-runc --help")
    return 0


def write_spec(bundle: str) -> None:
    import os

    from minidocker.oci.bundle import default_config

    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise MinidockerError(f"File {path} exists. Remove it first")
    with open(path, "x") as f:
        json.dump(default_config(), f, indent=2)
        f.write("\n")


COMMANDS = "create,start,state,kill,delete,run,exec,ps,pause,resume,events,update,list,features,spec"


def features() -> dict:
    """What this runtime honours, in the runtime spec's features.md form."""
    from minidocker.linux.capabilities import CAP_NUMBERS
    from minidocker.oci.bundle import MOUNT_FLAGS, NAMESPACE_KINDS, OCI_VERSION, PROPAGATIONS

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted({*MOUNT_FLAGS, *PROPAGATIONS, "bind", "rbind"}),
        "linux": {
            "namespaces": [k for k in NAMESPACE_KINDS if k != "time"],
            "capabilities": sorted(CAP_NUMBERS),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True},
        },
        "annotations": {"io.github.minidocker.runtime": "minidocker-runc", "io.github.minidocker.commands": COMMANDS},
    }


def report(e: MinidockerError, args: argparse.Namespace | None) -> None:
    """The one error line on stderr, and in --log as the shims read it."""
    print(f"Error: {e.message}", file=sys.stderr)
    if e.hint:
        print(f"hint: {e.hint}", file=sys.stderr)
    if args is not None:
        log_line(args, "error", e.message)


def log_line(args: argparse.Namespace, level: str, message: str) -> None:
    """One line in --log, in --log-format (the shims read runc's log so)."""
    if not args.log:
        return
    from minidocker.runtime.logfile import now_iso

    line = (
        json.dumps({"level": level, "msg": message, "time": now_iso()})
        if args.log_format == "json"
        else f'time="{now_iso()}" level={level} msg="{message}"'
    )
    try:
        with open(args.log, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = None
    argv = sys.argv[1:] if argv is None else argv
    if "create" in argv or "run" in argv:  # the kernel's wait for a first cgroup move, begun now (as cli/main.py does)
        from minidocker.linux.hasten import hasten_moves

        hasten_moves()
    try:
        args = parser().parse_args(argv)
        if args.version:
            from minidocker import __version__

            print(f"minidocker-runc version {__version__}\nspec: 1.0.2")
            return 0
        return dispatch(args)
    except MinidockerError as e:
        if args is not None and args.debug:
            raise
        report(e, args)
        return e.exit_code
    except OSError as e:
        if args is not None and args.debug:
            raise
        report(MinidockerError(f"{e.strerror}: {e.filename}" if e.filename else str(e)), args)
        return ExitCode.MINIDOCKER_FAILED


def entry() -> None:
    sys.exit(main())
