//! The HTTP surface: which handler answers which route, and the layers around them.

mod auth;
mod catalog;
mod conflicts;
mod movements;
mod sync;
mod system;
pub mod ws;

use crate::auth::Caller;
use crate::envelope::Reply;
use crate::error::ApiError;
use crate::middleware::{authenticate, limit_by_address, request_context};
use crate::service::Ctx;
use crate::service::idempotency::{self, Key, Outcome};
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::{CompressionLayer, CompressionLevel};

/// The whole application.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route(
            "/v1/products",
            get(catalog::list_products).post(catalog::create_product),
        )
        .route(
            "/v1/products/{id}",
            get(catalog::get_product)
                .put(catalog::update_product)
                .delete(catalog::delete_product),
        )
        .route(
            "/v1/products/{id}/inventory",
            get(catalog::product_inventory),
        )
        .route(
            "/v1/inventory/locations",
            get(catalog::list_locations).post(catalog::create_location),
        )
        .route(
            "/v1/inventory/locations/{id}/products",
            get(catalog::location_products),
        )
        .route(
            "/v1/locations/{id}/inventory",
            get(catalog::location_inventory),
        )
        .route(
            "/v1/inventory/transactions",
            get(movements::list_transactions).post(movements::create_transaction),
        )
        .route("/v1/inventory/transactions/batch", post(movements::batch))
        .route(
            "/v1/inventory/transactions/{id}",
            get(movements::get_transaction),
        )
        .route("/v1/inventory/transfers", post(movements::transfer))
        .route("/v1/allocations", post(movements::allocate))
        .route("/v1/allocations/{id}", get(movements::get_allocation))
        .route("/v1/allocations/{id}/releases", post(movements::release))
        .route("/v1/conflicts", get(conflicts::list))
        .route("/v1/conflicts/{id}", get(conflicts::show))
        .route("/v1/conflicts/{id}/resolve", post(conflicts::resolve))
        .route("/v1/sync/push", post(sync::push))
        .route("/v1/inventory/delta", get(sync::delta))
        .route("/v1/ws", get(ws::upgrade))
        .route_layer(from_fn_with_state(state.clone(), authenticate));
    let public = Router::new()
        .route("/v1/health", get(system::health))
        .route("/v1/openapi.json", get(system::openapi))
        .route("/metrics", get(system::metrics))
        .merge(
            Router::new()
                .route("/v1/auth/devices", post(auth::enroll))
                .route("/v1/oauth/token", post(auth::token))
                .route_layer(from_fn_with_state(state.clone(), limit_by_address)),
        );
    protected
        .merge(public)
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(DefaultBodyLimit::max(crate::config::BODY_LIMIT))
        .layer(CatchPanicLayer::custom(system::panicked))
        .layer(CompressionLayer::new().quality(CompressionLevel::Fastest))
        .layer(from_fn_with_state(state.clone(), request_context))
        .with_state(state)
}

/// Runs a mutation under its `Idempotency-Key`, in one write transaction.
///
/// Keys are kept per organization and branch scope: a branch-limited caller (a device, a branch
/// key, or a key narrowed by `X-Branch-ID`) has a key space of its own, so it can neither replay
/// another branch's stored answer (which would show that branch's stock) nor learn from a 422
/// that another branch used a key.
pub(crate) async fn keyed<F>(
    state: &AppState,
    caller: &Caller,
    endpoint: &str,
    headers: &HeaderMap,
    body: &Value,
    f: F,
) -> Result<Reply, ApiError>
where
    F: FnOnce(&mut Ctx<'_>) -> Result<(u16, Value), ApiError> + Send + 'static,
{
    let scoped = match &caller.branches {
        None => endpoint.to_owned(),
        Some(bs) => {
            let mut bs = bs.clone();
            bs.sort();
            format!("{endpoint} @{}", bs.join(","))
        }
    };
    let key = Key::from_request(&scoped, headers, body)?;
    let outcome = state
        .write(&caller.org, move |ctx| idempotency::run(ctx, &key, f))
        .await?;
    Ok(match outcome {
        Outcome::Fresh { status, data } => {
            Reply::ok(data).status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        }
        Outcome::Replay {
            data,
            original_created_at,
            ..
        } => Reply::ok(data)
            .message("Replayed: this Idempotency-Key was used before")
            .meta("idempotent", json!(true))
            .meta("original_created_at", json!(original_created_at)),
    })
}

/// Page and page size of an offset-paged list.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Paging {
    /// 1-based page.
    page: Option<u64>,
    /// Items per page.
    #[serde(rename = "pageSize")]
    page_size: Option<u64>,
}

/// Default and largest page size.
pub(crate) const PAGE_SIZE: (u64, u64) = (50, 200);

impl Paging {
    /// `(page, size, offset)`, validated.
    pub(crate) fn resolve(&self) -> Result<(u64, u64, u64), ApiError> {
        let page = self.page.unwrap_or(1);
        let size = self.page_size.unwrap_or(PAGE_SIZE.0);
        if page == 0 {
            return Err(ApiError::field("page", "Must be 1 or more"));
        }
        if size == 0 || size > PAGE_SIZE.1 {
            return Err(ApiError::field(
                "pageSize",
                format!("Must be between 1 and {}", PAGE_SIZE.1),
            ));
        }
        // The store takes a signed 64-bit offset.
        let offset = (page - 1)
            .checked_mul(size)
            .filter(|o| i64::try_from(*o).is_ok())
            .ok_or_else(|| ApiError::field("page", "Is too large"))?;
        Ok((page, size, offset))
    }
}

/// A list that is never paged (a product's or a location's stock): one page holding everything.
pub(crate) fn whole_list(items: Vec<Value>) -> Reply {
    let total = items.len() as u64;
    page_reply(items, 1, total.max(1), total)
}

/// A list reply with `meta.pagination`.
pub(crate) fn page_reply(items: Vec<Value>, page: u64, size: u64, total: u64) -> Reply {
    let has_more = (page - 1) * size + (items.len() as u64) < total;
    Reply::ok(Value::Array(items)).meta(
        "pagination",
        crate::envelope::pagination(Some(page), size, total, has_more, None, None),
    )
}
