"""Table and reducer definitions, built from a module's decorators and validated.

A ``ColType`` knows how to check a Python value, how to turn it into a
msgpack-friendly wire value and back, and how to describe itself as JSON
(which is how the schema is stored with the data and compared on reopen).
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import types as _pytypes
import typing
from collections.abc import Callable
from operator import attrgetter
from typing import Any, Annotated, get_args, get_origin

from .errors import SchemaError
from .types import ConnectionId, Identity, Timestamp

INT_MIN = -(1 << 63)
INT_MAX = (1 << 64) - 1
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names a column may not take: they would hide the table handle's methods.
RESERVED_COLUMN_NAMES = frozenset({"insert", "delete", "iter", "count"})


class Marker:
    """A column marker used inside ``Annotated[T, Marker]``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


PrimaryKey = Marker("PrimaryKey")
Unique = Marker("Unique")
AutoInc = Marker("AutoInc")
Index = Marker("Index")


def _identity(value: Any) -> Any:
    return value


class ColType:
    """One column or argument type: checking, wire conversion and description."""

    __slots__ = ("kind", "inner", "enum_cls", "check", "to_wire", "from_wire", "sort_key", "name", "_as_is")

    def __init__(self, kind: str, inner: "ColType | None" = None, enum_cls: type[enum.Enum] | None = None) -> None:
        self.kind = kind
        self.inner = inner
        self.enum_cls = enum_cls
        self.check: Callable[[Any], bool]
        self.to_wire: Callable[[Any], Any] = _identity
        self.from_wire: Callable[[Any], Any] = _identity
        # sort_key is None when values order naturally.
        self.sort_key: Callable[[Any], Any] | None = None
        self.name = kind
        # Kinds whose valid values convert to themselves: ``convert`` returns them after ``check``.
        self._as_is = kind in ("bool", "int", "str")
        getattr(self, f"_init_{kind}")()

    # -- per kind -----------------------------------------------------------
    def _init_bool(self) -> None:
        self.check = lambda v: v is True or v is False

    def _init_int(self) -> None:
        self.check = lambda v: type(v) is int and INT_MIN <= v <= INT_MAX

    def _init_float(self) -> None:
        self.check = lambda v: type(v) is float or type(v) is int

    def _init_str(self) -> None:
        self.check = lambda v: type(v) is str

    def _init_bytes(self) -> None:
        self.check = lambda v: type(v) is bytes
        self.from_wire = bytes

    def _init_identity(self) -> None:
        self.name = "Identity"
        self.check = lambda v: type(v) is Identity
        self.from_wire = _Interner(Identity).__getitem__

    def _init_connection_id(self) -> None:
        self.name = "ConnectionId"
        self.check = lambda v: type(v) is ConnectionId
        self.from_wire = _Interner(ConnectionId).__getitem__

    def _init_timestamp(self) -> None:
        self.name = "Timestamp"
        self.check = lambda v: type(v) is Timestamp
        self.from_wire = Timestamp

    def _init_option(self) -> None:
        inner = self.inner
        assert inner is not None
        self.name = f"{inner.name} | None"
        inner_check, inner_to, inner_from = inner.check, inner.to_wire, inner.from_wire
        self.check = lambda v: v is None or inner_check(v)
        if inner_to is not _identity:
            self.to_wire = lambda v: None if v is None else inner_to(v)
        if inner_from is not _identity:
            self.from_wire = lambda v: None if v is None else inner_from(v)
        inner_key = inner.sort_key
        if inner_key is None:
            self.sort_key = lambda v: (False,) if v is None else (True, v)
        else:
            self.sort_key = lambda v: (False,) if v is None else (True, inner_key(v))

    def _init_array(self) -> None:
        inner = self.inner
        assert inner is not None
        self.name = f"list[{inner.name}]"
        inner_check, inner_to, inner_from = inner.check, inner.to_wire, inner.from_wire
        self.check = lambda v: (type(v) is tuple or type(v) is list) and all(map(inner_check, v))
        if inner_to is not _identity:
            self.to_wire = lambda v: [inner_to(x) for x in v]
        self.from_wire = lambda v: tuple(map(inner_from, v))

    def _init_enum(self) -> None:
        cls = self.enum_cls
        assert cls is not None
        self.name = cls.__name__
        members = list(cls)
        order = {m: i for i, m in enumerate(members)}
        by_name = {m.name: m for m in members}
        self.check = lambda v: type(v) is cls
        self.to_wire = attrgetter("name")
        self.from_wire = by_name.__getitem__
        self.sort_key = order.__getitem__

    @property
    def item(self) -> "ColType":
        """The type inside an option or a list (only those kinds have one)."""
        inner = self.inner
        assert inner is not None, f"{self.name} has no inner type"
        return inner

    # -- description ----------------------------------------------------------
    def describe(self) -> Any:
        """A JSON value naming this type; equal descriptions mean compatible storage."""
        if self.kind == "option":
            return {"option": self.item.describe()}
        if self.kind == "array":
            return {"array": self.item.describe()}
        if self.kind == "enum":
            assert self.enum_cls is not None
            return {"enum": self.name, "variants": [m.name for m in self.enum_cls]}
        return self.kind

    def convert(self, value: Any) -> Any:
        """Turn a JSON-ish value (from a CLI or a client) into this type; raise TypeError/ValueError."""
        if self._as_is and self.check(value):
            return value
        kind = self.kind
        if kind == "option":
            if value is None:
                return None
            if isinstance(value, dict) and len(value) == 1 and ("some" in value or "none" in value):
                return None if "none" in value else self.item.convert(value["some"])
            return self.item.convert(value)
        if kind == "array":
            if not isinstance(value, (list, tuple)):
                raise TypeError(f"expected {self.name}, got {type(value).__name__}")
            return tuple(self.item.convert(v) for v in value)
        if kind == "identity" and isinstance(value, str):
            return Identity.from_hex(value)
        if kind == "connection_id" and isinstance(value, str):
            return ConnectionId.from_hex(value)
        if kind == "timestamp":
            if isinstance(value, str):
                return Timestamp.parse(value)
            if type(value) is int:
                return Timestamp(value)
        if kind in ("identity", "connection_id", "bytes") and isinstance(value, (bytes, bytearray)):
            return self.from_wire(bytes(value))
        if kind == "bytes" and isinstance(value, str):
            digits = value[2:] if value[:2].lower() == "0x" else value
            return bytes.fromhex(digits)
        if kind == "enum" and isinstance(value, str):
            try:
                return self.from_wire(value)
            except KeyError:
                raise ValueError(f"{value!r} is not a variant of {self.name}") from None
        if kind == "float" and type(value) is int:
            return float(value)
        if self.check(value):
            return value
        raise TypeError(f"expected {self.name}, got {type(value).__name__}")

    def __repr__(self) -> str:
        return f"ColType({self.name})"


