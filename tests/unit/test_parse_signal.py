"""``kill -s`` and ``stop --signal`` names (runtime/spec.py parse_signal)."""

import signal

import pytest

from minidocker.errors import MinidockerError
from minidocker.runtime.spec import parse_signal


@pytest.mark.parametrize(
    "text, number",
    [
        ("KILL", signal.SIGKILL),
        ("SIGTERM", signal.SIGTERM),
        ("sigterm", signal.SIGTERM),
        ("hup", signal.SIGHUP),
        ("9", 9),
        ("SIG15", 15),
        ("USR1", signal.SIGUSR1),
    ],
)
def test_a_signal_by_name_or_number(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["NOPE", "SIG", "", "KILL9"])
def test_an_unknown_signal_is_one_error(text):
    with pytest.raises(MinidockerError) as e:
        parse_signal(text)
    assert e.value.message == f"Invalid signal: {text}"
