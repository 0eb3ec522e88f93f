"""stocksync: an offline-first inventory node on SQLite that syncs with a hub.

Everything here comes from the generated uniffi module ``stocksync_ffi`` (``SyncNode``, the
records and enums, ``StocksyncError`` and its variants, ``SyncListener``), which loads
``libstocksync_ffi`` from this directory. The one addition is :func:`events`, an asyncio view of
a node's listener.

Local reads and writes (``record``, ``stock``, ``find_product``, …) are plain calls; ``enroll``,
``sync_now`` and ``stop`` are coroutines. Errors are ``StocksyncError.<Variant>`` exceptions
(``Offline``, ``AuthRequired``, ``Rule``, ``NotFound``, ``Invalid``, ``Hub``, ``Storage``), all
subclasses of ``StocksyncError``.
"""

from __future__ import annotations

import asyncio
import typing

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
