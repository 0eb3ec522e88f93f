//! Sync with the hub, without a hub: the outbox's side of a push (`next_push_batch`,
//! `record_push_results`, `release_in_flight`, `park_op`), the pull's side (`apply_delta_page`,
//! `apply_live_change`, snapshots and their sweep, the checksum), conflicts, and the status
//! counts and diagnostics. The hub's answers, pages and frames are built by hand in the shapes
//! the hub sends.
//!
//! Two tests began as reproductions of bugs they found (an ack after a pull that already held
//! the op counted it twice; a rejected `location_create` kept holding its code).

use crate::{Node, d, invalid_fields, q, raw, receipt, shipment};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use stocksync_model::rules::{
    ALLOCATION_OPEN, ALLOCATION_WITHIN_AVAILABLE, NO_NEGATIVE_INVENTORY, UOM_MUST_MATCH,
};
use stocksync_model::{
    AllocationId, ConflictId, DeviceId, LocationId, Movement, MovementKind, NewProduct, OpId,
    ProductDoc, ProductFields, ProductId, ProductPatch, Uom,
};
use stocksync_protocol::checksum::{StateDigest, product_line, stock_line};
use stocksync_protocol::ws::ChangeFrame;
use stocksync_protocol::{
    DeltaItem, DeltaMeta, DeltaPage, Entity, ErrorBody, ErrorCode, OpBody, OpKind, OpResult,
    OpStatus, Resolution,
};
use stocksync_store::{HubCredentials, OutboxRow, PageApplied, StoreError};

// ---------------------------------------------------------------------------------------------
// The hub's push answers.

fn answer(op: &OpId, status: OpStatus) -> OpResult {
    OpResult {
        op_id: op.clone(),
        status,
        seq: None,
        version: None,
        conflict_id: None,
        original_status: None,
        canonical_id: None,
        error: None,
    }
}

/// `applied`, with the change sequence its effect got.
fn applied(op: &OpId, seq: u64) -> OpResult {
    OpResult {
        seq: Some(seq),
        ..answer(op, OpStatus::Applied)
    }
}

/// The error a rule rejection carries: `BUSINESS_RULE_VIOLATION` with `details.rule`.
fn rule_error(rule: &str, message: &str) -> ErrorBody {
    ErrorBody {
        code: ErrorCode::BusinessRuleViolation,
        message: message.to_owned(),
        details: json!({ "rule": rule }),
        request_id: None,
        timestamp: None,
    }
}

/// `rejected` by `rule`, with the conflict record the hub opened for it.
fn rejected(op: &OpId, rule: &str, message: &str) -> OpResult {
    OpResult {
        conflict_id: Some(ConflictId::new().to_string()),
        error: Some(rule_error(rule, message)),
        ..answer(op, OpStatus::Rejected)
    }
}

/// `duplicate`: the hub had the op already; `original` is what became of it then.
fn duplicate(op: &OpId, original: Option<OpStatus>) -> OpResult {
    OpResult {
        original_status: original,
        ..answer(op, OpStatus::Duplicate)
    }
}

// ---------------------------------------------------------------------------------------------
// The hub's delta pages and frames.

const T0: &str = "2024-05-01T10:00:00.000Z";

/// The automerge actor the hub's documents are written by in these tests.
fn hub_actor() -> DeviceId {
    DeviceId::parse("dev_hub").unwrap()
}

fn item(entity: Entity, id: &str, seq: u64, version: u64, fields: Value) -> DeltaItem {
    let Value::Object(fields) = fields else {
        panic!("fields must be an object")
    };
    DeltaItem {
        entity,
        id: id.to_owned(),
        seq,
        version,
        fields,
    }
}

fn location_item(id: &LocationId, code: &str, seq: u64) -> DeltaItem {
    item(
        Entity::Location,
        id.as_str(),
        seq,
        1,
        json!({ "code": code, "name": format!("Hub {code}"), "created_at": T0 }),
    )
}

/// A product state as the hub sends it in a delta page: its resource plus the document.
fn product_item(id: &ProductId, seq: u64, version: u64, doc: &[u8]) -> DeltaItem {
    let f = ProductDoc::load(doc).unwrap().fields().unwrap();
    item(
        Entity::Product,
        id.as_str(),
        seq,
        version,
        json!({
            "sku": f.sku, "name": f.name, "uom": f.uom.as_str(), "status": f.status.as_str(),
            "doc": BASE64.encode(doc), "created_at": T0, "updated_at": T0,
        }),
    )
}

fn stock_item(
    product: &ProductId,
    location: &LocationId,
    seq: u64,
    on_hand: &str,
    allocated: &str,
) -> DeltaItem {
    item(
        Entity::StockLevel,
        &format!("{product}@{location}"),
        seq,
        seq,
        json!({
            "product_id": product.as_str(), "location_id": location.as_str(),
            "branch_id": "branch_test", "on_hand": on_hand, "allocated": allocated,
        }),
    )
}

fn conflict_item(id: &ConflictId, seq: u64, status: &str, fields: Value) -> DeltaItem {
    let mut all = json!({ "status": status, "created_at": T0 });
    for (k, v) in fields.as_object().unwrap() {
        all[k] = v.clone();
    }
    item(Entity::Conflict, id.as_str(), seq, seq, all)
}

fn page(items: Vec<DeltaItem>) -> DeltaPage {
    DeltaPage {
        created: items,
        ..DeltaPage::default()
    }
}

fn meta(token: &str, has_more: bool, checksum: Option<String>) -> DeltaMeta {
    DeltaMeta {
        next_sync_token: token.to_owned(),
        changes_count: 0,
        has_more,
        full_sync_required: false,
        checksum,
    }
}

/// The last page of a pull (no checksum).
fn last(token: &str) -> DeltaMeta {
    meta(token, false, None)
}

/// A page with more to come.
fn more(token: &str) -> DeltaMeta {
    meta(token, true, None)
}

/// The hub's digest of a state, computed independently of the store.
fn digest(
    products: &[(&ProductId, u64)],
    stock: &[(&ProductId, &LocationId, &str, &str)],
) -> String {
    let mut digest = StateDigest::default();
    for (id, version) in products {
        digest.add(&product_line(id.as_str(), *version));
    }
    for (p, l, on_hand, allocated) in stock {
        digest.add(&stock_line(
            p.as_str(),
            l.as_str(),
            d(on_hand),
            d(allocated),
        ));
    }
    digest.to_hex()
}

/// An `inventory.update` frame, in the shape the hub publishes it.
fn inventory_frame(
    product: &ProductId,
    location: &LocationId,
    seq: u64,
    previous: &str,
    current: &str,
    allocated: &str,
) -> ChangeFrame {
    let available = d(current).checked_sub(d(allocated)).unwrap();
    ChangeFrame {
        kind: "inventory.update".into(),
        seq,
        timestamp: T0.into(),
        data: json!({
            "product_id": product.as_str(), "location_id": location.as_str(),
            "branch_id": "branch_test",
            "previous_quantity": previous, "current_quantity": current,
            "available_quantity": available, "allocated_quantity": allocated,
            "change_reason": "receipt", "transaction_id": "txn_frame", "version": seq,
        }),
    }
}

/// What the hub holds in the pull tests: one location, two products, a stock level of each.
struct Hub {
    loc: LocationId,
    bolt: ProductId,
    nut: ProductId,
    bolt_doc: Vec<u8>,
    nut_doc: Vec<u8>,
}

fn hub_doc(sku: &str, name: &str) -> Vec<u8> {
    let new = NewProduct {
        description: Some(format!("{name} from the hub")),
        price: Some("9.99 EUR".parse().unwrap()),
        ..NewProduct::new(sku, name)
    };
    ProductDoc::create(&hub_actor(), &ProductFields::from(&new))
        .unwrap()
        .save()
}

impl Hub {
    fn new() -> Hub {
        Hub {
            loc: LocationId::new(),
            bolt: ProductId::new(),
            nut: ProductId::new(),
            bolt_doc: hub_doc("BOLT", "Bolt M6"),
            nut_doc: hub_doc("NUT", "Nut M6"),
        }
    }

    /// The whole scope at seqs 1..=5, stock levels first (out of dependency order on purpose).
    fn snapshot_items(&self) -> Vec<DeltaItem> {
        vec![
            stock_item(&self.nut, &self.loc, 5, "7", "0"),
            stock_item(&self.bolt, &self.loc, 4, "12", "2"),
            product_item(&self.nut, 3, 1, &self.nut_doc),
            product_item(&self.bolt, 2, 1, &self.bolt_doc),
            location_item(&self.loc, "A-01", 1),
        ]
    }

