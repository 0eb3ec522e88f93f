//! Stock movements on the hub: the same `plan` the node runs, against the hub's levels, then the
//! legs, the stock rows, the movement record and the feed, all in the caller's transaction.

use super::feed::{self, Change, Tags};
use crate::error::ApiError;
use crate::state::Ctx;
use crate::storage::{AllocationRow, LocationRow, MovementRow, StockRow};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use stocksync_model::{
    AllocationId, Decimal, LocationId, Money, Movement, MovementKind, ProductId, Quantity,
    ReasonCode, Refusal, StockLevel, TransactionId, TransferId, Uom, ValidationErrors, plan, rules,
};
use stocksync_protocol::ws::CHANNEL_INVENTORY;
use stocksync_protocol::{Entity, TransactionType};

/// A transaction as requested (REST body, batch item, or a pushed op's body).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionRequest {
    /// Client-chosen id (`txn_…`); minted when absent.
    #[serde(default)]
    pub id: Option<TransactionId>,
    /// receipt, shipment, adjustment or count.
    pub transaction_type: TransactionType,
    /// Which product.
    pub product_id: ProductId,
    /// Where.
    pub location_id: LocationId,
    /// How much (not for counts).
    #[serde(default)]
    pub quantity: Option<Quantity>,
    /// Adjustments: why.
    #[serde(default)]
    pub reason_code: Option<ReasonCode>,
    /// Counts: what was counted.
    #[serde(default)]
    pub counted: Option<Quantity>,
    /// Counts: what the counter saw.
    #[serde(default)]
    pub expected: Option<Quantity>,
    /// Receipts: cost of one unit.
    #[serde(default)]
    pub unit_cost: Option<Money>,
    /// Delivery note, order number.
    #[serde(default)]
    pub reference: Option<String>,
}

impl TransactionRequest {
    /// The movement it asks for.
    pub fn movement(&self) -> Result<Movement, ApiError> {
        let id = self.id.clone().unwrap_or_else(TransactionId::new);
        let location_id = self.location_id.clone();
        let quantity = || {
            self.quantity
                .ok_or_else(|| ApiError::field("quantity", "Is required"))
        };
        let kind = match self.transaction_type {
            TransactionType::Receipt => MovementKind::Receipt {
                transaction_id: id,
                location_id,
                quantity: quantity()?,
                unit_cost: self.unit_cost,
                reference: self.reference.clone(),
            },
            TransactionType::Shipment => MovementKind::Shipment {
                transaction_id: id,
                location_id,
                quantity: quantity()?,
                reference: self.reference.clone(),
            },
            TransactionType::Adjustment => MovementKind::Adjustment {
                transaction_id: id,
                location_id,
                quantity: quantity()?,
                reason_code: self
                    .reason_code
                    .ok_or_else(|| ApiError::field("reason_code", "Is required for adjustments"))?,
            },
            TransactionType::Count => {
                let mut errors = ValidationErrors::new();
                if self.counted.is_none() {
                    errors.add("counted", "Is required for counts");
                }
                if self.expected.is_none() {
                    errors.add("expected", "Is required for counts");
                }
                match (self.counted, self.expected) {
                    (Some(counted), Some(expected)) => MovementKind::Count {
                        transaction_id: id,
                        location_id,
                        counted,
                        expected,
                    },
                    _ => return Err(ApiError::validation(errors)),
                }
            }
        };
        Ok(Movement {
            product_id: self.product_id.clone(),
            kind,
        })
    }
}

/// `POST /v1/inventory/transfers`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// Client-chosen id (`xfer_…`).
    #[serde(default)]
    pub id: Option<TransferId>,
    /// Which product.
    pub product_id: ProductId,
    /// Out of here.
    pub from_location_id: LocationId,
    /// Into here.
    pub to_location_id: LocationId,
    /// How much.
    pub quantity: Quantity,
    /// Free text.
    #[serde(default)]
    pub reference: Option<String>,
}

/// `POST /v1/allocations`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationRequest {
    /// Client-chosen id (`alloc_…`).
    #[serde(default)]
    pub id: Option<AllocationId>,
    /// Which product.
    pub product_id: ProductId,
    /// Where.
    pub location_id: LocationId,
    /// How much.
    pub quantity: Quantity,
    /// Order number.
    #[serde(default)]
    pub reference: Option<String>,
}

