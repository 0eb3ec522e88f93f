//! Products and locations: create, edit (automerge changes with field policies), delete.

use super::conflicts;
use super::feed::{self, Change, Tags};
use crate::error::ApiError;
use crate::state::Ctx;
use crate::storage::{AliasRow, LocationRow, ProductRow};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use stocksync_model::product_doc::{FieldPolicy, ProductDoc, ProductFields};
use stocksync_model::{
    DeviceId, HlcTimestamp, LocationId, Money, NewLocation, NewProduct, ProductId, ProductPatch,
    Uom, ValidationErrors,
};
use stocksync_protocol::Entity;
use stocksync_protocol::ws::CHANNEL_PRODUCTS;

/// The actor of the hub's own edits (REST edits, settlements).
pub fn hub_device() -> DeviceId {
    DeviceId::parse("dev_hub").unwrap_or_else(|_| DeviceId::new())
}

/// `POST /v1/products`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// A client-chosen id (`prod_…`); minted when absent.
    #[serde(default)]
    pub id: Option<ProductId>,
    /// Stock keeping unit.
    pub sku: String,
    /// Readable name.
    pub name: String,
    /// Scannable code.
    #[serde(default)]
    pub barcode: Option<String>,
    /// Longer text.
    #[serde(default)]
    pub description: Option<String>,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Unit of measure (default `EACH`).
    #[serde(default)]
    pub uom: Option<Uom>,
    /// Selling price.
    #[serde(default)]
    pub price: Option<Money>,
}

impl CreateProduct {
    /// The product it asks for.
    pub fn product(&self) -> NewProduct {
        NewProduct {
            sku: self.sku.clone(),
            name: self.name.clone(),
            barcode: self.barcode.clone(),
            description: self.description.clone(),
            category: self.category.clone(),
            uom: self.uom.unwrap_or(Uom::Each),
            price: self.price,
        }
    }
}

/// `POST /v1/inventory/locations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLocation {
    /// A client-chosen id (`loc_…`); minted when absent.
    #[serde(default)]
    pub id: Option<LocationId>,
    /// Short unique code.
    pub code: String,
    /// Readable name.
    pub name: String,
    /// Its branch (default: the caller's only branch).
    #[serde(default)]
    pub branch_id: Option<String>,
}

/// The Product resource.
pub fn product_resource(
    id: &str,
    f: &ProductFields,
    version: u64,
    created_at: &str,
    updated_at: &str,
) -> Value {
    json!({
        "id": id, "sku": f.sku, "barcode": f.barcode, "name": f.name,
        "description": f.description, "category": f.category, "status": f.status,
        "uom": f.uom, "price": f.price, "version": version,
        "created_at": created_at, "updated_at": updated_at,
    })
}

/// A product's live row, or 404.
pub fn live_product(ctx: &Ctx<'_>, id: &str) -> Result<ProductRow, ApiError> {
    ctx.tx
        .product(&ctx.org, id)?
        .filter(|p| !p.deleted)
        .ok_or_else(|| ApiError::not_found("product", id))
}

fn check_unique(ctx: &Ctx<'_>, id: &str, f: &ProductFields) -> Result<(), ApiError> {
    let mut errors = ValidationErrors::new();
    if let Some(other) = ctx.tx.product_by_code(&ctx.org, "sku", &f.sku)?
        && other.id != id
    {
        errors.add("sku", format!("Is already used by {}", other.id));
    }
    if let Some(barcode) = &f.barcode
        && let Some(other) = ctx.tx.product_by_code(&ctx.org, "barcode", barcode)?
        && other.id != id
    {
        errors.add("barcode", format!("Is already used by {}", other.id));
    }
    errors.into_result().map_err(ApiError::validation)
}

fn doc_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::field("doc", e.to_string())
}

