//! Products, locations and the stock views.

use super::{Paging, keyed, page_reply, whole_list};
use crate::auth::Caller;
use crate::envelope::{Reply, pagination};
use crate::error::ApiError;
use crate::extract::{Body, PathId, Query};
use crate::service::catalog::{self, CreateLocation, CreateProduct};
use crate::service::stock::stock_resource;
use crate::state::AppState;
use crate::storage::{ProductQuery, Tx};
use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use stocksync_model::{NewLocation, ProductPatch};

const READ: &str = "inventory.products.read";
const WRITE: &str = "inventory.products.write";
const SORTS: [&str; 4] = ["created_at", "updated_at", "sku", "name"];

#[derive(Debug, Deserialize)]
pub(super) struct ListProducts {
    page: Option<u64>,
    #[serde(rename = "pageSize")]
    page_size: Option<u64>,
    after_key: Option<String>,
    limit: Option<u64>,
    sort: Option<String>,
    fields: Option<String>,
    #[serde(rename = "filters[status]")]
    status: Option<String>,
    #[serde(rename = "filters[category]")]
    category: Option<String>,
    #[serde(rename = "filters[sku]")]
    sku: Option<String>,
    #[serde(rename = "filters[barcode]")]
    barcode: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Fields {
    fields: Option<String>,
}

fn field_list(fields: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(text) = fields.filter(|f| !f.trim().is_empty()) else {
        return Ok(None);
    };
    const KNOWN: [&str; 12] = [
        "id",
        "sku",
        "barcode",
        "name",
        "description",
        "category",
        "status",
        "uom",
        "price",
        "version",
        "created_at",
        "updated_at",
    ];
    let mut out = Vec::new();
    for f in text.split(',').map(str::trim) {
        if !KNOWN.contains(&f) {
            return Err(ApiError::field(
                "fields",
                format!("Unknown field `{f}` (known: {})", KNOWN.join(", ")),
            ));
        }
        out.push(f.to_owned());
    }
    Ok(Some(out))
}

fn project(resource: &Value, fields: Option<&[String]>) -> Value {
    match fields {
        None => resource.clone(),
        Some(fs) => {
            let mut m = Map::new();
            m.insert("id".into(), resource["id"].clone());
            for f in fs {
                m.insert(f.clone(), resource[f.as_str()].clone());
            }
            Value::Object(m)
        }
    }
}

pub(super) async fn list_products(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListProducts>,
) -> Result<Reply, ApiError> {
    caller.require(READ)?;
    let fields = field_list(q.fields.as_deref())?;
    let sort = q.sort.clone().unwrap_or_else(|| "-created_at".into());
    let (descending, column) = match sort.strip_prefix('-') {
        Some(c) => (true, c),
        None => (false, sort.as_str()),
    };
    let column = SORTS.into_iter().find(|s| *s == column).ok_or_else(|| {
        ApiError::field(
            "sort",
            "Must be one of created_at, updated_at, sku, name, optionally with a leading -",
        )
    })?;
    let keyset = q.after_key.is_some() || q.limit.is_some();
    let (page, size, offset) = if keyset {
        let limit = q.limit.unwrap_or(super::PAGE_SIZE.0);
        if limit == 0 || limit > super::PAGE_SIZE.1 {
            return Err(ApiError::field("limit", "Must be between 1 and 200"));
        }
        (None, limit, 0)
    } else {
        let (p, s, o) = Paging {
            page: q.page,
            page_size: q.page_size,
        }
        .resolve()?;
        (Some(p), s, o)
    };
    let after = match &q.after_key {
        None => None,
        Some(k) => {
            let bad = || ApiError::field("after_key", "Is not a cursor this hub gave out");
            let bytes = B64.decode(k).map_err(|_| bad())?;
            let (value, id): (String, String) =
                serde_json::from_slice(&bytes).map_err(|_| bad())?;
            Some((value, id))
        }
    };
    let query = ProductQuery {
        status: q.status.clone(),
        category: q.category.clone(),
        sku: q.sku.clone(),
        barcode: q.barcode.clone(),
        sort_column: column,
        descending,
        after,
        offset,
        limit: size + 1,
    };
    let (rows, total) = state
        .read(move |tx| tx.products(&caller.org, &query).map_err(ApiError::from))
        .await?;
    let has_more = rows.len() as u64 > size;
    let rows: Vec<_> = rows.into_iter().take(size as usize).collect();
    let next_cursor = if has_more {
        rows.last().map(|r| {
            let key = json!([r.resource[column].as_str().unwrap_or_default(), r.id]);
            B64.encode(key.to_string())
        })
    } else {
        None
    };
    let items: Vec<Value> = rows
        .iter()
        .map(|r| project(&r.resource, fields.as_deref()))
        .collect();
    Ok(Reply::ok(Value::Array(items)).meta(
        "pagination",
        pagination(page, size, total, has_more, next_cursor, Some(&sort)),
    ))
}

pub(super) async fn get_product(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathId(id): PathId,
    Query(q): Query<Fields>,
) -> Result<Reply, ApiError> {
    caller.require(READ)?;
    let fields = field_list(q.fields.as_deref())?;
    let row = state
        .read(move |tx| {
            tx.product(&caller.org, &id)?
                .filter(|p| !p.deleted)
                .ok_or_else(|| ApiError::not_found("product", &id))
        })
        .await?;
    let tag = format!("\"version-{}\"", row.version);
    Ok(Reply::ok(project(&row.resource, fields.as_deref())).header("etag", &tag))
}

pub(super) async fn create_product(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body<CreateProduct>,
) -> Result<Reply, ApiError> {
    caller.require(WRITE)?;
    let req = body.value;
    let reply = keyed(
        &state,
        &caller,
        "POST /v1/products",
        &headers,
        &body.canonical,
        move |ctx| Ok((201, catalog::create(ctx, &req)?)),
    )
    .await?;
    Ok(reply.etag())
}

fn if_match(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get("if-match")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::field("If-Match", "Is not valid header text"))
        })
        .transpose()
}

