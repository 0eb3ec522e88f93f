//! Health, the OpenAPI document, metrics, and the answers for unknown routes and panics.

use crate::envelope::Reply;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use stocksync_protocol::ErrorCode;

/// The OpenAPI 3.1 document kept in the repo.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

pub(super) async fn health(State(state): State<AppState>) -> Result<Reply, ApiError> {
    state
        .read(|tx| tx.orgs().map_err(ApiError::from))
        .await
        .map_err(|_| {
            let mut e = ApiError::new(ErrorCode::ServiceUnavailable, "The database is unavailable");
            e.retry_after = Some(5);
            e
        })?;
    Ok(Reply::ok(
        json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }),
    ))
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

pub(super) async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "No such route; see /v1/openapi.json")
}

pub(super) async fn method_not_allowed() -> Response {
    let mut r =
        ApiError::new(ErrorCode::NotFound, "This route does not take that method").into_response();
    *r.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    r
}

pub(super) fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("a handler panicked").into_response()
}
