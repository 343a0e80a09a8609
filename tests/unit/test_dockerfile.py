"""The Dockerfile parser: lines, continuations, comments, forms, words and variables."""

from __future__ import annotations

import pytest

from minidocker.errors import DockerfileError
from minidocker.image import dockerfile as df


def test_parse_lines_continuations_and_comments():
    text = (
        "# syntax comment\n\nFROM busybox\nRUN echo a \\\n  # a comment inside\n\n    && echo b\n"
        'env A=1 \\\n B=2\nCMD ["sh", "-c", "echo hi"]\n'
    )
    got = df.parse(text)
    assert [(i.keyword, i.line) for i in got] == [("FROM", 3), ("RUN", 4), ("ENV", 8), ("CMD", 10)]
    assert got[1].args == "echo a && echo b"
    assert got[1].command() == ["/bin/sh", "-c", "echo a && echo b"]
    assert got[3].command() == ["sh", "-c", "echo hi"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("FROM busybox\nFROB x\n", "line 2: unknown instruction: FROB"),
        ("FROM busybox\nRUN\n", "line 2: RUN requires at least one argument"),
        ("FROM busybox\nONBUILD FROM alpine\n", "line 2: FROM isn't allowed as an ONBUILD trigger"),
        ("# only a comment\n", "no instructions"),
    ],
)
def test_parse_errors_name_the_line(text, message):
    with pytest.raises(DockerfileError, match=message):
        df.parse(text)


@pytest.mark.parametrize(
    "text, env, expected",
    [
        ("a b  c", {}, ["a", "b", "c"]),
        ('"two words" x', {}, ["two words", "x"]),
        ("$A ${A}x ${B:-dflt} ${A:+alt} ${B:+alt}", {"A": "1"}, ["1", "1x", "dflt", "alt", ""]),
        ("'$A' \"$A\"", {"A": "1"}, ["$A", "1"]),
        (r"a\ b \$A", {"A": "1"}, ["a b", "$A"]),
    ],
)
def test_words(text, env, expected):
    assert df.words(text, env) == expected


def test_key_values_both_forms():
    assert df.key_values(df.parse_line('ENV A=1 B="x y" C=$A'), {"A": "0"}) == [("A", "1"), ("B", "x y"), ("C", "0")]
    assert df.key_values(df.parse_line("ENV NAME the value"), {}) == [("NAME", "the value")]
    assert df.key_values(df.parse_line("ARG V"), {}) == [("V", None)]
    with pytest.raises(DockerfileError):
        df.key_values(df.parse_line("ENV ONLYNAME"), {})


def test_apply_change_to_a_config():
    cfg = {"Env": ["PATH=/bin", "A=0"], "WorkingDir": "/srv"}
    for text in [
        'CMD ["x"]',
        "ENTRYPOINT sh -c",
        "ENV A=1 B=$A",
        "WORKDIR sub/../app",
        "USER 1000",
        "LABEL k=v",
        "EXPOSE 80 53/udp",
    ]:
        df.apply_change(cfg, df.parse_change(text))
    assert cfg["Cmd"] == ["x"] and cfg["Entrypoint"] == ["/bin/sh", "-c", "sh -c"]
    assert cfg["Env"] == ["PATH=/bin", "A=1", "B=0"]  # docker: one ENV line sees the values before it
    assert cfg["WorkingDir"] == "/srv/app" and cfg["User"] == "1000" and cfg["Labels"] == {"k": "v"}
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}


@pytest.mark.parametrize("text", ["RUN echo", "FROM x", "", "NOPE"])
def test_parse_change_refuses_non_config_instructions(text):
    with pytest.raises(DockerfileError, match="not a valid change"):
        df.parse_change(text)


def test_shell_and_healthcheck_change_the_config():
    from minidocker.image.dockerfile import apply_change, parse

    config: dict = {}
    for ins in parse(
        'SHELL ["/bin/bash", "-o", "pipefail", "-c"]\nCMD echo hi\n'
        "HEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD curl -f http://localhost/\n"
    ):
        apply_change(config, ins)
    assert config["Shell"] == ["/bin/bash", "-o", "pipefail", "-c"]
    assert config["Cmd"] == ["/bin/bash", "-o", "pipefail", "-c", "echo hi"]
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "curl -f http://localhost/"],
        "Interval": 90_000_000_000,
        "Timeout": 500_000_000,
        "Retries": 3,
    }
    apply_change(config, parse('HEALTHCHECK CMD ["/bin/check", "x"]\n')[0])
    assert config["Healthcheck"] == {"Test": ["CMD", "/bin/check", "x"]}
    apply_change(config, parse("HEALTHCHECK NONE\n")[0])
    assert config["Healthcheck"] == {"Test": ["NONE"]}
    for bad in (
        "SHELL /bin/bash -c\n",
        "HEALTHCHECK --interval=10 CMD true\n",
        "HEALTHCHECK --bogus=1 CMD x\n",
        "HEALTHCHECK true\n",
    ):
        with pytest.raises(DockerfileError):
            apply_change({}, parse(bad)[0])
