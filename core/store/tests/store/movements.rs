//! `Store::record_movement`: ledger + stock view + outbox in one transaction, or nothing.

use crate::{Node, d, invalid_fields, open, outbox_hlcs, q, raw, receipt, rule, scalar, shipment};
use std::sync::Barrier;
use stocksync_model::rules::{
    ALLOCATION_OPEN, ALLOCATION_WITHIN_AVAILABLE, NO_NEGATIVE_INVENTORY, UOM_MUST_MATCH,
};
use stocksync_model::{
    AllocationId, Location, LocationId, Movement, MovementKind, Product, ProductId, ReasonCode,
    TransactionId, TransferId, Uom,
};
use stocksync_store::{
    LedgerRow, OutboxRow, StockRow, Store, StoreError, StoreOptions, Synchronous,
};

/// A node with two locations, a product counted in EACH and one weighed in KG.
struct World {
    node: Node,
    a: Location,
    b: Location,
    each: Product,
    kg: Product,
}

fn world() -> World {
    let node = Node::fresh();
    let a = node.location("A-01");
    let b = node.location("B-01");
    let each = node.product("BOLT-M6", Uom::Each);
    let kg = node.product("FLOUR", Uom::Kg);
    World {
        node,
        a,
        b,
        each,
        kg,
    }
}

/// Everything a movement may touch.
#[derive(Debug, PartialEq)]
struct Snapshot {
    ledger: Vec<LedgerRow>,
    outbox: Vec<OutboxRow>,
    stock: Vec<StockRow>,
    next_seq: i64,
    hlc: (i64, i64),
    allocations: Vec<(String, String)>,
}

fn snapshot(node: &Node) -> Snapshot {
    let conn = raw(&node.path);
    let allocations = conn
        .prepare("SELECT id, status FROM allocations ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    Snapshot {
        ledger: node.ledger(),
        outbox: node.outbox(),
        stock: node.stock(),
        next_seq: node.next_seq(),
        hlc: (
            scalar(&conn, "SELECT hlc_wall_ms FROM device"),
            scalar(&conn, "SELECT hlc_counter FROM device"),
        ),
        allocations,
    }
}

fn movement(product: &ProductId, kind: MovementKind) -> Movement {
    Movement {
        product_id: product.clone(),
        kind,
    }
}

fn adjustment(product: &ProductId, location: &LocationId, qty: &str, uom: Uom) -> Movement {
    movement(
        product,
        MovementKind::Adjustment {
            transaction_id: TransactionId::new(),
            location_id: location.clone(),
            quantity: q(qty, uom),
            reason_code: ReasonCode::Damage,
        },
    )
}

fn transfer(product: &ProductId, from: &LocationId, to: &LocationId, qty: &str) -> Movement {
    movement(
        product,
        MovementKind::Transfer {
            transfer_id: TransferId::new(),
            from_location_id: from.clone(),
            to_location_id: to.clone(),
            quantity: q(qty, Uom::Each),
        },
    )
}

fn allocation(
    product: &ProductId,
    location: &LocationId,
    id: &AllocationId,
    qty: &str,
) -> Movement {
    movement(
        product,
        MovementKind::Allocation {
            allocation_id: id.clone(),
            location_id: location.clone(),
            quantity: q(qty, Uom::Each),
        },
    )
}

fn release(product: &ProductId, location: &LocationId, id: &AllocationId, qty: &str) -> Movement {
    movement(
        product,
        MovementKind::Release {
            allocation_id: id.clone(),
            location_id: location.clone(),
            quantity: q(qty, Uom::Each),
        },
    )
}