class _Interner(dict[bytes, Any]):
    """Maps raw bytes to one shared value object, so replayed rows share identities."""

    def __init__(self, factory: Callable[[bytes], Any]) -> None:
        super().__init__()
        self._factory = factory

    def __missing__(self, key: bytes) -> Any:
        if len(self) > 1_000_000:
            self.clear()
        value = self[key] = self._factory(key)
        return value


_SIMPLE: dict[Any, str] = {
    bool: "bool", int: "int", float: "float", str: "str", bytes: "bytes",
    Identity: "identity", ConnectionId: "connection_id", Timestamp: "timestamp",
}
_CACHE: dict[Any, ColType] = {}
SUPPORTED = "bool, int, float, str, bytes, Identity, ConnectionId, Timestamp, T | None, list[T], enum.Enum"


def col_type(hint: Any, where: str) -> ColType:
    """The ColType for a (marker-free) type hint; SchemaError naming ``where`` if unsupported."""
    cached = _CACHE.get(hint)
    if cached is not None:
        return cached
    result: ColType
    if hint in _SIMPLE:
        result = ColType(_SIMPLE[hint])
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        result = ColType("enum", enum_cls=hint)
    else:
        origin = get_origin(hint)
        args = get_args(hint)
        if origin in (typing.Union, _pytypes.UnionType) and len(args) == 2 and type(None) in args:
            inner = args[0] if args[1] is type(None) else args[1]
            if get_origin(inner) in (typing.Union, _pytypes.UnionType):
                raise SchemaError(f"{where} has unsupported type {_hint_name(hint)}; supported: {SUPPORTED}")
            result = ColType("option", inner=col_type(inner, where))
        elif origin is list and len(args) == 1:
            result = ColType("array", inner=col_type(args[0], where))
        else:
            raise SchemaError(f"{where} has unsupported type {_hint_name(hint)}; supported: {SUPPORTED}")
    try:
        _CACHE[hint] = result
    except TypeError:
        pass
    return result