/// Stores a product state, records the change and queues its `product.update` frame.
fn save_product(
    ctx: &mut Ctx<'_>,
    row: ProductRow,
    changed_fields: &[String],
    created: bool,
) -> Result<u64, ApiError> {
    ctx.tx.put_product(&ctx.org.clone(), &row)?;
    let category = row
        .resource
        .get("category")
        .and_then(Value::as_str)
        .map(str::to_owned);
    // A delta item carries the automerge document too, so a device merges it with its own; the
    // REST resource and the WebSocket frame do not.
    let mut data = row.resource.clone();
    if !row.deleted {
        data["doc"] = Value::String(B64.encode(&row.doc));
    }
    let seq = feed::record(
        ctx,
        Change {
            entity: Entity::Product,
            id: &row.id,
            branch_id: None,
            deleted: row.deleted,
            version: row.version,
            data,
        },
    )?;
    let kind = if row.deleted {
        "product.deleted"
    } else {
        "product.update"
    };
    feed::publish(
        ctx,
        CHANNEL_PRODUCTS,
        kind,
        seq,
        json!({
            "product_id": row.id, "version": row.version, "changed_fields": changed_fields,
            "created": created, "product": row.resource,
        }),
        Tags {
            product_id: Some(&row.id),
            category: category.as_deref(),
            ..Tags::default()
        },
    );
    Ok(seq)
}

/// Creates a product from REST.
pub fn create(ctx: &mut Ctx<'_>, req: &CreateProduct) -> Result<Value, ApiError> {
    let product = req.product();
    product.validate()?;
    let id = req.id.clone().unwrap_or_else(ProductId::new);
    if ctx.tx.product(&ctx.org, id.as_str())?.is_some() {
        return Err(ApiError::field("id", "Is already used"));
    }
    let fields = ProductFields::from(&product);
    let mut doc = ProductDoc::create(&hub_device(), &fields).map_err(doc_error)?;
    let hlc = hub_now(ctx);
    insert_new(ctx, id.as_str(), &fields, doc.save(), &hlc)
}

fn hub_now(ctx: &Ctx<'_>) -> HlcTimestamp {
    ctx.clock
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .now(crate::clock::now_millis())
}

fn insert_new(
    ctx: &mut Ctx<'_>,
    id: &str,
    fields: &ProductFields,
    doc: Vec<u8>,
    hlc: &HlcTimestamp,
) -> Result<Value, ApiError> {
    check_unique(ctx, id, fields)?;
    let hlcs: Map<String, Value> = stocksync_model::product_doc::FIELDS
        .iter()
        .map(|f| ((*f).to_owned(), Value::String(hlc.to_string())))
        .collect();
    let now = ctx.now.clone();
    let row = ProductRow {
        id: id.to_owned(),
        resource: product_resource(id, fields, 1, &now, &now),
        doc,
        field_hlcs: Value::Object(hlcs),
        version: 1,
        deleted: false,
    };
    let resource = row.resource.clone();
    save_product(ctx, row, &[], true)?;
    Ok(resource)
}

/// Checks `If-Match` against the current version.
pub fn check_if_match(current: u64, if_match: Option<&str>) -> Result<(), ApiError> {
    let Some(raw) = if_match else { return Ok(()) };
    let text = raw.trim().trim_start_matches("W/").trim_matches('"');
    let provided = text
        .strip_prefix("version-")
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| ApiError::field("If-Match", "Must be \"version-N\""))?;
    if provided == current {
        Ok(())
    } else {
        Err(ApiError::version_mismatch(
            current,
            &format!("version-{provided}"),
        ))
    }
}

/// Edits a product from REST (the hub's own change; no field conflict can arise).
pub fn update(
    ctx: &mut Ctx<'_>,
    id: &str,
    if_match: Option<&str>,
    patch: &ProductPatch,
) -> Result<Value, ApiError> {
    patch.validate()?;
    let mut row = live_product(ctx, id)?;
    check_if_match(row.version, if_match)?;
    let mut doc = ProductDoc::load(&row.doc).map_err(ApiError::internal)?;
    let Some(change) = doc.edit(&hub_device(), patch).map_err(doc_error)? else {
        return Ok(row.resource);
    };
    let fields = doc.fields().map_err(doc_error)?;
    check_unique(ctx, id, &fields)?;
    let hlc = hub_now(ctx).to_string();
    for f in &change.fields {
        row.field_hlcs[f.as_str()] = Value::String(hlc.clone());
    }
    bump(ctx, row, doc, &fields, &change.fields)
}

