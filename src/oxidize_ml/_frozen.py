"""Building a frozen, slotted dataclass of three fields without its ``__init__``.

A frozen dataclass's ``__init__`` stores each field through
``object.__setattr__`` (the class's own ``__setattr__`` refuses writes), which
costs about as much as the rest of a small decision on the packet path. The
slot descriptors store a field directly. The result is the same object in
every respect (class, fields, equality, hash); the class's ``__post_init__``,
if it has one, does not run, so this is only for value types whose fields the
caller has already checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def three_field_maker(cls: type[T]) -> Callable[[Any, Any, Any], T]:
    """``make(a, b, c)`` equal to ``cls(a, b, c)``, at about 60 % of the cost.

    ``cls`` must be a ``@dataclass(frozen=True, slots=True)`` of exactly three
    fields and no ``__post_init__`` (checked here, once).
    """
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    if len(names) != 3 or "__post_init__" in vars(cls) or "__slots__" not in vars(cls):
        raise TypeError(f"{cls.__name__} is not a slotted dataclass of 3 unchecked fields")
    new = object.__new__
    set_a, set_b, set_c = (vars(cls)[name].__set__ for name in names)

    def make(a: Any, b: Any, c: Any) -> T:
        obj = new(cls)
        set_a(obj, a)
        set_b(obj, b)
        set_c(obj, c)
        return obj

    make.__doc__ = f"``{cls.__name__}({', '.join(names)})`` without the frozen class's __init__"
    return make
