"""Go's text/template language, the one docker's ``--format`` speaks, in a small engine.

A template is text with *actions* between ``{{`` and ``}}``. The engine works in the three
steps of Go's own package (``text/template/parse`` and ``text/template``):

1. **lex**: cut the text into plain text and actions; ``{{-`` and ``-}}`` trim the white
   space before and after an action (``{{- .Name -}}``).
2. **parse**: the actions become a tree. A *pipeline* is commands joined by ``|``; each
   command is a function with arguments (``join .Args ","``) or one operand (``.State.Pid``),
   and the value of each command is passed as the last argument of the next one
   (``{{.Name | upper}}`` is ``{{upper .Name}}``). ``if``, ``range`` and ``with`` open blocks that
   ``{{else}}`` splits and ``{{end}}`` closes; ``{{$v := ...}}`` declares a variable that lives
   until the end of its block.
3. **execute**: walk the tree against the data, ``.`` (*dot*) being the current value; a
   field of a map is its key (a missing key is ``<no value>``), ``range`` moves dot over a
   list or over a map's values in the order of its sorted keys.

Values print as Go's ``fmt`` prints them, which is what docker users see: lists as
``[a b]``, maps as ``map[k:v]`` with sorted keys, ``true``/``false``, ``<nil>``.
The functions are Go's built-ins (``and or not len index slice eq ne lt le gt ge print printf
println``) and docker's own (``json split join title lower upper pad truncate``).

See it: ``minidocker inspect -f '{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}' c1``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class TemplateError(Exception):
    """A template that does not parse, or that fails while executing, in Go's words."""


class _Missing:
    """The value of a map key that is not there: prints ``<no value>``, and is false."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


class Struct(dict):
    """A dict that stands for a Go struct: a field it lacks is an error, not ``<no value>``
    (docker's ``ps`` and ``images`` rows are structs; its ``inspect`` documents are maps)."""

    type_name = "struct"


# -- 1. lex ---------------------------------------------------------------------------------
TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\\n]|\\.)*") | (?P<raw>`[^`]*`) | (?P<char>'(?:[^'\\]|\\.)+')
    | (?P<num>[-+]?(?:0[xX][0-9a-fA-F_]+|\d[\d_]*(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))
    | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+) | (?P<dot>\.) | (?P<var>\$[A-Za-z0-9_]*)
    | (?P<decl>:=) | (?P<assign>=) | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>[|(),])
    )""",
    re.VERBOSE,
)


@dataclass
class Tok:
    kind: str
    text: str
    spaced: bool = False  # white space before it: ``$x .F`` is two operands, ``$x.F`` one


def lex(src: str) -> list[tuple[Any, ...]]:
    """``("text", s)`` and ``("action", [Tok...], line)`` items, trim markers applied."""
    items: list[tuple[Any, ...]] = []
    pos, trim_next = 0, False
    while True:
        start = src.find("{{", pos)
        text = src[pos:] if start < 0 else src[pos:start]
        trim_prev = start >= 0 and src[start + 2 : start + 3] == "-" and src[start + 3 : start + 4] in " \t\r\n"
        if trim_next:
            text = text.lstrip(" \t\r\n")
        if trim_prev:
            text = text.rstrip(" \t\r\n")
        if text:
            items.append(("text", text))
        if start < 0:
            return items
        line = src.count("\n", 0, start) + 1
        inner_start = start + (3 if trim_prev else 2)
        end = _action_end(src, inner_start, line)
        trim_next = src[end - 1 : end] == "-" and src[end - 2 : end - 1] in " \t\r\n" and end - 1 >= inner_start
        inner = src[inner_start : end - 1 if trim_next else end]
        pos = end + 2
        if inner.strip().startswith("/*"):
            if not inner.strip().endswith("*/"):
                raise TemplateError(f"template: :{line}: unclosed comment")
            continue
        items.append(("action", _tokens(inner, line), line))


def _action_end(src: str, i: int, line: int) -> int:
    """Where the action's ``}}`` starts (strings may hold a ``}}``)."""
    quote = None
    while i < len(src):
        ch = src[i]
        if quote:
            if ch == "\\" and quote != "`":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif src.startswith("}}", i):
            return i
        i += 1
    raise TemplateError(f"template: :{line}: unclosed action")