/// (on_hand, pending, allocated, available), after checking synced_on_hand is 0 and
/// on_hand = pending (nothing is synced in these tests).
fn level(node: &Node, product: &ProductId, location: &LocationId) -> (String, String, String) {
    let row = node.stock_row(product, location);
    assert_eq!(row.synced_on_hand, d("0"), "{row:?}");
    assert_eq!(row.on_hand, row.pending, "{row:?}");
    assert_eq!(
        row.available,
        row.on_hand.checked_sub(row.allocated).unwrap(),
        "{row:?}"
    );
    (
        row.on_hand.to_string(),
        row.allocated.to_string(),
        row.available.to_string(),
    )
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// Records `m` and checks that it added exactly one outbox op (at the next device_seq, of
/// `kind`) and `legs` ledger legs carrying that op. Returns the op.
fn record(node: &Node, m: &Movement, kind: &str, legs: usize) -> OutboxRow {
    let before = snapshot(node);
    let recorded = node.store.record_movement(m).unwrap();
    let after = snapshot(node);
    assert_eq!(recorded.device_seq as i64, before.next_seq);
    assert_eq!(after.next_seq, before.next_seq + 1);
    assert_eq!(recorded.movement_id, m.id());
    assert_eq!(recorded.legs.len(), legs);

    assert_eq!(after.outbox.len(), before.outbox.len() + 1);
    let op = after.outbox.last().unwrap().clone();
    assert_eq!(op.device_seq, recorded.device_seq);
    assert_eq!(op.op_id, recorded.op_id.as_str());
    assert_eq!(op.kind, kind);
    assert_eq!(op.state, "pending");

    assert_eq!(after.ledger.len(), before.ledger.len() + legs);
    for (i, leg) in after.ledger[..legs].iter().rev().enumerate() {
        assert_eq!(leg.op_id, op.op_id);
        assert_eq!(leg.movement_id, m.id());
        assert_eq!(leg.kind, m.kind_name());
        assert_eq!(leg.state, "pending");
        assert_eq!(leg.on_hand_delta, recorded.legs[i].on_hand_delta);
        assert_eq!(leg.allocated_delta, recorded.legs[i].allocated_delta);
    }
    node.assert_consistent();
    op
}

#[test]
fn every_kind_updates_ledger_stock_and_outbox_together() {
    let World {
        node, a, b, each, ..
    } = world();
    let (p, a_id, b_id) = (&each.id, &a.id, &b.id);

    // Receipt.
    let mut m = receipt(p, a_id, q("10", Uom::Each));
    if let MovementKind::Receipt {
        unit_cost,
        reference,
        ..
    } = &mut m.kind
    {
        *unit_cost = Some("2.5 EUR".parse().unwrap());
        *reference = Some("PO-1".into());
    }
    let op = record(&node, &m, "transaction", 1);
    assert_eq!(op.body["transaction_type"], "receipt");
    assert_eq!(op.body["transaction_id"], m.id());
    assert_eq!(op.body["product_id"], p.as_str());
    assert_eq!(op.body["location_id"], a_id.as_str());
    assert_eq!(op.body["quantity"]["value"], "10");
    assert_eq!(op.body["quantity"]["uom"], "EACH");
    assert_eq!(op.body["unit_cost"]["amount"], "2.5");
    assert_eq!(op.body["unit_cost"]["currency"], "EUR");
    assert_eq!(op.body["reference"], "PO-1");
    assert!(op.body.get("reason_code").is_none(), "{}", op.body);
    assert_eq!(node.ledger()[0].reference.as_deref(), Some("PO-1"));
    assert_eq!(level(&node, p, a_id), (s("10"), s("0"), s("10")));

    // Shipment: the body carries the positive quantity, the leg the negative delta.
    let op = record(
        &node,
        &shipment(p, a_id, q("3", Uom::Each)),
        "transaction",
        1,
    );
    assert_eq!(op.body["transaction_type"], "shipment");
    assert_eq!(op.body["quantity"]["value"], "3");
    assert_eq!(node.ledger()[0].on_hand_delta, d("-3"));
    assert_eq!(level(&node, p, a_id), (s("7"), s("0"), s("7")));

    // Adjustment with its reason.
    let op = record(
        &node,
        &adjustment(p, a_id, "-2", Uom::Each),
        "transaction",
        1,
    );
    assert_eq!(op.body["transaction_type"], "adjustment");
    assert_eq!(op.body["quantity"]["value"], "-2");
    assert_eq!(op.body["reason_code"], "DAMAGE");
    assert_eq!(node.ledger()[0].reason_code.as_deref(), Some("DAMAGE"));
    assert_eq!(level(&node, p, a_id), (s("5"), s("0"), s("5")));

    // Count: posts counted − expected; the body carries both.
    let count = movement(
        p,
        MovementKind::Count {
            transaction_id: TransactionId::new(),
            location_id: a_id.clone(),
            counted: q("4", Uom::Each),
            expected: q("5", Uom::Each),
        },
    );
    let op = record(&node, &count, "transaction", 1);
    assert_eq!(op.body["transaction_type"], "count");
    assert_eq!(op.body["counted"]["value"], "4");
    assert_eq!(op.body["expected"]["value"], "5");
    assert_eq!(op.body["quantity"]["value"], "4");
    assert_eq!(node.ledger()[0].on_hand_delta, d("-1"));
    assert_eq!(level(&node, p, a_id), (s("4"), s("0"), s("4")));

    // Transfer: two legs under one op.
    let m = transfer(p, a_id, b_id, "1");
    let op = record(&node, &m, "transfer", 2);
    assert_eq!(op.body["transfer_id"], m.id());
    assert_eq!(op.body["from_location_id"], a_id.as_str());
    assert_eq!(op.body["to_location_id"], b_id.as_str());
    assert_eq!(op.body["quantity"]["value"], "1");
    let legs = node.ledger();
    assert_eq!(legs[1].location_code, "A-01");
    assert_eq!(legs[1].on_hand_delta, d("-1"));
    assert_eq!(legs[0].location_code, "B-01");
    assert_eq!(legs[0].on_hand_delta, d("1"));
    assert_eq!(level(&node, p, a_id), (s("3"), s("0"), s("3")));
    assert_eq!(level(&node, p, b_id), (s("1"), s("0"), s("1")));

    // Allocation: allocated up, on hand unchanged.
    let alloc = AllocationId::new();
    let op = record(&node, &allocation(p, a_id, &alloc, "2"), "allocation", 1);
    assert_eq!(op.body["allocation_id"], alloc.as_str());
    assert_eq!(op.body["product_id"], p.as_str());
    assert_eq!(op.body["location_id"], a_id.as_str());
    assert_eq!(op.body["quantity"]["value"], "2");
    assert_eq!(node.ledger()[0].allocated_delta, d("2"));
    assert_eq!(node.ledger()[0].on_hand_delta, d("0"));
    assert_eq!(level(&node, p, a_id), (s("3"), s("2"), s("1")));
    let held = node.store.allocation(&alloc).unwrap();
    assert_eq!(held.status, "open");
    assert_eq!(held.quantity, q("2", Uom::Each));

    // Release: gives it back.
    let op = record(
        &node,
        &release(p, a_id, &alloc, "2"),
        "allocation_release",
        1,
    );
    assert_eq!(op.body["allocation_id"], alloc.as_str());
    assert_eq!(op.body["quantity"]["value"], "2");
    assert_eq!(node.ledger()[0].allocated_delta, d("-2"));
    assert_eq!(level(&node, p, a_id), (s("3"), s("0"), s("3")));
    assert_eq!(node.store.allocation(&alloc).unwrap().status, "released");

    // Every row of the view, synced_on_hand included, and nothing else.
    assert_eq!(node.stock().len(), 2);
    assert!(node.stock().iter().all(|r| r.synced_on_hand == d("0")));
}

#[test]
fn decimal_quantities_are_exact_in_ledger_stock_and_body() {
    let World { node, a, kg, .. } = world();
    let op = record(
        &node,
        &receipt(&kg.id, &a.id, q("0.1", Uom::Kg)),
        "transaction",
        1,
    );
    assert_eq!(op.body["quantity"]["value"], "0.1");
    assert_eq!(op.body["quantity"]["uom"], "KG");
    record(
        &node,
        &receipt(&kg.id, &a.id, q("0.2", Uom::Kg)),
        "transaction",
        1,
    );
    let op = record(
        &node,
        &shipment(&kg.id, &a.id, q("0.3", Uom::Kg)),
        "transaction",
        1,
    );
    assert_eq!(op.body["quantity"]["value"], "0.3");
    // 0.1 + 0.2 − 0.3 is exactly zero, so it is all gone and nothing more can leave.
    assert_eq!(level(&node, &kg.id, &a.id), (s("0"), s("0"), s("0")));
    let refused = node
        .store
        .record_movement(&shipment(&kg.id, &a.id, q("0.0001", Uom::Kg)));
    assert_eq!(rule(refused), NO_NEGATIVE_INVENTORY);
}

/// What a refused movement must return.
type Expect = Box<dyn Fn(Result<(), StoreError>)>;

/// Records `m`, asserts it fails as `expect` says, and leaves every table and counter as it was.
fn refused_writes_nothing(node: &Node, m: &Movement, expect: impl Fn(Result<(), StoreError>)) {
    let before = snapshot(node);
    expect(node.store.record_movement(m).map(|_| ()));
    assert_eq!(snapshot(node), before, "a refused movement wrote something");
    node.assert_consistent();
}

#[test]
fn refused_movements_write_nothing() {
    let World {
        node,
        a,
        b,
        each,
        kg,
    } = world();
    let (p, a_id, b_id) = (&each.id, &a.id, &b.id);
    node.store
        .record_movement(&receipt(p, a_id, q("5", Uom::Each)))
        .unwrap();
    let alloc = AllocationId::new();
    node.store
        .record_movement(&allocation(p, a_id, &alloc, "3"))
        .unwrap();
    let is_rule = |name: &'static str| move |r: Result<(), StoreError>| assert_eq!(rule(r), name);
    let is_invalid = |field: &'static str| {
        move |r: Result<(), StoreError>| assert_eq!(invalid_fields(r), [field])
    };
    let is_not_found = |entity: &'static str| {
        move |r: Result<(), StoreError>| match r {
            Err(StoreError::NotFound { entity: e, .. }) => assert_eq!(e, entity),
            other => panic!("expected NotFound {entity}, got {other:?}"),
        }
    };

    // no_negative_inventory: a shipment, an adjustment and a transfer beyond on hand (the
    // transfer's incoming leg is not written either).
    let cases: Vec<(&str, Movement, Expect)> = vec![
        (
            "shipment beyond on hand",
            shipment(p, a_id, q("6", Uom::Each)),
            Box::new(is_rule(NO_NEGATIVE_INVENTORY)),
        ),
        (
            "shipment from an empty location",
            shipment(p, b_id, q("1", Uom::Each)),
            Box::new(is_rule(NO_NEGATIVE_INVENTORY)),
        ),
        (
            "adjustment below zero",
            adjustment(p, a_id, "-6", Uom::Each),
            Box::new(is_rule(NO_NEGATIVE_INVENTORY)),
        ),
        (
            "transfer beyond the source",
            transfer(p, a_id, b_id, "6"),
            Box::new(is_rule(NO_NEGATIVE_INVENTORY)),
        ),
        (
            "allocation beyond available (5 on hand, 3 allocated)",
            allocation(p, a_id, &AllocationId::new(), "3"),
            Box::new(is_rule(ALLOCATION_WITHIN_AVAILABLE)),
        ),
        (
            "wrong unit",
            receipt(p, a_id, q("1", Uom::Kg)),
            Box::new(is_rule(UOM_MUST_MATCH)),
        ),
        (
            "wrong unit, weighed product",
            receipt(&kg.id, a_id, q("1", Uom::Each)),
            Box::new(is_rule(UOM_MUST_MATCH)),
        ),
        (
            "zero quantity",
            receipt(p, a_id, q("0", Uom::Each)),
            Box::new(is_invalid("quantity.value")),
        ),
        (
            "negative shipment",
            shipment(p, a_id, q("-1", Uom::Each)),
            Box::new(is_invalid("quantity.value")),
        ),
        (
            "fraction of a counted unit",
            receipt(p, a_id, q("1.5", Uom::Each)),
            Box::new(is_invalid("quantity.value")),
        ),
        (
            "zero adjustment",
            adjustment(p, a_id, "0", Uom::Each),
            Box::new(is_invalid("quantity.value")),
        ),
        (
            "transfer to itself",
            transfer(p, a_id, a_id, "1"),
            Box::new(is_invalid("to_location_id")),
        ),
        (
            "unknown product",
            receipt(&ProductId::new(), a_id, q("1", Uom::Each)),
            Box::new(is_not_found("product")),
        ),
        (
            "unknown location",
            receipt(p, &LocationId::new(), q("1", Uom::Each)),
            Box::new(is_not_found("location")),
        ),
        (
            "transfer to an unknown location",
            transfer(p, a_id, &LocationId::new(), "1"),
            Box::new(is_not_found("location")),
        ),
        (
            "release of an unknown allocation",
            release(p, a_id, &AllocationId::new(), "3"),
            Box::new(is_rule(ALLOCATION_OPEN)),
        ),
        (
            "release of another quantity than held",
            release(p, a_id, &alloc, "2"),
            Box::new(is_rule(ALLOCATION_OPEN)),
        ),
        (
            "release at another location",
            release(p, b_id, &alloc, "3"),
            Box::new(is_rule(ALLOCATION_OPEN)),
        ),
    ];
    // An allocation id used again: refused as bad input naming the field, nothing written.
    refused_writes_nothing(&node, &allocation(p, a_id, &alloc, "1"), |r| {
        assert!(
            matches!(&r, Err(StoreError::Invalid(e)) if e.0.contains_key("allocation_id")),
            "{r:?}"
        );
    });
    for (what, m, expect) in &cases {
        eprintln!("case: {what}");
        refused_writes_nothing(&node, m, expect);
    }

    // Released once: fine. Twice: allocation_open, and nothing written.
    node.store
        .record_movement(&release(p, a_id, &alloc, "3"))
        .unwrap();
    refused_writes_nothing(
        &node,
        &release(p, a_id, &alloc, "3"),
        is_rule(ALLOCATION_OPEN),
    );
    assert_eq!(node.store.allocation(&alloc).unwrap().status, "released");

    // After all the refusals, the next op takes the very next seq.
    let seq_before = node.next_seq();
    let recorded = node
        .store
        .record_movement(&shipment(p, a_id, q("5", Uom::Each)))
        .unwrap();
    assert_eq!(recorded.device_seq as i64, seq_before);
    assert_eq!(level(&node, p, a_id), (s("0"), s("0"), s("0")));
}

