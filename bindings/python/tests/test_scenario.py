"""bindings/SCENARIO.md, step by step, against the real library and a real hub.

Two devices, A (handheld) and B (tablet), each on its own SQLite file, share the `hub` fixture.
The steps build on each other and run in file order (pytest's default): when one fails, the
later ones are skipped rather than failing for the same reason. Step 10 uses a third device, C,
on a second hub it stops.

One addition to SCENARIO.md's words: the hub files step 7's rejection as an open `business_rule`
conflict too (the rejected outcome's `conflict_id`), so step 7 checks it and B dismisses it;
otherwise step 8's "no open conflicts on either" could not hold.
"""

from __future__ import annotations

import asyncio
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import Recorder

from stocksync import (
    ConflictResolution,
    DeviceRole,
    Money,
    Movement,
    NewProduct,
    OpStatus,
    ProductEdit,
    StocksyncError,
    SyncEvent,
    SyncNode,
    SyncReport,
    SyncState,
)

SKU = "LAMP"
BARCODE = "4006381333931"
LOCATION = "A-01"


class World:
    """What the steps share; `begin(n)` skips step n unless steps 1..n-1 all passed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.passed = 0
        self.nodes: dict = {}

    def begin(self, step: int) -> None:
        if self.passed != step - 1:
            pytest.skip(f"step {self.passed + 1} failed or did not run; step {step} builds on it")

    def end(self, step: int) -> None:
        self.passed = step

    def open(self, name: str) -> SyncNode:
        node = SyncNode.open(str(self.directory / f"{name}.db"))
        self.nodes[name] = node
        return node


@pytest.fixture(scope="module")
def world():
    with tempfile.TemporaryDirectory(prefix="stocksync-devices-") as directory:
        w = World(Path(directory))
        yield w
        # Background sync was never started; stop() is still the polite way to let go.
        for node in w.nodes.values():
            asyncio.run(node.stop())
        w.nodes.clear()


def sync(node: SyncNode) -> SyncReport:
    return asyncio.run(node.sync_now())


def stock_row(node: SyncNode, product: str = SKU, location: str = LOCATION):
    rows = node.stock(product, location)
    assert len(rows) == 1, rows
    return rows[0]


def on_hand(node: SyncNode) -> Decimal:
    return Decimal(stock_row(node).on_hand)


def outcome_of(report: SyncReport, op_id: str):
    found = [o for o in report.outcomes if o.op_id == op_id]
    assert len(found) == 1, f"one outcome for {op_id} in {report}"
    return found[0]


def settled(op_id: str, status: OpStatus):
    return lambda e: (
        isinstance(e, SyncEvent.OP_SETTLED) and e.outcome.op_id == op_id and e.outcome.status == status
    )


def test_01_open(world):
    world.begin(1)
    for name in ("A", "B"):
        node = world.open(name)
        assert node.status().state == SyncState.AUTH_REQUIRED
        assert node.status().enrolled is False
        with pytest.raises(StocksyncError.AuthRequired):
            node.device()
    world.end(1)


def test_02_enroll(world, hub):
    world.begin(2)
    a, b = world.nodes["A"], world.nodes["B"]

    async def enroll_both():
        return await asyncio.gather(
            a.enroll(hub.base_url, hub.enrollment_key, DeviceRole.HANDHELD, "Handheld A"),
            b.enroll(hub.base_url, hub.enrollment_key, DeviceRole.TABLET, "Tablet B"),
        )

    device_a, device_b = asyncio.run(enroll_both())
    assert device_a.device_id != device_b.device_id
    assert device_a.org_id == device_b.org_id == hub.organization_id
    assert (device_a.role, device_b.role) == (DeviceRole.HANDHELD, DeviceRole.TABLET)
    assert a.device() == device_a and b.device() == device_b
    for node in (a, b):
        status = node.status()
        assert status.enrolled is True
        assert status.hub_url.rstrip("/") == hub.base_url.rstrip("/")
        assert status.state != SyncState.AUTH_REQUIRED
    world.end(2)


def test_03_catalog(world):
    world.begin(3)
    a, b = world.nodes["A"], world.nodes["B"]
    location = a.add_location(LOCATION, "Aisle 1, shelf 1")
    product = a.add_product(
        NewProduct(sku=SKU, name="Head lamp", barcode=BARCODE, price=Money(amount="4.99", currency="EUR"))
    )
    assert (location.code, product.sku, product.barcode) == (LOCATION, SKU, BARCODE)

    world.listener_a, world.listener_b = Recorder("A"), Recorder("B")
    world.handle_a = a.add_listener(world.listener_a)
    world.handle_b = b.add_listener(world.listener_b)

    sync(a)
    sync(b)
    scanned = b.find_product(BARCODE)
    assert scanned.id == product.id
    assert (scanned.sku, scanned.name, scanned.barcode) == (SKU, "Head lamp", BARCODE)
    assert Decimal(scanned.price.amount) == Decimal("4.99") and scanned.price.currency == "EUR"
    assert b.location(LOCATION).id == location.id
    world.product_id, world.location_id = product.id, location.id
    world.end(3)


def test_04_typed_errors_locally(world):
    world.begin(4)
    a = world.nodes["A"]

    with pytest.raises(StocksyncError.NotFound) as not_found:
        a.find_product("nope")
    assert not_found.value.key == "nope"
    assert isinstance(not_found.value, StocksyncError)

    with pytest.raises(StocksyncError.Invalid) as invalid:
        a.record(Movement.RECEIVE(product=SKU, location=LOCATION, quantity="abc"))
    assert "quantity" in [f.field for f in invalid.value.fields], invalid.value.fields

    outbox_before = a.outbox()
    stock_before = a.stock(SKU, LOCATION)
    with pytest.raises(StocksyncError.Rule) as rule:
        a.record(Movement.SHIP(product=SKU, location=LOCATION, quantity="1"))
    assert rule.value.rule == "no_negative_inventory"
    assert rule.value.reason
    assert a.outbox() == outbox_before  # nothing was written
    assert a.stock(SKU, LOCATION) == stock_before
    world.end(4)


def test_05_record_then_sync(world):
    world.begin(5)
    a, b = world.nodes["A"], world.nodes["B"]
    mark_b = world.listener_b.mark()

    received = a.record(Movement.RECEIVE(product=BARCODE, location=LOCATION, quantity="5"))
    row = stock_row(a)
    assert Decimal(row.on_hand) == 5 and Decimal(row.pending) == 5
    assert a.status().pending >= 1
    assert [o.state for o in a.outbox() if o.op_id == received.op_id] == ["pending"]

    report = sync(a)
    assert report.applied >= 1
    assert outcome_of(report, received.op_id).status == OpStatus.APPLIED
    world.listener_a.wait_for(
        f"OpSettled APPLIED for {received.op_id}", settled(received.op_id, OpStatus.APPLIED)
    )
    assert Decimal(stock_row(a).pending) == 0 and on_hand(a) == 5

    sync(b)
    assert on_hand(b) == 5
    world.listener_b.wait_for(
        f"StockChanged for ({SKU}, {LOCATION})",
        lambda e: isinstance(e, SyncEvent.STOCK_CHANGED)
        and (e.product_id, e.location_id) == (world.product_id, world.location_id),
        since=mark_b,
    )
    world.end(5)


def test_06_async(world):
    world.begin(6)
    a, b = world.nodes["A"], world.nodes["B"]

    async def both():
        return await asyncio.gather(a.sync_now(), b.sync_now())

    reports = asyncio.run(both())
    for report in reports:
        assert isinstance(report, SyncReport)
        assert (report.rejected, report.parked) == (0, 0)
    assert on_hand(a) == on_hand(b) == 5
    world.end(6)


def test_07_rule_rejection_at_the_hub(world):
    world.begin(7)
    a, b = world.nodes["A"], world.nodes["B"]
    assert on_hand(a) == on_hand(b) == 5
    shipped_a = a.record(Movement.SHIP(product=BARCODE, location=LOCATION, quantity="4"))
    shipped_b = b.record(Movement.SHIP(product=BARCODE, location=LOCATION, quantity="4"))
    assert on_hand(a) == on_hand(b) == 1  # each device's own view allows it

    report_a = sync(a)
    assert report_a.applied >= 1
    assert outcome_of(report_a, shipped_a.op_id).status == OpStatus.APPLIED

    report_b = sync(b)
    assert report_b.rejected == 1
    outcome = outcome_of(report_b, shipped_b.op_id)
    assert outcome.status == OpStatus.REJECTED
    assert outcome.rule == "no_negative_inventory"
    event = world.listener_b.wait_for(
        f"OpSettled REJECTED for {shipped_b.op_id}", settled(shipped_b.op_id, OpStatus.REJECTED)
    )
    assert event.outcome.rule == "no_negative_inventory"
    assert on_hand(b) == 1  # corrected: A's shipment stands, B's is withdrawn
    assert Decimal(stock_row(b).pending) == 0

    # Not in SCENARIO.md's words, but what the hub does: the rejection also opened a
    # `business_rule` conflict for a person to see (the outcome names it). B acknowledges it, so
    # that step 8's "no open conflicts" is about the price clash alone.
    assert outcome.conflict_id
    rejection = [c for c in b.conflicts(False) if c.id == outcome.conflict_id]
    assert len(rejection) == 1, b.conflicts(True)
    assert (rejection[0].kind, rejection[0].rule) == ("business_rule", "no_negative_inventory")
    b.resolve_conflict(outcome.conflict_id, ConflictResolution.DISMISS())
    sync(b)
    assert b.conflicts(False) == []
    assert on_hand(b) == 1
    world.end(7)


def test_08_conflict(world):
    world.begin(8)
    a, b = world.nodes["A"], world.nodes["B"]
    a.edit_product(SKU, [ProductEdit.PRICE(Money(amount="5.49", currency="EUR"))])
    b.edit_product(SKU, [ProductEdit.PRICE(Money(amount="5.29", currency="EUR"))])

    sync(a)
    report = sync(b)
    conflicting = [o for o in report.outcomes if o.status == OpStatus.CONFLICT]
    assert len(conflicting) == 1, report.outcomes
    conflict_id = conflicting[0].conflict_id
    assert conflict_id

    open_b = b.conflicts(False)
    assert [c.id for c in open_b] == [conflict_id]
    assert open_b[0].field == "price"
    assert open_b[0].status == "open"

    b.resolve_conflict(conflict_id, ConflictResolution.USE_VALUE("5.49 EUR"))
    sync(b)
    sync(a)
    for node in (a, b):
        assert node.conflicts(False) == []
        assert node.status().conflicts == 0
        price = node.find_product(SKU).price
        assert (Decimal(price.amount), price.currency) == (Decimal("5.49"), "EUR")
    world.end(8)


def test_09_listener_handle(world):
    world.begin(9)
    a, b = world.nodes["A"], world.nodes["B"]
    # A second listener on A proves A did get a stock change after the first one was closed:
    # the node calls its listeners one after another, on the same thread, for each event.
    still_open = Recorder("A (still open)")
    still_open_handle = a.add_listener(still_open)
    world.handle_a.close()
    world.handle_a.close()  # idempotent
    closed_mark = world.listener_a.mark()

    b.record(Movement.RECEIVE(product=SKU, location=LOCATION, quantity="2"))
    sync(b)
    sync(a)
    assert on_hand(a) == 3
    still_open.wait_for(
        f"StockChanged for ({SKU}, {LOCATION})",
        lambda e: isinstance(e, SyncEvent.STOCK_CHANGED)
        and (e.product_id, e.location_id) == (world.product_id, world.location_id),
    )
    assert world.listener_a.snapshot()[closed_mark:] == []
    still_open_handle.close()
    world.end(9)


def test_10_offline(world, start_hub):
    world.begin(10)
    second = start_hub()
    c = world.open("C")
    device = asyncio.run(c.enroll(second.base_url, second.enrollment_key, DeviceRole.HANDHELD, "Handheld C"))
    assert device.org_id == second.organization_id
    c.add_location("C-01", "Back room")
    c.add_product(NewProduct(sku="TORCH", name="Torch", barcode="5901234123457"))
    second.stop()

    received = c.record(Movement.RECEIVE(product="5901234123457", location="C-01", quantity="3"))
    assert Decimal(stock_row(c, "TORCH", "C-01").on_hand) == 3

    with pytest.raises(StocksyncError.Offline) as offline:
        sync(c)
    assert offline.value.reason

    assert [o.state for o in c.outbox() if o.op_id == received.op_id] == ["pending"]
    status = c.status()
    assert status.pending >= 1
    assert status.last_error, status
    assert offline.value.reason in status.last_error, (offline.value.reason, status.last_error)
    assert Decimal(stock_row(c, "TORCH", "C-01").on_hand) == 3  # still there, still pending
    world.end(10)


def test_11_healthy(world):
    world.begin(11)
    assert set(world.nodes) == {"A", "B", "C"}
    for name, node in world.nodes.items():
        assert node.check() == [], name
    world.end(11)
