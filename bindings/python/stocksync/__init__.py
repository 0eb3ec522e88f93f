"""stocksync: an offline-first inventory node on SQLite that syncs with a hub.

Everything here comes from the generated uniffi module ``stocksync_ffi`` (``SyncNode``, the
records and enums, ``StocksyncError`` and its variants, ``SyncListener``), which loads
``libstocksync_ffi`` from this directory. The one addition is :func:`events`, an asyncio view of
a node's listener, and the small layer at the end of this file: readable ``repr``/``str`` for
the generated records and errors, and a clean exit (see ``_exit_guard``).

Local reads and writes (``record``, ``stock``, ``find_product``, …) are plain calls; ``enroll``,
``sync_now`` and ``stop`` are coroutines. Errors are ``StocksyncError.<Variant>`` exceptions
(``Offline``, ``AuthRequired``, ``Rule``, ``NotFound``, ``Invalid``, ``Hub``, ``Storage``), all
subclasses of ``StocksyncError``.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import sys
import threading
import typing
import weakref

from . import stocksync_ffi as _ffi
from .stocksync_ffi import *  # noqa: F401,F403  (the generated API, as its __all__ lists it)
from .stocksync_ffi import __all__ as _generated
from .stocksync_ffi import (  # explicit, for type checkers and IDEs
    Allocation,
    Conflict,
    ConflictResolution,
    DeviceInfo,
    DeviceRole,
    FieldError,
    InternalError,
    LedgerRow,
    Leg,
    ListenerHandle,
    Location,
    Money,
    Movement,
    NewDevice,
    NewProduct,
    NodeStatus,
    OpOutcome,
    OpStatus,
    OutboxRow,
    Product,
    ProductEdit,
    ProductStatus,
    ReasonCode,
    Recorded,
    StockRow,
    StocksyncError,
    SyncEvent,
    SyncListener,
    SyncNode,
    SyncProgress,
    SyncReport,
    SyncState,
    Uom,
    core_version,
)

__all__ = [*_generated, "Events", "events"]


class _ToLoop(SyncListener):
    """Hands each event to an asyncio queue on the loop's thread (callbacks run on Rust threads)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        self._loop = loop
        self._queue = queue

    def on_event(self, event: SyncEvent) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:
            pass  # the loop is closed: nobody is listening any more


_CLOSED = object()


