"""docker's ``--format`` flag: a Go template per row, ``table`` with headers, ``json``.

Every listing command (``ps``, ``images``, ``network ls``, ``volume ls``, ``history``,
``stats``, ``system df``) and every ``inspect`` accepts ``--format``, with the same rules as
docker's ``cli/command/formatter``:

- ``\\t`` and ``\\n`` written in the format are a tab and a newline (shells pass them as two
  characters);
- ``json`` is ``{{json .}}``: one JSON object per row;
- ``table TEMPLATE`` prints a header row first, each field's column title (``{{.ID}}`` is
  ``CONTAINER ID`` in ``ps``), and aligns the tab-separated cells as Go's ``tabwriter``
  does (min width 10, padding 3);
- anything else is a template executed for each row, each followed by a newline.

The whole output is made before anything is printed: a template that fails on the third row
prints nothing but its one ``Error: template parsing error: ...`` line (exit 125).

See it: ``minidocker ps -a --format 'table {{.Names}}\\t{{.Status}}'``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from minidocker.cli.gotemplate import FUNCS, Struct, Template, TemplateError, show
from minidocker.errors import TemplateParsingError

__all__ = ["TemplateParsingError", "compile_template", "execute", "format_rows", "struct", "tabwrite"]


def compile_template(fmt: str, funcs: dict[str, Callable] | None = None) -> Template:
    """The template of a ``--format`` value (``\\t``/``\\n`` made real), or the one error."""
    try:
        return Template(fmt.replace("\\t", "\t").replace("\\n", "\n"), funcs)
    except TemplateError as e:
        raise TemplateParsingError(f"template parsing error: {e}") from None


def execute(tmpl: Template, data: Any) -> str:
    try:
        return tmpl.execute(data)
    except TemplateError as e:
        raise TemplateParsingError(f"template parsing error: {e}") from None
    except RecursionError:
        raise TemplateParsingError("template parsing error: template nests too deeply") from None


def check_format(fmt: str | None) -> None:
    """Fail on a bad ``--format`` before anything is read or printed (docker parses first)."""
    if fmt not in (None, "", "table", "json"):
        compile_template(fmt[len("table") :] if is_table(fmt) else fmt)


def format_document(fmt: str, doc: Any) -> str:
    """One document (``info``, ``version``) under ``--format``: ``json`` or a template."""
    if fmt == "json":
        return json.dumps(doc) + "\n"
    return execute(compile_template(fmt), doc) + "\n"


def is_table(fmt: str | None) -> bool:
    return fmt is not None and fmt.startswith("table")


def format_rows(fmt: str, rows: Iterable[Any], headers: dict[str, str]) -> str:
    """The text of ``rows`` under a ``--format`` value: ``json``, ``table ...`` or a template."""
    if fmt == "json":
        fmt = "{{json .}}"
    table = is_table(fmt)
    body = fmt[len("table") :].strip(" ") if table else fmt
    tmpl = compile_template(body)
    text = "".join(execute(tmpl, row) + "\n" for row in rows)
    if not table:
        return text
    return tabwrite(header_line(body, headers) + "\n" + text)


HEADER_FUNCS: dict[str, Callable] = {  # docker's: a function in a header shows its first argument
    name: (lambda v, *rest: show(v)) for name in ("json", "split", "join", "title", "lower", "upper", "pad", "truncate")
}


def header_line(body: str, headers: dict[str, str]) -> str:
    """The table's first row: the template executed on the column titles (``.ID`` ->
    ``CONTAINER ID``); a field that takes arguments (``.Label "k"``) shows its title too."""
    titles: dict[str, Any] = {}
    for name, title in headers.items():
        titles[name] = title
        if name.endswith("()"):
            titles[name[:-2]] = lambda *a, t=title: t
    try:
        return Template(body.replace("\\t", "\t").replace("\\n", "\n"), {**FUNCS, **HEADER_FUNCS}).execute(titles)
    except TemplateError:
        return ""  # docker ignores a header that fails: the rows tell the error


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's ``text/tabwriter`` as docker sets it up (``NewWriter(out, 10, 1, 3, ' ', 0)``):
    a tab ends a cell; the cells of one column, over a block of consecutive lines that all
    have that column, are padded to the widest plus ``padding``, at least ``minwidth``. The
    text after a line's last tab is not a cell and is not aligned."""
    lines = [line.split("\t") for line in text.split("\n")]
    trailing = lines.pop() if lines and lines[-1] == [""] else None
    widths: list[int] = []
    out: list[str] = []
    _format_block(lines, 0, len(lines), widths, minwidth, padding, out)
    return "\n".join(out) + ("\n" if trailing is not None else "")


def _format_block(lines, line0: int, line1: int, widths: list[int], minwidth: int, padding: int, out) -> None:
    """Go's ``Writer.format``: find the blocks of lines that have cell ``len(widths)``, size
    that column over each block, and recurse to the columns to its right."""
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        _write_lines(lines, line0, this, widths, out)
        line0, width = this, minwidth
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + padding)
            this += 1
        widths.append(width)
        _format_block(lines, line0, this, widths, minwidth, padding, out)
        widths.pop()
        line0 = this
    _write_lines(lines, line0, line1, widths, out)


def _write_lines(lines, line0: int, line1: int, widths: list[int], out: list[str]) -> None:
    for cells in lines[line0:line1]:
        text = "".join(c.ljust(widths[j]) if j < len(widths) else c for j, c in enumerate(cells))
        out.append(text)


def struct(type_name: str, fields: dict[str, Any]) -> Struct:
    """A row as docker's formatter sees it: a Go struct named ``type_name`` (a field it lacks
    is an error) whose fields are ``fields`` (a callable is a method: ``.Label "k"``)."""
    row = Struct(fields)
    row.type_name = type_name
    return row


def print_text(text: str) -> None:
    import sys

    sys.stdout.write(text)
    sys.stdout.flush()
