"""Reducer calls: finding the reducer, checking its arguments (in this one place), running it
as a datastore transaction, and the ``CallResult`` that says how it went.

A ``ReducerError`` from module code is a clean failure (``failed``); any other
exception, even ``sys.exit()``, is that call's own panic (``internal_error``,
logged with its traceback to the module log). Either way nothing changed.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import os
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .datastore import Datastore, TxMeta
from .errors import InvalidArguments, NoSuchReducer, NotCallable, ReducerError
from .logs import LogRecord, ModuleLog
from .module import DbView, ReducerContext, TxSlot
from .module import _sink as _log_sink
from .schema import ReducerDef
from .tx import Transaction, TxData
from .types import ConnectionId, Identity


class CallStatus(enum.StrEnum):
    """How a call ended (the values are the wire's)."""

    COMMITTED = "committed"
    FAILED = "failed"  # a ReducerError: ``error`` is its text
    INTERNAL_ERROR = "internal_error"  # a panic, or nothing can be written


@dataclasses.dataclass(slots=True)
class CallResult:
    """The outcome of one reducer call.

    ``offset`` is the log offset the result must wait for before anyone is told (-1: nothing
    to wait for); ``tx`` is the committed TxData (None unless committed).
    """

    status: CallStatus
    error: str | None
    tx: TxData | None
    offset: int
    connection_id: ConnectionId | None = None

    @property
    def ok(self) -> bool:
        """Committed (the host and embedders test this)."""
        return self.status is CallStatus.COMMITTED

    @property
    def committed_no_changes(self) -> bool:
        return self.ok and self.tx is not None and self.tx.is_empty


def reducer_args(rdef: ReducerDef, values: Sequence[Any], *, wire: bool = False) -> tuple[Any, ...]:
    """``values`` as the checked arguments of ``rdef``; InvalidArguments unless they fit.

    With ``wire``, each value is first converted from its wire or JSON form (a hex string
    for an Identity, a variant name for an enum, ...) by its parameter's type.
    """
    params = rdef.params
    if len(values) != len(params):
        raise InvalidArguments(
            f"reducer `{rdef.name}` takes {len(params)} argument{'s' if len(params) != 1 else ''}"
            f" ({', '.join(f'{n}: {t.name}' for n, t in params) or 'none'}), got {len(values)}"
        )
    if wire:
        args = []
        for (pname, ptype), value in zip(params, values, strict=True):
            try:
                args.append(ptype.convert(value))
            except (TypeError, ValueError) as exc:
                raise InvalidArguments(
                    f"reducer `{rdef.name}`: argument `{pname}` must be {ptype.name}: {exc}") from None
        return tuple(args)
    for (pname, ptype), value in zip(params, values):  # noqa: B905 - the lengths were compared above
        if not ptype.check(value):
            raise InvalidArguments(
                f"reducer `{rdef.name}`: argument `{pname}` must be {ptype.name},"
                f" got {type(value).__name__} {value!r:.60}"
            )
    return tuple(values)


class Reducers:
    """A module's reducers over a datastore: look one up, run it as a transaction."""

    def __init__(self, store: Datastore, reducers: dict[str, ReducerDef], callable_names: Sequence[str],
                 view: DbView, slot: TxSlot, identity: Identity, logs: ModuleLog, module_file: str | None) -> None:
        self.store = store
        self.defs = reducers
        self._callable = sorted(callable_names)
        self._view = view
        self._slot = slot
        self._identity = identity
        self._logs = logs
        self._module_file = module_file

    def lookup(self, name: str) -> ReducerDef:
        """The callable reducer ``name``; NoSuchReducer suggesting the closest name, NotCallable
        for a lifecycle reducer."""
        rdef = self.defs.get(name)
        if rdef is None:
            raise NoSuchReducer(self.no_such_reducer_message(name))
        if rdef.lifecycle:
            raise NotCallable(
                f"`{name}` is a lifecycle reducer (@{rdef.lifecycle}); it runs on its event and cannot be called")
        return rdef

    def no_such_reducer_message(self, name: str, database: str | None = None) -> str:
        where = f" in database `{database}`" if database else ""
        head = f"no such reducer `{name}`{where}."
        close = difflib.get_close_matches(name, self._callable, n=1, cutoff=0.6)
        if close:
            return f"{head} A reducer with a similar name exists: `{close[0]}`"
        if self._callable:
            return f"{head} Its reducers are: " + ", ".join(f"`{n}`" for n in self._callable)
        return f"{head} It has no reducers."

    def run(self, name: str, func: Callable[..., Any], args: tuple[Any, ...], sender: Identity,
            connection_id: ConnectionId | None, extra: Callable[[Transaction], None] | None = None) -> CallResult:
        """Run ``func(ctx, *args)`` (then ``extra(tx)``) as one transaction; raises only StorageError
        (nothing can be written). The result is not yet durable: wait for ``result.offset``."""
        store = self.store
        try:
            tx = store.transaction(self._invoke, _Call(name, sender, connection_id, args, None, func, extra))
        except _Raised as raised:
            exc = raised.exc
            if isinstance(exc, ReducerError):
                return CallResult(CallStatus.FAILED, str(exc), None, store.next_offset - 1, connection_id)
            self._log_panic(name, exc)
            return CallResult(CallStatus.INTERNAL_ERROR, f"internal error: {_describe(exc)}", None,
                              store.next_offset - 1, connection_id)
        return CallResult(CallStatus.COMMITTED, None, tx, store.next_offset - 1, connection_id)

    def _invoke(self, tx: Transaction, call: _Call) -> None:
        slot = self._slot
        slot.tx = tx
        sink = _log_sink
        previous_sink = getattr(sink, "log", None)
        sink.log = self._logs
        try:
            call.func(ReducerContext(call.caller, call.connection_id, tx.timestamp, self._view, self._identity),
                      *call.args)
            if call.extra is not None:
                call.extra(tx)
        except BaseException as exc:  # noqa: BLE001 - even sys.exit() in a reducer is only its own panic
            raise _Raised(exc) from None
        finally:
            slot.tx = None
            sink.log = previous_sink

    def _log_panic(self, name: str, exc: BaseException) -> None:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        frames = traceback.extract_tb(exc.__traceback__)
        frame = next((f for f in reversed(frames) if f.filename == self._module_file), frames[-1] if frames else None)
        self._logs.emit(LogRecord(
            time.time_ns() // 1000, "ERROR",
            os.path.basename(frame.filename) if frame else None, frame.lineno if frame else None,
            f"reducer `{name}` panicked: {_describe(exc)}\n{tb.rstrip()}",
        ))


class _Raised(Exception):
    """Carries what module code raised through the datastore's rollback, apart from the
    datastore's own refusals (StorageError), which the caller gets as they are."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc


def _describe(exc: BaseException) -> str:
    """``Type: message``, or the type alone when the message is empty (``sys.exit()``)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def noop(ctx: ReducerContext) -> None:
    """The hook of a lifecycle event the module does not handle."""
    return None


@dataclasses.dataclass(slots=True)
class _Call(TxMeta):
    """A reducer call as its transaction's meta: what ``Reducers._invoke`` runs."""

    func: Callable[..., Any] = noop
    extra: Callable[[Transaction], None] | None = None
