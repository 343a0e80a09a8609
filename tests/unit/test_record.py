"""minidocker/record.py: the classes a container start defines behave as dataclasses would."""

from __future__ import annotations

import pytest

from minidocker.record import MISSING, asdict, field, fields, record, replace


@record
class Point:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)
    note: str = field(default="", repr=False)


@record
class Point3(Point):
    z: int = 0


@record(frozen=True)
class Name:
    domain: str
    path: str


@record
class Box:
    corner: Point
    others: list[Point] = field(default_factory=list)
    made: int = 0

    def __post_init__(self) -> None:
        self.made += 1


def test_positional_keyword_and_default_values():
    p = Point(1, tags=["a"])
    assert (p.x, p.y, p.tags, p.note) == (1, 0, ["a"], "")
    assert vars(Point(x=2, y=3)) == {"x": 2, "y": 3, "tags": [], "note": ""}


def test_a_default_factory_gives_each_record_its_own_list():
    a, b = Point(1), Point(2)
    a.tags.append("mine")
    assert b.tags == []


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: Point(), "missing required argument: 'x'"),
        (lambda: Point(1, 2, [], "", 5), "takes 4 positional arguments but 5 were given"),
        (lambda: Point(1, x=2), "multiple values for argument 'x'"),
        (lambda: Point(1, colour="red"), "unexpected keyword argument 'colour'"),
    ],
)
def test_wrong_arguments_are_refused_as_python_refuses_them(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def test_fields_come_in_order_bases_first():
    assert [f.name for f in fields(Point3)] == ["x", "y", "tags", "note", "z"]
    assert fields(Point3(1))[0].default is MISSING
    assert Point3(1, 2, z=3).z == 3


def test_repr_and_equality_by_value():
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags=[])"  # (note has repr=False)
    assert Point(1, 2) == Point(1, 2) and Point(1, 2) != Point(1, 3)
    assert Point(1) != Point3(1)  # another class is never equal
    with pytest.raises(TypeError):
        hash(Point(1))  # mutable: unhashable, as a dataclass


def test_a_frozen_record_refuses_changes_and_hashes_by_value():
    n = Name("docker.io", "library/busybox")
    with pytest.raises(AttributeError, match="frozen"):
        n.path = "other"  # type: ignore[misc]
    assert {n: 1}[Name("docker.io", "library/busybox")] == 1


def test_asdict_goes_all_the_way_down_and_replace_makes_a_new_record():
    box = Box(Point(1, tags=["t"]), [Point(2)])
    assert box.made == 1  # __post_init__ ran
    assert asdict(box) == {
        "corner": {"x": 1, "y": 0, "tags": ["t"], "note": ""},
        "others": [{"x": 2, "y": 0, "tags": [], "note": ""}],
        "made": 1,
    }
    moved = replace(box.corner, y=5)
    assert moved == Point(1, 5, ["t"]) and box.corner.y == 0
    with pytest.raises(TypeError, match="unexpected keyword argument 'w'"):
        replace(box.corner, w=1)