#[test]
fn device_seq_is_contiguous_across_kinds_and_hlc_increases() {
    let World {
        node,
        a,
        b,
        each,
        kg,
    } = world();
    let p = &each.id;
    let alloc = AllocationId::new();
    let movements = [
        receipt(p, &a.id, q("9", Uom::Each)),
        transfer(p, &a.id, &b.id, "4"),
        allocation(p, &b.id, &alloc, "4"),
        adjustment(&kg.id, &a.id, "1.25", Uom::Kg),
        release(p, &b.id, &alloc, "4"),
        shipment(p, &b.id, q("4", Uom::Each)),
    ];
    let mut seqs = Vec::new();
    for (i, m) in movements.iter().enumerate() {
        seqs.push(node.store.record_movement(m).unwrap().device_seq);
        if i == 2 {
            // Catalog ops share the sequence.
            node.location("C-01");
        }
    }
    let outbox = node.outbox();
    let all: Vec<u64> = outbox.iter().map(|o| o.device_seq).collect();
    assert_eq!(all, (1..=outbox.len() as u64).collect::<Vec<_>>());
    // 2 locations + 2 products first, then the movements with one location in between.
    assert_eq!(seqs, [5, 6, 7, 9, 10, 11]);
    assert_eq!(outbox[7].kind, "location_create");
    assert_eq!(node.next_seq(), outbox.len() as i64 + 1);

    let hlcs = outbox_hlcs(&node.path);
    assert!(hlcs.windows(2).all(|w| w[0] < w[1]), "{hlcs:?}");
    assert!(
        hlcs.iter()
            .all(|h| h.node == node.device.device_id.as_str())
    );
    node.assert_consistent();
}

