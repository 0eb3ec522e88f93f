//! Recording a stock movement: check, then ledger + stock view + outbox in one transaction.

use crate::codec::{dec, movement_op, now, parse_col, time_text};
use crate::device::append_op;
use crate::{Store, StoreError};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use stocksync_model::rules::{self, RuleViolation};
use stocksync_model::{
    AllocationId, Leg, LocationId, Movement, MovementKind, OpId, ProductId, Quantity, StockLevel,
    Uom, ValidationErrors, plan,
};

/// What a recorded movement became.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// The outbox op that carries it to the hub.
    pub op_id: OpId,
    /// Its place in the device's op order.
    pub device_seq: u64,
    /// The movement's id (transaction, transfer or allocation).
    pub movement_id: String,
    /// The ledger legs written.
    pub legs: Vec<Leg>,
}

/// An open allocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// Id.
    pub id: AllocationId,
    /// Product.
    pub product_id: ProductId,
    /// Location.
    pub location_id: LocationId,
    /// How much it holds.
    pub quantity: Quantity,
    /// `open` or `released`.
    pub status: String,
}

impl Store {
    /// Records a movement, or refuses it and writes nothing.
    ///
    /// The rules run against the levels read inside the same transaction, so two processes
    /// writing to one file cannot both take the last unit.
    pub fn record_movement(&self, movement: &Movement) -> Result<Recorded, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let uom = product_uom(&tx, &movement.product_id)?;
        let mut levels = HashMap::new();
        for location in movement.locations() {
            levels.insert(
                location.clone(),
                level(&tx, &movement.product_id, location)?,
            );
        }
        let legs = plan(movement, uom, |l| {
            levels.get(l).copied().unwrap_or_default()
        })?;
        let now = now();
        if let MovementKind::Allocation { allocation_id, .. } = &movement.kind {
            let taken: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM allocations WHERE id = ?1)")?
                .query_row([allocation_id.as_str()], |r| r.get(0))?;
            if taken {
                return Err(StoreError::Invalid(ValidationErrors::single(
                    "allocation_id",
                    "Is already used by another allocation",
                )));
            }
        }
        if let MovementKind::Release {
            allocation_id,
            location_id,
            quantity,
        } = &movement.kind
        {
            let changed = tx
                .prepare_cached(
                    "UPDATE allocations SET status = 'released', released_at = ?2
                     WHERE id = ?1 AND status = 'open'
                       AND product_id = ?3 AND location_id = ?4 AND quantity = ?5",
                )?
                .execute(params![
                    allocation_id.as_str(),
                    time_text(now),
                    movement.product_id.as_str(),
                    location_id.as_str(),
                    quantity.value.scaled()
                ])?;
            if changed != 1 {
                return Err(StoreError::Rule(RuleViolation::new(
                    rules::ALLOCATION_OPEN,
                    format!(
                        "allocation {allocation_id} is not open (or not this product, place and quantity)"
                    ),
                )));
            }
        }
        let op = append_op(&tx, movement_op(movement), now)?;
        if let MovementKind::Allocation {
            allocation_id,
            location_id,
            quantity,
        } = &movement.kind
        {
            tx.prepare_cached(
                "INSERT INTO allocations (id, product_id, location_id, quantity, op_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                allocation_id.as_str(),
                movement.product_id.as_str(),
                location_id.as_str(),
                quantity.value.scaled(),
                op.op_id.as_str(),
                op.occurred_at,
            ])?;
        }
        let mut insert_leg = tx.prepare_cached(
            "INSERT INTO ledger (op_id, leg, movement_id, kind, product_id, location_id,
                 on_hand_delta, allocated_delta, reason_code, reference, occurred_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut upsert_stock = tx.prepare_cached(
            "INSERT INTO stock (product_id, location_id, pending, pending_allocated, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (product_id, location_id) DO UPDATE SET
                 pending = pending + excluded.pending,
                 pending_allocated = pending_allocated + excluded.pending_allocated,
                 updated_at = excluded.updated_at",
        )?;
        let (reason, reference) = match &movement.kind {
            MovementKind::Adjustment { reason_code, .. } => (Some(reason_code.as_str()), None),
            MovementKind::Receipt { reference, .. } | MovementKind::Shipment { reference, .. } => {
                (None, reference.as_deref())
            }
            _ => (None, None),
        };
        for (i, leg) in legs.iter().enumerate() {
            insert_leg.execute(params![
                op.op_id.as_str(),
                i as i64,
                movement.id(),
                movement.kind_name(),
                leg.product_id.as_str(),
                leg.location_id.as_str(),
                leg.on_hand_delta.scaled(),
                leg.allocated_delta.scaled(),
                reason,
                reference,
                op.occurred_at,
            ])?;
            upsert_stock.execute(params![
                leg.product_id.as_str(),
                leg.location_id.as_str(),
                leg.on_hand_delta.scaled(),
                leg.allocated_delta.scaled(),
                op.occurred_at,
            ])?;
        }
        drop((insert_leg, upsert_stock));
        tx.commit()?;
        Ok(Recorded {
            op_id: op.op_id,
            device_seq: op.device_seq,
            movement_id: movement.id().to_owned(),
            legs,
        })
    }

    /// The stock of one product at one location (zero when never touched).
    pub fn stock_level(
        &self,
        product: &ProductId,
        location: &LocationId,
    ) -> Result<StockLevel, StoreError> {
        let conn = self.conn()?;
        let tx = conn.unchecked_transaction()?;
        level(&tx, product, location)
    }

    /// An allocation by id.
    pub fn allocation(&self, id: &AllocationId) -> Result<Allocation, StoreError> {
        let conn = self.conn()?;
        let row = conn
            .prepare_cached(
                "SELECT a.product_id, a.location_id, a.quantity, p.uom, a.status
                 FROM allocations a JOIN products p ON p.id = a.product_id WHERE a.id = ?1",
            )?
            .query_row([id.as_str()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                entity: "allocation",
                key: id.to_string(),
            })?;
        Ok(Allocation {
            id: id.clone(),
            product_id: parse_col("product id", &row.0)?,
            location_id: parse_col("location id", &row.1)?,
            quantity: Quantity::new(dec(row.2), parse_col("uom", &row.3)?),
            status: row.4,
        })
    }
}

fn product_uom(tx: &Transaction<'_>, product: &ProductId) -> Result<Uom, StoreError> {
    let uom: String = tx
        .prepare_cached("SELECT uom FROM products WHERE id = ?1")?
        .query_row([product.as_str()], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound {
            entity: "product",
            key: product.to_string(),
        })?;
    parse_col("uom", &uom)
}

fn level(
    tx: &Transaction<'_>,
    product: &ProductId,
    location: &LocationId,
) -> Result<StockLevel, StoreError> {
    let exists: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM locations WHERE id = ?1)")?
        .query_row([location.as_str()], |r| r.get(0))?;
    if !exists {
        return Err(StoreError::NotFound {
            entity: "location",
            key: location.to_string(),
        });
    }
    let row: Option<(i64, i64, i64)> = tx
        .prepare_cached(
            "SELECT synced_on_hand, pending, synced_allocated + pending_allocated FROM stock
             WHERE product_id = ?1 AND location_id = ?2",
        )?
        .query_row([product.as_str(), location.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let (synced, pending, allocated) = row.unwrap_or_default();
    Ok(StockLevel::new(dec(synced), dec(pending), dec(allocated)))
}
