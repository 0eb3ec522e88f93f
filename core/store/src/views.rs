//! Read models for the UI and the command line: stock, ledger, outbox; and the consistency check.

use crate::codec::{dec, parse_col};
use crate::{Store, StoreError};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use stocksync_model::{Decimal, LocationId, ProductId, Uom};

/// Which stock rows to show.
#[derive(Clone, Debug, Default)]
pub struct StockFilter {
    /// Only this product.
    pub product_id: Option<ProductId>,
    /// Only this location.
    pub location_id: Option<LocationId>,
}

/// One product at one location.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockRow {
    /// Product.
    pub product_id: ProductId,
    /// Its SKU.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Location.
    pub location_id: LocationId,
    /// Its code.
    pub location_code: String,
    /// Unit.
    pub uom: Uom,
    /// Confirmed by the hub.
    pub synced_on_hand: Decimal,
    /// Local, not yet confirmed.
    pub pending: Decimal,
    /// What the device believes is there.
    pub on_hand: Decimal,
    /// Promised to orders.
    pub allocated: Decimal,
    /// Free to promise.
    pub available: Decimal,
}

/// Which ledger rows to show.
#[derive(Clone, Debug)]
pub struct LedgerFilter {
    /// Only this product.
    pub product_id: Option<ProductId>,
    /// At most this many, newest first.
    pub limit: u32,
}

impl Default for LedgerFilter {
    fn default() -> Self {
        LedgerFilter {
            product_id: None,
            limit: 50,
        }
    }
}

/// One ledger leg.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRow {
    /// Local order.
    pub seq: i64,
    /// The op that carries it.
    pub op_id: String,
    /// Transaction, transfer or allocation id.
    pub movement_id: String,
    /// receipt, shipment, adjustment, count, transfer, allocation, release.
    pub kind: String,
    /// Product SKU.
    pub sku: String,
    /// Location code.
    pub location_code: String,
    /// Change to on hand.
    pub on_hand_delta: Decimal,
    /// Change to allocated.
    pub allocated_delta: Decimal,
    /// Adjustment reason.
    pub reason_code: Option<String>,
    /// Reference.
    pub reference: Option<String>,
    /// When.
    pub occurred_at: String,
    /// pending or synced.
    pub state: String,
}

/// One outbox op.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxRow {
    /// Order of the device's ops.
    pub device_seq: u64,
    /// Unique forever.
    pub op_id: String,
    /// Op kind.
    pub kind: String,
    /// pending, in_flight, acked, rejected, parked.
    pub state: String,
    /// Push attempts so far.
    pub attempts: i64,
    /// Why the last attempt failed, or why it was rejected.
    pub last_error: Option<String>,
    /// When it was recorded.
    pub created_at: String,
    /// The op body as pushed.
    pub body: serde_json::Value,
}