#[test]
fn two_handles_on_one_file_cannot_both_ship_the_last_unit() {
    let World { node, a, each, .. } = world();
    let first = &node.store;
    let second = open(&node.path);
    let (p, loc) = (&each.id, &a.id);

    // One after the other: the second handle sees the first one's shipment.
    first
        .record_movement(&receipt(p, loc, q("1", Uom::Each)))
        .unwrap();
    first
        .record_movement(&shipment(p, loc, q("1", Uom::Each)))
        .unwrap();
    let refused = second.record_movement(&shipment(p, loc, q("1", Uom::Each)));
    assert_eq!(rule(refused), NO_NEGATIVE_INVENTORY);

    // At the same time, from two threads: exactly one wins each round.
    for round in 0..5 {
        first
            .record_movement(&receipt(p, loc, q("1", Uom::Each)))
            .unwrap();
        let barrier = Barrier::new(2);
        let ship = |store: &Store| {
            barrier.wait();
            store.record_movement(&shipment(p, loc, q("1", Uom::Each)))
        };
        let (x, y) = std::thread::scope(|scope| {
            let x = scope.spawn(|| ship(first));
            let y = scope.spawn(|| ship(&second));
            (x.join().unwrap(), y.join().unwrap())
        });
        let (won, lost) = match (x, y) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            (x, y) => panic!("round {round}: expected one winner, got {x:?} and {y:?}"),
        };
        assert!(won.device_seq > 0);
        assert_eq!(rule::<()>(Err(lost)), NO_NEGATIVE_INVENTORY);
        for store in [first, &second] {
            assert_eq!(store.stock_level(p, loc).unwrap().on_hand, d("0"));
        }
    }

    // Both handles wrote through one device_seq counter: no gap, no duplicate.
    let outbox = second.outbox().unwrap();
    let seqs: Vec<u64> = outbox.iter().map(|o| o.device_seq).collect();
    assert_eq!(seqs, (1..=outbox.len() as u64).collect::<Vec<_>>());
    // 4 catalog ops + (receipt, shipment) + 5 × (receipt, shipment).
    assert_eq!(outbox.len(), 4 + 2 + 5 * 2);
    assert_eq!(second.check().unwrap(), Vec::<String>::new());
}

