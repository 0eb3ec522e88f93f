//! Applying what the hub says: delta pages (one transaction each, token included), live frames,
//! snapshots and their sweep, and the checksum that proves the device's view equals the hub's.
//!
//! Items are whole states stamped with the hub's feed sequence, so applying one twice, or an
//! older one after a newer, changes nothing: a row only moves forward (`hub_seq`). Rows whose
//! product or location has not arrived yet wait in `staged` and are retried after every page.

use crate::codec::{now, time_text};
use crate::{Store, StoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stocksync_model::{Decimal, ProductDoc};
use stocksync_protocol::checksum::{StateDigest, product_line, stock_line};
use stocksync_protocol::ws::ChangeFrame;
use stocksync_protocol::{DeltaItem, DeltaMeta, DeltaPage, Entity};

/// What one page (or one live frame) changed on the device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PageApplied {
    /// Items in the page.
    pub items: usize,
    /// Items that changed a row.
    pub applied: usize,
    /// Items older than what the device already had.
    pub stale: usize,
    /// Rows waiting for their product or location (after this page).
    pub staged: usize,
    /// Stock levels changed: `(product_id, location_id)`.
    pub stock: Vec<(String, String)>,
    /// Products changed (or deleted).
    pub products: Vec<String>,
    /// Locations changed.
    pub locations: Vec<String>,
    /// Conflicts changed.
    pub conflicts: Vec<String>,
    /// The page was part of a snapshot (first sync, repair, or after `full_sync_required`).
    pub snapshot: bool,
    /// A snapshot completed with this page (and rows it did not confirm were swept).
    pub snapshot_completed: bool,
    /// Rows the sweep reset.
    pub swept: usize,
    /// The hub's checksum against the device's, when the page reached the head.
    pub checksum: Option<ChecksumCheck>,
}

/// The hub's checksum of the scope and the device's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumCheck {
    /// From `meta.checksum`.
    pub hub: String,
    /// Recomputed from the device's rows.
    pub local: String,
}

impl ChecksumCheck {
    /// The views agree.
    pub fn matches(&self) -> bool {
        self.hub == self.local
    }
}

/// How one item fared.
enum Outcome {
    Applied,
    Stale,
    Wait(String),
}

/// Per page: is a snapshot running (then items apply whatever their seq), and its epoch.
#[derive(Clone, Copy)]
struct Mode {
    snapshot: bool,
    epoch: i64,
}

impl Store {
    /// The token of the last applied page (`None`: the next pull starts a snapshot).
    pub fn delta_token(&self) -> Result<Option<String>, StoreError> {
        let conn = self.conn()?;
        Ok(conn.query_row("SELECT delta_token FROM sync_state", [], |r| r.get(0))?)
    }

