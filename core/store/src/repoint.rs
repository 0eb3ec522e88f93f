//! A create the hub merged into an existing entity (same SKU, or same location code in the
//! branch): everything this device recorded against its own id moves to the hub's id, in the
//! push answer's transaction. Nothing is dropped: the ledger legs, the stock they built, the
//! allocations and every op not yet settled follow the entity.

use crate::StoreError;
use crate::codec::{now, time_text};
use rusqlite::{OptionalExtension, Transaction, params};
use stocksync_model::ProductDoc;

/// Which kind of entity moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entity {
    Product,
    Location,
}

impl Entity {
    /// The entity a create op of `kind` made, if any.
    pub(crate) fn created_by(kind: &str) -> Option<Entity> {
        match kind {
            "product_create" => Some(Entity::Product),
            "location_create" => Some(Entity::Location),
            _ => None,
        }
    }
}

/// Op bodies' fields that name an entity of each kind.
const PRODUCT_FIELDS: [&str; 1] = ["product_id"];
const LOCATION_FIELDS: [&str; 3] = ["location_id", "from_location_id", "to_location_id"];

/// Moves every row of `old` to `new`. When the device already holds `new` (the hub's row
/// arrived first), `old`'s row goes and a product's document is merged into `new`'s, so local
/// edits are kept; otherwise `old`'s row takes the new id and the next pull fills in the
/// hub's fields.
pub(crate) fn repoint(
    tx: &Transaction<'_>,
    entity: Entity,
    old: &str,
    new: &str,
) -> Result<(), StoreError> {
    if old == new {
        return Ok(());
    }
    // Children are re-pointed after their parent row moved; the keys are checked at commit.
    tx.execute_batch("PRAGMA defer_foreign_keys = ON")?;
    let (table, column, fields): (&str, &str, &[&str]) = match entity {
        Entity::Product => ("products", "product_id", &PRODUCT_FIELDS),
        Entity::Location => ("locations", "location_id", &LOCATION_FIELDS),
    };
    let held: bool = tx
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM {table} WHERE id = ?1)"
        ))?
        .query_row([new], |r| r.get(0))?;
    if held {
        if entity == Entity::Product {
            merge_doc(tx, old, new)?;
        }
    } else {
        tx.execute(
            &format!("UPDATE {table} SET id = ?2 WHERE id = ?1"),
            [old, new],
        )?;
    }
    tx.execute(
        &format!("UPDATE ledger SET {column} = ?2 WHERE {column} = ?1"),
        [old, new],
    )?;
    tx.execute(
        &format!("UPDATE allocations SET {column} = ?2 WHERE {column} = ?1"),
        [old, new],
    )?;
    merge_stock(tx, column, old, new)?;
    for field in fields {
        tx.execute(
            &format!(
                "UPDATE outbox SET body = json_set(body, '$.{field}', ?2)
                 WHERE state IN ('pending', 'in_flight', 'parked')
                   AND json_extract(body, '$.{field}') = ?1"
            ),
            [old, new],
        )?;
    }
    if held {
        tx.execute(&format!("DELETE FROM {table} WHERE id = ?1"), [old])?;
    }
    Ok(())
}

/// Stock rows of `old` are added into `new`'s (a row per product × location).
fn merge_stock(tx: &Transaction<'_>, column: &str, old: &str, new: &str) -> Result<(), StoreError> {
    let (product, location) = match column {
        "product_id" => ("?2", "location_id"),
        _ => ("product_id", "?2"),
    };
    tx.execute(
        &format!(
            "INSERT INTO stock (product_id, location_id, synced_on_hand, pending,
                 pending_allocated, synced_allocated, hub_seq, snap_epoch, updated_at)
             SELECT {product}, {location}, synced_on_hand, pending, pending_allocated,
                 synced_allocated, hub_seq, snap_epoch, ?3
             FROM stock WHERE {column} = ?1
             ON CONFLICT (product_id, location_id) DO UPDATE SET
                 synced_on_hand = stock.synced_on_hand + excluded.synced_on_hand,
                 pending = stock.pending + excluded.pending,
                 pending_allocated = stock.pending_allocated + excluded.pending_allocated,
                 synced_allocated = stock.synced_allocated + excluded.synced_allocated,
                 hub_seq = max(stock.hub_seq, excluded.hub_seq),
                 updated_at = excluded.updated_at"
        ),
        params![old, new, time_text(now())],
    )?;
    tx.execute(&format!("DELETE FROM stock WHERE {column} = ?1"), [old])?;
    Ok(())
}

/// `old`'s document (with this device's edits) merged into `new`'s.
fn merge_doc(tx: &Transaction<'_>, old: &str, new: &str) -> Result<(), StoreError> {
    let doc = |id: &str| -> Result<Option<Vec<u8>>, StoreError> {
        Ok(tx
            .prepare_cached("SELECT doc FROM products WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    };
    let (Some(mine), Some(theirs)) = (doc(old)?, doc(new)?) else {
        return Ok(());
    };
    let mut merged = ProductDoc::load(&theirs)?;
    merged.merge(&mut ProductDoc::load(&mine)?)?;
    tx.execute(
        "UPDATE products SET doc = ?2 WHERE id = ?1",
        params![new, merged.save()],
    )?;
    Ok(())
}