def _tokens(inner: str, line: int) -> list[Tok]:
    toks, pos = [], 0
    while inner[pos:].strip():
        m = TOKEN.match(inner, pos)
        if not m or m.end() == pos:
            bad = inner[pos:].strip()[:1]
            raise TemplateError(f"template: :{line}: unexpected {bad!r} in command")
        kind = m.lastgroup or ""
        toks.append(Tok(kind, m.group(kind), m.start(kind) > pos))
        pos = m.end()
    return toks


# -- 2. parse -------------------------------------------------------------------------------
@dataclass
class Operand:
    """One argument: a field chain on dot, a variable (with a chain), a literal, a function
    name, or a parenthesised pipeline (with a chain)."""

    kind: str  # "field", "var", "lit", "func", "pipe"
    value: Any = None
    chain: list[str] = field(default_factory=list)
    text: str = ""


@dataclass
class Pipeline:
    decl: list[str]
    assign: bool
    cmds: list[list[Operand]]
    line: int = 1


@dataclass
class Node:
    """A piece of the tree: ``text``, ``action`` (a pipeline to print), or a block
    (``if``/``range``/``with``) with its ``body`` and ``orelse`` lists."""

    kind: str
    text: str = ""
    pipe: Pipeline | None = None
    body: list[Node] = field(default_factory=list)
    orelse: list[Node] = field(default_factory=list)


BLOCKS = ("if", "range", "with")


def parse(src: str) -> list[Node]:
    """The template's tree; ``TemplateError`` in Go's words if it does not parse."""
    items = lex(src)
    nodes, stop, _ = _parse_list(items, 0, None)
    if stop < len(items):
        toks, line = items[stop][1], items[stop][2]
        raise TemplateError(f"template: :{line}: unexpected {{{{{toks[0].text}}}}}")
    return nodes


def _parse_list(items, i: int, block: str | None, loop: bool = False) -> tuple[list[Node], int, str]:
    """Nodes up to the ``{{end}}`` or ``{{else}}`` of ``block`` (returned as where it stops);
    ``loop``: inside a ``range``, where ``{{break}}`` and ``{{continue}}`` may stand."""
    nodes: list[Node] = []
    while i < len(items):
        item = items[i]
        if item[0] == "text":
            nodes.append(Node("text", text=item[1]))
            i += 1
            continue
        toks, line = item[1], item[2]
        if not toks:
            raise TemplateError(f"template: :{line}: missing value for command")
        word = toks[0].text if toks[0].kind == "word" else ""
        if word in ("end", "else"):
            if block is None:
                raise TemplateError(f"template: :{line}: unexpected {{{{{word}}}}}")
            return nodes, i, word
        if word in BLOCKS:
            node, i = _parse_block(items, i, word, loop)
            nodes.append(node)
            continue
        if word in ("break", "continue"):
            if not loop or len(toks) > 1:
                raise TemplateError(f"template: :{line}: {{{{{word}}}}} outside {{{{range}}}}")
            nodes.append(Node(word))
        else:
            nodes.append(Node("action", pipe=_parse_pipeline(toks, line)))
        i += 1
    if block is not None:
        raise TemplateError(f"template: :{items[-1][2] if items[-1][0] == 'action' else 1}: unexpected EOF")
    return nodes, i, ""


def _parse_block(items, i: int, word: str, loop: bool = False) -> tuple[Node, int]:
    """``{{if P}} body {{else if Q}} ... {{else}} orelse {{end}}`` (the same for range, with)."""
    toks, line = items[i][1], items[i][2]
    if len(toks) < 2:
        raise TemplateError(f"template: :{line}: missing value for {word}")
    node = Node(word, pipe=_parse_pipeline(toks[1:], line))
    node.body, i, stop = _parse_list(items, i + 1, word, loop or word == "range")
    if stop == "else":
        else_toks = items[i][1]
        if len(else_toks) > 1 and else_toks[1].kind == "word" and else_toks[1].text in ("if", "with"):
            items = list(items)  # ``else if`` is an ``if`` inside the else, closed by the same end
            items[i] = ("action", else_toks[1:], items[i][2])
            inner, i = _parse_block(items, i, else_toks[1].text, loop)
            node.orelse = [inner]
            return node, i
        if len(else_toks) > 1:
            raise TemplateError(f"template: :{items[i][2]}: unexpected {else_toks[1].text!r} in else")
        node.orelse, i, stop = _parse_list(items, i + 1, word, loop)
        if stop == "else":
            raise TemplateError(f"template: :{items[i][2]}: expected end; found {{{{else}}}}")
    return node, i + 1