#[test]
fn both_synchronous_modes_open_and_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.db");
    for (i, synchronous) in [Synchronous::Normal, Synchronous::Full]
        .into_iter()
        .enumerate()
    {
        let options = StoreOptions {
            synchronous,
            ..StoreOptions::default()
        };
        let store = Store::open(&path, &options).unwrap();
        if i == 0 {
            store.init_device(&crate::new_device()).unwrap();
        }
        let loc = store
            .add_location(&stocksync_model::NewLocation {
                code: format!("L-{i}"),
                name: format!("{synchronous:?}"),
            })
            .unwrap();
        let product = store
            .add_product(&stocksync_model::NewProduct::new(format!("P-{i}"), "Thing"))
            .unwrap();
        store
            .record_movement(&receipt(&product.id, &loc.id, q("3", Uom::Each)))
            .unwrap();
        drop(store);
        // Committed and durable enough to be read back by the next open.
        let store = Store::open(&path, &options).unwrap();
        assert_eq!(
            store.stock_level(&product.id, &loc.id).unwrap().on_hand,
            d("3"),
            "{synchronous:?}"
        );
        assert_eq!(store.outbox().unwrap().len(), 3 * (i + 1));
        assert_eq!(store.check().unwrap(), Vec::<String>::new());
    }
    assert_eq!("normal".parse::<Synchronous>(), Ok(Synchronous::Normal));
    assert_eq!("FULL".parse::<Synchronous>(), Ok(Synchronous::Full));
    assert!("off".parse::<Synchronous>().is_err());
}
