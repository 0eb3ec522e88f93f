//! Transactions (single and batch), transfers, allocations and releases.

use super::{Paging, keyed, page_reply};
use crate::auth::Caller;
use crate::envelope::Reply;
use crate::error::ApiError;
use crate::extract::{Body, PathId, Query};
use crate::service::stock::{self, AllocationRequest, Origin, TransactionRequest, TransferRequest};
use crate::state::AppState;
use crate::storage::MovementQuery;
use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use stocksync_model::{AllocationId, Movement, MovementKind, TransferId};

const CREATE: &str = "inventory.transactions.create";
const READ: &str = "inventory.transactions.read";
const ALLOC_MANAGE: &str = "inventory.allocations.manage";
const ALLOC_READ: &str = "inventory.allocations.read";
/// Most items in one batch.
pub const MAX_BATCH: usize = 500;

fn origin(caller: &Caller, reference: Option<String>) -> Origin {
    Origin {
        device_id: caller.device_id.clone(),
        branches: caller.branches.clone(),
        reference,
        ..Origin::default()
    }
}

pub(super) async fn create_transaction(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body<TransactionRequest>,
) -> Result<Reply, ApiError> {
    caller.require(CREATE)?;
    let movement = body.value.movement()?;
    let origin = origin(&caller, body.value.reference.clone());
    keyed(
        &state,
        &caller,
        "POST /v1/inventory/transactions",
        &headers,
        &body.canonical,
        move |ctx| Ok((201, stock::apply(ctx, &movement, &origin)?.resource)),
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchRequest {
    transactions: Vec<Value>,
    #[serde(default)]
    atomic: bool,
}

pub(super) async fn batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body<BatchRequest>,
) -> Result<Reply, ApiError> {
    caller.require(CREATE)?;
    let BatchRequest {
        transactions,
        atomic,
    } = body.value;
    if transactions.is_empty() || transactions.len() > MAX_BATCH {
        return Err(ApiError::field(
            "transactions",
            format!("Must hold 1 to {MAX_BATCH} items"),
        ));
    }
    // Each item is parsed on its own, so one bad item fails alone.
    let items: Vec<Result<(Movement, Option<String>), ApiError>> = transactions
        .into_iter()
        .map(|v| {
            let req: TransactionRequest =
                serde_json::from_value(v).map_err(|e| ApiError::field("body", e.to_string()))?;
            Ok((req.movement()?, req.reference.clone()))
        })
        .collect();
    let caller2 = caller.clone();
    keyed(
        &state,
        &caller,
        "POST /v1/inventory/transactions/batch",
        &headers,
        &body.canonical,
        move |ctx| {
            let mut results = Vec::new();
            let mut first_failure = None;
            for (index, item) in items.into_iter().enumerate() {
                let outcome = item.and_then(|(m, reference)| {
                    ctx.tx.savepoint()?;
                    let events = ctx.events.len();
                    match stock::apply(ctx, &m, &origin(&caller2, reference)) {
                        Ok(a) => {
                            ctx.tx.release_savepoint()?;
                            Ok(a.resource)
                        }
                        Err(e) => {
                            ctx.tx.rollback_savepoint()?;
                            ctx.events.truncate(events);
                            Err(e)
                        }
                    }
                });
                match outcome {
                    Ok(t) => results
                        .push(json!({ "index": index, "status": "created", "transaction": t })),
                    Err(e) if e.code.status() >= 500 => return Err(e),
                    Err(e) => {
                        if first_failure.is_none() {
                            first_failure = Some((index, e.clone()));
                        }
                        results
                            .push(json!({ "index": index, "status": "failed", "error": e.body() }));
                    }
                }
            }
            if atomic && let Some((index, mut e)) = first_failure {
                // Nothing of an atomic batch stays when one item fails.
                // Field errors stay field → messages, named by item; other errors get `index`.
                let mut details = match e.details.take() {
                    Value::Object(m) => m,
                    _ => serde_json::Map::new(),
                };
                if e.code == stocksync_protocol::ErrorCode::ValidationFailed {
                    details = details
                        .into_iter()
                        .map(|(k, v)| (format!("transactions[{index}].{k}"), v))
                        .collect();
                } else {
                    details.insert("index".into(), json!(index));
                }
                e.details = Value::Object(details);
                e.message = format!("Item {index} failed, so none was applied: {}", e.message);
                return Err(e);
            }
            Ok((200, json!({ "results": results })))
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct ListTransactions {
    product_id: Option<String>,
    location_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    page: Option<u64>,
    #[serde(rename = "pageSize")]
    page_size: Option<u64>,
}

/// An RFC 3339 time or a date (a date means its first or last millisecond).
fn bound(field: &str, text: &str, end: bool) -> Result<String, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t
            .with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Millis, true));
    }
    let d = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| ApiError::field(field, "Must be a date (2026-11-20) or an RFC 3339 time"))?;
    Ok(if end {
        format!("{d}T23:59:59.999Z")
    } else {
        format!("{d}T00:00:00.000Z")
    })
}

