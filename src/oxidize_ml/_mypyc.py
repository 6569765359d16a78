"""mypyc's class options, usable without mypy installed.

An optional build compiles the packet-path modules with mypyc (see
``docs/decisions.md``, "Compiled build"). mypyc reads ``@mypyc_attr(...)`` at
compile time, and the compiled modules then import it like any name; a pure
install need not have ``mypy_extensions`` (it is not a runtime dependency), so
there the decorator is a no-op, which is what it means to plain Python anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr
else:
    try:
        from mypy_extensions import mypyc_attr
    except ImportError:  # a pure install: nothing reads the attributes

        def mypyc_attr(*attrs, **kwattrs):
            return lambda cls: cls


__all__ = ["mypyc_attr"]