/// Who asked, for the movement record.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// The pushed op.
    pub op_id: Option<String>,
    /// The device.
    pub device_id: Option<String>,
    /// When it happened (defaults to now).
    pub occurred_at: Option<String>,
    /// The caller's branches (`None`: all).
    pub branches: Option<Vec<String>>,
    /// Free text not carried by the movement itself.
    pub reference: Option<String>,
}

/// What a movement did.
pub struct Applied {
    /// The Transaction resource (with `stock`).
    pub resource: Value,
    /// Its sequence.
    pub seq: u64,
}

/// The StockLevel resource.
pub fn stock_resource(row: &StockRow, branch_id: &str, uom: &str) -> Value {
    let available = row
        .on_hand
        .checked_sub(row.allocated)
        .unwrap_or(Decimal::ZERO);
    json!({
        "product_id": row.product_id, "location_id": row.location_id, "branch_id": branch_id,
        "uom": uom, "on_hand": row.on_hand, "allocated": row.allocated, "available": available,
        "version": row.version, "updated_at": row.updated_at,
    })
}

/// Stores a stock level and records it in the feed (the running digest included); returns its
/// StockLevel resource and sequence. The WebSocket frame is the caller's (it knows the reason).
pub fn save_level(
    ctx: &mut Ctx<'_>,
    row: &StockRow,
    branch_id: &str,
    uom: &str,
) -> Result<(Value, u64), ApiError> {
    ctx.tx.put_stock(&ctx.org.clone(), row)?;
    let resource = stock_resource(row, branch_id, uom);
    let id = format!("{}@{}", row.product_id, row.location_id);
    let seq = feed::record(
        ctx,
        Change {
            entity: Entity::StockLevel,
            id: &id,
            branch_id: Some(branch_id),
            deleted: false,
            version: row.version,
            data: resource.clone(),
        },
    )?;
    Ok((resource, seq))
}