def col_type_from_json(desc: Any) -> ColType:
    """The ColType for a stored or wire type description (enums get a stand-in Enum class)."""
    if isinstance(desc, str):
        kind = desc
        if kind not in _SIMPLE.values():
            raise ValueError(f"unknown column type {desc!r}")
        return col_type(next(t for t, k in _SIMPLE.items() if k == kind), "a described column")
    if "option" in desc:
        return ColType("option", inner=col_type_from_json(desc["option"]))
    if "array" in desc:
        return ColType("array", inner=col_type_from_json(desc["array"]))
    if "enum" in desc:
        key = (desc["enum"], tuple(desc["variants"]))
        cls = _ENUMS.get(key)
        if cls is None:
            cls = _ENUMS[key] = typing.cast("type[enum.Enum]", enum.Enum(desc["enum"], list(desc["variants"])))
        return ColType("enum", enum_cls=cls)
    raise ValueError(f"unknown column type {desc!r}")


_ENUMS: dict[tuple[str, tuple[str, ...]], type[enum.Enum]] = {}


def col_type_from_description(desc: Any) -> str:
    """A readable name for a stored type description (for migration messages)."""
    if isinstance(desc, str):
        return {"identity": "Identity", "connection_id": "ConnectionId", "timestamp": "Timestamp"}.get(desc, desc)
    if "option" in desc:
        return f"{col_type_from_description(desc['option'])} | None"
    if "array" in desc:
        return f"list[{col_type_from_description(desc['array'])}]"
    return str(desc.get("enum"))


def _hint_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return repr(hint).replace("typing.", "")


_MISSING = dataclasses.MISSING


@dataclasses.dataclass(frozen=True, slots=True)
class ColumnDef:
    name: str
    type: ColType
    position: int
    default: Any = _MISSING

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING


@dataclasses.dataclass(slots=True)
class TableDef:
    """A table: its row type, columns and constraints."""

    name: str
    public: bool
    row_type: type
    columns: tuple[ColumnDef, ...]
    primary_key: str | None
    unique: tuple[str, ...]      # unique columns other than the primary key
    indexes: tuple[str, ...]     # non-unique btree indexes
    autoinc: tuple[str, ...]
    system: bool = False

    def column(self, name: str) -> ColumnDef | None:
        for col in self.columns:
            if col.name == name:
                return col
        return None

    def describe(self) -> dict[str, Any]:
        """The JSON form stored with the data and shown by ``describe``."""
        return {
            "name": self.name,
            "public": self.public,
            "columns": [
                {"name": c.name, "type": c.type.describe(),
                 **({"default": _json_default(c)} if c.has_default else {})}
                for c in self.columns
            ],
            "primary_key": self.primary_key,
            "unique": list(self.unique),
            "indexes": list(self.indexes),
            "autoinc": list(self.autoinc),
        }


def _json_default(col: ColumnDef) -> Any:
    return col.type.to_wire(col.default) if not isinstance(col.default, bytes) else col.default.hex()