impl Store {
    /// Stock rows, by SKU then location code.
    pub fn stock(&self, filter: &StockFilter) -> Result<Vec<StockRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT s.product_id, p.sku, p.name, s.location_id, l.code, p.uom,
                    s.synced_on_hand, s.pending, s.synced_allocated + s.pending_allocated
             FROM stock s JOIN products p ON p.id = s.product_id
                          JOIN locations l ON l.id = s.location_id
             WHERE (?1 IS NULL OR s.product_id = ?1) AND (?2 IS NULL OR s.location_id = ?2)
             ORDER BY p.sku, l.code",
        )?;
        let mut rows = stmt.query(rusqlite::params![
            filter.product_id.as_ref().map(ProductId::as_str),
            filter.location_id.as_ref().map(LocationId::as_str),
        ])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let level =
                stocksync_model::StockLevel::new(dec(r.get(6)?), dec(r.get(7)?), dec(r.get(8)?));
            out.push(StockRow {
                product_id: parse_col("product id", &r.get::<_, String>(0)?)?,
                sku: r.get(1)?,
                name: r.get(2)?,
                location_id: parse_col("location id", &r.get::<_, String>(3)?)?,
                location_code: r.get(4)?,
                uom: parse_col("uom", &r.get::<_, String>(5)?)?,
                synced_on_hand: level.synced_on_hand,
                pending: level.pending,
                on_hand: level.on_hand,
                allocated: level.allocated,
                available: level.available,
            });
        }
        Ok(out)
    }

    /// Ledger legs, newest first.
    pub fn ledger(&self, filter: &LedgerFilter) -> Result<Vec<LedgerRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT g.seq, g.op_id, g.movement_id, g.kind, p.sku, l.code, g.on_hand_delta,
                    g.allocated_delta, g.reason_code, g.reference, g.occurred_at, g.state
             FROM ledger g JOIN products p ON p.id = g.product_id
                           JOIN locations l ON l.id = g.location_id
             WHERE (?1 IS NULL OR g.product_id = ?1)
             ORDER BY g.seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(
            rusqlite::params![
                filter.product_id.as_ref().map(ProductId::as_str),
                filter.limit
            ],
            |r| {
                Ok(LedgerRow {
                    seq: r.get(0)?,
                    op_id: r.get(1)?,
                    movement_id: r.get(2)?,
                    kind: r.get(3)?,
                    sku: r.get(4)?,
                    location_code: r.get(5)?,
                    on_hand_delta: dec(r.get(6)?),
                    allocated_delta: dec(r.get(7)?),
                    reason_code: r.get(8)?,
                    reference: r.get(9)?,
                    occurred_at: r.get(10)?,
                    state: r.get(11)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Outbox ops in push order (`device_seq`).
    pub fn outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT device_seq, op_id, kind, state, attempts, last_error, created_at, body
             FROM outbox ORDER BY device_seq",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let body: String = r.get(7)?;
            out.push(OutboxRow {
                device_seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                op_id: r.get(1)?,
                kind: r.get(2)?,
                state: r.get(3)?,
                attempts: r.get(4)?,
                last_error: r.get(5)?,
                created_at: r.get(6)?,
                body: serde_json::from_str(&body)
                    .map_err(|e| StoreError::Corrupt(format!("outbox body: {e}")))?,
            });
        }
        Ok(out)
    }
}

/// Each query names what it found wrong; an empty list means consistent.
const INVARIANTS: &[(&str, &str)] = &[
    (
        // The synced part is the hub's word; the pending part must be exactly the legs the hub
        // has not confirmed yet.
        "pending stock differs from the unconfirmed ledger legs",
        "SELECT count(*) FROM (
             SELECT product_id, location_id, sum(on_hand_delta) AS oh, sum(allocated_delta) AS al
             FROM ledger WHERE state = 'pending' GROUP BY product_id, location_id) g
         FULL JOIN stock s USING (product_id, location_id)
         WHERE coalesce(g.oh, 0) != coalesce(s.pending, 0)
            OR coalesce(g.al, 0) != coalesce(s.pending_allocated, 0)",
    ),
    (
        "ledger legs whose state disagrees with their op's",
        "SELECT count(*) FROM ledger g JOIN outbox o USING (op_id)
         WHERE g.state != CASE o.state WHEN 'acked' THEN 'synced'
                                       WHEN 'rejected' THEN 'rejected' ELSE 'pending' END",
    ),
    (
        "ledger legs without their outbox op",
        "SELECT count(*) FROM ledger g LEFT JOIN outbox o USING (op_id) WHERE o.op_id IS NULL",
    ),
    (
        "movement ops without ledger legs",
        "SELECT count(*) FROM outbox o
         WHERE o.kind IN ('transaction', 'transfer', 'allocation', 'allocation_release')
           AND NOT EXISTS (SELECT 1 FROM ledger g WHERE g.op_id = o.op_id)",
    ),
    (
        "gaps in the outbox's device_seq",
        "SELECT coalesce(max(device_seq), 0) - count(*) FROM outbox",
    ),
];

pub(crate) fn check(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if integrity != "ok" {
        problems.push(format!("integrity_check: {integrity}"));
    }
    for (what, sql) in INVARIANTS {
        let n: i64 = conn.query_row(sql, [], |r| r.get(0))?;
        if n != 0 {
            problems.push(format!("{what}: {n}"));
        }
    }
    Ok(problems)
}
