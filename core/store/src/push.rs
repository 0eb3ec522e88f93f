//! The outbox's side of a push: the next batch, the hub's answers, parking.
//!
//! Op states: `pending` (not sent yet) → `in_flight` (sent, no answer recorded; a crash here
//! means the op is sent again and the hub answers `duplicate`) → `acked` (applied by the hub,
//! maybe as a duplicate or with a field conflict) or `rejected` (a rule said no; final). `parked`:
//! the hub refused a request holding only this op, so it waits for a person and no longer holds
//! up the ops behind it.

use crate::codec::{now, time_text};
use crate::repoint::{Entity, repoint};
use crate::{Store, StoreError};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stocksync_model::{HlcTimestamp, OpId};
use stocksync_protocol::{OpBody, OpResult, OpStatus, PushOp};

/// The next ops to push, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PushBatch {
    /// Ops to send, in `device_seq` order.
    pub ops: Vec<PushOp>,
    /// Ops found unreadable while building the batch, parked now: `(op_id, why)`.
    pub parked: Vec<(String, String)>,
}

/// What happened to one op, as the user should be told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpOutcome {
    /// The op.
    pub op_id: String,
    /// Its place in the device's order.
    pub device_seq: u64,
    /// Its kind (`transaction`, `product_change`, …).
    pub kind: String,
    /// The hub's verdict; a duplicate reports the first verdict's status here.
    pub status: OpStatus,
    /// The hub had seen it before (a resend after a lost answer).
    pub duplicate: bool,
    /// The error code of a rejection.
    pub code: Option<String>,
    /// What a person should read about a rejection.
    pub message: Option<String>,
    /// The business rule that refused it (`no_negative_inventory`).
    pub rule: Option<String>,
    /// The conflict record the hub opened for it.
    pub conflict_id: Option<String>,
    /// A create of a SKU (or location code) the hub already had: the existing entity's id,
    /// which this device's rows now use.
    #[serde(default)]
    pub canonical_id: Option<String>,
}

/// The effect of one push response on the device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushApplied {
    /// One per answered op, in the order answered.
    pub outcomes: Vec<OpOutcome>,
    /// Stock levels whose view changed (a rejected op's legs left): `(product_id, location_id)`.
    pub stock: Vec<(String, String)>,
}