/// Checks and applies one movement.
pub fn apply(ctx: &mut Ctx<'_>, m: &Movement, origin: &Origin) -> Result<Applied, ApiError> {
    let product = super::catalog::live_product(ctx, m.product_id.as_str())?;
    let uom_text = product.resource["uom"]
        .as_str()
        .unwrap_or("EACH")
        .to_owned();
    let uom: Uom = uom_text.parse().map_err(ApiError::internal)?;
    let category = product.resource["category"].as_str().map(str::to_owned);
    let mut locations: HashMap<String, LocationRow> = HashMap::new();
    // Each location's stock row, read once: the rules plan against it and the legs update it.
    let mut stocks: HashMap<String, StockRow> = HashMap::new();
    for loc in m.locations() {
        let row = ctx
            .tx
            .location(&ctx.org, loc.as_str())?
            .ok_or_else(|| ApiError::not_found("location", loc.as_str()))?;
        if let Some(bs) = &origin.branches
            && !bs.contains(&row.branch_id)
        {
            return Err(ApiError::denied(format!(
                "Location {loc} is in a branch outside this credential's"
            )));
        }
        let stock = ctx
            .tx
            .stock(&ctx.org, m.product_id.as_str(), loc.as_str())?
            .unwrap_or_else(|| StockRow {
                product_id: m.product_id.to_string(),
                location_id: loc.to_string(),
                on_hand: Decimal::ZERO,
                allocated: Decimal::ZERO,
                version: 0,
                updated_at: ctx.now.clone(),
            });
        stocks.insert(loc.to_string(), stock);
        locations.insert(loc.to_string(), row);
    }
    let movement_id = match &m.kind {
        MovementKind::Release { allocation_id, .. } => format!("{allocation_id}-release"),
        _ => m.id().to_owned(),
    };
    if ctx.tx.movement(&ctx.org, &movement_id)?.is_some() {
        return Err(ApiError::field(
            "id",
            format!("`{movement_id}` is already used"),
        ));
    }
    let legs = plan(m, uom, |loc| {
        stocks
            .get(loc.as_str())
            .map(|s| StockLevel::new(s.on_hand, Decimal::ZERO, s.allocated))
            .unwrap_or_default()
    })
    .map_err(|r| match r {
        Refusal::Invalid(e) => ApiError::validation(e),
        Refusal::Rule(v) => ApiError::rule(&v),
    })?;

    let mut stock_out = Vec::new();
    for leg in &legs {
        let loc = leg.location_id.as_str();
        let branch = locations
            .get(loc)
            .map(|l| l.branch_id.clone())
            .unwrap_or_default();
        let before = stocks
            .get(loc)
            .cloned()
            .ok_or_else(|| ApiError::internal(format!("leg at unplanned location {loc}")))?;
        let overflow = || ApiError::field("quantity.value", "Is too large");
        let after = StockRow {
            on_hand: before
                .on_hand
                .checked_add(leg.on_hand_delta)
                .ok_or_else(overflow)?,
            allocated: before
                .allocated
                .checked_add(leg.allocated_delta)
                .ok_or_else(overflow)?,
            version: before.version + 1,
            updated_at: ctx.now.clone(),
            ..before.clone()
        };
        stocks.insert(loc.to_owned(), after.clone());
        let (resource, seq) = save_level(ctx, &after, &branch, &uom_text)?;
        let available = after
            .on_hand
            .checked_sub(after.allocated)
            .unwrap_or(Decimal::ZERO);
        feed::publish(
            ctx,
            CHANNEL_INVENTORY,
            "inventory.update",
            seq,
            json!({
                "product_id": after.product_id, "location_id": after.location_id,
                "branch_id": branch,
                "previous_quantity": before.on_hand, "current_quantity": after.on_hand,
                "available_quantity": available, "allocated_quantity": after.allocated,
                "change_reason": m.kind_name(), "transaction_id": movement_id,
                "version": after.version,
            }),
            Tags {
                branch_id: Some(&branch),
                location_id: Some(loc),
                product_id: Some(leg.product_id.as_str()),
                category: category.as_deref(),
            },
        );
        stock_out.push(resource);
    }

    let mut resource = transaction_resource(m, &movement_id, &legs, origin, &ctx.now);
    let first_branch = m
        .locations()
        .first()
        .and_then(|l| locations.get(l.as_str()))
        .map(|l| l.branch_id.clone());
    let seq = feed::record(
        ctx,
        Change {
            entity: Entity::Transaction,
            id: &movement_id,
            branch_id: first_branch.as_deref(),
            deleted: false,
            version: 1,
            data: resource.clone(),
        },
    )?;
    resource["seq"] = json!(seq);
    let row = MovementRow {
        id: movement_id.clone(),
        transaction_type: m.kind_name().to_owned(),
        product_id: m.product_id.to_string(),
        location_ids: m.locations().iter().map(|l| l.to_string()).collect(),
        resource: resource.clone(),
        created_at: ctx.now.clone(),
    };
    ctx.tx.insert_movement(&ctx.org.clone(), &row, seq)?;
    match &m.kind {
        MovementKind::Allocation {
            allocation_id,
            location_id,
            quantity,
        } => {
            let a = json!({
                "id": allocation_id, "product_id": m.product_id, "location_id": location_id,
                "quantity": quantity, "status": "open", "created_at": ctx.now,
                "released_at": null,
            });
            ctx.tx.put_allocation(
                &ctx.org.clone(),
                &AllocationRow {
                    id: allocation_id.to_string(),
                    resource: a,
                    status: "open".into(),
                },
            )?;
        }
        MovementKind::Release { allocation_id, .. } => {
            if let Some(mut a) = ctx.tx.allocation(&ctx.org, allocation_id.as_str())? {
                a.status = "released".into();
                a.resource["status"] = json!("released");
                a.resource["released_at"] = json!(ctx.now);
                ctx.tx.put_allocation(&ctx.org.clone(), &a)?;
            }
        }
        _ => {}
    }
    resource["stock"] = if stock_out.len() == 1 {
        stock_out.remove(0)
    } else {
        Value::Array(stock_out)
    };
    Ok(Applied { resource, seq })
}