class Events:
    """A node's events as an async iterator, registered until :meth:`close` (or ``async with``)."""

    def __init__(self, node: SyncNode) -> None:
        self._queue: asyncio.Queue = asyncio.Queue()
        self._handle: typing.Optional[ListenerHandle] = node.add_listener(
            _ToLoop(asyncio.get_running_loop(), self._queue)
        )

    def __aiter__(self) -> "Events":
        return self

    async def __anext__(self) -> SyncEvent:
        event = await self._queue.get()
        if event is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # every later read ends too
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        """Stops delivery (idempotent); iteration ends after the events already queued."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._queue.put_nowait(_CLOSED)

    async def __aenter__(self) -> "Events":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def events(node: SyncNode) -> Events:
    """Registers a listener on ``node`` whose events arrive on the running event loop::

        async with stocksync.events(node) as stream:
            async for event in stream:
                if isinstance(event, stocksync.SyncEvent.STOCK_CHANGED):
                    refresh(event.product_id, event.location_id)

    Call it from a coroutine (it needs the running loop).
    """
    return Events(node)


# ---- printing ----------------------------------------------------------------------------------
# uniffi makes records and enum variants `@dataclass`es without annotated fields, so the dataclass
# `__repr__` prints `StockRow()`; and its errors' `str()` lists the fields, not the exported Rust
# `Display` sentence Kotlin and Swift show. Both are fixed here once, for every generated type.


def _fields_repr(self: object) -> str:
    fields = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
    return f"{type(self).__qualname__}({fields})"


def _display(self: StocksyncError) -> str:
    """The Rust `Display` of the error (`only 2 EACH on hand … (no_negative_inventory)`)."""
    try:
        return _ffi._UniffiFfiConverterString.lift(
            _ffi._uniffi_rust_call(
                _ffi._UniffiLib.uniffi_stocksync_ffi_fn_method_stocksyncerror_uniffi_trait_display,
                _ffi._UniffiFfiConverterTypeStocksyncError.lower(self),
            )
        )
    except Exception:  # fields the library cannot take (built by hand): the generated text
        return Exception.__str__(self)


def _generated_types() -> typing.Iterator[type]:
    for name in _generated:
        outer = getattr(_ffi, name)
        if isinstance(outer, type):
            yield outer
            yield from (v for v in vars(outer).values() if isinstance(v, type))  # enum variants


for _type in set(_generated_types()):
    if dataclasses.is_dataclass(_type) or (
        issubclass(_type, StocksyncError) and _type is not StocksyncError
    ):
        _type.__repr__ = _fields_repr  # type: ignore[method-assign]
StocksyncError.__str__ = _display  # type: ignore[method-assign]


# ---- a clean exit ------------------------------------------------------------------------------
# Python (before 3.14) ends, with pthread_exit, any thread that takes the GIL once finalization has
# begun. The library's threads call into Python: uniffi wakes an awaiting coroutine by calling a
# Python callback on the Rust thread that finished the work (a tokio worker or blocking-pool
# thread), and that callback lets go of the GIL inside `loop.call_soon_threadsafe` (it writes to
# the loop's pipe). If the main thread returns from `asyncio.run` and exits in that window, the
# callback thread is ended inside Rust code, and the forced unwind reaches a `catch_unwind` (tokio's
# task harness) where glibc aborts: "FATAL: exception not rethrown", exit code 134. Background sync
# left running does the same whenever it calls a listener during finalization.
# So, at exit and before finalization: stop background sync started from Python, then wait (GIL
# released) until no library thread is still inside a callback. Calls are counted from here.


class _ExitGuard:
    WAIT_SECONDS = 5.0  # a callback in flight needs microseconds once it has the GIL

    def __init__(self) -> None:
        self._idle = threading.Condition()
        self._inside = 0
        # Nodes whose background sync runs. Weak: dropping a node still ends its sync, as before.
        self._running: "weakref.WeakValueDictionary[int, SyncNode]" = weakref.WeakValueDictionary()

    def __enter__(self) -> None:
        with self._idle:
            self._inside += 1

    def __exit__(self, *exc: object) -> None:
        with self._idle:
            self._inside -= 1
            if self._inside == 0:
                self._idle.notify_all()

    def started(self, node: SyncNode) -> None:
        with self._idle:
            self._running[id(node)] = node

    def stopped(self, node: SyncNode) -> None:
        with self._idle:
            self._running.pop(id(node), None)

    def at_exit(self) -> None:
        with self._idle:
            nodes = list(self._running.values())
            self._running.clear()
        if nodes:

            async def stop_all() -> None:
                await asyncio.gather(*(node.stop() for node in nodes))

            try:
                asyncio.run(stop_all())
            except Exception as e:  # exiting anyway: say why, do not add a traceback
                print(f"stocksync: could not stop background sync at exit: {e}", file=sys.stderr)
        with self._idle:
            self._idle.wait_for(lambda: self._inside == 0, self.WAIT_SECONDS)


_exit_guard = _ExitGuard()
atexit.register(_exit_guard.at_exit)

# `_uniffi_rust_call_async` looks this global up at each poll: every wake now goes through the guard.
_generated_continuation = _ffi._uniffi_continuation_callback


@_ffi._UNIFFI_RUST_FUTURE_CONTINUATION_CALLBACK
def _guarded_continuation(future_handle: int, poll_code: int) -> None:
    with _exit_guard:
        _generated_continuation(future_handle, poll_code)


_ffi._uniffi_continuation_callback = _guarded_continuation

_generated_start = SyncNode.start
_generated_stop = SyncNode.stop


def _start(self: SyncNode) -> None:
    _generated_start(self)
    _exit_guard.started(self)


async def _stop(self: SyncNode) -> None:
    _exit_guard.stopped(self)
    await _generated_stop(self)


class _GuardedListener(SyncListener):
    def __init__(self, listener: SyncListener) -> None:
        self._listener = listener

    def on_event(self, event: SyncEvent) -> None:
        with _exit_guard:
            self._listener.on_event(event)


_generated_add_listener = SyncNode.add_listener


def _add_listener(self: SyncNode, listener: SyncListener) -> ListenerHandle:
    return _generated_add_listener(self, _GuardedListener(listener))


for _name, _method in (("start", _start), ("stop", _stop), ("add_listener", _add_listener)):
    _method.__doc__ = getattr(SyncNode, _name).__doc__
    setattr(SyncNode, _name, _method)