impl Store {
    /// Takes up to `limit` unsent ops after `after_seq` (pending, or in flight when a previous
    /// run stopped before the answer) in `device_seq` order, marks them in flight and counts
    /// the attempt. `after_seq` lets the next batch be prepared while one is in flight.
    pub fn next_push_batch(&self, after_seq: u64, limit: usize) -> Result<PushBatch, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let rows: Vec<(i64, String, String, String, String, String)> = tx
            .prepare_cached(
                "SELECT device_seq, op_id, kind, body, hlc, created_at FROM outbox
                 WHERE state IN ('pending', 'in_flight') AND device_seq > ?2
                 ORDER BY device_seq LIMIT ?1",
            )?
            .query_map(
                [
                    i64::try_from(limit).unwrap_or(i64::MAX),
                    i64::try_from(after_seq).unwrap_or(i64::MAX),
                ],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )?
            .collect::<Result<_, _>>()?;
        let mut batch = PushBatch::default();
        let stamp = time_text(now());
        for (seq, op_id, kind, body, hlc, created) in rows {
            match decode(seq, &op_id, &kind, &body, &hlc, &created) {
                Ok(op) => {
                    tx.prepare_cached(
                        "UPDATE outbox SET state = 'in_flight', attempts = attempts + 1,
                             updated_at = ?2 WHERE device_seq = ?1",
                    )?
                    .execute(params![seq, stamp])?;
                    batch.ops.push(op);
                }
                Err(why) => {
                    park(&tx, &op_id, &why, &stamp)?;
                    batch.parked.push((op_id, why));
                }
            }
        }
        tx.commit()?;
        Ok(batch)
    }

    /// Records the hub's answers in one transaction. Accepted ops move their legs from pending to
    /// the hub-confirmed stock; rejected ops lose their legs (and say why).
    pub fn record_push_results(&self, results: &[OpResult]) -> Result<PushApplied, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let stamp = time_text(now());
        let mut applied = PushApplied::default();
        for result in results {
            let row: Option<(i64, String, String)> = tx
                .prepare_cached("SELECT device_seq, kind, state FROM outbox WHERE op_id = ?1")?
                .query_row([result.op_id.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            // An answer for an op this device does not have, or already settled: nothing to do.
            let Some((seq, kind, state)) = row else {
                continue;
            };
            if state != "pending" && state != "in_flight" {
                continue;
            }
            let duplicate = result.status == OpStatus::Duplicate;
            let status = if duplicate {
                result.original_status.unwrap_or(OpStatus::Applied)
            } else {
                result.status
            };
            let error = result.error.as_ref();
            let rule = error
                .and_then(|e| e.details.get("rule"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let stored = serde_json::to_string(result)
                .map_err(|e| StoreError::Corrupt(format!("push result: {e}")))?;
            if status == OpStatus::Rejected {
                let message = error.map(|e| e.message.clone());
                tx.prepare_cached(
                    "UPDATE outbox SET state = 'rejected', result = ?2, last_error = ?3,
                         acked_at = ?4, updated_at = ?4 WHERE op_id = ?1",
                )?
                .execute(params![
                    result.op_id.as_str(),
                    stored,
                    message,
                    stamp
                ])?;
                withdraw_legs(&tx, result.op_id.as_str(), &mut applied)?;
                undo_local_effects(&tx, result.op_id.as_str(), &kind)?;
            } else {
                tx.prepare_cached(
                    "UPDATE outbox SET state = 'acked', result = ?2, last_error = NULL,
                         acked_at = ?3, updated_at = ?3 WHERE op_id = ?1",
                )?
                .execute(params![result.op_id.as_str(), stored, stamp])?;
                confirm_legs(&tx, result.op_id.as_str(), result.seq)?;
                if let (Some(canonical), Some(entity)) =
                    (&result.canonical_id, Entity::created_by(&kind))
                {
                    let field = match entity {
                        Entity::Product => "product_id",
                        Entity::Location => "location_id",
                    };
                    if let Some(mine) = body_field(&tx, result.op_id.as_str(), field)? {
                        repoint(&tx, entity, &mine, canonical)?;
                    }
                }
            }
            applied.outcomes.push(OpOutcome {
                op_id: result.op_id.to_string(),
                device_seq: u64::try_from(seq).unwrap_or(0),
                kind,
                status,
                duplicate,
                code: error.and_then(|e| {
                    serde_json::to_value(e.code)
                        .ok()?
                        .as_str()
                        .map(str::to_owned)
                }),
                message: error.map(|e| e.message.clone()),
                rule,
                conflict_id: result.conflict_id.clone(),
                canonical_id: result.canonical_id.clone(),
            });
        }
        tx.execute("UPDATE sync_state SET last_push_at = ?1", [&stamp])?;
        tx.commit()?;
        Ok(applied)
    }

    /// A push that got no answer the device can use: its ops go back to waiting (they may
    /// have been applied; the resend will tell).
    pub fn release_in_flight(&self, op_ids: &[OpId], error: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        for id in op_ids {
            tx.prepare_cached(
                "UPDATE outbox SET state = 'pending', last_error = ?2, updated_at = ?3
                 WHERE op_id = ?1 AND state = 'in_flight'",
            )?
            .execute(params![id.as_str(), error, time_text(now())])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Parks an op the hub keeps refusing: it stays in the outbox, visible with its reason,
    /// and no longer holds up the ops behind it.
    pub fn park_op(&self, op_id: &OpId, reason: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        park(&conn, op_id.as_str(), reason, &time_text(now()))
    }
}

fn park(
    conn: &rusqlite::Connection,
    op_id: &str,
    reason: &str,
    stamp: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE outbox SET state = 'parked', last_error = ?2, updated_at = ?3
         WHERE op_id = ?1 AND state IN ('pending', 'in_flight')",
    )?
    .execute(params![op_id, reason, stamp])?;
    Ok(())
}

fn decode(
    seq: i64,
    op_id: &str,
    kind: &str,
    body: &str,
    hlc: &str,
    created: &str,
) -> Result<PushOp, String> {
    let body: Value = serde_json::from_str(body).map_err(|e| format!("unreadable body: {e}"))?;
    let body: OpBody = serde_json::from_value(json!({ "kind": kind, "body": body }))
        .map_err(|e| format!("unreadable {kind} body: {e}"))?;
    Ok(PushOp {
        op_id: op_id.parse().map_err(|e| format!("op id: {e}"))?,
        device_seq: u64::try_from(seq).map_err(|_| "negative device_seq".to_owned())?,
        occurred_at: created.to_owned(),
        hlc: hlc
            .parse::<HlcTimestamp>()
            .map_err(|e| format!("hlc: {e}"))?,
        body,
    })
}

/// The hub has the op: its legs are now part of the hub's numbers. The synced part is
/// estimated at once (so on hand does not dip until the pull) unless the pulled state already
/// includes the op; the pull then sets it exactly.
///
/// The answer's `seq` is the op's last effect, its transaction record; the hub writes the op's
/// stock levels just before it, one sequence each, so a row whose `hub_seq` is at or past
/// `seq − legs` already holds the op (its own sequences in that range are this op's).
fn confirm_legs(tx: &Transaction<'_>, op_id: &str, op_seq: Option<u64>) -> Result<(), StoreError> {
    let legs: i64 = tx
        .prepare_cached("SELECT count(*) FROM ledger WHERE op_id = ?1")?
        .query_row([op_id], |r| r.get(0))?;
    let seq = op_seq.map_or(i64::MAX, |s| {
        i64::try_from(s).unwrap_or(i64::MAX).saturating_sub(legs)
    });
    tx.prepare_cached(
        "UPDATE stock SET
             pending = pending - g.oh, pending_allocated = pending_allocated - g.al,
             synced_on_hand = synced_on_hand + CASE WHEN stock.hub_seq >= ?2 THEN 0 ELSE g.oh END,
             synced_allocated = synced_allocated
                 + CASE WHEN stock.hub_seq >= ?2 THEN 0 ELSE g.al END
         FROM (SELECT product_id, location_id, sum(on_hand_delta) AS oh,
                      sum(allocated_delta) AS al
               FROM ledger WHERE op_id = ?1 AND state = 'pending'
               GROUP BY product_id, location_id) AS g
         WHERE stock.product_id = g.product_id AND stock.location_id = g.location_id",
    )?
    .execute(params![op_id, seq])?;
    tx.prepare_cached("UPDATE ledger SET state = 'synced' WHERE op_id = ?1 AND state = 'pending'")?
        .execute([op_id])?;
    Ok(())
}

/// A rejected op never happened: its legs leave the pending stock and are marked rejected.
fn withdraw_legs(
    tx: &Transaction<'_>,
    op_id: &str,
    applied: &mut PushApplied,
) -> Result<(), StoreError> {
    let keys: Vec<(String, String)> = tx
        .prepare_cached(
            "SELECT DISTINCT product_id, location_id FROM ledger
             WHERE op_id = ?1 AND state = 'pending'",
        )?
        .query_map([op_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    tx.prepare_cached(
        "UPDATE stock SET pending = pending - g.oh, pending_allocated = pending_allocated - g.al
         FROM (SELECT product_id, location_id, sum(on_hand_delta) AS oh,
                      sum(allocated_delta) AS al
               FROM ledger WHERE op_id = ?1 AND state = 'pending'
               GROUP BY product_id, location_id) AS g
         WHERE stock.product_id = g.product_id AND stock.location_id = g.location_id",
    )?
    .execute([op_id])?;
    tx.prepare_cached(
        "UPDATE ledger SET state = 'rejected' WHERE op_id = ?1 AND state = 'pending'",
    )?
    .execute([op_id])?;
    applied.stock.extend(keys);
    Ok(())
}

/// A text field of an op's stored body.
fn body_field(
    tx: &Transaction<'_>,
    op_id: &str,
    field: &str,
) -> Result<Option<String>, StoreError> {
    let body: String = tx.query_row("SELECT body FROM outbox WHERE op_id = ?1", [op_id], |r| {
        r.get(0)
    })?;
    Ok(serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|b| b[field].as_str().map(str::to_owned)))
}

/// Local records that only existed because of the op.
fn undo_local_effects(tx: &Transaction<'_>, op_id: &str, kind: &str) -> Result<(), StoreError> {
    match kind {
        "allocation" => {
            tx.execute(
                "UPDATE allocations SET status = 'rejected' WHERE op_id = ?1",
                [op_id],
            )?;
        }
        "allocation_release" => {
            // The hub kept the allocation open; so does the device.
            let id = body_field(tx, op_id, "allocation_id")?;
            if let Some(id) = id {
                tx.execute(
                    "UPDATE allocations SET status = 'open', released_at = NULL
                     WHERE id = ?1 AND status = 'released'",
                    [id],
                )?;
            }
        }
        "product_create" => {
            // The hub has no such product (its SKU was taken there first): hide it here too,
            // and free the SKU for the hub's product.
            let id = body_field(tx, op_id, "product_id")?;
            if let Some(id) = id {
                tx.execute(
                    "UPDATE products SET deleted = 1, sku = 'deleted:' || id, barcode = NULL
                     WHERE id = ?1 AND hub_seq = 0",
                    [id],
                )?;
            }
        }
        "location_create" => {
            // The hub has no such location (its code was taken there first): free the code for
            // the hub's location; the rejected one stays for its rejected legs' history.
            let id = body_field(tx, op_id, "location_id")?;
            if let Some(id) = id {
                tx.execute(
                    "UPDATE locations SET code = 'rejected:' || id WHERE id = ?1 AND hub_seq = 0",
                    [id],
                )?;
            }
        }
        _ => {}
    }
    Ok(())
}