    /// Forgets the pull position so the next pull is a fresh snapshot that overwrites every
    /// row and then resets rows the hub no longer has. Unsent ops are untouched.
    pub fn restart_snapshot(&self, reason: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "UPDATE sync_state SET delta_token = NULL, snapshot_active = 1,
                 snapshot_epoch = snapshot_epoch + 1, snapshot_reason = ?1,
                 repairs = repairs + (?1 LIKE 'checksum%')",
            [reason],
        )?;
        Ok(())
    }

    /// Applies one delta page and advances the token, in one transaction: a crash leaves the
    /// page wholly applied with its token, or not at all.
    pub fn apply_delta_page(
        &self,
        page: &DeltaPage,
        meta: &DeltaMeta,
    ) -> Result<PageApplied, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (token, mut epoch, mut snapshot): (Option<String>, i64, bool) = tx.query_row(
            "SELECT delta_token, snapshot_epoch, snapshot_active FROM sync_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let restart = |reason: &str, epoch: &mut i64| -> Result<(), StoreError> {
            *epoch += 1;
            tx.execute(
                "UPDATE sync_state SET snapshot_active = 1, snapshot_epoch = ?1,
                     snapshot_reason = ?2",
                params![*epoch, reason],
            )?;
            Ok(())
        };
        if meta.full_sync_required {
            restart("full sync required by the hub", &mut epoch)?;
            snapshot = true;
        } else if token.is_none() && !snapshot {
            restart("first sync", &mut epoch)?;
            snapshot = true;
        }
        let mode = Mode { snapshot, epoch };
        let mut out = PageApplied {
            snapshot,
            ..PageApplied::default()
        };
        let live = page.created.iter().chain(&page.updated).map(|i| (i, false));
        let gone = page.deleted.iter().map(|i| (i, true));
        let mut items: Vec<(&DeltaItem, bool)> = live.chain(gone).collect();
        // Referenced rows first: locations and products before the stock that names them.
        items.sort_by_key(|(i, _)| entity_rank(i.entity));
        let had_staged = staged_count(&tx)? > 0;
        for (item, deleted) in items {
            out.items += 1;
            let outcome = apply_item(&tx, item, deleted, mode, &mut out)?;
            settle(&tx, item, deleted, outcome, had_staged, &mut out)?;
        }
        if had_staged || out.staged > 0 {
            retry_staged(&tx, mode, &mut out)?;
        }
        out.staged = usize::try_from(staged_count(&tx)?).unwrap_or(0);
        let now = time_text(now());
        tx.execute(
            "UPDATE sync_state SET delta_token = ?1, last_pull_at = ?2",
            params![meta.next_sync_token, now],
        )?;
        if !meta.has_more {
            if snapshot {
                out.swept = sweep(&tx, epoch)?;
                out.snapshot_completed = true;
                tx.execute(
                    "UPDATE sync_state SET snapshot_active = 0, snapshot_reason = NULL",
                    [],
                )?;
            }
            if let Some(hub) = &meta.checksum {
                let local = checksum(&tx)?;
                if &local == hub {
                    tx.execute("UPDATE sync_state SET last_checksum_at = ?1", [&now])?;
                }
                out.checksum = Some(ChecksumCheck {
                    hub: hub.clone(),
                    local,
                });
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Applies a WebSocket change frame at once (the pull that follows confirms it). The token
    /// does not move: a frame is a preview of the feed, not a position in it.
    pub fn apply_live_change(&self, frame: &ChangeFrame) -> Result<PageApplied, StoreError> {
        let Some((item, deleted)) = frame_item(frame) else {
            return Ok(PageApplied::default());
        };
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (epoch, snapshot): (i64, bool) = tx.query_row(
            "SELECT snapshot_epoch, snapshot_active FROM sync_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut out = PageApplied {
            items: 1,
            ..PageApplied::default()
        };
        // During a snapshot the pull is authoritative; a frame must not mark rows as confirmed
        // (nor unmark one the snapshot already confirmed: upserts keep the larger epoch).
        let mode = Mode {
            snapshot: false,
            epoch: if snapshot { epoch - 1 } else { epoch },
        };
        match apply_item(&tx, &item, deleted, mode, &mut out)? {
            Outcome::Applied => out.applied += 1,
            Outcome::Stale => out.stale += 1,
            // The pull that the frame triggers brings it again, in order.
            Outcome::Wait(_) => {}
        }
        tx.commit()?;
        Ok(out)
    }

    /// The device's checksum of the hub-confirmed state (`stocksync_protocol::checksum`).
    pub fn local_checksum(&self) -> Result<String, StoreError> {
        let conn = self.conn()?;
        let tx = conn.unchecked_transaction()?;
        checksum(&tx)
    }
}

fn entity_rank(e: Entity) -> u8 {
    match e {
        Entity::Location => 0,
        Entity::Product => 1,
        Entity::StockLevel => 2,
        Entity::Conflict => 3,
        Entity::Transaction => 4,
    }
}

fn staged_count(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    Ok(tx.query_row("SELECT count(*) FROM staged", [], |r| r.get(0))?)
}

/// Records an item's fate: applied items clear any older staged copy; waiting ones are staged.
fn settle(
    tx: &Transaction<'_>,
    item: &DeltaItem,
    deleted: bool,
    outcome: Outcome,
    had_staged: bool,
    out: &mut PageApplied,
) -> Result<(), StoreError> {
    match outcome {
        Outcome::Applied | Outcome::Stale => {
            if matches!(outcome, Outcome::Applied) {
                out.applied += 1;
            } else {
                out.stale += 1;
            }
            if had_staged {
                tx.prepare_cached(
                    "DELETE FROM staged WHERE entity = ?1 AND id = ?2 AND seq <= ?3",
                )?
                .execute(params![
                    item.entity.as_str(),
                    item.id,
                    seq_i64(item.seq)
                ])?;
            }
        }
        Outcome::Wait(reason) => {
            out.staged += 1;
            let mut stored = serde_json::to_value(item)
                .map_err(|e| StoreError::Corrupt(format!("staged item: {e}")))?;
            stored["deleted"] = Value::Bool(deleted);
            tx.prepare_cached(
                "INSERT INTO staged (entity, id, seq, item, reason) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (entity, id) DO UPDATE SET seq = excluded.seq, item = excluded.item,
                     reason = excluded.reason
                 WHERE excluded.seq >= staged.seq",
            )?
            .execute(params![
                item.entity.as_str(),
                item.id,
                seq_i64(item.seq),
                stored.to_string(),
                reason
            ])?;
        }
    }
    Ok(())
}

/// Retries staged rows until a pass makes no progress.
fn retry_staged(tx: &Transaction<'_>, mode: Mode, out: &mut PageApplied) -> Result<(), StoreError> {
    loop {
        let rows: Vec<(String, String, String)> = tx
            .prepare_cached("SELECT entity, id, item FROM staged")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut parsed = Vec::with_capacity(rows.len());
        for (entity, id, text) in rows {
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("staged {entity} {id}: {e}")))?;
            let deleted = value["deleted"].as_bool().unwrap_or(false);
            let mut item: DeltaItem = serde_json::from_value(value)
                .map_err(|e| StoreError::Corrupt(format!("staged {entity} {id}: {e}")))?;
            item.fields.remove("deleted");
            parsed.push((item, deleted));
        }
        parsed.sort_by_key(|(i, _)| entity_rank(i.entity));
        let mut progress = false;
        for (item, deleted) in parsed {
            match apply_item(tx, &item, deleted, mode, out)? {
                Outcome::Wait(reason) => {
                    tx.execute(
                        "UPDATE staged SET reason = ?3 WHERE entity = ?1 AND id = ?2",
                        params![item.entity.as_str(), item.id, reason],
                    )?;
                }
                _ => {
                    progress = true;
                    out.applied += 1;
                    tx.execute(
                        "DELETE FROM staged WHERE entity = ?1 AND id = ?2",
                        params![item.entity.as_str(), item.id],
                    )?;
                }
            }
        }
        if !progress {
            return Ok(());
        }
    }
}

fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn text<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    fields.get(key).and_then(Value::as_str)
}

fn decimal(fields: &Map<String, Value>, key: &str) -> Result<Decimal, StoreError> {
    let raw = fields.get(key);
    let parsed = match raw {
        Some(Value::String(s)) => s.parse().ok(),
        Some(Value::Number(n)) => n.to_string().parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| StoreError::Corrupt(format!("hub sent {key} = {raw:?}")))
}

/// The row's `hub_seq`, if the row exists.
fn row_seq(tx: &Transaction<'_>, sql: &str, keys: &[&str]) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .prepare_cached(sql)?
        .query_row(rusqlite::params_from_iter(keys), |r| r.get(0))
        .optional()?)
}

fn apply_item(
    tx: &Transaction<'_>,
    item: &DeltaItem,
    deleted: bool,
    mode: Mode,
    out: &mut PageApplied,
) -> Result<Outcome, StoreError> {
    let seq = seq_i64(item.seq);
    let newer = |current: Option<i64>| mode.snapshot || current.is_none_or(|c| seq >= c);
    match item.entity {
        Entity::Location => {
            let current = row_seq(
                tx,
                "SELECT hub_seq FROM locations WHERE id = ?1",
                &[&item.id],
            )?;
            if !newer(current) {
                return Ok(Outcome::Stale);
            }
            if deleted {
                return Ok(Outcome::Stale);
            }
            let code = text(&item.fields, "code").unwrap_or_default();
            let name = text(&item.fields, "name").unwrap_or(code);
            let holder: Option<String> = tx
                .prepare_cached("SELECT id FROM locations WHERE code = ?1 AND id != ?2")?
                .query_row([code, &item.id], |r| r.get(0))
                .optional()?;
            if let Some(holder) = holder {
                return Ok(Outcome::Wait(format!(
                    "location code {code} is held by local location {holder}"
                )));
            }
            let created = text(&item.fields, "created_at")
                .map(str::to_owned)
                .unwrap_or_else(|| time_text(now()));
            tx.prepare_cached(
                "INSERT INTO locations (id, code, name, created_at, hub_seq, snap_epoch)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET code = excluded.code, name = excluded.name,
                     hub_seq = excluded.hub_seq,
                     snap_epoch = max(locations.snap_epoch, excluded.snap_epoch)",
            )?
            .execute(params![item.id, code, name, created, seq, mode.epoch])?;
            out.locations.push(item.id.clone());
            Ok(Outcome::Applied)
        }
        Entity::Product => apply_product(tx, item, deleted, mode, newer, out),
        Entity::StockLevel => {
            let (Some(product), Some(location)) = (
                text(&item.fields, "product_id"),
                text(&item.fields, "location_id"),
            ) else {
                return Err(StoreError::Corrupt(format!(
                    "stock level {} without product_id/location_id",
                    item.id
                )));
            };
            let current = row_seq(
                tx,
                "SELECT hub_seq FROM stock WHERE product_id = ?1 AND location_id = ?2",
                &[product, location],
            )?;
            if !newer(current) {
                return Ok(Outcome::Stale);
            }
            let known: (bool, bool) = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM products WHERE id = ?1),
                            EXISTS (SELECT 1 FROM locations WHERE id = ?2)",
                )?
                .query_row([product, location], |r| Ok((r.get(0)?, r.get(1)?)))?;
            if !known.0 {
                return Ok(Outcome::Wait(format!("product {product} not here yet")));
            }
            if !known.1 {
                return Ok(Outcome::Wait(format!("location {location} not here yet")));
            }
            let (on_hand, allocated) = if deleted {
                (Decimal::ZERO, Decimal::ZERO)
            } else {
                (
                    decimal(&item.fields, "on_hand")?,
                    decimal(&item.fields, "allocated")?,
                )
            };
            tx.prepare_cached(
                "INSERT INTO stock (product_id, location_id, synced_on_hand, synced_allocated,
                     hub_seq, snap_epoch, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (product_id, location_id) DO UPDATE SET
                     synced_on_hand = excluded.synced_on_hand,
                     synced_allocated = excluded.synced_allocated,
                     hub_seq = excluded.hub_seq,
                     snap_epoch = max(stock.snap_epoch, excluded.snap_epoch),
                     updated_at = excluded.updated_at",
            )?
            .execute(params![
                product,
                location,
                on_hand.scaled(),
                allocated.scaled(),
                seq,
                mode.epoch,
                time_text(now())
            ])?;
            out.stock.push((product.to_owned(), location.to_owned()));
            Ok(Outcome::Applied)
        }
        Entity::Conflict => {
            let current = row_seq(
                tx,
                "SELECT hub_seq FROM conflicts WHERE id = ?1",
                &[&item.id],
            )?;
            if !newer(current) || deleted {
                return Ok(Outcome::Stale);
            }
            let f = &item.fields;
            let status = text(f, "status").unwrap_or("open");
            tx.prepare_cached(
                "INSERT INTO conflicts (id, kind, status, product_id, location_id, field, rule,
                     message, op_id, data, hub_seq, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, data = excluded.data,
                     hub_seq = excluded.hub_seq, message = excluded.message,
                     local_resolution = CASE WHEN excluded.status = 'open'
                                             THEN local_resolution END",
            )?
            .execute(params![
                item.id,
                text(f, "kind").unwrap_or("unknown"),
                status,
                text(f, "product_id"),
                text(f, "location_id"),
                text(f, "field"),
                text(f, "rule"),
                text(f, "message"),
                text(f, "op_id"),
                Value::Object(f.clone()).to_string(),
                seq,
                text(f, "created_at").unwrap_or_default(),
            ])?;
            out.conflicts.push(item.id.clone());
            Ok(Outcome::Applied)
        }
        // The hub's movement history is not mirrored: the device keeps its own ledger, and
        // stock levels arrive as states.
        Entity::Transaction => Ok(Outcome::Stale),
    }
}

