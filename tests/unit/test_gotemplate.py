"""The Go text/template engine behind ``--format`` (cli/gotemplate.py) and docker's
formatter around it (cli/formatter.py): ``table`` headers, tabwriter alignment, ``json``.

The cases are docker's documented examples ("Format command and log output" and each
command's ``--format`` examples) run on documents shaped like docker's, with what docker
prints; then Go's rules that those examples rely on (printing of values, truth, scopes,
trim markers) and the errors, each in Go's words.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidocker.cli import formatter
from minidocker.cli.gotemplate import Struct, TemplateError, render

CONTAINER = {
    "Id": "8e3b2a1c9d7f",
    "Name": "/web",
    "Args": ["-g", "daemon off;"],
    "Image": "sha256:feedface",
    "LogPath": "/var/lib/minidocker/containers/8e3b/log",
    "State": {"Status": "running", "Running": True, "Pid": 4242, "ExitCode": 0},
    "Config": {
        "Image": "nginx:latest",
        "Env": ["PATH=/usr/bin", "TERM=xterm"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "Entrypoint": None,
        "Labels": {"com.example.foo": "bar", "a": "1"},
    },
    "Mounts": [{"Type": "volume", "Name": "data", "Destination": "/data", "RW": True}],
    "NetworkSettings": {
        "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]},
        "Networks": {
            "bridge": {"IPAddress": "172.17.0.2", "MacAddress": "02:42:ac:11:00:02"},
            "front": {"IPAddress": "10.1.0.5", "MacAddress": "02:42:0a:01:00:05"},
        },
    },
}

DOCUMENTED = [  # (template, what docker prints for CONTAINER)
    ("{{.State.Pid}}", "4242"),
    ("{{.State.Running}}", "true"),
    ("{{.LogPath}}", "/var/lib/minidocker/containers/8e3b/log"),
    ("{{.Config.Image}}", "nginx:latest"),
    ("{{.Config.Env}}", "[PATH=/usr/bin TERM=xterm]"),
    ("{{.Config.Labels}}", "map[a:1 com.example.foo:bar]"),
    ("{{.Config.Entrypoint}}", "<nil>"),
    ("{{.Config.NoSuchKey}}", "<no value>"),
    ('{{join .Args " , "}}', "-g , daemon off;"),
    ("{{json .Mounts}}", '[{"Type":"volume","Name":"data","Destination":"/data","RW":true}]'),
    ("{{json .State.Pid}}", "4242"),
    ("{{lower .Name}}", "/web"),
    ('{{split .Config.Image ":"}}', "[nginx latest]"),
    ("{{title .Name}}", "/Web"),
    ("{{upper .Name}}", "/WEB"),
    ("{{.Name | upper}}", "/WEB"),
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "172.17.0.210.1.0.5"),
    ("{{range .NetworkSettings.Networks}}{{println .IPAddress}}{{end}}", "172.17.0.2\n10.1.0.5\n"),
    ("{{range .NetworkSettings.Networks}}{{.MacAddress}} {{end}}", "02:42:ac:11:00:02 02:42:0a:01:00:05 "),
    (
        "{{range $p, $conf := .NetworkSettings.Ports}}{{$p}} -> {{(index $conf 0).HostPort}}{{end}}",
        "80/tcp -> 8080",
    ),
    ('{{index .Config.Labels "com.example.foo"}}', "bar"),
    ('{{ index .Config.Labels "missing" }}', ""),
    ("{{index .Config.Cmd 0}}", "nginx"),
    ("{{len .Config.Env}}", "2"),
    ('{{if eq .State.Status "running"}}up{{else}}down{{end}}', "up"),
    ('{{printf "%s has pid %d" .Name .State.Pid}}', "/web has pid 4242"),
    (
        '{{printf "%-8s|%6.2f|%05d|%q|%v|%t" "ab" 3.14159 42 "x" .Args true}}',
        'ab      |  3.14|00042|"x"|[-g daemon off;]|true',
    ),
    ("{{range $i, $e := .Config.Env}}{{$i}}={{$e}};{{end}}", "0=PATH=/usr/bin;1=TERM=xterm;"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}} {{end}}", "a:1 com.example.foo:bar "),
    ("{{with .State}}{{.Status}}/{{.ExitCode}}{{end}}", "running/0"),
    ("{{with .Config.Entrypoint}}has{{else}}none{{end}}", "none"),
    ("{{range .Mounts}}{{.Name}}:{{.Destination}}{{else}}no mounts{{end}}", "data:/data"),
    ("{{range .Config.Entrypoint}}x{{else}}empty{{end}}", "empty"),
    ("{{json .Config.Labels}}", '{"a":"1","com.example.foo":"bar"}'),  # a map: sorted keys, as Go encodes it
    ("{{json .State}}", '{"Status":"running","Running":true,"Pid":4242,"ExitCode":0}'),  # a struct: its order
]


@pytest.mark.parametrize("template, expected", DOCUMENTED, ids=[t for t, _ in DOCUMENTED])
def test_docker_documented_examples(template, expected):
    assert render(template, CONTAINER) == expected


GO_RULES = [  # (template, data, output): the rules the examples rest on
    ("{{.}}", [1, "a", True, None], "[1 a true <nil>]"),
    ("{{.}}", {"b": [1, 2], "a": {"x": False}}, "map[a:map[x:false] b:[1 2]]"),
    ("{{.}}", 2.5, "2.5"),
    ("{{.}}", 1e21, "1e+21"),
    ("{{.}}", 3.0, "3"),
    ("{{json .}}", {"html": "<a&b>", "u": "é"}, '{"html":"<a&b>","u":"é"}'),
    ("a  {{- .x -}}  b", {"x": 1}, "a1b"),
    ("{{/* a comment */}}ok", {}, "ok"),
    ("{{$x := .a}}{{$x}}{{$x = 5}}{{$x}}", {"a": 1}, "15"),
    ("{{range .}}{{$}}{{end}}", [1], "[1]"),
    ("{{if .a}}A{{else if .b}}B{{else}}C{{end}}", {"a": 0, "b": "y"}, "B"),
    ("{{if .a}}A{{else if .b}}B{{else}}C{{end}}", {"a": [], "b": ""}, "C"),
    ("{{if and .a .b}}yes{{end}}", {"a": 1, "b": {}}, ""),
    ("{{or .a .b .c}}", {"a": 0, "b": "", "c": "z"}, "z"),
    ("{{and .a .b}}", {"a": 1, "b": 2}, "2"),
    ("{{not .a}}", {"a": ""}, "true"),
    ("{{if ne .a 1}}x{{else}}y{{end}}", {"a": 1}, "y"),
    ('{{eq .a "p" "q" "r"}}', {"a": "r"}, "true"),
    ("{{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge 3 2}}", {}, "true true false true"),
    ('{{print 1 2 "a" 3}}', {}, "1 2a3"),
    ('{{println 1 "a"}}', {}, "1 a\n"),
    ('{{.s | printf "%s!"}}', {"s": "hi"}, "hi!"),
    ("{{slice .l 1 3}}", {"l": [1, 2, 3, 4]}, "[2 3]"),
    ("{{range $i, $v := .}}{{if eq $i 1}}{{break}}{{end}}{{$v}}{{end}}", ["a", "b", "c"], "a"),
    ("{{range .}}{{if eq . 2}}{{continue}}{{end}}{{.}}{{end}}", [1, 2, 3], "13"),
    ("{{pad .s 2 1}}|{{truncate .s 2}}", {"s": "abc"}, "  abc |ab"),
    ("{{`raw \\n`}}", {}, "raw \\n"),
    ('{{"tab\\tq\\""}}', {}, 'tab\tq"'),
    ("{{range 3}}{{.}}{{end}}", {}, "012"),
    ("{{(.a).b}}", {"a": {"b": 7}}, "7"),
    ("{{.a.b.c}}", {"a": {}}, "<no value>"),
]


@pytest.mark.parametrize("template, data, expected", GO_RULES, ids=[t for t, _, _ in GO_RULES])
def test_go_rules(template, data, expected):
    assert render(template, data) == expected


ERRORS = [  # (template, data, Go's words in the message)
    ("{{.Name", {}, "unclosed action"),
    ("{{nosuch .Name}}", {}, 'function "nosuch" not defined'),
    ("{{end}}", {}, "unexpected {{end}}"),
    ("{{if .a}}x", {}, "unexpected EOF"),
    ("{{range .a}}x{{else}}y{{else}}z{{end}}", {}, "expected end; found {{else}}"),
    ("{{$nope}}", {}, 'undefined variable "$nope"'),
    ("{{.Name.Foo}}", {"Name": "web"}, "can't evaluate field Foo in type string"),
    ("{{.a.b}}", {"a": None}, "nil pointer evaluating interface {}.b"),
    ("{{.Name 1}}", {"Name": "web"}, "can't give argument to non-function .Name"),
    ("{{len 3}}", {}, "len of type int"),
    ("{{index .l 5}}", {"l": [1]}, "index out of range: 5"),
    ('{{eq 1 "a"}}', {}, "incompatible types for comparison"),
    ("{{range .s}}{{end}}", {"s": "abc"}, "range can't iterate over abc"),
    ("{{/* open", {}, "unclosed"),
    ("{{.a | }}", {}, "missing"),
    ("{{break}}", {}, "{{break}} outside {{range}}"),
    ("{{if .a}}{{continue}}{{end}}", {"a": 1}, "{{continue}} outside {{range}}"),
    ("{{if .a}}x{{else .b}}y{{end}}", {}, "unexpected '.b' in else"),
    ('{{split 1 ","}}', {}, "error calling split"),
]


@pytest.mark.parametrize("template, data, words", ERRORS, ids=[t for t, _, _ in ERRORS])
def test_errors_in_go_words(template, data, words):
    with pytest.raises(TemplateError) as e:
        render(template, data)
    assert words in str(e.value) and str(e.value).startswith("template: :1:")


def test_a_struct_lacks_fields_where_a_map_has_no_value():
    row = Struct({"ID": "abc"})
    row.type_name = "*formatter.ContainerContext"
    with pytest.raises(TemplateError, match=r"can't evaluate field Nope in type \*formatter.ContainerContext"):
        render("{{.Nope}}", row)
    assert render("{{.Nope}}", {"ID": "abc"}) == "<no value>"


def test_a_struct_prints_its_values_in_braces():
    assert render("{{.}}", formatter.struct("t", {"ID": "abc", "On": True, "Label": lambda k: k})) == "{abc true}"


def test_a_method_takes_arguments():
    row = formatter.struct("c", {"Label": lambda k: {"tier": "db"}.get(k, "")})
    assert render('{{.Label "tier"}}|{{.Label "none"}}|{{"tier" | .Label}}', row) == "db||db"


# -- docker's formatter: table, headers, json, \t ------------------------------------------
ROWS = [
    formatter.struct("t", {"ID": "4d0b3e4e5f6a", "Names": "web", "Status": "Up 2 minutes"}),
    formatter.struct("t", {"ID": "1c2d3e4f5a6b", "Names": "a-longer-name", "Status": "Exited (0) 1 second ago"}),
]
HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Status": "STATUS"}

FORMATS = [
    (
        "table {{.ID}}\\t{{.Names}}\\t{{.Status}}",
        "CONTAINER ID   NAMES           STATUS\n"
        "4d0b3e4e5f6a   web             Up 2 minutes\n"
        "1c2d3e4f5a6b   a-longer-name   Exited (0) 1 second ago\n",
    ),
    (  # min width 10, padding 3: docker's tabwriter
        "table {{.Names}}\\t{{.ID}}",
        "NAMES           CONTAINER ID\nweb             4d0b3e4e5f6a\na-longer-name   1c2d3e4f5a6b\n",
    ),
    ("table {{.Names | upper}}", "NAMES\nWEB\nA-LONGER-NAME\n"),  # a function shows the title in the header
    ("{{.ID}}: {{.Names}}", "4d0b3e4e5f6a: web\n1c2d3e4f5a6b: a-longer-name\n"),
    ("{{.Names}}\\t{{.ID}}", "web\t4d0b3e4e5f6a\na-longer-name\t1c2d3e4f5a6b\n"),  # no table: tabs as they are
    (
        "json",
        '{"ID":"4d0b3e4e5f6a","Names":"web","Status":"Up 2 minutes"}\n'
        '{"ID":"1c2d3e4f5a6b","Names":"a-longer-name","Status":"Exited (0) 1 second ago"}\n',
    ),
    ("{{json .Names}}", '"web"\n"a-longer-name"\n'),
]


@pytest.mark.parametrize("fmt, expected", FORMATS, ids=[f for f, _ in FORMATS])
def test_docker_formats(fmt, expected):
    assert formatter.format_rows(fmt, ROWS, HEADERS) == expected


def test_table_header_without_rows():
    assert formatter.format_rows("table {{.ID}}\\t{{.Names}}", [], HEADERS) == "CONTAINER ID   NAMES\n"


def test_tabwriter_blocks_as_go_aligns_them():
    """A column is aligned over a block of consecutive lines that have it; a line with fewer
    cells ends the block (Go's text/tabwriter, as docker sets it up)."""
    text = "a\tbb\tc\nlonger-cell\td\te\nsolo\nx\ty\n"
    assert formatter.tabwrite(text) == ("a             bb        c\nlonger-cell   d         e\nsolo\nx         y\n")


@pytest.mark.parametrize("bad", ["{{.Nope}}", "{{.ID", "table {{.ID}}\\t{{nosuch}}"])
def test_a_bad_format_is_one_template_parsing_error(bad):
    with pytest.raises(formatter.TemplateParsingError) as e:
        formatter.format_rows(bad, ROWS, HEADERS)
    assert str(e.value).startswith("template parsing error: template: :1")
    assert "\n" not in str(e.value) and e.value.exit_code == 125


PIECES = ["{{", "}}", "{{- ", " -}}", ".", ".A", ".B.C", "$", "$x", ":=", "=", ",", "|", "(", ")", " ", "if", "else",
          "end", "range", "with", "break", "continue", '"s"', "`r`", "'c'", "1", "-2", "3.5", "true", "nil", "index",
          "len", "slice", "eq", "lt", "and", "or", "not", "printf", '"%d %v %5.2f"', "println", "json", "split", "join",
          "title", "pad", "truncate", "/*", "*/", "\n", "x"]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=14).map("".join))
def test_any_template_fails_only_as_a_template_error(text):
    """Whatever the user types, the engine answers with output or one TemplateError."""
    try:
        render(text, {"A": [1, "a", None, {"k": True}], "B": {"C": "c"}, "E": None, "F": 2.5})
    except TemplateError:
        pass
