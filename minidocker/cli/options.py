"""``run``'s flags as the command line sees them, made from the one description of them:
the fields of ``RunOptions`` (``minidocker/options.py``, re-exported by ``api``).

Two parsers read a ``run`` line, and both are made here from those fields, so they cannot
drift apart:

* ``RUN_FLAGS``, every spelling of every flag -> (field name, kind), is the table of the fast
  parser (``cli/fastpath.py``), which starts a container without importing typer;
* ``with_run_flags`` gives the typer command (``cli/run.py``) one ``typer.Option`` per field,
  with its spellings, default and help, so ``minidocker run --help`` lists them all.

``tests/unit/test_cli_fastpath.py`` checks that the two accept the same flags.
"""

from __future__ import annotations

from collections.abc import Callable

from minidocker.api import MISSING, Field, RunOptions, fields, kind_of

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    from typing import Any

# flag -> (destination, kind); kind: "bool", "str", "int", "float" or "list"
RUN_FLAGS: dict[str, tuple[str, str]] = {
    name: (f.name, kind_of(f)) for f in fields(RunOptions) for name in f.metadata["names"]
}


def with_run_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command(image, args, **flags)`` as typer shall see it: its ``**flags`` replaced by one
    keyword parameter per RunOptions field (typer reads ``__signature__``)."""
    import inspect

    signature = inspect.signature(command)
    fixed = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    flags = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=_typer_option(f), annotation=_typer_type(f))
        for f in fields(RunOptions)
    ]
    command.__signature__ = signature.replace(parameters=fixed + flags)
    return command


def _typer_option(f: Field) -> Any:
    import typer

    default = [] if f.default is MISSING else f.default  # (only lists have a default_factory)
    return typer.Option(default, *f.metadata["names"], help=f.metadata["help"], metavar=f.metadata["metavar"])


def _typer_type(f: Field) -> Any:
    """The annotation typer turns into a click type: ``Optional[T]`` for a value that may be
    absent, ``List[str]`` for a repeatable flag."""
    from typing import Optional

    kind = kind_of(f)
    if kind == "list":
        return list[str]
    t = {"bool": bool, "str": str, "int": int, "float": float}[kind]
    return Optional[t] if f.default is None else t  # noqa: UP045 - a runtime type object for typer