fn apply_product(
    tx: &Transaction<'_>,
    item: &DeltaItem,
    deleted: bool,
    mode: Mode,
    newer: impl Fn(Option<i64>) -> bool,
    out: &mut PageApplied,
) -> Result<Outcome, StoreError> {
    let seq = seq_i64(item.seq);
    let local: Option<(Vec<u8>, i64)> = tx
        .prepare_cached("SELECT doc, hub_seq FROM products WHERE id = ?1")?
        .query_row([&item.id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if !newer(local.as_ref().map(|l| l.1)) {
        return Ok(Outcome::Stale);
    }
    if deleted {
        if local.is_none() {
            return Ok(Outcome::Stale);
        }
        // The SKU becomes free at the hub, so it must here too.
        tx.prepare_cached(
            "UPDATE products SET deleted = 1, sku = 'deleted:' || id, barcode = NULL,
                 hub_seq = ?2, snap_epoch = ?3, updated_at = ?4
             WHERE id = ?1",
        )?
        .execute(params![item.id, seq, mode.epoch, time_text(now())])?;
        out.products.push(item.id.clone());
        return Ok(Outcome::Applied);
    }
    let Some(doc_text) = text(&item.fields, "doc") else {
        return Ok(Outcome::Wait("the hub sent no product document".into()));
    };
    let bytes = BASE64
        .decode(doc_text)
        .map_err(|e| StoreError::Corrupt(format!("product {} document: {e}", item.id)))?;
    let mut remote = ProductDoc::load(&bytes)?;
    // Merging keeps this device's unsent edits on top of the hub's document; with nothing
    // unsent the result is the hub's document.
    let mut doc = match &local {
        Some((local_bytes, _)) => {
            let mut mine = ProductDoc::load(local_bytes)?;
            mine.merge(&mut remote)?;
            mine
        }
        None => remote,
    };
    let f = doc.fields()?;
    let holder: Option<String> = tx
        .prepare_cached(
            "SELECT id FROM products WHERE id != ?1 AND (sku = ?2 OR (?3 IS NOT NULL AND barcode = ?3))",
        )?
        .query_row(params![item.id, f.sku, f.barcode], |r| r.get(0))
        .optional()?;
    if let Some(holder) = holder {
        return Ok(Outcome::Wait(format!(
            "SKU {} or its barcode is held by local product {holder}",
            f.sku
        )));
    }
    // The hub's times, so every device shows the same product.
    let now = time_text(now());
    let created = text(&item.fields, "created_at").unwrap_or(&now);
    let updated = text(&item.fields, "updated_at").unwrap_or(&now);
    let version = i64::try_from(item.version).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "INSERT INTO products (id, sku, barcode, name, description, category, status, uom,
             price_amount, price_currency, version, doc, created_at, updated_at, hub_seq,
             snap_epoch, deleted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, 0)
         ON CONFLICT (id) DO UPDATE SET sku = excluded.sku, barcode = excluded.barcode,
             name = excluded.name, description = excluded.description,
             category = excluded.category, status = excluded.status, uom = excluded.uom,
             price_amount = excluded.price_amount, price_currency = excluded.price_currency,
             version = excluded.version, doc = excluded.doc, created_at = excluded.created_at,
             updated_at = excluded.updated_at,
             hub_seq = excluded.hub_seq,
             snap_epoch = max(products.snap_epoch, excluded.snap_epoch), deleted = 0",
    )?
    .execute(params![
        item.id,
        f.sku,
        f.barcode,
        f.name,
        f.description,
        f.category,
        f.status.as_str(),
        f.uom.as_str(),
        f.price.map(|p| p.amount.scaled()),
        f.price.map(|p| p.currency.to_string()),
        version,
        doc.save(),
        created,
        updated,
        seq,
        mode.epoch,
    ])?;
    out.products.push(item.id.clone());
    Ok(Outcome::Applied)
}