fn bump(
    ctx: &mut Ctx<'_>,
    mut row: ProductRow,
    mut doc: ProductDoc,
    fields: &ProductFields,
    changed: &[String],
) -> Result<Value, ApiError> {
    let created_at = row.resource["created_at"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    row.version += 1;
    row.doc = doc.save();
    row.resource = product_resource(&row.id, fields, row.version, &created_at, &ctx.now);
    let resource = row.resource.clone();
    save_product(ctx, row, changed, false)?;
    Ok(resource)
}

/// Soft-deletes a product (a tombstone in the feed).
pub fn delete(ctx: &mut Ctx<'_>, id: &str, if_match: Option<&str>) -> Result<Value, ApiError> {
    let mut row = live_product(ctx, id)?;
    check_if_match(row.version, if_match)?;
    row.version += 1;
    row.deleted = true;
    row.resource["version"] = json!(row.version);
    row.resource["updated_at"] = json!(ctx.now);
    let version = row.version;
    save_product(ctx, row, &[], false)?;
    Ok(json!({ "id": id, "deleted": true, "version": version }))
}

/// What a pushed create came to.
pub struct Created {
    /// The product's version after (products only).
    pub version: Option<u64>,
    /// The existing entity the create turned out to be (same SKU, or same code in the branch).
    pub canonical_id: Option<String>,
    /// A clash the create brought went to the manual queue.
    pub conflict_id: Option<String>,
}

fn taken_id(ctx: &Ctx<'_>, id: &str, exists: bool) -> Result<(), ApiError> {
    if exists || ctx.tx.alias(&ctx.org, id)?.is_some() {
        return Err(ApiError::field("id", format!("`{id}` is already used")));
    }
    Ok(())
}

/// Records that a device's id names an existing entity from now on.
fn alias(
    ctx: &mut Ctx<'_>,
    entity: Entity,
    alias_id: &str,
    canonical: &str,
) -> Result<(), ApiError> {
    let row = AliasRow {
        alias_id: alias_id.to_owned(),
        canonical_id: canonical.to_owned(),
        entity,
        created_at: ctx.now.clone(),
    };
    ctx.tx.put_alias(&ctx.org.clone(), &row)?;
    Ok(())
}

/// A pushed `product_create`: the device's whole document becomes the hub's.
///
/// Two devices that each created the same SKU offline made one product: when a live product has
/// the SKU already, the device's document merges into it field by field (by each field's
/// policy, as a `product_change` would) and the device's id becomes an alias of it, so nothing
/// the device recorded against its id is refused. A barcode held by a *different* product is a
/// real clash: the product goes on without it and the clash waits in the manual queue.
pub fn create_from_op(
    ctx: &mut Ctx<'_>,
    id: &ProductId,
    doc_b64: &str,
    hlc: &HlcTimestamp,
    op_id: &str,
    device_id: &str,
) -> Result<Created, ApiError> {
    let exists = ctx.tx.product(&ctx.org, id.as_str())?.is_some();
    taken_id(ctx, id.as_str(), exists)?;
    let bytes = B64
        .decode(doc_b64)
        .map_err(|e| ApiError::field("doc", format!("Not base64: {e}")))?;
    let mut doc = ProductDoc::load(&bytes).map_err(doc_error)?;
    let fields = doc.fields().map_err(doc_error)?;
    NewProduct::from(&fields).validate()?;
    if let Some(existing) = ctx.tx.product_by_code(&ctx.org, "sku", &fields.sku)? {
        let canonical = existing.id.clone();
        let merged = merge_into(
            ctx,
            existing,
            Incoming::Doc(Box::new(doc)),
            hlc,
            op_id,
            device_id,
        )?;
        alias(ctx, Entity::Product, id.as_str(), &canonical)?;
        return Ok(Created {
            version: Some(merged.version),
            canonical_id: Some(canonical),
            conflict_id: merged.conflict_id,
        });
    }
    let clash = drop_held_barcode(ctx, id.as_str(), &mut doc, None)?;
    let fields = doc.fields().map_err(doc_error)?;
    insert_new(ctx, id.as_str(), &fields, doc.save(), hlc)?;
    let conflict_id = match clash {
        Some(c) => Some(open_barcode_clash(ctx, id.as_str(), &c, op_id, device_id)?),
        None => None,
    };
    Ok(Created {
        version: Some(1),
        canonical_id: None,
        conflict_id,
    })
}

/// A barcode a document wants that another live product holds.
struct BarcodeClash {
    barcode: String,
    holder_id: String,
    holder_sku: String,
}

/// When `doc`'s barcode is held by another live product, settles it back to `previous` (the
/// product goes on without the clashing code) and says who holds it.
fn drop_held_barcode(
    ctx: &Ctx<'_>,
    id: &str,
    doc: &mut ProductDoc,
    previous: Option<&str>,
) -> Result<Option<BarcodeClash>, ApiError> {
    let Some(barcode) = doc.fields().map_err(doc_error)?.barcode else {
        return Ok(None);
    };
    let Some(holder) = ctx.tx.product_by_code(&ctx.org, "barcode", &barcode)? else {
        return Ok(None);
    };
    if holder.id == id {
        return Ok(None);
    }
    doc.settle(&hub_device(), "barcode", previous)
        .map_err(doc_error)?;
    let holder_sku = holder.resource["sku"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok(Some(BarcodeClash {
        barcode,
        holder_id: holder.id,
        holder_sku,
    }))
}

fn open_barcode_clash(
    ctx: &mut Ctx<'_>,
    product_id: &str,
    clash: &BarcodeClash,
    op_id: &str,
    device_id: &str,
) -> Result<String, ApiError> {
    let message = format!(
        "Barcode {} is already used by {} ({}); the product was kept without it",
        clash.barcode, clash.holder_sku, clash.holder_id
    );
    let shown = ctx
        .tx
        .product(&ctx.org, product_id)?
        .and_then(|p| p.resource["barcode"].as_str().map(str::to_owned));
    conflicts::open_field(
        ctx,
        product_id,
        "barcode",
        &[Some(clash.barcode.clone()), shown],
        &message,
        op_id,
        device_id,
    )
}

/// What a pushed `product_change` came to.
pub struct Merged {
    /// The product after.
    pub resource: Value,
    /// Its version after.
    pub version: u64,
    /// A manual-policy clash went to the queue.
    pub conflict_id: Option<String>,
}

/// A pushed `product_change`: merges the device's change into the hub's document, settles
/// same-field clashes by policy (last-write-wins by HLC, or a manual conflict record), bumps the
/// version.
pub fn change_from_op(
    ctx: &mut Ctx<'_>,
    id: &ProductId,
    changes_b64: &str,
    hlc: &HlcTimestamp,
    op_id: &str,
    device_id: &str,
) -> Result<Merged, ApiError> {
    let row = live_product(ctx, id.as_str())?;
    let bytes = B64
        .decode(changes_b64)
        .map_err(|e| ApiError::field("changes", format!("Not base64: {e}")))?;
    merge_into(ctx, row, Incoming::Change(&bytes), hlc, op_id, device_id)
}

/// What a device sent to merge into a product's document.
enum Incoming<'a> {
    /// One automerge change (`product_change`).
    Change(&'a [u8]),
    /// A whole document made elsewhere for the same SKU (`product_create`).
    Doc(Box<ProductDoc>),
}

/// Merges `incoming` into the product's document and settles every field it touched by the
/// field's policy.
fn merge_into(
    ctx: &mut Ctx<'_>,
    mut row: ProductRow,
    incoming: Incoming<'_>,
    hlc: &HlcTimestamp,
    op_id: &str,
    device_id: &str,
) -> Result<Merged, ApiError> {
    let mut doc = ProductDoc::load(&row.doc).map_err(ApiError::internal)?;
    let before: Vec<(String, Vec<Option<String>>)> = stocksync_model::product_doc::FIELDS
        .iter()
        .map(|f| Ok(((*f).to_owned(), doc.field_values(f).map_err(doc_error)?)))
        .collect::<Result<_, ApiError>>()?;
    let whole_doc = matches!(incoming, Incoming::Doc(_));
    match incoming {
        Incoming::Change(bytes) => doc
            .apply_changes(bytes)
            .map_err(|e| ApiError::field("changes", e.to_string()))?,
        Incoming::Doc(mut other) => doc.merge(&mut other).map_err(doc_error)?,
    }
    let mut changed = Vec::new();
    let mut conflict_id = None;
    let device = hub_device();
    for (field, old_values) in before {
        let values = doc.field_values(&field).map_err(doc_error)?;
        if values == old_values {
            continue;
        }
        changed.push(field.clone());
        let stored_hlc = row.field_hlcs[field.as_str()]
            .as_str()
            .and_then(|h| h.parse::<HlcTimestamp>().ok());
        if values.len() > 1 {
            // A clash: the values this change brought are those that were not there before.
            let incoming: Vec<Option<String>> = values
                .iter()
                .filter(|v| !old_values.contains(v))
                .cloned()
                .collect();
            let distinct: std::collections::BTreeSet<&Option<String>> = values.iter().collect();
            if distinct.len() == 1 {
                // Everyone agrees: fold the duplicates into one value.
                let v = values[0].clone();
                doc.settle(&device, &field, v.as_deref())
                    .map_err(doc_error)?;
            } else if FieldPolicy::default_for(&field) == FieldPolicy::Manual {
                let message = format!("Concurrent edits of `{field}` need a person to choose");
                let id = conflicts::open_field(
                    ctx, &row.id, &field, &values, &message, op_id, device_id,
                )?;
                conflict_id = Some(id);
                if whole_doc {
                    // A late create does not change what an established product shows (its
                    // unit above all, which every stock row is counted in) until a person
                    // chooses; the record keeps both values.
                    let kept = old_values.first().cloned().flatten();
                    doc.settle(&device, &field, kept.as_deref())
                        .map_err(doc_error)?;
                }
            } else {
                let incoming_wins = stored_hlc.as_ref().is_none_or(|s| hlc > s);
                let winner = if incoming_wins {
                    incoming.first().cloned().flatten()
                } else {
                    old_values.first().cloned().flatten()
                };
                doc.settle(&device, &field, winner.as_deref())
                    .map_err(doc_error)?;
                if incoming_wins {
                    row.field_hlcs[field.as_str()] = Value::String(hlc.to_string());
                }
            }
        } else {
            row.field_hlcs[field.as_str()] = Value::String(hlc.to_string());
        }
    }
    if changed.is_empty() {
        return Ok(Merged {
            version: row.version,
            resource: row.resource,
            conflict_id,
        });
    }
    // A document made elsewhere may bring a barcode another product holds: the product keeps
    // its own, and the clash is a person's to settle. (An edit that does so is refused below.)
    let clash = if whole_doc {
        let previous = row.resource["barcode"].as_str().map(str::to_owned);
        drop_held_barcode(ctx, &row.id, &mut doc, previous.as_deref())?
    } else {
        None
    };
    let fields = doc.fields().map_err(doc_error)?;
    check_unique(ctx, &row.id, &fields)?;
    let product_id = row.id.clone();
    let resource = bump(ctx, row, doc, &fields, &changed)?;
    if let Some(c) = clash {
        conflict_id = Some(open_barcode_clash(ctx, &product_id, &c, op_id, device_id)?);
    }
    let version = resource["version"].as_u64().unwrap_or_default();
    Ok(Merged {
        resource,
        version,
        conflict_id,
    })
}

/// Settles a field conflict to a value (from `POST /v1/conflicts/{id}/resolve`).
pub fn settle_field(
    ctx: &mut Ctx<'_>,
    product_id: &str,
    field: &str,
    value: Option<&str>,
) -> Result<Value, ApiError> {
    let mut row = live_product(ctx, product_id)?;
    let mut doc = ProductDoc::load(&row.doc).map_err(ApiError::internal)?;
    doc.settle(&hub_device(), field, value)
        .map_err(|e| ApiError::field("value", e.to_string()))?;
    let fields = doc
        .fields()
        .map_err(|e| ApiError::field("value", e.to_string()))?;
    let mut errors = NewProduct::from(&fields)
        .validate()
        .err()
        .unwrap_or_default();
    errors.0.retain(|k, _| k.starts_with(field));
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    check_unique(ctx, product_id, &fields)?;
    row.field_hlcs[field] = Value::String(hub_now(ctx).to_string());
    bump(ctx, row, doc, &fields, &[field.to_owned()])
}

/// Creates a location (REST or a pushed `location_create`).
pub fn create_location(
    ctx: &mut Ctx<'_>,
    id: Option<LocationId>,
    new: &NewLocation,
    branch_id: &str,
) -> Result<Value, ApiError> {
    new.validate()?;
    let id = id.unwrap_or_else(LocationId::new);
    let exists = ctx.tx.location(&ctx.org, id.as_str())?.is_some();
    taken_id(ctx, id.as_str(), exists)?;
    if let Some(other) = ctx.tx.location_by_code(&ctx.org, branch_id, &new.code)? {
        return Err(ApiError::field(
            "code",
            format!("Is already used by {}", other.id),
        ));
    }
    let resource = json!({
        "id": id, "code": new.code, "name": new.name, "branch_id": branch_id,
        "created_at": ctx.now,
    });
    let row = LocationRow {
        id: id.to_string(),
        branch_id: branch_id.to_owned(),
        code: new.code.clone(),
        resource: resource.clone(),
    };
    ctx.tx.insert_location(&ctx.org.clone(), &row)?;
    feed::record(
        ctx,
        Change {
            entity: Entity::Location,
            id: id.as_str(),
            branch_id: Some(branch_id),
            deleted: false,
            version: 1,
            data: resource.clone(),
        },
    )?;
    Ok(resource)
}

/// A pushed `location_create`. A location with the same code in the branch is the same place:
/// the device's id becomes an alias of it (its name stays as the hub has it).
pub fn create_location_from_op(
    ctx: &mut Ctx<'_>,
    id: &LocationId,
    new: &NewLocation,
    branch_id: &str,
) -> Result<Created, ApiError> {
    new.validate()?;
    let exists = ctx.tx.location(&ctx.org, id.as_str())?.is_some();
    taken_id(ctx, id.as_str(), exists)?;
    let canonical_id = match ctx.tx.location_by_code(&ctx.org, branch_id, &new.code)? {
        Some(existing) => {
            alias(ctx, Entity::Location, id.as_str(), &existing.id)?;
            Some(existing.id)
        }
        None => {
            create_location(ctx, Some(id.clone()), new, branch_id)?;
            None
        }
    };
    Ok(Created {
        version: None,
        canonical_id,
        conflict_id: None,
    })
}

/// The product a device's movement lands on when the product it names was deleted at the hub
/// after the device recorded goods on it: the goods are real, so the movement must apply. A live
/// product with the same SKU is the same product; otherwise the deleted one comes back (without
/// a barcode another product took meanwhile) and a record in the queue says why.
pub fn product_for_goods(
    ctx: &mut Ctx<'_>,
    id: &ProductId,
    op_id: &str,
    device_id: &str,
) -> Result<ProductId, ApiError> {
    let Some(row) = ctx.tx.product(&ctx.org, id.as_str())?.filter(|p| p.deleted) else {
        return Ok(id.clone());
    };
    let sku = row.resource["sku"].as_str().unwrap_or_default().to_owned();
    if let Some(live) = ctx.tx.product_by_code(&ctx.org, "sku", &sku)? {
        return live
            .id
            .parse()
            .map_err(|_| ApiError::internal(format!("product id `{}`", live.id)));
    }
    let mut doc = ProductDoc::load(&row.doc).map_err(ApiError::internal)?;
    drop_held_barcode(ctx, id.as_str(), &mut doc, None)?;
    let fields = doc.fields().map_err(doc_error)?;
    let mut row = row;
    row.deleted = false;
    bump(ctx, row, doc, &fields, &[])?;
    conflicts::open_notice(
        ctx,
        "deleted_product_moved",
        &format!(
            "{sku} was deleted at the hub, but a device had recorded goods on it offline: the \
             product is back so the goods count; move them out and delete it again if it must go"
        ),
        op_id,
        device_id,
        id.as_str(),
    )?;
    Ok(id.clone())
}
