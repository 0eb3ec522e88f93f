"""The package's one helper: `stocksync.events(node)`, a node's events on the asyncio loop."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import stocksync
from stocksync import DeviceRole, Movement, NewProduct, OpStatus, SyncEvent, SyncNode


def test_events_arrive_on_the_running_loop(start_hub):
    hub = start_hub()  # its own hub: the scenario's devices see nothing of this one

    async def scenario(node: SyncNode):
        await node.enroll(hub.base_url, hub.enrollment_key, DeviceRole.DESKTOP, "Back office")
        node.add_location("E-01", "Dock")
        node.add_product(NewProduct(sku="CRATE", name="Crate"))
        async with stocksync.events(node) as stream:
            received = node.record(Movement.RECEIVE(product="CRATE", location="E-01", quantity="2"))
            await node.sync_now()

            async def first_settled():
                async for event in stream:
                    if isinstance(event, SyncEvent.OP_SETTLED) and event.outcome.op_id == received.op_id:
                        return event

            event = await asyncio.wait_for(first_settled(), timeout=10)
            assert event.outcome.status == OpStatus.APPLIED
        # Closed: iteration ends once what was queued has been read.
        rest = await asyncio.wait_for(_drain(stream), timeout=10)
        assert all(isinstance(e, SyncEvent) for e in rest)
        await node.stop()

    with tempfile.TemporaryDirectory(prefix="stocksync-events-") as directory:
        node = SyncNode.open(str(Path(directory) / "events.db"))
        try:
            asyncio.run(scenario(node))
        finally:
            hub.stop()
        assert node.check() == []


async def _drain(stream) -> list:
    return [event async for event in stream]
