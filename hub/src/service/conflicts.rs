//! Conflict records: rejected ops (a business rule said no after the fact) and same-field clashes
//! of manual-policy fields. Both wait in the manual queue until resolved or dismissed.

use super::feed::{self, Change, Tags};
use crate::error::ApiError;
use crate::state::Ctx;
use crate::storage::ConflictRow;
use serde::Deserialize;
use serde_json::{Value, json};
use stocksync_model::ConflictId;
use stocksync_protocol::ws::CHANNEL_CONFLICTS;
use stocksync_protocol::{Entity, ErrorCode, Resolution};

/// `POST /v1/conflicts/{id}/resolve`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// `use_value` or `dismiss`.
    pub resolution: Resolution,
    /// For `use_value`.
    #[serde(default)]
    pub value: Option<String>,
}

fn save(ctx: &mut Ctx<'_>, row: &ConflictRow, kind: &str) -> Result<u64, ApiError> {
    ctx.tx.put_conflict(&ctx.org.clone(), row)?;
    let r = &row.resource;
    let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
    let location = text("location_id");
    // The feed, the WebSocket and the queue agree on whose record it is.
    let branch = row.branch_id.clone();
    let product = text("product_id");
    // Conflicts reach subscribers filtering on the product's category too.
    let category = match &product {
        Some(p) => ctx
            .tx
            .product(&ctx.org, p)?
            .and_then(|p| p.resource["category"].as_str().map(str::to_owned)),
        None => None,
    };
    let seq = feed::record(
        ctx,
        Change {
            entity: Entity::Conflict,
            id: &row.id,
            branch_id: branch.as_deref(),
            deleted: false,
            version: r["version"].as_u64().unwrap_or(1),
            data: r.clone(),
        },
    )?;
    feed::publish(
        ctx,
        CHANNEL_CONFLICTS,
        kind,
        seq,
        json!({
            "conflict_id": row.id, "kind": r["kind"], "status": row.status,
            "product_id": product, "location_id": location, "field": r["field"],
            "rule": r["rule"], "op_id": r["op_id"], "device_id": r["device_id"],
        }),
        Tags {
            branch_id: branch.as_deref(),
            location_id: location.as_deref(),
            product_id: product.as_deref(),
            category: category.as_deref(),
        },
    );
    Ok(seq)
}

/// What one conflict record says; `open` adds what every record has.
struct Record<'a> {
    kind: &'a str,
    product_id: Option<&'a str>,
    location_id: Option<&'a str>,
    field: Option<&'a str>,
    values: &'a [Option<String>],
    rule: Option<&'a str>,
    error: Option<&'a ApiError>,
    message: &'a str,
    op_id: &'a str,
    device_id: &'a str,
}

/// Stores a new open record in `branch_id`'s queue (`None`: every branch's); its id and sequence.
fn open(
    ctx: &mut Ctx<'_>,
    r: &Record<'_>,
    branch_id: Option<String>,
) -> Result<(String, u64), ApiError> {
    let id = ConflictId::new().to_string();
    let resource = json!({
        "id": id, "kind": r.kind, "status": "open", "product_id": r.product_id,
        "location_id": r.location_id, "field": r.field, "values": r.values, "rule": r.rule,
        "code": r.error.map(|e| e.code), "message": r.message,
        "details": r.error.map(|e| e.details.clone()),
        "op_id": r.op_id, "device_id": r.device_id, "resolution": null, "version": 1,
        "created_at": ctx.now, "resolved_at": null,
    });
    let row = ConflictRow {
        id: id.clone(),
        status: "open".into(),
        branch_id,
        resource,
    };
    let seq = save(ctx, &row, "conflict.created")?;
    Ok((id, seq))
}

/// Opens a record for an op the hub rejected; returns its id and sequence. It goes to the queue of
/// the pushing device's branch (where the op was made, and the only branch the device acts in),
/// whatever location the op named: a device's op naming another branch's location is its own
/// branch's business, not that branch's.
pub fn open_rejected(
    ctx: &mut Ctx<'_>,
    error: &ApiError,
    op_id: &str,
    device_id: &str,
    product_id: Option<&str>,
    location_id: Option<&str>,
) -> Result<(String, u64), ApiError> {
    let branch_id = match ctx.tx.device(device_id)?.filter(|d| d.org_id == ctx.org) {
        Some(d) => Some(d.branch_id),
        None => match location_id {
            Some(l) => ctx.tx.location(&ctx.org, l)?.map(|l| l.branch_id),
            None => None,
        },
    };
    let record = Record {
        kind: "business_rule",
        product_id,
        location_id,
        field: None,
        values: &[],
        rule: error.details.get("rule").and_then(Value::as_str),
        error: Some(error),
        message: &error.message,
        op_id,
        device_id,
    };
    open(ctx, &record, branch_id)
}