pub(super) async fn update_product(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Body<ProductPatch>,
) -> Result<Reply, ApiError> {
    caller.require(WRITE)?;
    let if_match = if_match(&headers)?;
    let patch = body.value;
    let resource = state
        .write(&caller.org, move |ctx| {
            catalog::update(ctx, &id, if_match.as_deref(), &patch)
        })
        .await?;
    Ok(Reply::ok(resource).etag())
}

pub(super) async fn delete_product(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathId(id): PathId,
    headers: HeaderMap,
) -> Result<Reply, ApiError> {
    caller.require(WRITE)?;
    let if_match = if_match(&headers)?;
    let data = state
        .write(&caller.org, move |ctx| {
            catalog::delete(ctx, &id, if_match.as_deref())
        })
        .await?;
    Ok(Reply::ok(data).message("Deleted"))
}

pub(super) async fn list_locations(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(p): Query<Paging>,
) -> Result<Reply, ApiError> {
    caller.require(READ)?;
    let (page, size, offset) = p.resolve()?;
    let (rows, total) = state
        .read(move |tx| {
            tx.locations(&caller.org, caller.branches.as_deref(), offset, size)
                .map_err(ApiError::from)
        })
        .await?;
    let items = rows.into_iter().map(|r| r.resource).collect();
    Ok(page_reply(items, page, size, total))
}