def _parse_pipeline(toks: list[Tok], line: int) -> Pipeline:
    decl: list[str] = []
    assign = False
    if toks and toks[0].kind == "var":  # $x := ..., $i, $v := ..., $x = ...
        j, names = 0, []
        while j + 1 < len(toks) and toks[j].kind == "var" and toks[j + 1].text in (":=", "=", ","):
            names.append(toks[j].text)
            if toks[j + 1].text != ",":
                assign = toks[j + 1].text == "="
                decl, toks = names, toks[j + 2 :]
                break
            j += 2
    cmds: list[list[Operand]] = [[]]
    j = 0
    while j < len(toks):
        t = toks[j]
        if t.text == "|" and t.kind == "op":
            if not cmds[-1]:
                raise TemplateError(f"template: :{line}: missing command")
            cmds.append([])
            j += 1
            continue
        operand, j = _parse_operand(toks, j, line)
        cmds[-1].append(operand)
    if not cmds[-1]:
        raise TemplateError(f"template: :{line}: missing value for command")
    return Pipeline(decl, assign, cmds, line)


def _parse_operand(toks: list[Tok], j: int, line: int) -> tuple[Operand, int]:
    t = toks[j]
    if t.kind == "field":
        return Operand("field", chain=t.text[1:].split("."), text=t.text), j + 1
    if t.kind == "dot":
        return Operand("field", chain=[], text="."), j + 1
    if t.kind == "var":
        chain = []
        if j + 1 < len(toks) and toks[j + 1].kind == "field" and not toks[j + 1].spaced:
            chain = toks[j + 1].text[1:].split(".")
            return Operand("var", t.text, chain, t.text + toks[j + 1].text), j + 2
        return Operand("var", t.text, chain, t.text), j + 1
    if t.kind in ("str", "raw", "char", "num"):
        return Operand("lit", _literal(t, line), text=t.text), j + 1
    if t.kind == "word":
        literals = {"true": True, "false": False, "nil": None}
        if t.text in literals:
            return Operand("lit", literals[t.text], text=t.text), j + 1
        if t.text not in FUNCS:
            raise TemplateError(f'template: :{line}: function "{t.text}" not defined')
        return Operand("func", t.text, text=t.text), j + 1
    if t.text == "(":
        depth, k = 1, j + 1
        while k < len(toks) and depth:
            depth += {"(": 1, ")": -1}.get(toks[k].text if toks[k].kind == "op" else "", 0)
            k += 1
        if depth:
            raise TemplateError(f"template: :{line}: unclosed left paren")
        inner = _parse_pipeline(toks[j + 1 : k - 1], line)
        chain = []
        if k < len(toks) and toks[k].kind == "field" and not toks[k].spaced:
            chain, k = toks[k].text[1:].split("."), k + 1
        return Operand("pipe", inner, chain, "(...)"), k
    raise TemplateError(f"template: :{line}: unexpected {t.text!r} in operand")


def _literal(t: Tok, line: int) -> Any:
    if t.kind == "raw":
        return t.text[1:-1]
    if t.kind in ("str", "char"):
        try:
            value = json.loads('"' + t.text[1:-1].replace("\\'", "'") + '"')
        except ValueError:
            raise TemplateError(f"template: :{line}: bad string syntax: {t.text}") from None
        return ord(value) if t.kind == "char" else value
    text = t.text.replace("_", "")
    try:
        return int(text, 0) if re.fullmatch(r"[-+]?(0[xX][0-9a-fA-F]+|\d+)", text) else float(text)
    except ValueError:
        raise TemplateError(f"template: :{line}: bad number syntax: {t.text!r}") from None


# -- 3. execute -----------------------------------------------------------------------------
class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_NOTHING = object()  # no value piped in from a previous command


class Template:
    """A parsed template; ``execute(data)`` is its text for ``data`` (``.`` and ``$``)."""

    def __init__(self, src: str, funcs: dict[str, Callable] | None = None):
        self.funcs = {**FUNCS, **(funcs or {})}
        self.nodes = parse(src)

    def execute(self, data: Any) -> str:
        run = _Run(self.funcs, data)
        run.walk(self.nodes, data)
        return "".join(run.out)