/// Opens a record that tells a person what the hub did on its own to keep goods (an applied op,
/// unlike a rejection); only `dismiss` settles it. Branch-less: the product is the whole
/// organization's.
pub fn open_notice(
    ctx: &mut Ctx<'_>,
    rule: &str,
    message: &str,
    op_id: &str,
    device_id: &str,
    product_id: &str,
) -> Result<String, ApiError> {
    let record = Record {
        kind: "business_rule",
        product_id: Some(product_id),
        location_id: None,
        field: None,
        values: &[],
        rule: Some(rule),
        error: None,
        message,
        op_id,
        device_id,
    };
    Ok(open(ctx, &record, None)?.0)
}

/// Opens a record for a clash over one field of a product (concurrent edits of a manual-policy
/// field, or a barcode another product holds); returns its id. Products belong to the whole
/// organization, so the record is in every branch's queue.
pub fn open_field(
    ctx: &mut Ctx<'_>,
    product_id: &str,
    field: &str,
    values: &[Option<String>],
    message: &str,
    op_id: &str,
    device_id: &str,
) -> Result<String, ApiError> {
    let record = Record {
        kind: "field",
        product_id: Some(product_id),
        location_id: None,
        field: Some(field),
        values,
        rule: None,
        error: None,
        message,
        op_id,
        device_id,
    };
    Ok(open(ctx, &record, None)?.0)
}

/// Whether a caller acting in `branches` (`None`: all) sees this record.
pub fn visible(row: &ConflictRow, branches: Option<&[String]>) -> bool {
    match (&row.branch_id, branches) {
        (Some(b), Some(bs)) => bs.contains(b),
        _ => true,
    }
}

/// A record the caller acting in `branches` may see; another branch's is 404, like an unknown id,
/// so its existence does not show.
pub fn find(
    tx: &dyn crate::storage::Tx,
    org: &str,
    id: &str,
    branches: Option<&[String]>,
) -> Result<ConflictRow, ApiError> {
    tx.conflict(org, id)?
        .filter(|row| visible(row, branches))
        .ok_or_else(|| ApiError::not_found("conflict", id))
}

/// Resolves or dismisses an open conflict, for a caller acting in `branches` (`None`: all).
pub fn resolve(
    ctx: &mut Ctx<'_>,
    id: &str,
    req: &ResolveRequest,
    by: &str,
    branches: Option<&[String]>,
) -> Result<Value, ApiError> {
    let mut row = find(&*ctx.tx, &ctx.org, id, branches)?;
    if row.status != "open" {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("Conflict {id} is already {}", row.status),
        )
        .with_details(json!({ "status": row.status })));
    }
    let field = row.resource["field"].as_str().map(str::to_owned);
    let product = row.resource["product_id"].as_str().map(str::to_owned);
    let mut product_version = None;
    match (req.resolution, &field, &product) {
        (Resolution::UseValue, Some(field), Some(product)) => {
            let p = super::catalog::settle_field(ctx, product, field, req.value.as_deref())?;
            product_version = p["version"].as_u64();
        }
        (Resolution::UseValue, _, _) => {
            return Err(ApiError::field(
                "resolution",
                "`use_value` settles field conflicts; dismiss a rejected op",
            ));
        }
        (Resolution::Dismiss, Some(field), Some(product)) => {
            // Keep the value shown now, but settle it so the field is single-valued again.
            if let Some(p) = ctx.tx.product(&ctx.org, product)?.filter(|p| !p.deleted) {
                let shown = p
                    .resource
                    .get(field.as_str())
                    .cloned()
                    .unwrap_or(Value::Null);
                let text = match shown {
                    Value::Null => None,
                    Value::String(s) => Some(s),
                    Value::Object(_) => Some(format!(
                        "{} {}",
                        shown["amount"].as_str().unwrap_or("0"),
                        shown["currency"].as_str().unwrap_or("")
                    )),
                    other => Some(other.to_string()),
                };
                let p = super::catalog::settle_field(ctx, product, field, text.as_deref())?;
                product_version = p["version"].as_u64();
            }
        }
        (Resolution::Dismiss, _, _) => {}
    }
    let status = match req.resolution {
        Resolution::UseValue => "resolved",
        Resolution::Dismiss => "dismissed",
    };
    row.status = status.into();
    row.resource["status"] = json!(status);
    row.resource["resolved_at"] = json!(ctx.now);
    row.resource["version"] = json!(row.resource["version"].as_u64().unwrap_or(1) + 1);
    row.resource["resolution"] = json!({
        "resolution": req.resolution, "value": req.value, "by": by,
        "product_version": product_version,
    });
    save(ctx, &row, "conflict.resolved")?;
    Ok(row.resource)
}
