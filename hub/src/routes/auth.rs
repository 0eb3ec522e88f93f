//! Enrollment and token refresh (no credential needed: the keys in the bodies are the proof).

use crate::auth::tokens::{self, EnrollRequest, Refreshed, TokenRequest};
use crate::envelope::Reply;
use crate::error::ApiError;
use crate::extract::{RawBody, parse_json};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, header};

pub(super) async fn enroll(
    State(state): State<AppState>,
    body: crate::extract::Body<EnrollRequest>,
) -> Result<Reply, ApiError> {
    let st = state.clone();
    let pair = state
        .write("", move |ctx| {
            tokens::enroll(&st, &mut *ctx.tx, &body.value)
        })
        .await?;
    Ok(Reply::created(pair))
}

pub(super) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Reply, ApiError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let req: TokenRequest = if form {
        let pairs: std::collections::HashMap<String, String> = url_pairs(&body)?;
        let get = |k: &str| {
            pairs
                .get(k)
                .cloned()
                .ok_or_else(|| ApiError::field(k, "Is required"))
        };
        TokenRequest {
            grant_type: get("grant_type")?,
            refresh_token: get("refresh_token")?,
        }
    } else {
        parse_json::<TokenRequest>(&body)?.value
    };
    let st = state.clone();
    let outcome = state
        .write("", move |ctx| tokens::refresh(&st, &mut *ctx.tx, &req))
        .await?;
    match outcome {
        Refreshed::Pair(pair) => Ok(Reply::ok(pair)),
        Refreshed::Reused(family) => {
            state.revoke_family(family);
            Err(ApiError::unauthenticated(
                "This refresh token was already used: every token of this device was revoked; enroll again",
            ))
        }
    }
}

/// `a=b&c=d` with percent-decoding and `+` as space.
fn url_pairs(body: &[u8]) -> Result<std::collections::HashMap<String, String>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::field("body", "Is not UTF-8"))?;
    let mut out = std::collections::HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(decode(k)?, decode(v)?);
    }
    Ok(out)
}

fn decode(s: &str) -> Result<String, ApiError> {
    let bad = || ApiError::field("body", "Has a broken percent-escape");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or_else(bad)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::field("body", "Is not UTF-8"))
}