def build_table(cls: type, name: str, public: bool, system: bool = False) -> type:
    """Turn an annotated class into a frozen dataclass row type carrying its TableDef."""
    if not _NAME_RE.match(name):
        raise SchemaError(f"table name {name!r} is not a valid identifier")
    if name.startswith("st_") and not system:
        raise SchemaError(f"table name `{name}`: the `st_` prefix is reserved for system tables")
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:  # NameError etc. from a bad annotation
        raise SchemaError(f"table `{name}`: cannot resolve the column types: {exc}") from None
    own = cls.__dict__.get("__annotations__", {})
    if not own:
        raise SchemaError(f"table `{name}` declares no columns")
    columns: list[ColumnDef] = []
    pk: str | None = None
    unique: list[str] = []
    indexes: list[str] = []
    autoinc: list[str] = []
    has_array = False
    for position, col_name in enumerate(own):
        hint = hints[col_name]
        where = f"column `{col_name}` of table `{name}`"
        markers: list[Marker] = []
        if get_origin(hint) is Annotated:
            base, *extra = get_args(hint)
            markers = [m for m in extra if isinstance(m, Marker)]
            hint = base
        if col_name.startswith("_"):
            raise SchemaError(f"{where}: column names must not start with `_`")
        ctype = col_type(hint, where)
        has_array = has_array or _contains_array(ctype)
        for marker in markers:
            if marker is PrimaryKey:
                if pk is not None:
                    raise SchemaError(f"table `{name}` declares two primary keys: `{pk}` and `{col_name}`")
                pk = col_name
            elif marker is Unique:
                unique.append(col_name)
            elif marker is Index:
                indexes.append(col_name)
            elif marker is AutoInc:
                if ctype.kind != "int":
                    raise SchemaError(f"AutoInc needs an int column; {where} is {ctype.name}")
                autoinc.append(col_name)
        keyed = col_name == pk or col_name in unique or col_name in indexes
        if keyed and ctype.kind == "array":
            raise SchemaError(f"{where}: a list column cannot be a key or indexed")
        if keyed and col_name in RESERVED_COLUMN_NAMES:
            raise SchemaError(f"{where}: an indexed column cannot be named `{col_name}`"
                              f" (it would hide `ctx.db.{name}.{col_name}()`)")
        default = cls.__dict__.get(col_name, _MISSING)
        if isinstance(default, dataclasses.Field):
            raise SchemaError(f"{where}: use a plain default value, not dataclasses.field()")
        if default is not _MISSING:
            if isinstance(default, list):
                # Rows are immutable: a list default is stored (and given to every row) as a tuple.
                default = _deep_tuple(default)
                setattr(cls, col_name, default)
            if not ctype.check(default):
                raise SchemaError(f"{where}: default {default!r} is not a {ctype.name}")
        columns.append(ColumnDef(col_name, ctype, position, default))
    unique = [c for c in dict.fromkeys(unique) if c != pk]
    indexes = [c for c in dict.fromkeys(indexes) if c != pk and c not in unique]

    if has_array:
        array_cols = [c.name for c in columns if _contains_array(c.type)]

        def __post_init__(self: Any) -> None:
            # Rows must be hashable (set semantics, indexes): lists become tuples.
            for col in array_cols:
                value = getattr(self, col)
                if type(value) is list:
                    object.__setattr__(self, col, _deep_tuple(value))

        cls.__post_init__ = __post_init__  # type: ignore[attr-defined]  # a hook set on the class before it becomes a dataclass
    row_type: type[Any] = dataclasses.dataclass(frozen=True, slots=True)(cls)
    row_type.__table__ = TableDef(
        name=name, public=public, row_type=row_type, columns=tuple(columns),
        primary_key=pk, unique=tuple(unique), indexes=tuple(indexes), autoinc=tuple(autoinc), system=system,
    )
    return row_type


def _contains_array(ctype: ColType) -> bool:
    if ctype.kind == "array":
        return True
    return ctype.kind == "option" and _contains_array(ctype.item)


def _deep_tuple(value: Any) -> Any:
    if type(value) is list:
        return tuple(_deep_tuple(v) for v in value)
    return value


LIFECYCLE_KINDS = ("init", "client_connected", "client_disconnected")


@dataclasses.dataclass(slots=True)
class ReducerDef:
    """A reducer: its function, typed parameters and lifecycle kind (None for a normal reducer)."""

    name: str
    func: Callable[..., Any]
    params: tuple[tuple[str, ColType], ...]
    lifecycle: str | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "params": [{"name": n, "type": t.describe()} for n, t in self.params]}
        if self.lifecycle:
            out["lifecycle"] = self.lifecycle
        return out

    def signature(self) -> str:
        return f"{self.name}({', '.join(f'{n}: {t.name}' for n, t in self.params)})"


def build_reducer(func: Callable[..., Any], lifecycle: str | None) -> ReducerDef:
    """Read a reducer's parameters from its type hints (the first one is ``ctx``)."""
    name = func.__name__
    where = f"reducer `{name}`"
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:
        raise SchemaError(f"{where}: cannot resolve the argument types: {exc}") from None
    params = list(inspect.signature(func).parameters.values())
    if not params:
        raise SchemaError(f"{where} must take `ctx: ReducerContext` as its first parameter")
    typed: list[tuple[str, ColType]] = []
    for p in params[1:]:
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            raise SchemaError(f"{where}: parameter `{p.name}` must be a plain positional parameter")
        if p.name not in hints:
            raise SchemaError(f"{where}: parameter `{p.name}` needs a type annotation")
        typed.append((p.name, col_type(hints[p.name], f"parameter `{p.name}` of {where}")))
    if lifecycle and typed:
        raise SchemaError(f"lifecycle reducer `{name}` must take only `ctx`")
    return ReducerDef(name=name, func=func, params=tuple(typed), lifecycle=lifecycle)