pub(super) async fn create_location(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body<CreateLocation>,
) -> Result<Reply, ApiError> {
    caller.require(WRITE)?;
    let req = body.value;
    let branch = match (&req.branch_id, &caller.branches) {
        (Some(b), _) => b.clone(),
        (None, Some(bs)) if bs.len() == 1 => bs[0].clone(),
        (None, _) => {
            let only = {
                let d = state.directory.read().unwrap_or_else(|p| p.into_inner());
                d.branches
                    .get(&caller.org)
                    .and_then(|bs| (bs.len() == 1).then(|| bs.iter().next().cloned()).flatten())
            };
            only.ok_or_else(|| {
                ApiError::field(
                    "branch_id",
                    "Is required: the organization has several branches",
                )
            })?
        }
    };
    let known = state
        .directory
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .branches
        .get(&caller.org)
        .is_some_and(|bs| bs.contains(&branch));
    if !known {
        return Err(ApiError::field(
            "branch_id",
            format!("No branch `{branch}`"),
        ));
    }
    if !caller.in_branch(&branch) {
        return Err(ApiError::denied("The branch is outside this credential's"));
    }
    keyed(
        &state,
        &caller,
        "POST /v1/inventory/locations",
        &headers,
        &body.canonical,
        move |ctx| {
            let new = NewLocation {
                code: req.code.clone(),
                name: req.name.clone(),
            };
            Ok((
                201,
                catalog::create_location(ctx, req.id.clone(), &new, &branch)?,
            ))
        },
    )
    .await
}

/// A location the caller may see, or 404/403.
fn visible_location(
    tx: &dyn Tx,
    caller: &Caller,
    id: &str,
) -> Result<crate::storage::LocationRow, ApiError> {
    let loc = tx
        .location(&caller.org, id)?
        .ok_or_else(|| ApiError::not_found("location", id))?;
    if !caller.in_branch(&loc.branch_id) {
        return Err(ApiError::denied(
            "The location is in a branch outside this credential's",
        ));
    }
    Ok(loc)
}

pub(super) async fn product_inventory(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathId(id): PathId,
) -> Result<Reply, ApiError> {
    caller.require(READ)?;
    let items = state
        .read(move |tx| {
            let product = tx
                .product(&caller.org, &id)?
                .filter(|p| !p.deleted)
                .ok_or_else(|| ApiError::not_found("product", &id))?;
            let uom = product.resource["uom"]
                .as_str()
                .unwrap_or("EACH")
                .to_owned();
            let mut branches: HashMap<String, String> = HashMap::new();
            let mut out = Vec::new();
            for s in tx.stock_of_product(&caller.org, &id)? {
                let branch = match branches.get(&s.location_id) {
                    Some(b) => b.clone(),
                    None => {
                        let b = tx
                            .location(&caller.org, &s.location_id)?
                            .map(|l| l.branch_id)
                            .unwrap_or_default();
                        branches.insert(s.location_id.clone(), b.clone());
                        b
                    }
                };
                if caller.in_branch(&branch) {
                    out.push(stock_resource(&s, &branch, &uom));
                }
            }
            Ok(out)
        })
        .await?;
    Ok(whole_list(items))
}

fn stock_here(tx: &dyn Tx, caller: &Caller, id: &str) -> Result<Vec<(Value, Value)>, ApiError> {
    let loc = visible_location(tx, caller, id)?;
    let mut out = Vec::new();
    for s in tx.stock_at_location(&caller.org, id)? {
        let Some(product) = tx.product(&caller.org, &s.product_id)? else {
            continue;
        };
        let uom = product.resource["uom"].as_str().unwrap_or("EACH");
        out.push((
            product.resource.clone(),
            stock_resource(&s, &loc.branch_id, uom),
        ));
    }
    Ok(out)
}

pub(super) async fn location_inventory(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathId(id): PathId,
) -> Result<Reply, ApiError> {
    caller.require(READ)?;
    let rows = state.read(move |tx| stock_here(tx, &caller, &id)).await?;
    let items: Vec<Value> = rows.into_iter().map(|(_, s)| s).collect();
    Ok(whole_list(items))
}

pub(super) async fn location_products(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathId(id): PathId,
) -> Result<Reply, ApiError> {
    caller.require(READ)?;
    let rows = state.read(move |tx| stock_here(tx, &caller, &id)).await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(p, s)| json!({ "product": p, "stock": s }))
        .collect();
    Ok(whole_list(items))
}