class _Run:
    """One execution: the output so far and the variables in scope (a stack: a block's
    variables are dropped at its end)."""

    def __init__(self, funcs: dict[str, Callable], data: Any):
        self.funcs = funcs
        self.out: list[str] = []
        self.vars: list[tuple[str, Any]] = [("$", data)]
        self.at = ""  # the operand being evaluated, for the error message
        self.line = 1

    def error(self, msg: str) -> TemplateError:
        return TemplateError(f'template: :{self.line}: executing "" at <{self.at}>: {msg}')

    def walk(self, nodes: list[Node], dot: Any) -> None:
        for node in nodes:
            if node.kind == "text":
                self.out.append(node.text)
            elif node.kind == "action":
                assert node.pipe is not None
                value = self.pipeline(node.pipe, dot)
                if not node.pipe.decl:
                    self.out.append(show(value))
            elif node.kind == "break":
                raise _Break
            elif node.kind == "continue":
                raise _Continue
            else:
                self.block(node, dot)

    def block(self, node: Node, dot: Any) -> None:
        mark = len(self.vars)
        assert node.pipe is not None
        value = self.pipeline(node.pipe, dot)
        try:
            if node.kind == "range":
                self.range(node, value, mark)
            elif truth(value):
                self.walk(node.body, value if node.kind == "with" else dot)
            else:
                self.walk(node.orelse, dot)
        finally:
            del self.vars[mark:]

    def range(self, node: Node, value: Any, mark: int) -> None:
        assert node.pipe is not None
        if value is MISSING or value is None:
            pairs: list[tuple[Any, Any]] = []
        elif isinstance(value, dict):
            pairs = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            pairs = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = [(i, i) for i in range(value)]
        else:
            raise self.error(f"range can't iterate over {show(value)}")
        if not pairs:
            self.walk(node.orelse, value)
            return
        del self.vars[mark:]  # the declaration names the key and the element, set per turn
        names = node.pipe.decl
        for key, elem in pairs:
            bound = [elem] if len(names) == 1 else [key, elem]
            self.vars.extend(zip(names, bound))
            try:
                self.walk(node.body, elem)
            except _Break:
                break
            except _Continue:
                pass
            finally:
                del self.vars[mark:]

    def pipeline(self, pipe: Pipeline, dot: Any) -> Any:
        self.line = pipe.line
        value: Any = _NOTHING
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value)
        if pipe.decl and pipe.assign:
            self.set_var(pipe.decl[0], value)
        elif pipe.decl:
            self.vars.append((pipe.decl[-1], value))  # (range binds both names itself)
        return value

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise TemplateError(f"template: :{self.line}: undefined variable: {name}")

    def command(self, cmd: list[Operand], dot: Any, final: Any) -> Any:
        first = cmd[0]
        self.at = first.text
        if first.kind == "func":
            if first.value in ("and", "or"):
                return self.and_or(first.value, cmd[1:], dot, final)
            args = [self.arg(a, dot) for a in cmd[1:]] + ([] if final is _NOTHING else [final])
            self.at = first.text
            return self.call(first.value, self.funcs[first.value], args)
        value = self.operand(first, dot, call=False)
        args = [self.arg(a, dot) for a in cmd[1:]] + ([] if final is _NOTHING else [final])
        self.at = first.text
        if callable(value):
            return self.call(first.text.rsplit(".", 1)[-1], value, args)
        if args:
            raise self.error(f"can't give argument to non-function {first.text}")
        return value

    def and_or(self, name: str, operands: list[Operand], dot: Any, final: Any) -> Any:
        """``and``/``or`` stop at the first argument that decides (Go 1.18's rule)."""
        thunks: list[Callable[[], Any]] = [functools.partial(self.arg, a, dot) for a in operands]
        if final is not _NOTHING:
            thunks.append(lambda: final)
        if not thunks:
            raise self.error(f"wrong number of args for {name}: want at least 1 got 0")
        value = None
        for thunk in thunks:
            value = thunk()
            if truth(value) != (name == "and"):
                return value
        return value

    def call(self, name: str, fn: Callable, args: list[Any]) -> Any:
        try:
            return fn(*args)
        except TemplateError:
            raise
        except TypeError as e:
            if "positional argument" in str(e) or "takes" in str(e):
                raise self.error(f"wrong number of args for {name}: {e}") from None
            raise self.error(f"error calling {name}: {e}") from None
        except (ValueError, IndexError, KeyError, ZeroDivisionError, AttributeError, OverflowError) as e:
            raise self.error(f"error calling {name}: {e}") from None

    def arg(self, a: Operand, dot: Any) -> Any:
        self.at = a.text
        if a.kind == "func":  # a function as an argument is called with no arguments
            return self.call(a.value, self.funcs[a.value], [])
        return self.operand(a, dot, call=True)

    def operand(self, a: Operand, dot: Any, call: bool) -> Any:
        if a.kind == "lit":
            return a.value
        if a.kind == "field":
            base = dot
        elif a.kind == "var":
            base = self.var(a.value)
        else:
            base = self.pipeline(a.value, dot)
            self.at = a.text
        for i, name in enumerate(a.chain):
            base = self.field(base, name)
            if callable(base) and (call or i < len(a.chain) - 1):
                base = self.call(name, base, [])
        return base

    def var(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise TemplateError(f'template: :{self.line}: undefined variable "{name}"')

    def field(self, value: Any, name: str) -> Any:
        """``.name`` of ``value``: a struct's field, a map's key (``<no value>`` if absent)."""
        if value is MISSING:
            return MISSING
        if isinstance(value, Struct):
            if name in value:
                return value[name]
            raise self.error(f"can't evaluate field {name} in type {value.type_name}")
        if isinstance(value, dict):
            return value.get(name, MISSING)
        if value is None:
            raise self.error(f"nil pointer evaluating interface {{}}.{name}")
        raise self.error(f"can't evaluate field {name} in type {go_type(value)}")


# -- values as Go prints them ---------------------------------------------------------------
def truth(v: Any) -> bool:
    """Go's truth: false, 0, nil, and an empty string, list or map are false."""
    if v is MISSING or v is None:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


def go_type(v: Any) -> str:
    if isinstance(v, Struct):
        return v.type_name
    for t, name in ((bool, "bool"), (int, "int"), (float, "float64"), (str, "string")):
        if isinstance(v, t):
            return name
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    if isinstance(v, dict):
        return "map[string]interface {}"
    return "interface {}"


def show(v: Any) -> str:
    """``fmt.Sprint`` of a value: ``[a b]``, ``map[k:v]``, ``true``, ``<nil>``, ``<no value>``."""
    if v is MISSING:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(show(x) for x in v) + "]"
    if isinstance(v, Struct):  # Go prints a struct's field values in braces
        return "{" + " ".join(show(x) for x in v.values() if not callable(x)) + "}"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{show(k)}:{show(v[k])}" for k in sorted(v, key=str)) + "]"
    return str(v)


