"""``@record``: a class of named fields, as ``@dataclass`` makes one, for the classes a
container start defines.

The standard ``dataclasses`` module is the right tool for most classes here, but not for the
dozen that ``minidocker run`` defines before every container starts: importing it pulls in
``inspect`` (and ``ast``, ``dis``, ``tokenize`` with it), about 9 ms, and each class it makes
compiles its ``__init__`` from source, a third of a millisecond more per class. Together that
was an eighth of a ``--network none`` start (see bench/run). A record takes the same class
body (annotated fields, defaults, ``field(default_factory=...)``) and gives it a generic
``__init__`` that walks the field list at call time, with ``fields``, ``asdict`` and
``replace`` as the dataclasses module spells them. It does not check field order, and it has
no ``__slots__``, ``kw_only`` or ``InitVar``; classes that need those stay dataclasses.

See it: ``python -X importtime -m minidocker run --rm --network none IMAGE true`` lists no
``dataclasses`` and no ``inspect``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself is not imported on a container start's path
if TYPE_CHECKING:
    from typing import Any, dataclass_transform
else:

    def dataclass_transform(**_: object):  # for the type checker only (PEP 681)
        return lambda decorated: decorated


MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()


class Field:
    """One field of a record: its name and annotation (a string: these modules use ``from
    __future__ import annotations``), its default or default factory, and free metadata."""

    __slots__ = ("name", "type", "default", "default_factory", "metadata", "repr")

    def __init__(
        self, default: Any = MISSING, default_factory: Any = MISSING, metadata: Any = None, repr: bool = True
    ) -> None:
        self.name = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.metadata = metadata or {}
        self.repr = repr  # shown by the record's repr()

    def value(self, owner: str) -> Any:
        """The field's value when the caller gives none."""
        if self.default_factory is not MISSING:
            return self.default_factory()
        if self.default is MISSING:
            raise TypeError(f"{owner}.__init__() missing required argument: '{self.name}'")
        return self.default


def field(*, default: Any = MISSING, default_factory: Any = MISSING, metadata: Any = None, repr: bool = True) -> Any:
    """A field with a default factory (``field(default_factory=list)``), metadata, or left out
    of the record's repr()."""
    return Field(default, default_factory, metadata, repr)


@dataclass_transform(field_specifiers=(field,))
def record(cls: Any = None, *, frozen: bool = False) -> Any:
    """Make ``cls`` a record: ``@record`` or ``@record(frozen=True)`` (no assignment after
    ``__init__``, and hashable by value)."""

    def make(cls: Any) -> Any:
        own = collect_fields(cls)
        cls.__record_fields__ = own
        cls.__init__ = init_for(tuple(own.values()), cls.__name__)
        cls.__repr__ = record_repr
        cls.__eq__ = record_eq
        if frozen:
            cls.__setattr__ = cls.__delattr__ = refuse_change
            cls.__hash__ = lambda self: hash(tuple(getattr(self, n) for n in own))
        else:
            cls.__hash__ = None  # mutable and compared by value: unhashable, as a dataclass
        return cls

    return make if cls is None else make(cls)


def collect_fields(cls: Any) -> dict[str, Field]:
    """The fields of ``cls``: its bases' first, then its own annotated names in order."""
    found: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        found.update(getattr(base, "__record_fields__", {}))
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        given = cls.__dict__.get(name, MISSING)
        f = given if isinstance(given, Field) else Field(default=given)
        f.name, f.type = name, annotation
        if isinstance(given, Field):  # the class attribute becomes the plain default, or goes
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        found[name] = f
    return found


def init_for(fields_: tuple[Field, ...], owner: str) -> Any:
    """A generic ``__init__(self, *positional, **named)`` over ``fields_``, in their order."""
    names = {f.name for f in fields_}

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(fields_):
            raise TypeError(f"{owner}.__init__() takes {len(fields_)} positional arguments but {len(args)} were given")
        for f, value in zip(fields_, args, strict=False):
            if f.name in kwargs:
                raise TypeError(f"{owner}.__init__() got multiple values for argument '{f.name}'")
            kwargs[f.name] = value
        unknown = kwargs.keys() - names
        if unknown:
            raise TypeError(f"{owner}.__init__() got an unexpected keyword argument '{min(unknown)}'")
        for f in fields_:
            object.__setattr__(self, f.name, kwargs[f.name] if f.name in kwargs else f.value(owner))
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    return __init__


def record_repr(self: Any) -> str:
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n, f in self.__record_fields__.items() if f.repr)
    return f"{type(self).__name__}({inner})"


def record_eq(self: Any, other: Any) -> Any:
    if type(other) is not type(self):
        return NotImplemented
    return all(getattr(self, n) == getattr(other, n) for n in self.__record_fields__)


def refuse_change(self: Any, name: str, *value: Any) -> None:
    raise AttributeError(f"cannot assign to field '{name}' of a frozen {type(self).__name__}")


def fields(obj_or_cls: Any) -> tuple[Field, ...]:
    """The fields of a record (an instance or its class), in order."""
    return tuple(obj_or_cls.__record_fields__.values())


def is_record(obj: Any) -> bool:
    return hasattr(type(obj), "__record_fields__") and not isinstance(obj, type)


def asdict(obj: Any) -> Any:
    """A record as plain dicts and lists, all the way down (records inside it too)."""
    if is_record(obj):
        return {n: asdict(getattr(obj, n)) for n in obj.__record_fields__}
    if isinstance(obj, list | tuple):
        return type(obj)(asdict(v) for v in obj)
    if isinstance(obj, dict):
        return {k: asdict(v) for k, v in obj.items()}
    return obj


def replace(obj: Any, **changes: Any) -> Any:
    """A copy of the record ``obj`` with ``changes``, made through its ``__init__``."""
    kept = {n: getattr(obj, n) for n in obj.__record_fields__ if n not in changes}
    return type(obj)(**kept, **changes)
