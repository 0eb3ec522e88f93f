//! Recording a change: the organization's next sequence, the entity's latest state in the feed,
//! the running state digest, and the WebSocket event that goes out after commit.

use crate::error::ApiError;
use crate::events::Event;
use crate::state::Ctx;
use crate::storage::FeedRow;
use serde_json::{Value, json};
use stocksync_model::Decimal;
use stocksync_protocol::Entity;
use stocksync_protocol::checksum::{product_line, stock_line};

/// One entity's new state.
pub struct Change<'a> {
    /// What kind.
    pub entity: Entity,
    /// Its id.
    pub id: &'a str,
    /// Its branch (`None`: every branch sees it).
    pub branch_id: Option<&'a str>,
    /// Gone.
    pub deleted: bool,
    /// Its version.
    pub version: u64,
    /// Its fields.
    pub data: Value,
}

/// Records a change; returns its sequence.
pub fn record(ctx: &mut Ctx<'_>, c: Change<'_>) -> Result<u64, ApiError> {
    let seq = ctx.tx.next_seq(&ctx.org)?;
    let entity = c.entity.as_str();
    let old = ctx.tx.feed_row(&ctx.org, entity, c.id)?;
    let old_line = match old.as_ref().filter(|o| !o.deleted) {
        Some(o) => stored_line(c.entity, c.id, o.version, &o.data)?,
        None => None,
    };
    let new_line = (!c.deleted)
        .then(|| digest_line(c.entity, c.id, c.version, &c.data))
        .flatten();
    if old_line != new_line {
        let branch = c.branch_id.unwrap_or("");
        let mut digest = ctx.tx.digest(&ctx.org, branch)?;
        if let Some(l) = &old_line {
            digest.remove(l);
        }
        if let Some(l) = &new_line {
            digest.add(l);
        }
        ctx.tx.put_digest(&ctx.org, branch, &digest)?;
    }
    let row = FeedRow {
        entity: entity.to_owned(),
        entity_id: c.id.to_owned(),
        seq,
        created_seq: old.map(|o| o.created_seq).unwrap_or(seq),
        branch_id: c.branch_id.map(str::to_owned),
        deleted: c.deleted,
        version: c.version,
        data: if c.deleted {
            "{}".to_owned()
        } else {
            item_fields(c.data)?
        },
    };
    ctx.tx.put_feed_row(&ctx.org, &row)?;
    Ok(seq)
}

/// Members a delta item takes from the feed row's columns, so never stored in its data.
const ITEM_KEYS: [&str; 4] = ["entity", "id", "seq", "version"];

/// The text the feed keeps of an entity's fields: the object without [`ITEM_KEYS`] (each equal
/// to its column where a resource has it), so a delta page splices it after them unparsed.
fn item_fields(data: Value) -> Result<String, ApiError> {
    let Value::Object(mut fields) = data else {
        return Err(ApiError::internal("feed data must be a JSON object"));
    };
    for k in ITEM_KEYS {
        fields.remove(k);
    }
    serde_json::to_string(&fields).map_err(ApiError::internal)
}

/// The checksum line of a stored state (only a stock level's needs its fields parsed).
fn stored_line(
    entity: Entity,
    id: &str,
    version: u64,
    data: &str,
) -> Result<Option<String>, ApiError> {
    let fields = match entity {
        Entity::StockLevel => serde_json::from_str(data).map_err(ApiError::internal)?,
        _ => Value::Null,
    };
    Ok(digest_line(entity, id, version, &fields))
}

/// The checksum line of an entity state (products and stock levels make up the digest).
fn digest_line(entity: Entity, id: &str, version: u64, data: &Value) -> Option<String> {
    match entity {
        Entity::Product => Some(product_line(id, version)),
        Entity::StockLevel => {
            let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_default();
            let dec = |k: &str| text(k).parse::<Decimal>().unwrap_or(Decimal::ZERO);
            Some(stock_line(
                text("product_id"),
                text("location_id"),
                dec("on_hand"),
                dec("allocated"),
            ))
        }
        _ => None,
    }
}

/// What an event may be filtered on.
#[derive(Default)]
pub struct Tags<'a> {
    /// Branch.
    pub branch_id: Option<&'a str>,
    /// Location.
    pub location_id: Option<&'a str>,
    /// Product.
    pub product_id: Option<&'a str>,
    /// Product category.
    pub category: Option<&'a str>,
}

/// Queues a WebSocket frame for after the commit.
pub fn publish(
    ctx: &mut Ctx<'_>,
    channel: &'static str,
    kind: &str,
    seq: u64,
    data: Value,
    tags: Tags<'_>,
) {
    let frame = json!({ "type": kind, "seq": seq, "timestamp": ctx.now, "data": data });
    ctx.events.push(Event {
        org: ctx.org.clone(),
        channel,
        branch_id: tags.branch_id.map(str::to_owned),
        location_id: tags.location_id.map(str::to_owned),
        product_id: tags.product_id.map(str::to_owned),
        category: tags.category.map(str::to_owned),
        frame: frame.to_string().into(),
    });
}