def go_float(f: float) -> str:
    """Go's ``%v`` of a float64: the shortest form, ``1e+06`` from 21 digits on."""
    if f.is_integer() and abs(f) < 1e21:
        return str(int(f))
    return repr(f)  # Python's shortest form is Go's too: 0.5, 1e-05, 1e+21


def _struct_like(d: dict) -> bool:
    """A document's dict whose keys are all CamelCase field names stands for a Go struct
    (its fields keep their order in JSON); any other dict is a Go map (sorted keys)."""
    return bool(d) and all(isinstance(k, str) and k[:1].isupper() for k in d)


def to_json(v: Any) -> str:
    """docker's ``json`` function: compact JSON, ``<``, ``>``, ``&`` left as they are."""

    def plain(x: Any) -> Any:
        if x is MISSING:
            return None
        if isinstance(x, dict):  # a map's keys sorted, as Go's encoder does; a struct's methods are not data
            items = [(str(k), val) for k, val in x.items() if not callable(val)]
            return dict(sorted(items) if isinstance(x, Struct) or not _struct_like(x) else items)
        if isinstance(x, (list, tuple)):
            return [plain(i) for i in x]
        return x

    return json.dumps(plain(v), ensure_ascii=False, separators=(",", ":"))


# -- the functions: Go's built-ins and docker's ---------------------------------------------
def _index(item: Any, *keys: Any) -> Any:
    """``index .Config.Labels "k"``, ``index .Args 0``: a map's missing key is the zero value
    of its values (``""`` for a map of strings, as docker's typed maps give)."""
    for key in keys:
        if isinstance(item, dict):
            if key in item:
                item = item[key]
            else:
                item = "" if all(isinstance(v, str) for v in item.values()) else None
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(key, int) or not 0 <= key < len(item):
                raise ValueError(f"index out of range: {show(key)}")
            item = item[key]
        elif item is None or item is MISSING:
            raise ValueError("index of untyped nil")
        else:
            raise ValueError(f"can't index item of type {go_type(item)}")
    return item


def _len(item: Any) -> int:
    if isinstance(item, (str, list, tuple, dict)):
        return len(item)
    raise ValueError(f"len of type {go_type(item)}")


def _slice(item: Any, *bounds: int) -> Any:
    if not isinstance(item, (str, list, tuple)):
        raise ValueError(f"can't slice item of type {go_type(item)}")
    lo, hi = (list(bounds) + [0, len(item)][len(bounds) :])[:2]
    if not 0 <= lo <= hi <= len(item):
        raise ValueError(f"index out of range: {hi}")
    return item[lo:hi]


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if v is None:
        return "nil"
    raise ValueError("invalid type for comparison")