    /// The digest of [`Hub::snapshot_items`].
    fn snapshot_digest(&self) -> String {
        digest(
            &[(&self.bolt, 1), (&self.nut, 1)],
            &[
                (&self.bolt, &self.loc, "12", "2"),
                (&self.nut, &self.loc, "7", "0"),
            ],
        )
    }

    /// A node that has pulled the first snapshot (token `t-snap-1`).
    fn synced_node(&self) -> Node {
        let node = Node::fresh();
        let out = node
            .store
            .apply_delta_page(&page(self.snapshot_items()), &last("t-snap-1"))
            .unwrap();
        assert!(out.snapshot_completed, "{out:?}");
        node
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the node.

fn op(node: &Node, id: &OpId) -> OutboxRow {
    node.outbox()
        .into_iter()
        .find(|o| o.op_id == id.as_str())
        .unwrap_or_else(|| panic!("no op {id}"))
}

fn op_id(row: &OutboxRow) -> OpId {
    row.op_id.parse().unwrap()
}

/// `(device_seq, state, attempts)` of every op.
fn states(node: &Node) -> Vec<(u64, String, i64)> {
    node.outbox()
        .into_iter()
        .map(|o| (o.device_seq, o.state, o.attempts))
        .collect()
}

/// The states of one op's ledger legs.
fn leg_states(node: &Node, op: &OpId) -> Vec<String> {
    node.ledger()
        .into_iter()
        .filter(|l| l.op_id == op.as_str())
        .map(|l| l.state)
        .collect()
}

/// `(synced_on_hand, pending, on_hand, allocated, available)` of one stock row.
fn level(node: &Node, product: &ProductId, location: &LocationId) -> [String; 5] {
    let r = node.stock_row(product, location);
    [
        r.synced_on_hand,
        r.pending,
        r.on_hand,
        r.allocated,
        r.available,
    ]
    .map(|v| v.to_string())
}

/// Asserts one stock row's `(synced_on_hand, pending, on_hand, allocated, available)`.
#[track_caller]
fn assert_level(node: &Node, product: &ProductId, location: &LocationId, want: [&str; 5]) {
    assert_eq!(level(node, product, location), want.map(str::to_owned));
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// A node with location A-01 (op 1), product BOLT (op 2) and a receipt of 10 (op 3).
struct Local {
    node: Node,
    loc: LocationId,
    bolt: ProductId,
    receipt: OpId,
}

fn local() -> Local {
    let node = Node::fresh();
    let loc = node.location("A-01").id;
    let bolt = node.product("BOLT", Uom::Each).id;
    let receipt = node
        .store
        .record_movement(&receipt(&bolt, &loc, q("10", Uom::Each)))
        .unwrap()
        .op_id;
    Local {
        node,
        loc,
        bolt,
        receipt,
    }
}

/// [`local`] with its three ops pushed and applied by the hub (seqs 1..=3).
fn local_acked() -> Local {
    let l = local();
    let batch = l.node.store.next_push_batch(0, 10).unwrap();
    let results: Vec<_> = batch
        .ops
        .iter()
        .map(|o| applied(&o.op_id, o.device_seq))
        .collect();
    l.node.store.record_push_results(&results).unwrap();
    l
}

fn allocation(product: &ProductId, location: &LocationId, id: &AllocationId, n: &str) -> Movement {
    Movement {
        product_id: product.clone(),
        kind: MovementKind::Allocation {
            allocation_id: id.clone(),
            location_id: location.clone(),
            quantity: q(n, Uom::Each),
        },
    }
}

fn release(product: &ProductId, location: &LocationId, id: &AllocationId, n: &str) -> Movement {
    Movement {
        product_id: product.clone(),
        kind: MovementKind::Release {
            allocation_id: id.clone(),
            location_id: location.clone(),
            quantity: q(n, Uom::Each),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Push.

#[test]
fn next_push_batch_takes_unsent_ops_in_device_seq_order_and_marks_them_in_flight() {
    let l = local();
    let shipped = l
        .node
        .store
        .record_movement(&shipment(&l.bolt, &l.loc, q("4", Uom::Each)))
        .unwrap();

    let first = l.node.store.next_push_batch(0, 2).unwrap();
    assert!(first.parked.is_empty());
    let seqs =
        |ops: &[stocksync_protocol::PushOp]| ops.iter().map(|o| o.device_seq).collect::<Vec<_>>();
    assert_eq!(seqs(&first.ops), [1, 2]);
    assert_eq!(
        first.ops.iter().map(|o| o.body.kind()).collect::<Vec<_>>(),
        [OpKind::LocationCreate, OpKind::ProductCreate]
    );
    assert_eq!(
        states(&l.node),
        [
            (1, s("in_flight"), 1),
            (2, s("in_flight"), 1),
            (3, s("pending"), 0),
            (4, s("pending"), 0),
        ]
    );

    // The next batch is prepared while the first is in flight.
    let second = l.node.store.next_push_batch(2, 10).unwrap();
    assert_eq!(seqs(&second.ops), [3, 4]);
    assert_eq!(second.ops[0].op_id, l.receipt);
    assert_eq!(second.ops[1].op_id, shipped.op_id);
    let rows = l.node.outbox();
    assert_eq!(second.ops[0].occurred_at, rows[2].created_at);
    match &second.ops[0].body {
        OpBody::Transaction(t) => {
            assert_eq!((&t.product_id, &t.location_id), (&l.bolt, &l.loc));
            assert_eq!(t.quantity, q("10", Uom::Each));
        }
        other => panic!("expected a transaction, got {other:?}"),
    }
    // What is pushed is what the outbox keeps.
    assert_eq!(
        serde_json::to_value(&second.ops[1]).unwrap()["body"],
        rows[3].body
    );
    assert!(l.node.store.next_push_batch(4, 10).unwrap().ops.is_empty());

    // No answer came (a crash): from the start again, every unanswered op is resent.
    let again = l.node.store.next_push_batch(0, 10).unwrap();
    assert_eq!(seqs(&again.ops), [1, 2, 3, 4]);
    assert!(
        states(&l.node)
            .iter()
            .all(|(_, st, n)| st == "in_flight" && *n == 2)
    );
    l.node.assert_consistent();
}

#[test]
fn an_op_with_an_unreadable_body_is_parked_with_its_reason_and_not_sent() {
    let l = local();
    l.node
        .store
        .record_movement(&shipment(&l.bolt, &l.loc, q("4", Uom::Each)))
        .unwrap();
    let conn = raw(&l.node.path);
    conn.execute(
        "UPDATE outbox SET body = 'not json' WHERE device_seq = 2",
        [],
    )
    .unwrap();
    conn.execute(
        r#"UPDATE outbox SET body = '{"transaction_id": 5}' WHERE device_seq = 3"#,
        [],
    )
    .unwrap();
    let ids: Vec<String> = conn
        .prepare("SELECT op_id FROM outbox ORDER BY device_seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();

    let batch = l.node.store.next_push_batch(0, 10).unwrap();
    assert_eq!(
        batch.ops.iter().map(|o| o.device_seq).collect::<Vec<_>>(),
        [1, 4]
    );
    assert_eq!(batch.parked.len(), 2, "{:?}", batch.parked);
    assert_eq!(batch.parked[0].0, ids[1]);
    assert!(
        batch.parked[0].1.starts_with("unreadable body"),
        "{:?}",
        batch.parked[0]
    );
    assert_eq!(batch.parked[1].0, ids[2]);
    assert!(
        batch.parked[1].1.starts_with("unreadable transaction body"),
        "{:?}",
        batch.parked[1]
    );

    // Parked with the reason it was given, never counted as an attempt.
    let stored: Vec<(String, Option<String>, i64)> = conn
        .prepare("SELECT state, last_error, attempts FROM outbox ORDER BY device_seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        stored,
        [
            (s("in_flight"), None, 1),
            (s("parked"), Some(batch.parked[0].1.clone()), 0),
            (s("parked"), Some(batch.parked[1].1.clone()), 0),
            (s("in_flight"), None, 1),
        ]
    );

    // A parked op no longer holds up the ones behind it, and is not found again.
    let again = l.node.store.next_push_batch(0, 10).unwrap();
    assert_eq!(
        again.ops.iter().map(|o| o.device_seq).collect::<Vec<_>>(),
        [1, 4]
    );
    assert!(again.parked.is_empty());
    let counts = l.node.store.sync_counts().unwrap();
    assert_eq!((counts.pending, counts.parked), (2, 2));
    // The parked receipt still counts locally: it waits for a person, it was not refused.
    assert_level(&l.node, &l.bolt, &l.loc, ["0", "6", "6", "0", "6"]);
    l.node.assert_consistent();
}

#[test]
fn an_applied_op_moves_its_legs_from_pending_to_synced() {
    let l = local();
    assert_level(&l.node, &l.bolt, &l.loc, ["0", "10", "10", "0", "10"]);
    let batch = l.node.store.next_push_batch(0, 10).unwrap();
    let results: Vec<_> = batch
        .ops
        .iter()
        .map(|o| applied(&o.op_id, 100 + o.device_seq))
        .collect();

    let out = l.node.store.record_push_results(&results).unwrap();
    assert_eq!(out.outcomes.len(), 3);
    assert!(out.stock.is_empty());
    let receipt = &out.outcomes[2];
    assert_eq!(receipt.op_id, l.receipt.as_str());
    assert_eq!(
        (receipt.device_seq, receipt.kind.as_str()),
        (3, "transaction")
    );
    assert_eq!(
        (receipt.status, receipt.duplicate),
        (OpStatus::Applied, false)
    );
    assert_eq!(
        (
            &receipt.code,
            &receipt.message,
            &receipt.rule,
            &receipt.conflict_id
        ),
        (&None, &None, &None, &None)
    );

    assert_eq!(
        states(&l.node),
        [(1, s("acked"), 1), (2, s("acked"), 1), (3, s("acked"), 1)]
    );
    assert!(l.node.outbox().iter().all(|o| o.last_error.is_none()));
    assert_eq!(leg_states(&l.node, &l.receipt), ["synced"]);
    // The unit moved from pending to the hub's part; on hand did not dip.
    assert_level(&l.node, &l.bolt, &l.loc, ["10", "0", "10", "0", "10"]);
    let counts = l.node.store.sync_counts().unwrap();
    assert_eq!(counts.pending, 0);
    assert!(counts.last_push_at.is_some());
    l.node.assert_consistent();

    // The same answers again (a retried response) change nothing and report nothing.
    let again = l.node.store.record_push_results(&results).unwrap();
    assert!(again.outcomes.is_empty(), "{again:?}");
    assert_level(&l.node, &l.bolt, &l.loc, ["10", "0", "10", "0", "10"]);
    // So does an answer for an op this device never had.
    let stranger = l
        .node
        .store
        .record_push_results(&[applied(&OpId::new(), 9)])
        .unwrap();
    assert!(stranger.outcomes.is_empty());
    l.node.assert_consistent();
}

#[test]
fn a_rejected_op_loses_its_legs_and_the_outcome_names_the_rule() {
    let l = local_acked();
    let store = &l.node.store;
    let late = store
        .record_movement(&receipt(&l.bolt, &l.loc, q("5", Uom::Each)))
        .unwrap();
    let shipped = store
        .record_movement(&shipment(&l.bolt, &l.loc, q("3", Uom::Each)))
        .unwrap();
    assert_level(&l.node, &l.bolt, &l.loc, ["10", "2", "12", "0", "12"]);
    let batch = store.next_push_batch(3, 10).unwrap();
    assert_eq!(batch.ops.len(), 2);

    let refusal = rejected(
        &late.op_id,
        UOM_MUST_MATCH,
        "BOLT is counted in EACH at the hub",
    );
    let out = store
        .record_push_results(&[refusal.clone(), applied(&shipped.op_id, 20)])
        .unwrap();
    let outcome = &out.outcomes[0];
    assert_eq!(
        (outcome.status, outcome.duplicate),
        (OpStatus::Rejected, false)
    );
    assert_eq!(outcome.code.as_deref(), Some("BUSINESS_RULE_VIOLATION"));
    assert_eq!(outcome.rule.as_deref(), Some(UOM_MUST_MATCH));
    assert_eq!(
        outcome.message.as_deref(),
        Some("BOLT is counted in EACH at the hub")
    );
    assert_eq!(outcome.conflict_id, refusal.conflict_id);
    assert_eq!(out.outcomes[1].status, OpStatus::Applied);
    assert_eq!(out.stock, [(l.bolt.to_string(), l.loc.to_string())]);

    let row = op(&l.node, &late.op_id);
    assert_eq!(row.state, "rejected");
    assert_eq!(
        row.last_error.as_deref(),
        Some("BOLT is counted in EACH at the hub")
    );
    assert_eq!(op(&l.node, &shipped.op_id).state, "acked");
    // The rejected leg stays visible, marked, and counts nowhere: on hand drops by its 5.
    assert_eq!(leg_states(&l.node, &late.op_id), ["rejected"]);
    assert_eq!(leg_states(&l.node, &shipped.op_id), ["synced"]);
    assert_level(&l.node, &l.bolt, &l.loc, ["7", "0", "7", "0", "7"]);
    let counts = store.sync_counts().unwrap();
    assert_eq!((counts.pending, counts.rejected), (0, 1));
    l.node.assert_consistent();

    // Final: a later answer for it (even `applied`) is ignored.
    let after = store
        .record_push_results(&[applied(&late.op_id, 30)])
        .unwrap();
    assert!(after.outcomes.is_empty());
    assert_eq!(op(&l.node, &late.op_id).state, "rejected");
    l.node.assert_consistent();
}

#[test]
fn a_duplicate_answer_takes_the_first_verdict() {
    let l = local();
    let store = &l.node.store;
    let batch = store.next_push_batch(0, 10).unwrap();
    // The first answers were lost; the resend is answered `duplicate` (no original status:
    // it was applied).
    let results: Vec<_> = batch
        .ops
        .iter()
        .map(|o| duplicate(&o.op_id, None))
        .collect();
    let out = store.record_push_results(&results).unwrap();
    assert!(
        out.outcomes
            .iter()
            .all(|o| o.status == OpStatus::Applied && o.duplicate),
        "{out:?}"
    );
    assert_level(&l.node, &l.bolt, &l.loc, ["10", "0", "10", "0", "10"]);

    let refused = store
        .record_movement(&shipment(&l.bolt, &l.loc, q("4", Uom::Each)))
        .unwrap();
    let kept = store
        .record_movement(&shipment(&l.bolt, &l.loc, q("2", Uom::Each)))
        .unwrap();
    assert_level(&l.node, &l.bolt, &l.loc, ["10", "-6", "4", "0", "4"]);
    store.next_push_batch(3, 10).unwrap();
    let out = store
        .record_push_results(&[
            OpResult {
                error: Some(rule_error(
                    NO_NEGATIVE_INVENTORY,
                    "Only 3 on hand at the hub",
                )),
                ..duplicate(&refused.op_id, Some(OpStatus::Rejected))
            },
            duplicate(&kept.op_id, Some(OpStatus::Applied)),
        ])
        .unwrap();
    let first = &out.outcomes[0];
    assert_eq!((first.status, first.duplicate), (OpStatus::Rejected, true));
    assert_eq!(first.rule.as_deref(), Some(NO_NEGATIVE_INVENTORY));
    assert_eq!(first.message.as_deref(), Some("Only 3 on hand at the hub"));
    let second = &out.outcomes[1];
    assert_eq!((second.status, second.duplicate), (OpStatus::Applied, true));

    assert_eq!(op(&l.node, &refused.op_id).state, "rejected");
    assert_eq!(
        op(&l.node, &refused.op_id).last_error.as_deref(),
        Some("Only 3 on hand at the hub")
    );
    assert_eq!(leg_states(&l.node, &refused.op_id), ["rejected"]);
    assert_eq!(op(&l.node, &kept.op_id).state, "acked");
    assert_level(&l.node, &l.bolt, &l.loc, ["8", "0", "8", "0", "8"]);
    l.node.assert_consistent();
}

#[test]
fn a_rejected_allocation_is_marked_rejected_and_a_rejected_release_reopens_it() {
    let l = local_acked();
    let store = &l.node.store;
    let refused = AllocationId::new();
    let op1 = store
        .record_movement(&allocation(&l.bolt, &l.loc, &refused, "4"))
        .unwrap()
        .op_id;
    assert_level(&l.node, &l.bolt, &l.loc, ["10", "0", "10", "4", "6"]);
    store.next_push_batch(0, 10).unwrap();
    let out = store
        .record_push_results(&[rejected(
            &op1,
            ALLOCATION_WITHIN_AVAILABLE,
            "Only 2 available at the hub",
        )])
        .unwrap();
    assert_eq!(
        out.outcomes[0].rule.as_deref(),
        Some(ALLOCATION_WITHIN_AVAILABLE)
    );
    assert_eq!(store.allocation(&refused).unwrap().status, "rejected");
    assert_level(&l.node, &l.bolt, &l.loc, ["10", "0", "10", "0", "10"]);
    l.node.assert_consistent();

    // An allocation the hub took, then a release it refused: the allocation stays open here too.
    let held = AllocationId::new();
    let op2 = store
        .record_movement(&allocation(&l.bolt, &l.loc, &held, "3"))
        .unwrap()
        .op_id;
    store.next_push_batch(0, 10).unwrap();
    store.record_push_results(&[applied(&op2, 40)]).unwrap();
    assert_level(&l.node, &l.bolt, &l.loc, ["10", "0", "10", "3", "7"]);
    let op3 = store
        .record_movement(&release(&l.bolt, &l.loc, &held, "3"))
        .unwrap()
        .op_id;
    assert_eq!(store.allocation(&held).unwrap().status, "released");
    assert_level(&l.node, &l.bolt, &l.loc, ["10", "0", "10", "0", "10"]);
    store.next_push_batch(0, 10).unwrap();
    store
        .record_push_results(&[rejected(
            &op3,
            ALLOCATION_OPEN,
            "Already released at the hub",
        )])
        .unwrap();
    assert_eq!(store.allocation(&held).unwrap().status, "open");
    assert_eq!(leg_states(&l.node, &op3), ["rejected"]);
    assert_level(&l.node, &l.bolt, &l.loc, ["10", "0", "10", "3", "7"]);
    l.node.assert_consistent();
}

#[test]
fn release_in_flight_puts_ops_back_and_park_op_sets_one_aside() {
    let l = local();
    let store = &l.node.store;
    let ids: Vec<OpId> = store
        .next_push_batch(0, 10)
        .unwrap()
        .ops
        .into_iter()
        .map(|o| o.op_id)
        .collect();
    store.release_in_flight(&ids, "connection reset").unwrap();
    assert_eq!(
        states(&l.node),
        [
            (1, s("pending"), 1),
            (2, s("pending"), 1),
            (3, s("pending"), 1)
        ]
    );
    assert!(
        l.node
            .outbox()
            .iter()
            .all(|o| o.last_error.as_deref() == Some("connection reset"))
    );
    l.node.assert_consistent();

    let again = store.next_push_batch(0, 10).unwrap();
    assert_eq!(again.ops.len(), 3);
    assert!(
        states(&l.node)
            .iter()
            .all(|(_, st, n)| st == "in_flight" && *n == 2)
    );

    // Only in-flight ops go back: an acked one stays acked.
    store.record_push_results(&[applied(&ids[0], 1)]).unwrap();
    store.release_in_flight(&ids[..2], "timeout").unwrap();
    assert_eq!(
        states(&l.node),
        [
            (1, s("acked"), 2),
            (2, s("pending"), 2),
            (3, s("in_flight"), 2)
        ]
    );
    assert_eq!(op(&l.node, &ids[0]).last_error, None);
    assert_eq!(op(&l.node, &ids[1]).last_error.as_deref(), Some("timeout"));

    store
        .park_op(&ids[2], "the hub answers 400 to this op alone")
        .unwrap();
    store.park_op(&ids[0], "not applicable").unwrap();
    assert_eq!(
        states(&l.node),
        [
            (1, s("acked"), 2),
            (2, s("pending"), 2),
            (3, s("parked"), 2)
        ]
    );
    assert_eq!(
        op(&l.node, &ids[2]).last_error.as_deref(),
        Some("the hub answers 400 to this op alone")
    );
    assert_eq!(op(&l.node, &ids[0]).last_error, None);
    let next = store.next_push_batch(0, 10).unwrap();
    assert_eq!(
        next.ops.iter().map(|o| o.op_id.clone()).collect::<Vec<_>>(),
        [ids[1].clone()]
    );
    let counts = store.sync_counts().unwrap();
    assert_eq!((counts.pending, counts.parked, counts.rejected), (1, 1, 0));
    // The parked receipt's leg is still pending, so on hand still shows it.
    assert_eq!(leg_states(&l.node, &l.receipt), ["pending"]);
    assert_level(&l.node, &l.bolt, &l.loc, ["0", "10", "10", "0", "10"]);
    l.node.assert_consistent();
}

// ---------------------------------------------------------------------------------------------
// Pull.

#[test]
fn a_first_snapshot_fills_the_store_and_keeps_its_token() {
    let hub = Hub::new();
    let node = Node::fresh();
    assert_eq!(node.store.delta_token().unwrap(), None);

    let out = node
        .store
        .apply_delta_page(
            &page(hub.snapshot_items()),
            &meta("t-snap-1", false, Some(hub.snapshot_digest())),
        )
        .unwrap();
    assert!(out.snapshot && out.snapshot_completed, "{out:?}");
    assert_eq!(
        (out.items, out.applied, out.stale, out.staged, out.swept),
        (5, 5, 0, 0, 0)
    );
    assert_eq!(out.locations, [hub.loc.to_string()]);
    let mut products = out.products.clone();
    products.sort();
    let mut expected = [hub.bolt.to_string(), hub.nut.to_string()];
    expected.sort();
    assert_eq!(products, expected);
    assert_eq!(out.stock.len(), 2);
    let check = out.checksum.unwrap();
    assert!(check.matches(), "{check:?}");
    assert_eq!(
        node.store.delta_token().unwrap().as_deref(),
        Some("t-snap-1")
    );

    let locations = node.store.locations().unwrap();
    assert_eq!(locations.len(), 1);
    assert_eq!(
        (
            &locations[0].id,
            locations[0].code.as_str(),
            locations[0].name.as_str()
        ),
        (&hub.loc, "A-01", "Hub A-01")
    );
    let products = node.store.products().unwrap();
    assert_eq!(
        products
            .iter()
            .map(|p| (&p.id, p.sku.as_str(), p.version))
            .collect::<Vec<_>>(),
        [(&hub.bolt, "BOLT", 1), (&hub.nut, "NUT", 1)]
    );
    assert_eq!(products[0].name, "Bolt M6");
    assert_eq!(products[0].price, Some("9.99 EUR".parse().unwrap()));
    assert_eq!(
        products[0].created_at,
        Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
    );
    assert_eq!(
        node.store.product_doc(&hub.bolt).unwrap().fields().unwrap(),
        ProductDoc::load(&hub.bolt_doc).unwrap().fields().unwrap()
    );
    assert_level(&node, &hub.bolt, &hub.loc, ["12", "0", "12", "2", "10"]);
    assert_level(&node, &hub.nut, &hub.loc, ["7", "0", "7", "0", "7"]);
    assert_eq!(node.store.local_checksum().unwrap(), hub.snapshot_digest());

    // What came from the hub is not sent back.
    assert!(node.outbox().is_empty());
    let counts = node.store.sync_counts().unwrap();
    assert!(!counts.snapshot_active);
    assert!(counts.last_pull_at.is_some() && counts.last_checksum_at.is_some());
    assert_eq!((counts.pending, counts.staged), (0, 0));
    node.assert_consistent();
}

#[test]
fn a_stock_level_before_its_product_waits_until_the_product_arrives() {
    let hub = Hub::new();
    let node = Node::fresh();
    let store = &node.store;

    // Page 1 of the snapshot: the location and a stock level whose product is not here yet.
    let out = store
        .apply_delta_page(
            &page(vec![
                stock_item(&hub.bolt, &hub.loc, 4, "12", "2"),
                location_item(&hub.loc, "A-01", 1),
            ]),
            &more("t1"),
        )
        .unwrap();
    assert!(out.snapshot && !out.snapshot_completed);
    assert_eq!((out.items, out.applied, out.staged), (2, 1, 1));
    assert!(out.stock.is_empty());
    assert!(node.stock().is_empty());
    assert_eq!(store.delta_token().unwrap().as_deref(), Some("t1"));
    let counts = store.sync_counts().unwrap();
    assert_eq!(counts.staged, 1);
    assert!(counts.snapshot_active);
    let diagnostics = store.diagnostics().unwrap();
    let staged = &diagnostics["staged"][0];
    assert_eq!(staged["entity"], "stock_level");
    assert_eq!(staged["id"], format!("{}@{}", hub.bolt, hub.loc));
    assert_eq!(
        staged["reason"],
        format!("product {} not here yet", hub.bolt)
    );

    // A newer state of the same level replaces the waiting one; an older one does not.
    let out = store
        .apply_delta_page(
            &page(vec![stock_item(&hub.bolt, &hub.loc, 6, "14", "2")]),
            &more("t2"),
        )
        .unwrap();
    assert_eq!(out.staged, 1);
    let out = store
        .apply_delta_page(
            &page(vec![stock_item(&hub.bolt, &hub.loc, 5, "99", "0")]),
            &more("t3"),
        )
        .unwrap();
    assert_eq!(out.staged, 1);

    // The product arrives on the last page: the level applies, as of its newest state.
    let out = store
        .apply_delta_page(
            &page(vec![product_item(&hub.bolt, 2, 1, &hub.bolt_doc)]),
            &meta(
                "t4",
                false,
                Some(digest(
                    &[(&hub.bolt, 1)],
                    &[(&hub.bolt, &hub.loc, "14", "2")],
                )),
            ),
        )
        .unwrap();
    assert!(out.snapshot_completed);
    assert_eq!(
        (out.items, out.applied, out.staged, out.swept),
        (1, 2, 0, 0)
    );
    assert_eq!(out.stock, [(hub.bolt.to_string(), hub.loc.to_string())]);
    assert!(out.checksum.unwrap().matches());
    assert_level(&node, &hub.bolt, &hub.loc, ["14", "0", "14", "2", "12"]);
    let counts = store.sync_counts().unwrap();
    assert_eq!(counts.staged, 0);
    assert!(!counts.snapshot_active);
    assert_eq!(store.diagnostics().unwrap()["staged"], json!([]));
    node.assert_consistent();
}

#[test]
fn an_item_older_than_the_row_is_ignored_and_a_newer_one_applies() {
    let hub = Hub::new();
    let node = hub.synced_node();
    let store = &node.store;

    let mut renamed = ProductDoc::load(&hub.bolt_doc).unwrap();
    renamed
        .edit(
            &hub_actor(),
            &ProductPatch {
                name: Some("Bolt M6 (old name)".into()),
                ..ProductPatch::default()
            },
        )
        .unwrap();
    let out = store
        .apply_delta_page(
            &page(vec![
                stock_item(&hub.bolt, &hub.loc, 3, "99", "0"),
                product_item(&hub.bolt, 1, 0, &renamed.save()),
            ]),
            &last("t2"),
        )
        .unwrap();
    assert!(!out.snapshot);
    assert_eq!((out.items, out.applied, out.stale), (2, 0, 2));
    assert_level(&node, &hub.bolt, &hub.loc, ["12", "0", "12", "2", "10"]);
    let bolt = store.product(&hub.bolt).unwrap();
    assert_eq!((bolt.name.as_str(), bolt.version), ("Bolt M6", 1));
    // A stale page still moves the token: the hub has moved past it.
    assert_eq!(store.delta_token().unwrap().as_deref(), Some("t2"));

    let mut newer = ProductDoc::load(&hub.bolt_doc).unwrap();
    newer
        .edit(
            &hub_actor(),
            &ProductPatch {
                name: Some("Bolt M6 zinc".into()),
                ..ProductPatch::default()
            },
        )
        .unwrap();
    let newer_page = page(vec![
        stock_item(&hub.bolt, &hub.loc, 9, "20", "5"),
        product_item(&hub.bolt, 8, 2, &newer.save()),
    ]);
    let out = store.apply_delta_page(&newer_page, &last("t3")).unwrap();
    assert_eq!((out.applied, out.stale), (2, 0));
    assert_level(&node, &hub.bolt, &hub.loc, ["20", "0", "20", "5", "15"]);
    let bolt = store.product(&hub.bolt).unwrap();
    assert_eq!((bolt.name.as_str(), bolt.version), ("Bolt M6 zinc", 2));

    // The same page again (a retried pull) leaves everything as it is.
    let before = (node.stock(), store.products().unwrap());
    store.apply_delta_page(&newer_page, &last("t3")).unwrap();
    assert_eq!((node.stock(), store.products().unwrap()), before);
    assert!(node.outbox().is_empty());
    node.assert_consistent();
}

#[test]
fn the_checksum_matches_only_when_the_views_agree() {
    let hub = Hub::new();
    let node = hub.synced_node();
    let store = &node.store;

    let out = store
        .apply_delta_page(
            &DeltaPage::default(),
            &meta("t2", false, Some(hub.snapshot_digest())),
        )
        .unwrap();
    let check = out.checksum.unwrap();
    assert!(check.matches());
    assert_eq!(check.local, store.local_checksum().unwrap());
    let matched_at = store.sync_counts().unwrap().last_checksum_at;
    assert!(matched_at.is_some());

    // Local unsent legs are not the hub's state: they do not enter the checksum.
    store
        .record_movement(&receipt(&hub.bolt, &hub.loc, q("5", Uom::Each)))
        .unwrap();
    assert_eq!(store.local_checksum().unwrap(), hub.snapshot_digest());

    // The hub's digest of a state the device does not have (it missed the change to 15).
    let hub_view = digest(
        &[(&hub.bolt, 1), (&hub.nut, 1)],
        &[
            (&hub.bolt, &hub.loc, "15", "2"),
            (&hub.nut, &hub.loc, "7", "0"),
        ],
    );
    let out = store
        .apply_delta_page(
            &DeltaPage::default(),
            &meta("t3", false, Some(hub_view.clone())),
        )
        .unwrap();
    let check = out.checksum.unwrap();
    assert!(!check.matches());
    assert_eq!(
        (check.hub.as_str(), check.local.as_str()),
        (hub_view.as_str(), hub.snapshot_digest().as_str())
    );
    assert_eq!(store.sync_counts().unwrap().last_checksum_at, matched_at);

    // The change arrives: now they agree.
    let out = store
        .apply_delta_page(
            &page(vec![stock_item(&hub.bolt, &hub.loc, 6, "15", "2")]),
            &meta("t4", false, Some(hub_view.clone())),
        )
        .unwrap();
    assert!(out.checksum.unwrap().matches());
    assert_eq!(store.local_checksum().unwrap(), hub_view);

    // Only the last page of a pull is checked.
    let out = store
        .apply_delta_page(&DeltaPage::default(), &meta("t5", true, Some(hub_view)))
        .unwrap();
    assert_eq!(out.checksum, None);
    node.assert_consistent();
}

#[test]
fn a_new_snapshot_sweeps_rows_the_hub_no_longer_has() {
    let hub = Hub::new();
    let node = hub.synced_node();
    let store = &node.store;

    // A state the hub no longer has (it was restored from a backup), stamped with a later seq
    // than anything the repair will send: the repair snapshot still overwrites it.
    store
        .apply_live_change(&inventory_frame(&hub.bolt, &hub.loc, 50, "12", "99", "0"))
        .unwrap();
    assert_level(&node, &hub.bolt, &hub.loc, ["99", "0", "99", "0", "99"]);
    store.restart_snapshot("checksum mismatch").unwrap();
    assert_eq!(store.delta_token().unwrap(), None);
    let counts = store.sync_counts().unwrap();
    assert!(counts.snapshot_active);
    assert_eq!(counts.repairs, 1);

    // The hub deleted NUT: the new snapshot holds only BOLT, over two pages.
    let out = store
        .apply_delta_page(
            &page(vec![
                location_item(&hub.loc, "A-01", 1),
                product_item(&hub.bolt, 2, 1, &hub.bolt_doc),
            ]),
            &more("t-snap-2a"),
        )
        .unwrap();
    assert!(out.snapshot && !out.snapshot_completed);
    // Nothing is swept before the snapshot's last page.
    assert_eq!(out.swept, 0);
    assert_eq!(store.products().unwrap().len(), 2);
    assert_level(&node, &hub.nut, &hub.loc, ["7", "0", "7", "0", "7"]);

    let out = store
        .apply_delta_page(
            &page(vec![stock_item(&hub.bolt, &hub.loc, 4, "12", "2")]),
            &meta(
                "t-snap-2b",
                false,
                Some(digest(
                    &[(&hub.bolt, 1)],
                    &[(&hub.bolt, &hub.loc, "12", "2")],
                )),
            ),
        )
        .unwrap();
    assert!(out.snapshot_completed);
    assert_eq!(out.swept, 2, "NUT's stock level and NUT itself: {out:?}");
    assert!(out.checksum.unwrap().matches());
    assert_eq!(
        store
            .products()
            .unwrap()
            .iter()
            .map(|p| &p.id)
            .collect::<Vec<_>>(),
        [&hub.bolt]
    );
    assert_eq!(store.find_product("NUT").unwrap(), None);
    assert_level(&node, &hub.nut, &hub.loc, ["0", "0", "0", "0", "0"]);
    assert_level(&node, &hub.bolt, &hub.loc, ["12", "0", "12", "2", "10"]);
    let counts = store.sync_counts().unwrap();
    assert!(!counts.snapshot_active);
    assert_eq!(counts.repairs, 1);
    node.assert_consistent();

    // A restart for another reason than a checksum is not a repair.
    store.restart_snapshot("user asked").unwrap();
    assert_eq!(store.sync_counts().unwrap().repairs, 1);
    store
        .apply_delta_page(
            &page(vec![location_item(&hub.loc, "A-01", 1)]),
            &last("t-snap-3"),
        )
        .unwrap();
    assert!(store.products().unwrap().is_empty());
    // A product the hub has again comes back, SKU and all.
    store
        .apply_delta_page(&page(hub.snapshot_items()), &last("t-snap-4"))
        .unwrap();
    assert_eq!(store.products().unwrap().len(), 2);

    // The hub can ask for a snapshot too: an empty page with `full_sync_required` and a token
    // from the start of the feed, then the snapshot's pages (here: the location alone).
    let out = store
        .apply_delta_page(
            &DeltaPage::default(),
            &DeltaMeta {
                full_sync_required: true,
                ..more("t-fresh")
            },
        )
        .unwrap();
    assert!(out.snapshot && !out.snapshot_completed);
    assert_eq!(out.swept, 0);
    assert!(store.sync_counts().unwrap().snapshot_active);
    assert_eq!(store.products().unwrap().len(), 2);
    let out = store
        .apply_delta_page(
            &page(vec![location_item(&hub.loc, "A-01", 1)]),
            &last("t-snap-5"),
        )
        .unwrap();
    assert!(out.snapshot && out.snapshot_completed);
    assert_eq!(out.swept, 4, "{out:?}");
    assert!(store.products().unwrap().is_empty());
    assert_level(&node, &hub.bolt, &hub.loc, ["0", "0", "0", "0", "0"]);
    assert_level(&node, &hub.nut, &hub.loc, ["0", "0", "0", "0", "0"]);
    assert_eq!(store.local_checksum().unwrap(), digest(&[], &[]));
    node.assert_consistent();
}

#[test]
fn pending_local_legs_survive_a_pull_and_a_snapshot() {
    let hub = Hub::new();
    let node = hub.synced_node();
    let store = &node.store;
    let local_op = store
        .record_movement(&receipt(&hub.bolt, &hub.loc, q("5", Uom::Each)))
        .unwrap()
        .op_id;
    // A level only this device has: a local location the hub has not heard of.
    let back = node.location("B-01").id;
    store
        .record_movement(&receipt(&hub.nut, &back, q("3", Uom::Each)))
        .unwrap();
    assert_level(&node, &hub.bolt, &hub.loc, ["12", "5", "17", "2", "15"]);

    // Another device received 8: on hand is the hub's 20 plus this device's unsent 5.
    store
        .apply_delta_page(
            &page(vec![stock_item(&hub.bolt, &hub.loc, 10, "20", "2")]),
            &last("t2"),
        )
        .unwrap();
    assert_level(&node, &hub.bolt, &hub.loc, ["20", "5", "25", "2", "23"]);
    node.assert_consistent();

    // A repair snapshot overwrites the hub's part and leaves the pending part.
    store.restart_snapshot("checksum mismatch").unwrap();
    let mut items = hub.snapshot_items();
    items[1] = stock_item(&hub.bolt, &hub.loc, 11, "30", "2");
    store
        .apply_delta_page(&page(items), &last("t-snap-2"))
        .unwrap();
    assert_level(&node, &hub.bolt, &hub.loc, ["30", "5", "35", "2", "33"]);
    assert_level(&node, &hub.nut, &back, ["0", "3", "3", "0", "3"]);
    node.assert_consistent();

    // A snapshot without the level at all: only the pending part is left.
    store.restart_snapshot("checksum mismatch").unwrap();
    let mut items = hub.snapshot_items();
    items.remove(1);
    let out = store
        .apply_delta_page(&page(items), &last("t-snap-3"))
        .unwrap();
    assert_eq!(out.swept, 1);
    assert_level(&node, &hub.bolt, &hub.loc, ["0", "5", "5", "0", "5"]);
    assert_level(&node, &hub.nut, &back, ["0", "3", "3", "0", "3"]);
    assert_eq!(op(&node, &local_op).state, "pending");
    assert_eq!(leg_states(&node, &local_op), ["pending"]);
    node.assert_consistent();
}

/// The hub's numbering of one movement op, as `hub/src/service/stock.rs` does it: each stock
/// level it changes is saved first (one feed seq each), then the transaction record gets the
/// next seq, and that last seq is what the push answer carries (`OpResult::seq`).
fn transaction_item(id: &str, seq: u64, op: &OpId, product: &ProductId) -> DeltaItem {
    item(
        Entity::Transaction,
        id,
        seq,
        1,
        json!({ "transaction_type": "receipt", "product_id": product.as_str(), "op_id": op.as_str() }),
    )
}

#[test]
fn an_acked_op_is_counted_at_once_and_a_later_pull_does_not_count_it_again() {
    let hub = Hub::new();
    let node = hub.synced_node();
    let store = &node.store;

    // The answer before the pull: the synced part is estimated at once (no dip in on hand),
    // and the pull (level at seq 11, transaction at seq 12) then confirms the same number.
    let received = store
        .record_movement(&receipt(&hub.bolt, &hub.loc, q("5", Uom::Each)))
        .unwrap()
        .op_id;
    store.next_push_batch(0, 10).unwrap();
    store
        .record_push_results(&[applied(&received, 12)])
        .unwrap();
    assert_level(&node, &hub.bolt, &hub.loc, ["17", "0", "17", "2", "15"]);
    store
        .apply_delta_page(
            &page(vec![
                stock_item(&hub.bolt, &hub.loc, 11, "17", "2"),
                transaction_item("txn_a", 12, &received, &hub.bolt),
            ]),
            &last("t2"),
        )
        .unwrap();
    assert_level(&node, &hub.bolt, &hub.loc, ["17", "0", "17", "2", "15"]);
    node.assert_consistent();

    // The pull first, with a state from after the op (another device received 10 at seq 15):
    // the pending leg shows on top until the answer, which then adds nothing.
    let shipped = store
        .record_movement(&shipment(&hub.bolt, &hub.loc, q("2", Uom::Each)))
        .unwrap()
        .op_id;
    store.next_push_batch(0, 10).unwrap();
    store
        .apply_delta_page(
            &page(vec![stock_item(&hub.bolt, &hub.loc, 15, "25", "2")]),
            &last("t3"),
        )
        .unwrap();
    assert_level(&node, &hub.bolt, &hub.loc, ["25", "-2", "23", "2", "21"]);
    store.record_push_results(&[applied(&shipped, 14)]).unwrap();
    assert_level(&node, &hub.bolt, &hub.loc, ["25", "0", "25", "2", "23"]);
    node.assert_consistent();
}

/// KNOWN BUG (reported): the pull brings the op's effect before its answer does. The level
/// that includes the op has seq 11, the answer carries the transaction's seq 12, so
/// `confirm_legs` (`stock.hub_seq >= op seq`) thinks the pulled state predates the op and adds
/// the receipt a second time: synced 22 where the hub has 17, until a checksum repair.
#[test]
fn an_ack_after_a_pull_that_already_holds_the_op_does_not_count_it_twice() {
    let hub = Hub::new();
    let node = hub.synced_node();
    let store = &node.store;
    let received = store
        .record_movement(&receipt(&hub.bolt, &hub.loc, q("5", Uom::Each)))
        .unwrap()
        .op_id;
    // Sent; the hub applied it (level seq 11, transaction seq 12) but the answer was lost.
    let sent: Vec<OpId> = store
        .next_push_batch(0, 10)
        .unwrap()
        .ops
        .into_iter()
        .map(|o| o.op_id)
        .collect();
    store.release_in_flight(&sent, "timeout").unwrap();
    let hub_view = digest(
        &[(&hub.bolt, 1), (&hub.nut, 1)],
        &[
            (&hub.bolt, &hub.loc, "17", "2"),
            (&hub.nut, &hub.loc, "7", "0"),
        ],
    );
    let out = store
        .apply_delta_page(
            &page(vec![
                stock_item(&hub.bolt, &hub.loc, 11, "17", "2"),
                transaction_item("txn_a", 12, &received, &hub.bolt),
            ]),
            &meta("t2", false, Some(hub_view.clone())),
        )
        .unwrap();
    assert!(out.checksum.unwrap().matches());
    assert_level(&node, &hub.bolt, &hub.loc, ["17", "5", "22", "2", "20"]);

    // The resend is answered `duplicate`, with the first answer's seq.
    store.next_push_batch(0, 10).unwrap();
    store
        .record_push_results(&[OpResult {
            seq: Some(12),
            ..duplicate(&received, Some(OpStatus::Applied))
        }])
        .unwrap();
    assert_level(&node, &hub.bolt, &hub.loc, ["17", "0", "17", "2", "15"]);
    let out = store
        .apply_delta_page(&DeltaPage::default(), &meta("t3", false, Some(hub_view)))
        .unwrap();
    assert!(out.checksum.unwrap().matches());
    node.assert_consistent();
}

#[test]
fn a_product_update_merges_with_an_unsent_local_edit() {
    let hub = Hub::new();
    let node = hub.synced_node();
    let store = &node.store;
    store
        .edit_product(
            &hub.bolt,
            &ProductPatch {
                name: Some("Bolt M6 (shelf label)".into()),
                ..ProductPatch::default()
            },
        )
        .unwrap();
    assert_eq!(node.outbox().len(), 1);
    assert_eq!(node.outbox()[0].kind, "product_change");

    // Meanwhile at the hub: another device changed the description and the price.
    let mut theirs = ProductDoc::load(&hub.bolt_doc).unwrap();
    theirs
        .edit(
            &hub_actor(),
            &ProductPatch {
                description: Some(Some("Zinc plated".into())),
                price: Some(Some("10.50 EUR".parse().unwrap())),
                ..ProductPatch::default()
            },
        )
        .unwrap();
    let out = store
        .apply_delta_page(
            &page(vec![product_item(&hub.bolt, 20, 2, &theirs.save())]),
            &last("t2"),
        )
        .unwrap();
    assert_eq!(out.applied, 1);

    let bolt = store.product(&hub.bolt).unwrap();
    assert_eq!(bolt.name, "Bolt M6 (shelf label)");
    assert_eq!(bolt.description.as_deref(), Some("Zinc plated"));
    assert_eq!(bolt.price, Some("10.50 EUR".parse().unwrap()));
    assert_eq!((bolt.sku.as_str(), bolt.version), ("BOLT", 2));
    let doc = store.product_doc(&hub.bolt).unwrap();
    assert_eq!(doc.fields().unwrap().name, "Bolt M6 (shelf label)");
    assert!(doc.conflicts().unwrap().is_empty());
    // The local edit is still to be sent: one change, of the name only.
    assert_eq!(states(&node), [(1, s("pending"), 0)]);
    let sent = store.next_push_batch(0, 10).unwrap().ops;
    let OpBody::ProductChange(change) = &sent[0].body else {
        panic!("expected a product change, got {:?}", sent[0].body)
    };
    assert_eq!((&change.product_id, change.base_version), (&hub.bolt, 1));
    assert_eq!(change.fields, ["name"]);
    // The hub applied it but sent a field to the manual queue: acked, with the conflict named.
    let clash = ConflictId::new().to_string();
    let out = store
        .record_push_results(&[OpResult {
            seq: Some(21),
            version: Some(3),
            conflict_id: Some(clash.clone()),
            ..answer(&sent[0].op_id, OpStatus::Conflict)
        }])
        .unwrap();
    assert_eq!(out.outcomes[0].status, OpStatus::Conflict);
    assert_eq!(out.outcomes[0].conflict_id.as_deref(), Some(clash.as_str()));
    assert_eq!(states(&node), [(1, s("acked"), 1)]);
    node.assert_consistent();
}

#[test]
fn a_live_inventory_frame_applies_and_an_older_one_does_not_undo_a_newer_pull() {
    let hub = Hub::new();
    let node = hub.synced_node();
    let store = &node.store;

    let out = store
        .apply_live_change(&inventory_frame(&hub.bolt, &hub.loc, 12, "12", "15", "3"))
        .unwrap();
    assert_eq!((out.items, out.applied, out.stale), (1, 1, 0));
    assert_eq!(out.stock, [(hub.bolt.to_string(), hub.loc.to_string())]);
    assert_level(&node, &hub.bolt, &hub.loc, ["15", "0", "15", "3", "12"]);
    // A frame is not a position in the feed.
    assert_eq!(store.delta_token().unwrap().as_deref(), Some("t-snap-1"));

    store
        .apply_delta_page(
            &page(vec![stock_item(&hub.bolt, &hub.loc, 20, "30", "3")]),
            &last("t2"),
        )
        .unwrap();
    let out = store
        .apply_live_change(&inventory_frame(&hub.bolt, &hub.loc, 18, "15", "25", "3"))
        .unwrap();
    assert_eq!((out.applied, out.stale), (0, 1));
    assert_level(&node, &hub.bolt, &hub.loc, ["30", "0", "30", "3", "27"]);

    // Frames that carry no state change nothing.
    let other = ChangeFrame {
        kind: "something.else".into(),
        seq: 99,
        timestamp: T0.into(),
        data: json!({}),
    };
    assert_eq!(
        store.apply_live_change(&other).unwrap(),
        PageApplied::default()
    );
    node.assert_consistent();
}

#[test]
fn a_frame_during_a_snapshot_neither_confirms_a_row_nor_unconfirms_one() {
    let hub = Hub::new();
    let node = Node::fresh();
    let store = &node.store;
    let back = LocationId::new();
    let mut items = hub.snapshot_items();
    items.push(location_item(&back, "B-01", 6));
    store.apply_delta_page(&page(items), &more("t1")).unwrap();
    // BOLT changed while the snapshot ran: past the horizon, it comes in the snapshot's delta
    // pages, and its frame (same seq) is applied after that page.
    store
        .apply_delta_page(
            &page(vec![stock_item(&hub.bolt, &hub.loc, 120, "15", "2")]),
            &more("t2"),
        )
        .unwrap();
    let out = store
        .apply_live_change(&inventory_frame(&hub.bolt, &hub.loc, 120, "12", "15", "2"))
        .unwrap();
    assert_eq!(out.applied, 1);
    // A frame about a level no page of the snapshot confirms.
    store
        .apply_live_change(&inventory_frame(&hub.nut, &back, 121, "0", "3", "0"))
        .unwrap();
    assert_level(&node, &hub.nut, &back, ["3", "0", "3", "0", "3"]);

    let hub_view = digest(
        &[(&hub.bolt, 1), (&hub.nut, 1)],
        &[
            (&hub.bolt, &hub.loc, "15", "2"),
            (&hub.nut, &hub.loc, "7", "0"),
        ],
    );
    let out = store
        .apply_delta_page(&DeltaPage::default(), &meta("t3", false, Some(hub_view)))
        .unwrap();
    assert!(out.snapshot_completed);
    assert_eq!(
        out.swept, 1,
        "only the level the snapshot did not confirm: {out:?}"
    );
    assert_level(&node, &hub.bolt, &hub.loc, ["15", "0", "15", "2", "13"]);
    assert_level(&node, &hub.nut, &back, ["0", "0", "0", "0", "0"]);
    assert!(out.checksum.unwrap().matches());
    node.assert_consistent();
}

// ---------------------------------------------------------------------------------------------
// Conflicts.

#[test]
fn a_pulled_conflict_is_resolved_once_through_the_outbox() {
    let hub = Hub::new();
    let node = hub.synced_node();
    let store = &node.store;
    let price = ConflictId::new();
    let fields = json!({
        "kind": "field", "product_id": hub.bolt.as_str(), "field": "price",
        "message": "Two devices set different prices",
        "values": ["10.00 EUR", "11.00 EUR"],
    });
    let out = store
        .apply_delta_page(
            &page(vec![conflict_item(&price, 30, "open", fields.clone())]),
            &last("t2"),
        )
        .unwrap();
    assert_eq!(out.conflicts, [price.to_string()]);

    let open = store.conflicts(true).unwrap();
    assert_eq!(open.len(), 1);
    let c = &open[0];
    assert_eq!(
        (c.id.as_str(), c.kind.as_str(), c.status.as_str()),
        (price.as_str(), "field", "open")
    );
    assert_eq!(c.product_id.as_deref(), Some(hub.bolt.as_str()));
    assert_eq!(c.field.as_deref(), Some("price"));
    assert_eq!(
        c.message.as_deref(),
        Some("Two devices set different prices")
    );
    assert_eq!(c.local_resolution, None);
    assert_eq!(c.record["values"], json!(["10.00 EUR", "11.00 EUR"]));
    assert_eq!(store.sync_counts().unwrap().open_conflicts, 1);

    let op_id = store
        .resolve_conflict(&price, Resolution::UseValue, Some("10.00 EUR".into()))
        .unwrap();
    let row = op(&node, &op_id);
    assert_eq!(
        (row.kind.as_str(), row.state.as_str()),
        ("conflict_resolution", "pending")
    );
    assert_eq!(
        row.body,
        json!({ "conflict_id": price.as_str(), "resolution": "use_value", "value": "10.00 EUR" })
    );
    let c = &store.conflicts(true).unwrap()[0];
    assert_eq!(c.status, "open");
    assert_eq!(c.local_resolution.as_deref(), Some("use_value: 10.00 EUR"));
    let batch = store.next_push_batch(0, 10).unwrap();
    assert!(matches!(&batch.ops[0].body, OpBody::ConflictResolution(b) if b.conflict_id == price));
    store.record_push_results(&[applied(&op_id, 31)]).unwrap();
    node.assert_consistent();

    // The hub closes it.
    store
        .apply_delta_page(
            &page(vec![conflict_item(&price, 31, "resolved", fields.clone())]),
            &last("t3"),
        )
        .unwrap();
    assert!(store.conflicts(true).unwrap().is_empty());
    let all = store.conflicts(false).unwrap();
    assert_eq!(
        (all[0].status.as_str(), &all[0].local_resolution),
        ("resolved", &None)
    );
    assert_eq!(store.sync_counts().unwrap().open_conflicts, 0);
    // An older state of it does not reopen it.
    let out = store
        .apply_delta_page(
            &page(vec![conflict_item(&price, 30, "open", fields)]),
            &last("t4"),
        )
        .unwrap();
    assert_eq!(out.stale, 1);
    assert_eq!(store.conflicts(false).unwrap()[0].status, "resolved");

    // Resolved, or unknown: refused, and nothing is appended.
    let ops = node.outbox().len();
    let again = store.resolve_conflict(&price, Resolution::Dismiss, None);
    assert!(
        matches!(&again, Err(StoreError::Invalid(e)) if e.to_string().contains("already resolved")),
        "{again:?}"
    );
    assert_eq!(invalid_fields(again), ["conflict_id"]);
    let unknown = ConflictId::new();
    match store.resolve_conflict(&unknown, Resolution::Dismiss, None) {
        Err(StoreError::NotFound { entity, key }) => {
            assert_eq!((entity, key.as_str()), ("conflict", unknown.as_str()));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(node.outbox().len(), ops);

    // A rule conflict (a rejected op) is dismissed.
    let rule = ConflictId::new();
    store
        .apply_delta_page(
            &page(vec![conflict_item(
                &rule,
                40,
                "open",
                json!({
                    "kind": "rule", "rule": NO_NEGATIVE_INVENTORY, "op_id": OpId::new().as_str(),
                    "product_id": hub.bolt.as_str(), "location_id": hub.loc.as_str(),
                    "message": "Only 3 on hand",
                }),
            )]),
            &last("t5"),
        )
        .unwrap();
    store
        .resolve_conflict(&rule, Resolution::Dismiss, None)
        .unwrap();
    let open = store.conflicts(true).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].rule.as_deref(), Some(NO_NEGATIVE_INVENTORY));
    assert_eq!(open[0].local_resolution.as_deref(), Some("dismiss"));
    node.assert_consistent();
}

// ---------------------------------------------------------------------------------------------
// Status and diagnostics.

#[test]
fn sync_counts_and_diagnostics_show_the_state_and_no_secrets() {
    const ACCESS: &str = "access-SECRET-7f3a";
    const REFRESH: &str = "refresh-SECRET-91bc";
    const DELTA: &str = "delta-SECRET-4d2e";
    let hub = Hub::new();
    let node = Node::fresh();
    let store = &node.store;
    let credentials = HubCredentials {
        hub_url: "http://hub.test:8080".into(),
        access_token: ACCESS.into(),
        refresh_token: REFRESH.into(),
        access_expires_at: Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
    };
    store.save_credentials(&credentials).unwrap();
    assert_eq!(store.credentials().unwrap(), Some(credentials.clone()));
    let shown = format!("{credentials:?}");
    assert!(
        !shown.contains(ACCESS) && !shown.contains(REFRESH),
        "{shown}"
    );

    store
        .apply_delta_page(&page(hub.snapshot_items()), &last(DELTA))
        .unwrap();
    // One op of each fate: rejected, parked, sent without an answer, never sent.
    let bolt_in = |n: &str| {
        store
            .record_movement(&receipt(&hub.bolt, &hub.loc, q(n, Uom::Each)))
            .unwrap()
            .op_id
    };
    let (refused, stuck, unanswered) = (bolt_in("5"), bolt_in("3"), bolt_in("1"));
    node.location("B-01");
    let unsent = op_id(&node.outbox().pop().unwrap());
    store.next_push_batch(0, 3).unwrap();
    store
        .record_push_results(&[rejected(&refused, UOM_MUST_MATCH, "Wrong unit")])
        .unwrap();
    store.park_op(&stuck, "the hub answers 400").unwrap();
    store
        .release_in_flight(std::slice::from_ref(&unanswered), "timeout")
        .unwrap();
    // A conflict, and a level waiting for a product the device does not have.
    let conflict = ConflictId::new();
    let ghost = ProductId::new();
    store
        .apply_delta_page(
            &page(vec![
                conflict_item(
                    &conflict,
                    30,
                    "open",
                    json!({ "kind": "field", "field": "sku" }),
                ),
                stock_item(&ghost, &hub.loc, 31, "1", "0"),
            ]),
            &last(DELTA),
        )
        .unwrap();
    store.set_sync_error(Some("hub unreachable")).unwrap();

    let counts = store.sync_counts().unwrap();
    assert_eq!(
        (
            counts.pending,
            counts.parked,
            counts.rejected,
            counts.open_conflicts,
            counts.staged
        ),
        (2, 1, 1, 1, 1)
    );
    assert_eq!(counts.hub_url.as_deref(), Some("http://hub.test:8080"));
    assert!(counts.last_push_at.is_some() && counts.last_pull_at.is_some());
    assert_eq!((counts.repairs, counts.snapshot_active), (0, false));

    let diag = store.diagnostics().unwrap();
    assert_eq!(diag["counts"], serde_json::to_value(&counts).unwrap());
    assert_eq!(
        diag["outbox_by_state"],
        json!({ "pending": 2, "parked": 1, "rejected": 1 })
    );
    assert_eq!(diag["has_pull_position"], true);
    assert_eq!(diag["last_error"], "hub unreachable");
    assert!(diag["enrolled_at"].is_string());
    assert_eq!(diag["rows"]["conflicts"], 1);
    assert_eq!(diag["staged"][0]["id"], format!("{ghost}@{}", hub.loc));
    assert_eq!(diag["problems"], json!([]));
    let attention: Vec<(&str, &str, Option<&str>)> = diag["ops_needing_attention"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["op_id"].as_str().unwrap(),
                o["state"].as_str().unwrap(),
                o["last_error"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        attention,
        [
            (unanswered.as_str(), "pending", Some("timeout")),
            (stuck.as_str(), "parked", Some("the hub answers 400")),
            (refused.as_str(), "rejected", Some("Wrong unit")),
        ]
    );
    assert!(!attention.iter().any(|(id, ..)| *id == unsent.as_str()));
    let text = diag.to_string();
    for secret in [ACCESS, REFRESH, DELTA] {
        assert!(!text.contains(secret), "diagnostics leak {secret}: {text}");
    }

    // Forgetting the credentials keeps the hub and every unsent op.
    store.forget_credentials().unwrap();
    assert_eq!(store.credentials().unwrap(), None);
    let after = store.sync_counts().unwrap();
    assert_eq!(after.hub_url.as_deref(), Some("http://hub.test:8080"));
    assert_eq!((after.pending, after.parked), (2, 1));
    node.assert_consistent();
}

/// KNOWN BUG (reported): a `product_create` the hub rejects frees its SKU for the hub's product
/// (`undo_local_effects`), but a rejected `location_create` frees nothing, so the hub's location
/// with that code (and every level at it) waits in `staged` for good.
#[test]
fn a_rejected_location_create_frees_its_code_for_the_hubs_location() {
    let node = Node::fresh();
    let store = &node.store;
    node.location("A-01");
    let ops: Vec<OpId> = store
        .next_push_batch(0, 10)
        .unwrap()
        .ops
        .into_iter()
        .map(|o| o.op_id)
        .collect();
    // Another device made A-01 first: the hub refuses this one (a 4xx becomes a rejection).
    store
        .record_push_results(&[OpResult {
            error: Some(ErrorBody {
                code: ErrorCode::ValidationFailed,
                message: "Invalid input".into(),
                details: json!({ "code": ["Is already used by another location"] }),
                request_id: None,
                timestamp: None,
            }),
            conflict_id: Some(ConflictId::new().to_string()),
            ..answer(&ops[0], OpStatus::Rejected)
        }])
        .unwrap();
    let hub = Hub::new();
    let out = store
        .apply_delta_page(&page(hub.snapshot_items()), &last("t1"))
        .unwrap();
    assert_eq!(
        out.staged,
        0,
        "{:?}",
        store.diagnostics().unwrap()["staged"]
    );
    assert_eq!(store.location("A-01").unwrap().id, hub.loc);
    node.assert_consistent();
}