/// After a snapshot: rows the hub confirmed before but not in this snapshot are gone there.
fn sweep(tx: &Transaction<'_>, epoch: i64) -> Result<usize, StoreError> {
    let stock = tx.execute(
        "UPDATE stock SET synced_on_hand = 0, synced_allocated = 0, hub_seq = 0
         WHERE hub_seq > 0 AND snap_epoch < ?1",
        [epoch],
    )?;
    let products = tx.execute(
        "UPDATE products SET deleted = 1, sku = 'deleted:' || id, barcode = NULL
         WHERE hub_seq > 0 AND snap_epoch < ?1 AND deleted = 0",
        [epoch],
    )?;
    Ok(stock + products)
}

/// The same digest the hub keeps: live products it confirmed, and stock levels it confirmed.
fn checksum(tx: &Transaction<'_>) -> Result<String, StoreError> {
    let mut digest = StateDigest::default();
    let mut products =
        tx.prepare_cached("SELECT id, version FROM products WHERE hub_seq > 0 AND deleted = 0")?;
    let mut rows = products.query([])?;
    while let Some(r) = rows.next()? {
        let version: i64 = r.get(1)?;
        digest.add(&product_line(
            r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?,
            u64::try_from(version).unwrap_or(0),
        ));
    }
    let mut stock = tx.prepare_cached(
        "SELECT product_id, location_id, synced_on_hand, synced_allocated FROM stock
         WHERE hub_seq > 0",
    )?;
    let mut rows = stock.query([])?;
    while let Some(r) = rows.next()? {
        digest.add(&stock_line(
            r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?,
            r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?,
            Decimal::from_scaled(r.get(2)?),
            Decimal::from_scaled(r.get(3)?),
        ));
    }
    Ok(digest.to_hex())
}