def _eq(a: Any, *others: Any) -> bool:
    """``eq a b c``: a equals b or c (Go compares basic values of one kind only)."""
    if not others:
        raise ValueError("missing argument for comparison")
    for b in others:
        if _kind(a) != _kind(b) and "nil" not in (_kind(a), _kind(b)):
            raise ValueError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _less(a: Any, b: Any) -> bool:
    if _kind(a) != _kind(b) or _kind(a) not in ("number", "string"):
        raise ValueError("incompatible types for comparison")
    return a < b


def _sprint(*args: Any) -> str:
    """``print``: Go's ``fmt.Sprint``: a space between operands when neither is a string."""
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += show(a)
    return out


VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def _sprintf(fmt: str, *args: Any) -> str:
    """``printf``: Go's ``fmt.Sprintf`` for the verbs templates use: ``%s %v %q %d %x %f %t``,
    with flags, width and precision (``%-10s``, ``%05d``, ``%.2f``)."""
    queue = list(args)

    def one(m: re.Match) -> str:
        flags, width, prec, verb = m.group(1), m.group(2) or "", m.group(3), m.group(4)
        if verb == "%":
            return "%"
        if not queue:
            return f"%!{verb}(MISSING)"
        return _verb(queue.pop(0), flags, width, prec, verb)

    return VERB.sub(one, fmt)


def _verb(a: Any, flags: str, width: str, prec: str | None, verb: str) -> str:
    align = "<" if "-" in flags else ">"
    if verb in "dxXob" and isinstance(a, int) and not isinstance(a, bool):
        zero = "0" if "0" in flags and "-" not in flags else ""
        return format(a, f"{'+' if '+' in flags else ''}{zero}{width}{verb if verb != 'd' else 'd'}")
    if verb in "feEgG" and isinstance(a, (int, float)) and not isinstance(a, bool):
        return format(float(a), f"{align}{width}.{prec or 6}{verb}" if verb in "fe" else f"{align}{width}{verb}")
    if verb == "q":
        text = json.dumps(a if isinstance(a, str) else show(a), ensure_ascii=False)
    elif verb == "c" and isinstance(a, int):
        text = chr(a)
    elif verb in "svt":
        text = show(a)
    else:
        return f"%!{verb}({go_type(a)}={show(a)})"
    if prec is not None and verb in "sv":
        text = text[: int(prec)]
    return format(text, f"{align}{width}")


def _split(s: str, sep: str) -> list[str]:
    return list(s) if sep == "" else s.split(sep)


def _join(items: Any, sep: str) -> str:
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"wrong type for value; expected []string; got {go_type(items)}")
    return sep.join(show(i) for i in items)


def _title(s: str) -> str:
    """Go's ``strings.Title``: the first letter of each word upper-cased, the rest kept."""
    return re.sub(r"(?<![A-Za-z0-9_'])[a-z]", lambda m: m.group(0).upper(), s)


def _truncate(s: str, n: int) -> str:
    return s if len(s) < n else s[:n]


def _and(*args: Any) -> Any:
    return next((a for a in args if not truth(a)), args[-1])


def _or(*args: Any) -> Any:
    return next((a for a in args if truth(a)), args[-1])


FUNCS: dict[str, Callable[..., Any]] = {
    "and": _and,  # (in a command of its own, and/or stop at the deciding argument: _Run.and_or)
    "or": _or,
    "not": lambda a: not truth(a),
    "len": _len,
    "index": _index,
    "slice": _slice,
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _less,
    "le": lambda a, b: _less(a, b) or _eq(a, b),
    "gt": lambda a, b: _less(b, a),
    "ge": lambda a, b: _less(b, a) or _eq(a, b),
    "print": _sprint,
    "printf": _sprintf,
    "println": lambda *a: " ".join(show(x) for x in a) + "\n",
    "json": to_json,
    "split": _split,
    "join": _join,
    "title": _title,
    "lower": lambda s: show(s).lower(),
    "upper": lambda s: show(s).upper(),
    "pad": lambda s, before, after: " " * before + show(s) + " " * after,
    "truncate": _truncate,
}


def render(src: str, data: Any) -> str:
    """The text of template ``src`` for ``data``: ``render("{{.A}}", {"A": 1}) == "1"``."""
    return Template(src).execute(data)
