"""Records print their fields and errors print a sentence (issue 11, point 4).

uniffi's records and enum variants are `@dataclass`es without annotated fields, whose `repr` was
`StockRow()`; `str()` of an error listed its fields. The package gives every generated record and
variant a `repr` with its fields, and errors the Rust `Display` text Kotlin and Swift show.
Local calls on the real library: no hub needed.
"""

from __future__ import annotations

import traceback

import pytest

from stocksync import DeviceRole, Money, Movement, NewDevice, NewProduct, StocksyncError, SyncNode


@pytest.fixture
def node(tmp_path) -> SyncNode:
    node = SyncNode.open(str(tmp_path / "printing.db"))
    node.init_device(NewDevice(org_id="org_demo", branch_id="br_main", name="Till", role=DeviceRole.HANDHELD))
    node.add_location("A-01", "Aisle 1")
    node.add_product(NewProduct(sku="LAMP", name="Head lamp", price=Money(amount="4.99", currency="EUR")))
    node.record(Movement.RECEIVE(product="LAMP", location="A-01", quantity="2"))
    return node


def test_records_and_variants_repr_their_fields(node):
    (row,) = node.stock("LAMP", "A-01")
    text = repr(row)
    assert text.startswith("StockRow(product_id='prod_"), text
    for field in ("sku='LAMP'", "location_code='A-01'", "on_hand='2'", "available='2'"):
        assert field in text, text
    assert "quantity='5'" in repr(Movement.SHIP(product="LAMP", location="A-01", quantity="5"))
    assert "sku='LAMP'" in repr(node.products())  # in a list, as a user prints it


def test_errors_read_as_sentences(node):
    with pytest.raises(StocksyncError.Rule) as refused:
        node.record(Movement.SHIP(product="LAMP", location="A-01", quantity="5"))
    e = refused.value
    assert str(e) == "only 2 EACH on hand at this location, cannot take 5 EACH (no_negative_inventory)"
    assert repr(e) == (
        "StocksyncError.Rule(rule='no_negative_inventory', "
        "reason='only 2 EACH on hand at this location, cannot take 5 EACH')"
    )
    # what an uncaught error's traceback ends with
    assert traceback.format_exception_only(type(e), e)[-1].strip().endswith(
        "Rule: only 2 EACH on hand at this location, cannot take 5 EACH (no_negative_inventory)"
    )

    with pytest.raises(StocksyncError.NotFound) as missing:
        node.find_product("4006381333931")
    assert str(missing.value) == "product `4006381333931` not found"


def test_an_error_built_by_hand_still_prints():
    assert str(StocksyncError.Offline("no network")) == "offline: no network"