/// A change frame as a delta item: `(item, deleted)`, or `None` for frames that carry no state.
fn frame_item(frame: &ChangeFrame) -> Option<(DeltaItem, bool)> {
    let data = frame.data.as_object()?;
    let (entity, deleted) = match frame.kind.as_str() {
        "inventory.update" => (Entity::StockLevel, false),
        "product.update" => (Entity::Product, false),
        "product.deleted" => (Entity::Product, true),
        "conflict.created" | "conflict.resolved" => (Entity::Conflict, false),
        _ => return None,
    };
    // A product frame may lack the document; the pull that follows brings it.
    let product = data.get("product").and_then(Value::as_object);
    let mut fields = match (entity, product) {
        (Entity::Product, Some(p)) => p.clone(),
        _ => data.clone(),
    };
    if entity == Entity::StockLevel {
        // `inventory.update` names the levels as the contract does (`current_quantity`,
        // `allocated_quantity`); a stock level item calls them `on_hand` and `allocated`.
        for (item_key, frame_key) in [
            ("on_hand", "current_quantity"),
            ("allocated", "allocated_quantity"),
        ] {
            if !fields.contains_key(item_key)
                && let Some(value) = fields.get(frame_key).cloned()
            {
                fields.insert(item_key.to_owned(), value);
            }
        }
    }
    let id = match entity {
        Entity::StockLevel => format!(
            "{}@{}",
            text(&fields, "product_id")?,
            text(&fields, "location_id")?
        ),
        _ => text(&fields, "id")?.to_owned(),
    };
    let version = fields.get("version").and_then(Value::as_u64).unwrap_or(0);
    Some((
        DeltaItem {
            entity,
            id,
            seq: frame.seq,
            version,
            fields,
        },
        deleted,
    ))
}
