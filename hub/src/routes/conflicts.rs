//! The manual queue: list, show, resolve. A branch-limited caller sees its branches' records and
//! the branch-less ones (a product's field clash); another branch's record is 404.

use super::{Paging, keyed, page_reply};
use crate::auth::Caller;
use crate::envelope::Reply;
use crate::error::ApiError;
use crate::extract::{Body, PathId, Query};
use crate::service::conflicts::{self, ResolveRequest};
use crate::state::AppState;
use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;

const READ: &str = "inventory.products.read";
const RESOLVE: &str = "inventory.products.write";

#[derive(Debug, Deserialize)]
pub(super) struct ListConflicts {
    status: Option<String>,
    page: Option<u64>,
    #[serde(rename = "pageSize")]
    page_size: Option<u64>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListConflicts>,
) -> Result<Reply, ApiError> {
    caller.require(READ)?;
    if let Some(s) = &q.status
        && !["open", "resolved", "dismissed"].contains(&s.as_str())
    {
        return Err(ApiError::field(
            "status",
            "Must be open, resolved or dismissed",
        ));
    }
    let (page, size, offset) = Paging {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let (rows, total) = state
        .read(move |tx| {
            tx.conflicts(
                &caller.org,
                q.status.as_deref(),
                caller.branches.as_deref(),
                offset,
                size,
            )
            .map_err(ApiError::from)
        })
        .await?;
    let items = rows.into_iter().map(|r| r.resource).collect();
    Ok(page_reply(items, page, size, total))
}

pub(super) async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathId(id): PathId,
) -> Result<Reply, ApiError> {
    caller.require(READ)?;
    let row = state
        .read(move |tx| conflicts::find(tx, &caller.org, &id, caller.branches.as_deref()))
        .await?;
    Ok(Reply::ok(row.resource))
}

pub(super) async fn resolve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Body<ResolveRequest>,
) -> Result<Reply, ApiError> {
    caller.require(RESOLVE)?;
    let req = body.value;
    let by = caller.credential_id.clone();
    let branches = caller.branches.clone();
    let endpoint = format!("POST /v1/conflicts/{id}/resolve");
    keyed(
        &state,
        &caller,
        &endpoint,
        &headers,
        &body.canonical,
        move |ctx| {
            let resolved = conflicts::resolve(ctx, &id, &req, &by, branches.as_deref())?;
            Ok((200, resolved))
        },
    )
    .await
}
