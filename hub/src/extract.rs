//! Extractors whose every rejection is an error envelope: bad JSON, wrong types, unknown
//! fields, broken UTF-8 and oversized bodies all become 4xx with a message that says what to fix.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;
use stocksync_protocol::ErrorCode;

/// A JSON body: the typed value and the canonical JSON (keys sorted) for idempotency hashing.
pub struct Body<T> {
    /// The parsed body.
    pub value: T,
    /// The body as JSON, keys sorted.
    pub canonical: Value,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_json(&bytes)
    }
}

/// The body as bytes, for handlers that parse it themselves: over the limit it is a 413
/// `PAYLOAD_TOO_LARGE` envelope, a body that cannot be read a 400 (never axum's plain text).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(ErrorCode::PayloadTooLarge, "The request body is too large")
                        .with_details(
                            serde_json::json!({ "limit_bytes": crate::config::BODY_LIMIT }),
                        )
                } else {
                    ApiError::field(
                        "body",
                        format!("Could not read the body: {}", e.body_text()),
                    )
                }
            })
    }
}

/// Parses a JSON body into `T`, keeping the canonical JSON.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<Body<T>, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::field("body", "A JSON body is required"));
    }
    let canonical: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::field("body", format!("Not valid JSON: {e}")))?;
    let value = T::deserialize(&canonical).map_err(|e| ApiError::field("body", e.to_string()))?;
    Ok(Body { value, canonical })
}

/// Query parameters.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // Decoding is lossy downstream: a broken escape would silently become U+FFFD.
        if let Some(q) = parts.uri.query()
            && !query_is_utf8(q)
        {
            return Err(ApiError::field(
                "query",
                "Is not valid UTF-8 once percent-decoded",
            ));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::field("query", e.body_text()))
    }
}

/// Whether a query decodes to UTF-8 (`%XX` escapes decoded; `&`, `=` and `+` are ASCII, so
/// checking the whole decoded text checks every name and value).
fn query_is_utf8(query: &str) -> bool {
    let bytes = query.as_bytes();
    let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2)))
        {
            decoded.push(u8::try_from(h * 16 + l).unwrap_or(0));
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

/// One path parameter.
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| PathId(p.0))
            .map_err(|e| ApiError::field("path", e.body_text()))
    }
}
