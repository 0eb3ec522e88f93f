//! Push and pull.

use super::keyed;
use crate::auth::Caller;
use crate::envelope::Reply;
use crate::error::ApiError;
use crate::extract::{Body, Query};
use crate::service::{delta, push as push_service};
use crate::state::AppState;
use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::json;
use std::time::Instant;
use stocksync_protocol::sync::MAX_PUSH_OPS;
use stocksync_protocol::{PushRequest, headers as h};

pub(super) async fn push(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body<PushRequest>,
) -> Result<Reply, ApiError> {
    if caller.device_id.is_none() {
        return Err(ApiError::denied(
            "Only an enrolled device can push ops; integrations use the REST resources",
        ));
    }
    let ops = body.value.ops;
    if ops.is_empty() || ops.len() > MAX_PUSH_OPS {
        return Err(ApiError::field(
            "ops",
            format!("Must hold 1 to {MAX_PUSH_OPS} ops"),
        ));
    }
    let mut ids = std::collections::HashSet::new();
    if let Some(dup) = ops.iter().find(|o| !ids.insert(o.op_id.as_str())) {
        return Err(ApiError::field(
            "ops",
            format!("op_id {} appears twice", dup.op_id),
        ));
    }
    let st = state.clone();
    keyed(
        &state,
        &caller.clone(),
        "POST /v1/sync/push",
        &headers,
        &body.canonical,
        move |ctx| {
            let results = push_service::push(ctx, &caller, &ops, &st.metrics)?;
            Ok((200, json!({ "results": results })))
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct DeltaQuery {
    since_token: Option<String>,
    limit: Option<u64>,
}

pub(super) async fn delta(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Query(q): Query<DeltaQuery>,
) -> Result<Reply, ApiError> {
    caller.require("inventory.products.read")?;
    let started = Instant::now();
    let header_token = headers
        .get(h::SYNC_TOKEN)
        .map(|v| {
            v.to_str().map(str::to_owned).map_err(|_| {
                ApiError::new(
                    stocksync_protocol::ErrorCode::InvalidSyncToken,
                    "The sync token is not valid header text",
                )
            })
        })
        .transpose()?;
    let token = match (q.since_token, header_token) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::field(
                "since_token",
                "Differs from X-Sync-Token; send one of them",
            ));
        }
        (a, b) => a.or(b),
    };
    let limit = q.limit.unwrap_or(delta::DEFAULT_LIMIT);
    if limit == 0 || limit > delta::MAX_LIMIT {
        return Err(ApiError::field(
            "limit",
            format!("Must be between 1 and {}", delta::MAX_LIMIT),
        ));
    }
    let key = state.secrets.sync_token;
    let retention = i64::try_from(state.config.retention.as_secs()).unwrap_or(i64::MAX);
    let page = state
        .read(move |tx| delta::page(tx, &key, retention, &caller, token.as_deref(), limit))
        .await?;
    state.metrics.delta(started.elapsed());
    let meta = page.meta;
    let mut reply =
        Reply::ok_json_text(page.data).header("x-next-sync-token", &meta.next_sync_token);
    let meta_json = serde_json::to_value(&meta).map_err(ApiError::internal)?;
    if let Some(m) = meta_json.as_object() {
        for (k, v) in m {
            reply = reply.meta(k, v.clone());
        }
    }
    Ok(reply)
}