pub(super) async fn list_transactions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListTransactions>,
) -> Result<Reply, ApiError> {
    caller.require(READ)?;
    let (page, size, offset) = Paging {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let start = q
        .start_date
        .as_deref()
        .map(|s| bound("start_date", s, false))
        .transpose()?;
    let end = q
        .end_date
        .as_deref()
        .map(|s| bound("end_date", s, true))
        .transpose()?;
    let (rows, total) = state
        .read(move |tx| {
            let branches_locations = match &caller.branches {
                None => None,
                Some(bs) => Some(
                    tx.locations(&caller.org, Some(bs), 0, u32::MAX as u64)?
                        .0
                        .into_iter()
                        .map(|l| l.id)
                        .collect(),
                ),
            };
            let query = MovementQuery {
                product_id: q.product_id,
                location_id: q.location_id,
                branches_locations,
                start,
                end,
                offset,
                limit: size,
            };
            tx.movements(&caller.org, &query).map_err(ApiError::from)
        })
        .await?;
    let items = rows.into_iter().map(|r| r.resource).collect();
    Ok(page_reply(items, page, size, total))
}

pub(super) async fn get_transaction(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathId(id): PathId,
) -> Result<Reply, ApiError> {
    caller.require(READ)?;
    let row = state
        .read(move |tx| {
            let row = tx
                .movement(&caller.org, &id)?
                .ok_or_else(|| ApiError::not_found("transaction", &id))?;
            if caller.branches.is_some() {
                let mut visible = false;
                for l in &row.location_ids {
                    if let Some(loc) = tx.location(&caller.org, l)? {
                        visible |= caller.in_branch(&loc.branch_id);
                    }
                }
                if !visible {
                    return Err(ApiError::not_found("transaction", &id));
                }
            }
            Ok(row)
        })
        .await?;
    Ok(Reply::ok(row.resource))
}

pub(super) async fn transfer(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body<TransferRequest>,
) -> Result<Reply, ApiError> {
    caller.require(CREATE)?;
    let r = body.value;
    let movement = Movement {
        product_id: r.product_id.clone(),
        kind: MovementKind::Transfer {
            transfer_id: r.id.clone().unwrap_or_else(TransferId::new),
            from_location_id: r.from_location_id.clone(),
            to_location_id: r.to_location_id.clone(),
            quantity: r.quantity,
        },
    };
    let origin = origin(&caller, r.reference.clone());
    keyed(
        &state,
        &caller,
        "POST /v1/inventory/transfers",
        &headers,
        &body.canonical,
        move |ctx| Ok((201, stock::apply(ctx, &movement, &origin)?.resource)),
    )
    .await
}

pub(super) async fn allocate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body<AllocationRequest>,
) -> Result<Reply, ApiError> {
    caller.require(ALLOC_MANAGE)?;
    let r = body.value;
    let id = r.id.clone().unwrap_or_else(AllocationId::new);
    let movement = Movement {
        product_id: r.product_id.clone(),
        kind: MovementKind::Allocation {
            allocation_id: id.clone(),
            location_id: r.location_id.clone(),
            quantity: r.quantity,
        },
    };
    let origin = origin(&caller, r.reference.clone());
    keyed(
        &state,
        &caller,
        "POST /v1/allocations",
        &headers,
        &body.canonical,
        move |ctx| {
            stock::apply(ctx, &movement, &origin)?;
            let a = ctx
                .tx
                .allocation(&ctx.org, id.as_str())?
                .ok_or_else(|| ApiError::internal("allocation vanished"))?;
            Ok((201, a.resource))
        },
    )
    .await
}

pub(super) async fn get_allocation(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathId(id): PathId,
) -> Result<Reply, ApiError> {
    caller.require(ALLOC_READ)?;
    let row = state
        .read(move |tx| stock::find_allocation(tx, &caller.org, &id, caller.branches.as_deref()))
        .await?;
    Ok(Reply::ok(row.resource))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReleaseRequest {
    #[serde(default)]
    reference: Option<String>,
}

pub(super) async fn release(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathId(id): PathId,
    headers: HeaderMap,
    crate::extract::RawBody(body): crate::extract::RawBody,
) -> Result<Reply, ApiError> {
    caller.require(ALLOC_MANAGE)?;
    // The body is optional here: `{}` or nothing.
    let (req, canonical) = if body.iter().all(u8::is_ascii_whitespace) {
        (ReleaseRequest::default(), json!({}))
    } else {
        let b = crate::extract::parse_json::<ReleaseRequest>(&body)?;
        (b.value, b.canonical)
    };
    let branches = caller.branches.clone();
    let origin = origin(&caller, req.reference);
    let endpoint = format!("POST /v1/allocations/{id}/releases");
    keyed(
        &state,
        &caller,
        &endpoint,
        &headers,
        &canonical,
        move |ctx| {
            let movement = stock::release_movement(ctx, &id, branches.as_deref())?;
            stock::apply(ctx, &movement, &origin)?;
            let a = ctx
                .tx
                .allocation(&ctx.org, &id)?
                .ok_or_else(|| ApiError::internal("allocation vanished"))?;
            Ok((200, a.resource))
        },
    )
    .await
}
