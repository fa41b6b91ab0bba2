"""Record: an immutable value class (what `@dataclass(frozen=True)` gave the classes on the build path).

The CLI starts a fresh interpreter for every build, and `import dataclasses` pulls in inspect, ast, dis and
tokenize, plus code generation for each class: ~9 ms of every `oci2bin` run on the benchmark machine
(docs/benchmarks.md section 3). A subclass lists its fields in `_fields` (constructor order), their defaults
in `_defaults`, and may restrict equality/hashing to `_compare` and the repr to `_shown`.
"""

from __future__ import annotations


class Record:
    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _defaults: dict = {}
    _compare: tuple[str, ...] | None = None  # default: all fields
    _shown: tuple[str, ...] | None = None  # default: all fields

    def __init__(self, *args, **kwargs) -> None:
        names = self._fields
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes {len(names)} arguments, got {len(args)}")
        values = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names or k in values:
                raise TypeError(f"{type(self).__name__}() got an unexpected or repeated argument {k!r}")
            values[k] = v
        for n in names:
            if n in values:
                object.__setattr__(self, n, values[n])
            elif n in self._defaults:
                object.__setattr__(self, n, self._defaults[n])
            else:
                raise TypeError(f"{type(self).__name__}() missing argument {n!r}")
        self._post_init()

    def _post_init(self) -> None:
        pass

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {type(self).__name__} is immutable")

    def _key(self) -> tuple:
        return tuple(getattr(self, n) for n in (self._compare or self._fields))

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in (self._shown or self._fields))
        return f"{type(self).__name__}({shown})"

    def __reduce__(self) -> tuple:  # pickle and copy: rebuilt through __init__ (slots, no __setattr__)
        return (type(self), tuple(getattr(self, n) for n in self._fields))

    def replace(self, **changes) -> Record:
        """A copy with some fields changed (dataclasses.replace)."""
        values = {n: getattr(self, n) for n in self._fields}
        for k in changes:
            if k not in values:
                raise TypeError(f"{type(self).__name__} has no field {k!r}")
        values.update(changes)
        return type(self)(**values)