/// An allocation a caller acting in `branches` (`None`: all) may see: one at a location of
/// another branch is 404, like an unknown id, so neither its existence nor its state shows.
pub fn find_allocation(
    tx: &dyn crate::storage::Tx,
    org: &str,
    id: &str,
    branches: Option<&[String]>,
) -> Result<AllocationRow, ApiError> {
    let not_found = || ApiError::not_found("allocation", id);
    let a = tx.allocation(org, id)?.ok_or_else(not_found)?;
    if let Some(bs) = branches {
        let location = a.resource["location_id"].as_str().unwrap_or_default();
        let branch = tx.location(org, location)?.map(|l| l.branch_id);
        if !branch.is_some_and(|b| bs.contains(&b)) {
            return Err(not_found());
        }
    }
    Ok(a)
}

/// The release of an open allocation, as a movement, for a caller acting in `branches`
/// (`None`: all; another branch's allocation is 404 before its state is looked at).
pub fn release_movement(
    ctx: &Ctx<'_>,
    allocation_id: &str,
    branches: Option<&[String]>,
) -> Result<Movement, ApiError> {
    let a = find_allocation(&*ctx.tx, &ctx.org, allocation_id, branches)?;
    if a.status != "open" {
        return Err(ApiError::rule(&stocksync_model::RuleViolation::new(
            rules::ALLOCATION_OPEN,
            format!("Allocation {allocation_id} was already released"),
        )));
    }
    let parse = |k: &str| a.resource.get(k).cloned().unwrap_or(Value::Null);
    let bad = |e: serde_json::Error| ApiError::internal(e);
    Ok(Movement {
        product_id: serde_json::from_value(parse("product_id")).map_err(bad)?,
        kind: MovementKind::Release {
            allocation_id: serde_json::from_value(parse("id")).map_err(bad)?,
            location_id: serde_json::from_value(parse("location_id")).map_err(bad)?,
            quantity: serde_json::from_value(parse("quantity")).map_err(bad)?,
        },
    })
}

fn transaction_resource(
    m: &Movement,
    id: &str,
    legs: &[stocksync_model::Leg],
    origin: &Origin,
    now: &str,
) -> Value {
    let mut r = json!({
        "id": id, "transaction_type": m.kind_name(), "product_id": m.product_id,
        "location_id": null, "from_location_id": null, "to_location_id": null,
        "quantity": m.quantity(), "reason_code": null, "counted": null, "expected": null,
        "unit_cost": null, "reference": origin.reference, "op_id": origin.op_id,
        "device_id": origin.device_id,
        "occurred_at": origin.occurred_at.clone().unwrap_or_else(|| now.to_owned()),
        "created_at": now,
    });
    match &m.kind {
        MovementKind::Receipt {
            location_id,
            unit_cost,
            reference,
            ..
        } => {
            r["location_id"] = json!(location_id);
            r["unit_cost"] = json!(unit_cost);
            if reference.is_some() {
                r["reference"] = json!(reference);
            }
        }
        MovementKind::Shipment {
            location_id,
            reference,
            ..
        } => {
            r["location_id"] = json!(location_id);
            if reference.is_some() {
                r["reference"] = json!(reference);
            }
        }
        MovementKind::Adjustment {
            location_id,
            reason_code,
            ..
        } => {
            r["location_id"] = json!(location_id);
            r["reason_code"] = json!(reason_code);
        }
        MovementKind::Count {
            location_id,
            counted,
            expected,
            ..
        } => {
            r["location_id"] = json!(location_id);
            r["counted"] = json!(counted);
            r["expected"] = json!(expected);
            // The quantity posted is the variance.
            if let Some(leg) = legs.first() {
                r["quantity"] = json!(Quantity::new(leg.on_hand_delta, counted.uom));
            }
        }
        MovementKind::Transfer {
            from_location_id,
            to_location_id,
            ..
        } => {
            r["from_location_id"] = json!(from_location_id);
            r["to_location_id"] = json!(to_location_id);
        }
        MovementKind::Allocation { location_id, .. }
        | MovementKind::Release { location_id, .. } => {
            r["location_id"] = json!(location_id);
        }
    }
    r
}
